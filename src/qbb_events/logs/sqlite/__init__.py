"""The SQLite backend: one database file holding the logs of many quanta."""

from ._log import SqliteEventLog
from ._store import SqliteEventStore

__all__ = ["SqliteEventLog", "SqliteEventStore"]
