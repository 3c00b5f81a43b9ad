"""The PostgreSQL event log: one quantum attempt's events in a `PostgresEventStore`."""

from __future__ import annotations

from .._sql_log import SqlEventLog

__all__ = ["PostgresEventLog"]


class PostgresEventLog(SqlEventLog):
    """One quantum attempt's log in a `PostgresEventStore`.

    Made by `PostgresEventStore.log` (a new log) or `PostgresEventStore.resume`
    (a log continuing stored events); not meant to be made directly.

    Notes
    -----
    As `SqliteEventLog`: rows are committed in groups as the sync policy
    says, ``quantum_started`` with the claim row, ``quantum_finished``
    before its `append` returns; a killed process loses its events since the
    last commit, and the database holds a whole prefix that
    `PostgresEventStore.resume` continues.
    """
