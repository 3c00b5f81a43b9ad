"""The PostgreSQL backend: one database holding the logs of many quanta, written from many nodes."""

from ._log import PostgresEventLog
from ._store import PostgresEventStore

__all__ = ["PostgresEventLog", "PostgresEventStore"]
