"""The in-memory event log: the reference implementation every store is measured against."""

from ._log import InMemoryEventLog

__all__ = ["InMemoryEventLog"]
