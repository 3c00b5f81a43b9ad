"""The in-memory event log: the reference store, and the butler's default."""

from __future__ import annotations

from typing import Any

from .._base import EventLog

__all__ = ["InMemoryEventLog"]


class InMemoryEventLog(EventLog):
    """An event log held in memory for the life of the process.

    Notes
    -----
    The hash chain is computed when the events are first read (see
    `EventLog`), so appending costs a tuple and a list append.
    """

    def _store(self, entry: tuple[int, int, str, dict[str, Any]]) -> None:
        """Keep the entry: memory is the store, and hashing waits for `events`."""
