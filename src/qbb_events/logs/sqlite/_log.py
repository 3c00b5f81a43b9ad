"""The SQLite event log: one quantum attempt's events in a `SqliteEventStore`."""

from __future__ import annotations

from .._sql_log import SqlEventLog

__all__ = ["SqliteEventLog"]


class SqliteEventLog(SqlEventLog):
    """One quantum attempt's log in a `SqliteEventStore`.

    Made by `SqliteEventStore.log` (a new log) or `SqliteEventStore.resume`
    (a log continuing stored events); not meant to be made directly.

    Notes
    -----
    Appending keeps the event's row; rows are committed in groups, one
    transaction each, as the sync policy says, and ``quantum_started`` is
    committed with the claim row, so two logs never record one quantum
    attempt. A killed process loses its events since the last commit; the
    store holds a whole prefix, which `SqliteEventStore.resume` continues.
    """
