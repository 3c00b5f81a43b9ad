"""The PostgreSQL event store: one database holding the logs of many quanta, from many nodes."""

from __future__ import annotations

import sqlalchemy as sa

from ..._sql import is_database_url, open_database
from ...errors import DatabaseError, LogWriteError
from .._sql_store import SqlEventStore
from .._sync import SyncPolicy
from ._log import PostgresEventLog

__all__ = ["PostgresEventStore"]


class PostgresEventStore(SqlEventStore[PostgresEventLog]):
    """A PostgreSQL database holding the event logs of many quanta.

    Parameters
    ----------
    url : `str`
        ``postgresql+psycopg://user@host:port/database`` (``postgresql://``
        is taken to mean psycopg 3 as well).
    sync : `SyncPolicy`, optional
        Default policy of the logs `log` and `resume` make (``group`` by
        default).
    timeout_s : `float`, optional
        How long a transaction keeps retrying serialization failures and
        deadlocks, and the connect timeout.
    readonly : `bool`, optional
        Open for reading only: every transaction is ``READ ONLY`` and no
        table is created.

    Raises
    ------
    LogWriteError
        If the database cannot be reached or written (``errno`` is
        ``ECONNREFUSED`` for a server that is not there).
    LogCorruptedError
        If the database holds tables but not an event store's: it is left as
        it was.
    SchemaVersionError
        If the database holds an event store of another format version,
        naming both.
    ValueError
        If ``url`` is not a PostgreSQL URL, or ``timeout_s`` is not positive.

    Notes
    -----
    The same tables and rules as `SqliteEventStore` (see
    ``docs/event-log.md``): ``UNIQUE(quantum_id, attempt, seq)``, one claim
    row per quantum attempt moved on only from the state its writer expects,
    so many processes on many nodes append to one database at once and a
    writer that lost a race gets `LogConflictError`. The quantum id is a
    native ``uuid`` column. The tables are created on first use (processes
    creating them at once take an advisory lock in turn) with the format
    version stored in ``qbb_meta``.
    """

    def __init__(
        self,
        url: str,
        *,
        sync: SyncPolicy | None = None,
        timeout_s: float = 60.0,
        readonly: bool = False,
    ) -> None:
        if not is_database_url(url) or sa.make_url(url).get_backend_name() not in (
            "postgresql",
            "postgres",
        ):
            raise ValueError(f"not a PostgreSQL URL: {url!r} (postgresql+psycopg://...)")
        try:
            database = open_database(url, readonly=readonly, timeout_s=timeout_s)
        except DatabaseError as err:
            raise LogWriteError(err.errno, err.strerror, err.filename) from err
        super().__init__(database, sync, PostgresEventLog)

    @property
    def url(self) -> str:
        """The database's URL, without its password (`str`)."""
        return self._location
