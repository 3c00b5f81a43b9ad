"""The SQLite backend: one database file holding the logs of many quanta."""

from ._log import SqliteEventLog
from ._store import STORE_SUFFIXES, SqliteEventStore

__all__ = ["STORE_SUFFIXES", "SqliteEventLog", "SqliteEventStore"]
