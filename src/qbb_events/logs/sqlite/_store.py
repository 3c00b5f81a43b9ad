"""The SQLite event store: one database file holding the logs of many quanta."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

from ..._sql import is_sqlite_file, open_database
from ...errors import DatabaseError, LogCorruptedError, LogWriteError
from .._sql_store import SqlEventStore
from .._sync import SyncPolicy
from ._log import SqliteEventLog

__all__ = ["STORE_SUFFIXES", "SqliteEventStore"]

STORE_SUFFIXES: Final = frozenset({".sqlite", ".sqlite3", ".db"})
"""File name suffixes that mark a new or empty file as meant to be an SQLite store."""


class SqliteEventStore(SqlEventStore[SqliteEventLog]):
    """An SQLite database holding the event logs of many quanta.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The database file; it and its directory are created if missing.
        Several processes may open the same file at once, even a new one.
        An existing file must be an event store, or empty (0 bytes) with a
        name ending in ``.sqlite``, ``.sqlite3`` or ``.db``.
    sync : `SyncPolicy`, optional
        Default policy of the logs `log` and `resume` make (``group`` by
        default).
    busy_timeout_s : `float`, optional
        How long a write waits for another writer to release the database
        before it raises `LogWriteError`.
    readonly : `bool`, optional
        Open for reading only: nothing in the file or its directory is
        written (not even the journal mode), and no write access is needed.

    Raises
    ------
    LogWriteError
        If the file cannot be opened or created, or SQLite cannot use WAL
        mode on it.
    LogCorruptedError
        If the file is not an event store: another application's database,
        a file that is not a database, or an empty file not named as a
        database. It is left byte for byte as it was.
    SchemaVersionError
        If the file holds a store of another format version.
    ValueError
        If ``busy_timeout_s`` is not positive.

    Notes
    -----
    The database runs in WAL mode, so readers never block writers, with
    ``synchronous=FULL``: every commit is on stable storage when it returns,
    and the logs' sync policies decide how many events share one commit.
    Each write transaction starts with ``BEGIN IMMEDIATE``, so a writer
    waits for the write lock at its start (SQLite's busy timeout) instead of
    failing to upgrade a read lock midway; a write still refused as busy is
    retried with a short backoff until ``busy_timeout_s`` has passed. So
    processes appending to different quanta of one file at once never see
    ``database is locked``; they take turns.

    Every append is checked against the stored log: the key ``(quantum_id,
    attempt, seq)`` refuses a duplicate, and each commit moves the claim row
    only from the count and last hash the writer expects, so a writer that
    lost a race gets `LogConflictError` and stores nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: SyncPolicy | None = None,
        busy_timeout_s: float = 60.0,
        readonly: bool = False,
    ) -> None:
        if not busy_timeout_s > 0:
            raise ValueError(f"busy_timeout_s must be positive, not {busy_timeout_s!r}")
        self._path = Path(path).absolute()
        if not readonly:
            _refuse_what_is_not_a_store(self._path)
        try:
            database = open_database(self._path, readonly=readonly, timeout_s=busy_timeout_s)
        except DatabaseError as err:
            raise LogWriteError(err.errno, err.strerror, err.filename) from err
        super().__init__(database, sync, SqliteEventLog)

    @property
    def path(self) -> Path:
        """The database file (`pathlib.Path`)."""
        return self._path


def _refuse_what_is_not_a_store(path: Path) -> None:
    """Refuse, before SQLite touches it, a file this store must not take over."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as err:
        raise LogWriteError(err.errno, f"Cannot open the store: {err.strerror}", str(path)) from err
    if path.is_dir():
        raise LogWriteError(errno.EISDIR, "A directory is not an SQLite store", str(path))
    if size == 0:
        if path.suffix in STORE_SUFFIXES:
            return  # a new store another process is creating, or an empty placeholder
        raise LogCorruptedError(
            f"{path} is an empty file whose name does not end in "
            f"{', '.join(sorted(STORE_SUFFIXES))}: it is not taken for a new event store"
        )
    if not is_sqlite_file(path):
        raise LogCorruptedError(f"{path} is not an SQLite database, so not an event store")
    # An SQLite file of another application keeps its journal mode and gets
    # no tables: look at it read-only first.
    try:
        database = open_database(path, readonly=True)
        tables = database.transact(database.table_names, "looking at the file", read=True)
        database.dispose()
    except DatabaseError as err:
        raise LogWriteError(err.errno, err.strerror, err.filename) from err
    if tables and not {"qbb_meta", "qbb_logs", "qbb_events"} <= tables:
        raise LogCorruptedError(
            f"{path} is an SQLite database of another application, not an event store "
            f"(its tables: {', '.join(sorted(tables))}); it was left as it was"
        )
