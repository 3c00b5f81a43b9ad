"""The SQLite backend: one database file holding the logs of many quanta."""

from .._sql_log import SqliteEventLog
from .._sql_store import SqliteEventStore

__all__ = ["SqliteEventLog", "SqliteEventStore"]
