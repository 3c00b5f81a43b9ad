"""Connections to the registry database: URLs, per-dialect settings, retried transactions.

This is the registry's only contact with the driver: every `sqlalchemy.exc`
error is translated here into `RegistryError`, and transactions that lost a
race (SQLite busy, a PostgreSQL deadlock or serialization failure) are run
again from the start.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from ..errors import RegistryError

__all__ = ["connect", "insert_ignore", "is_postgres", "registry_url", "transact"]

_T = TypeVar("_T")

_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_BUSY_TIMEOUT_S = 120.0
# Rows per INSERT statement: SQLite allows 32,766 bound parameters per statement.
_ROWS_PER_STATEMENT = 1000


def registry_url(url: str | os.PathLike[str] | sa.URL) -> sa.URL:
    """Return the SQLAlchemy URL of a registry.

    Parameters
    ----------
    url : `str`, `os.PathLike` or `sqlalchemy.URL`
        A database URL (``sqlite:///...``, ``postgresql+psycopg://...``; a
        bare ``postgresql://`` means psycopg 3), or a plain file path, which
        means an SQLite registry in that file.

    Returns
    -------
    url : `sqlalchemy.URL`
        The URL to connect to.

    Raises
    ------
    RegistryError
        If the URL names a database this registry does not support.
    """
    if isinstance(url, sa.URL):
        parsed = url
    else:
        text = os.fspath(url)
        if "://" not in text:
            return sa.URL.create("sqlite", database=os.path.abspath(text))
        try:
            parsed = sa.make_url(text)
        except SQLAlchemyError as err:
            raise RegistryError(f"Not a database URL: {text!r} ({err})") from err
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise RegistryError(
            f"Unsupported registry database {parsed.drivername!r}: use a file path, "
            "sqlite:///PATH or postgresql+psycopg://..."
        )
    return parsed


def is_postgres(engine: Engine) -> bool:
    """Tell whether an engine talks to PostgreSQL.

    Parameters
    ----------
    engine : `sqlalchemy.engine.Engine`
        A registry engine.

    Returns
    -------
    postgres : `bool`
        `True` for PostgreSQL, `False` for SQLite.
    """
    return engine.dialect.name == "postgresql"


def connect(url: sa.URL) -> Engine:
    """Make an engine with the registry's settings for its dialect.

    Parameters
    ----------
    url : `sqlalchemy.URL`
        From `registry_url`.

    Returns
    -------
    engine : `sqlalchemy.engine.Engine`
        SQLite: WAL, a long busy timeout and ``BEGIN IMMEDIATE`` for every
        transaction (so a writer waits at its start for the lock instead of
        failing to upgrade midway). PostgreSQL: psycopg 3, pooled.
    """
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"timeout": _BUSY_TIMEOUT_S},
            pool_timeout=_BUSY_TIMEOUT_S,
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLAlchemy's recipe for pysqlite: the driver emits no BEGIN itself;
    # `_sqlite_on_begin` does, as BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL under WAL: a killed process loses nothing committed; only a
        # power cut may lose the last commits, which a transfer redoes.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _retryable(err: SQLAlchemyError) -> bool:
    if not isinstance(err, DBAPIError):
        return False
    sqlstate = getattr(err.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _RETRY_SQLSTATES
    if isinstance(err, OperationalError):
        text = str(err.orig).lower()
        return "locked" in text or "busy" in text
    return False


def transact(engine: Engine, work: Callable[[Connection], _T], what: str) -> _T:
    """Run ``work`` in one transaction, again from the start if it lost a race.

    Parameters
    ----------
    engine : `sqlalchemy.engine.Engine`
        The registry engine.
    work : callable
        Does the transaction's statements; it may run more than once, each
        time in a fresh transaction, so it must not keep state between runs.
    what : `str`
        What is being done, for error messages.

    Returns
    -------
    result
        What ``work`` returned.

    Raises
    ------
    RegistryError
        For any database error but a lost race, or a race still lost after
        the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            with engine.connect() as conn, conn.begin():
                return work(conn)
        except SQLAlchemyError as err:
            if not _retryable(err) or time.monotonic() > deadline:
                raise _translated(err, what) from err
            # Jitter: two processes that deadlocked must not retry in step.
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.5)


def _translated(err: SQLAlchemyError, what: str) -> RegistryError:
    orig = getattr(err, "orig", None)
    detail = str(orig if orig is not None else err).strip().splitlines()
    return RegistryError(f"{what} failed: {detail[0] if detail else type(err).__name__}")


def insert_ignore(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: sa.Column[Any] | None = None,
) -> list[Any]:
    """Insert rows, skipping those whose key (any unique constraint) exists.

    Parameters
    ----------
    conn : `sqlalchemy.engine.Connection`
        A connection inside a transaction.
    table : `sqlalchemy.Table`
        The table.
    rows : `~collections.abc.Sequence` [`~collections.abc.Mapping`]
        The rows, each with every column the statement sets. Callers sort
        them by key: concurrent transactions then take row locks in the same
        order and cannot deadlock on each other.
    returning : `sqlalchemy.Column`, optional
        A column to return for the rows actually inserted.

    Returns
    -------
    inserted : `list`
        The ``returning`` values of the inserted rows (empty without it).
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing()
    if returning is None:
        # executemany: the driver's own batching (pysqlite's C loop, psycopg's
        # pipeline), one round trip per batch rather than per row.
        conn.execute(statement, list(rows))
        return []
    statement = statement.returning(returning)
    found: list[Any] = []
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = list(rows[start : start + _ROWS_PER_STATEMENT])
        found.extend(conn.execute(statement, chunk).scalars())
    return found


def chunked(values: Iterable[Any], size: int = 500) -> Iterable[list[Any]]:
    """Yield lists of at most ``size`` values, for ``IN (...)`` lists.

    Parameters
    ----------
    values : `~collections.abc.Iterable`
        Any values.
    size : `int`, optional
        Largest list.

    Yields
    ------
    chunk : `list`
        The next values.
    """
    chunk: list[Any] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
