"""The in-memory backend: the reference implementation every store is measured against."""

from ._log import InMemoryEventLog
from ._store import InMemoryEventStore

__all__ = ["InMemoryEventLog", "InMemoryEventStore"]
