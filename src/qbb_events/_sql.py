"""The SQL layer: the one place the library talks to a database.

Every store that keeps its data in SQL (the SQLite and PostgreSQL event
stores, the registry) goes through this module, so each of these is written
once, for both dialects:

Opening
    `open_database(target, *, readonly=False, ...)` takes a URL or a plain
    file path and returns a `Database`. A plain path (or ``sqlite:///...``)
    is SQLite through the standard library's driver; ``postgresql+psycopg://``
    (or ``postgresql://``, which is taken to mean psycopg 3) is PostgreSQL.
    `is_database_url` tells a URL from a path. ``readonly=True`` opens
    SQLite as ``file:...?mode=ro`` and needs no write access at all: in a
    directory it may not write to (where SQLite could not create the WAL
    index) it opens the file ``immutable=1``, so verifying an archived store
    never fails with "attempt to write a readonly database". A read-only
    PostgreSQL database runs every transaction ``READ ONLY``.

Per-dialect settings
    SQLite: WAL journal (checked, a file that cannot take it is refused),
    ``synchronous=FULL`` (a commit is durable when it returns), a busy
    timeout, 16 KiB pages on a new file, ``BEGIN IMMEDIATE`` for every write
    transaction (the writer waits for the lock at its start instead of
    failing to upgrade a read lock midway) and a plain ``BEGIN`` for reads;
    the driver's own transaction handling is switched off. PostgreSQL:
    ``READ COMMITTED``, pre-ping so a connection dropped by the server is
    replaced, a connect timeout, and an ``application_name``.

Transactions
    `Database.transact(work, what, *, read=False)` runs ``work(connection)``
    in one transaction and retries it, with a short backoff until the
    database's timeout has passed, when SQLite reports busy/locked or
    PostgreSQL a serialization failure (SQLSTATE ``40001``) or a deadlock
    (``40P01``). ``work`` may therefore run more than once, each time in a
    fresh transaction.

Bulk inserts
    `insert_rows(connection, table, rows)` is the writers' hot path: a
    plain insert of positional rows (``executemany`` on SQLite, ``COPY``
    on PostgreSQL), where a duplicate key is a `DatabaseIntegrityError`.
    `insert_missing(connection, table, rows, keys)` inserts rows whose key is
    not stored yet and returns how many were new, with the dialect's
    ``insert(...).on_conflict_do_nothing(index_elements=keys)``, executed as
    one ``executemany`` so SQLAlchemy batches it (insertmanyvalues).

UUIDs
    `Uuid` is `sqlalchemy.Uuid`: a native ``uuid`` column on PostgreSQL,
    ``CHAR(32)`` hex on SQLite; either way Python sees `uuid.UUID`.

Schema creation
    `Database.lock_schema(connection)` serializes table creation among
    processes opening a new database at once (an advisory lock on
    PostgreSQL; SQLite's write lock already does); `Database.table_names`
    lists what a database holds, so a foreign one can be refused untouched.

Versions
    `check_schema_version(connection, table, expected, where=...)` reads the
    version a database stores and refuses another one, naming both.

Errors
    No ``sqlalchemy.exc`` error leaves this module: `Database.transact` and
    `open_database` translate every driver error, through `translate_error`,
    into `DatabaseIntegrityError` (a constraint refused a write, such as a
    duplicate key: a `ValueError`) or `DatabaseError` (the database could not
    be reached, read or written: an `OSError`, with an ``errno`` where one
    fits, such as ``EBUSY`` for a database locked too long, ``EROFS``,
    ``ENOSPC`` or ``EACCES``). The library's own errors raised inside
    ``work`` pass through unchanged.

Only bound parameters reach the database: nothing here formats data into SQL.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from .errors import DatabaseError, DatabaseIntegrityError, QbbEventsError, SchemaVersionError

__all__ = [
    "Database",
    "Dialect",
    "Uuid",
    "check_schema_version",
    "insert_missing",
    "insert_rows",
    "is_database_url",
    "is_sqlite_file",
    "open_database",
    "redact",
    "translate_error",
]

Dialect = Literal["sqlite", "postgresql"]

Uuid: Final = sa.Uuid
"""The UUID column type: native on PostgreSQL, ``CHAR(32)`` on SQLite."""

_T = TypeVar("_T")

_SCHEMA_LOCK: Final = 0x71BB_0001
"""PostgreSQL advisory lock key taken while creating or checking tables."""

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
# Primary SQLite result codes that have an errno of the same meaning.
_ERRNO_OF_SQLITE: Final = {
    3: errno.EACCES,  # SQLITE_PERM
    5: errno.EBUSY,  # SQLITE_BUSY
    6: errno.EBUSY,  # SQLITE_LOCKED
    8: errno.EROFS,  # SQLITE_READONLY
    10: errno.EIO,  # SQLITE_IOERR
    13: errno.ENOSPC,  # SQLITE_FULL
    14: errno.ENOENT,  # SQLITE_CANTOPEN
    26: errno.EINVAL,  # SQLITE_NOTADB
}
# SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_PG_RETRY: Final = frozenset({"40001", "40P01"})
# SQLSTATE classes and codes that have an errno of the same meaning.
_ERRNO_OF_SQLSTATE: Final = {
    "08": errno.ECONNREFUSED,  # connection exception
    "53100": errno.ENOSPC,  # disk_full
    "25006": errno.EROFS,  # read_only_sql_transaction
    "42501": errno.EACCES,  # insufficient_privilege
    "28": errno.EACCES,  # invalid authorization
    "3D000": errno.ENOENT,  # invalid_catalog_name: no such database
    "57014": errno.ETIMEDOUT,  # query_canceled (statement timeout)
}


def is_database_url(target: object) -> bool:
    """Tell whether ``target`` is a database URL rather than a file path.

    Parameters
    ----------
    target : `object`
        A string, path or anything else.

    Returns
    -------
    url : `bool`
        Whether it is a string of the form ``<dialect>[+<driver>]://...``
        naming SQLite or PostgreSQL.
    """
    if not isinstance(target, str) or "://" not in target:
        return False
    scheme = target.split("://", 1)[0].split("+", 1)[0].lower()
    return scheme in ("sqlite", "postgresql", "postgres")


def is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    """Tell whether a file is an SQLite database, by its header.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Any file.

    Returns
    -------
    sqlite : `bool`
        Whether it starts with the SQLite magic string.
    """
    try:
        with open(path, "rb") as stream:
            return stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def redact(url: sa.URL) -> str:
    """Return a URL as text without its password, for messages."""
    return url.render_as_string(hide_password=True)


class Database:
    """An open SQLite or PostgreSQL database: engine, settings and transactions.

    Made by `open_database`; not meant to be made directly.

    Parameters
    ----------
    engine : `sqlalchemy.engine.Engine`
        The configured engine.
    dialect : `Dialect`
        ``"sqlite"`` or ``"postgresql"``.
    location : `str`
        Where the database is, for messages (a path, or a URL without its
        password).
    readonly : `bool`
        Whether writes are refused.
    timeout_s : `float`
        How long `transact` keeps retrying a busy database.
    path : `pathlib.Path` or `None`
        The SQLite file, or `None` for PostgreSQL.
    """

    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        location: str,
        *,
        readonly: bool,
        timeout_s: float,
        path: Path | None,
    ) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect
        self.location = location
        self.readonly = readonly
        self.timeout_s = timeout_s
        self.path = path

    def transact(self, work: Callable[[Connection], _T], what: str, *, read: bool = False) -> _T:
        """Run ``work`` in one transaction, retrying while the database is busy.

        Parameters
        ----------
        work : `~collections.abc.Callable`
            Called with the connection, inside the transaction; its result
            is returned once the transaction commits. It may run more than
            once, each time in a fresh transaction.
        what : `str`
            What the transaction does, for messages ("reading the logs").
        read : `bool`, optional
            A read transaction: on SQLite a plain ``BEGIN`` instead of
            ``BEGIN IMMEDIATE``, so it takes no write lock.

        Returns
        -------
        result : `object`
            What ``work`` returned.

        Raises
        ------
        DatabaseIntegrityError
            If a constraint refused a write (nothing of the transaction is
            stored).
        DatabaseError
            If the database could not be reached, read or written, or stayed
            busy for the whole timeout.
        QbbEventsError
            Whatever library error ``work`` raised, unchanged (the
            transaction is rolled back).
        """
        deadline = time.monotonic() + self.timeout_s
        pause = 0.001
        while True:
            try:
                with self.engine.connect() as conn:
                    if read:
                        conn.execution_options(qbb_read=True)
                    with conn.begin():
                        return work(conn)
            except QbbEventsError:
                raise
            except SQLAlchemyError as err:
                remaining = deadline - time.monotonic()
                if not self._retryable(err):
                    raise translate_error(err, what, self.location) from err
                if remaining <= 0:
                    raise translate_error(
                        err,
                        what,
                        self.location,
                        f"the database stayed busy with other writers for {self.timeout_s:g} s",
                    ) from err
                # SQLite's busy handler covers BEGIN IMMEDIATE; this covers what
                # it cannot (WAL recovery, a new opener's journal-mode switch),
                # and PostgreSQL's serialization failures and deadlocks.
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.05)

    def _retryable(self, err: SQLAlchemyError) -> bool:
        if self.dialect == "sqlite":
            code = _sqlite_code(err)
            if code is not None:
                return code in (_SQLITE_BUSY, _SQLITE_LOCKED)
            text = str(getattr(err, "orig", err)).lower()
            return isinstance(err, sa.exc.OperationalError) and ("locked" in text or "busy" in text)
        return _sqlstate(err) in _PG_RETRY

    def table_names(self, conn: Connection) -> set[str]:
        """Return the names of the tables the database holds (in its default schema)."""
        return set(sa.inspect(conn).get_table_names())

    def lock_schema(self, conn: Connection) -> None:
        """Serialize schema creation with every other opener, until the transaction ends.

        On SQLite the write transaction (``BEGIN IMMEDIATE``) already does;
        on PostgreSQL a transaction-scoped advisory lock does, so processes
        creating the same tables at once do it one after the other.
        """
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.location!r}, {self.dialect}{', readonly' if self.readonly else ''})"


def open_database(
    target: str | os.PathLike[str] | sa.URL,
    *,
    readonly: bool = False,
    timeout_s: float = 60.0,
    create_directory: bool = True,
    application: str = "qbb_events",
) -> Database:
    """Open an SQLite file or a PostgreSQL database.

    Parameters
    ----------
    target : `str`, `os.PathLike` or `sqlalchemy.URL`
        A plain file path (SQLite), an ``sqlite:///`` URL, or a
        ``postgresql+psycopg://user@host:port/database`` URL.
    readonly : `bool`, optional
        Open for reading only; SQLite then needs no write access to the file
        or its directory, and nothing (not even the journal mode) changes.
    timeout_s : `float`, optional
        How long a transaction waits for a busy database (SQLite's busy
        timeout, and `Database.transact`'s retries), and PostgreSQL's connect
        timeout.
    create_directory : `bool`, optional
        Create a writable SQLite file's missing parent directories.
    application : `str`, optional
        PostgreSQL ``application_name``, shown in ``pg_stat_activity``.

    Returns
    -------
    database : `Database`
        Opened lazily: the first transaction connects.

    Raises
    ------
    DatabaseError
        If the directory cannot be created, a read-only SQLite file does not
        exist, or the URL names another kind of database.
    ValueError
        If ``timeout_s`` is not positive.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
    if isinstance(target, sa.URL) or is_database_url(target):
        url = target if isinstance(target, sa.URL) else sa.make_url(str(target))
        backend = url.get_backend_name()
        if backend == "sqlite":
            if not url.database:
                raise DatabaseError(None, "An in-memory SQLite URL holds no store", str(url))
            return _open_sqlite(Path(url.database), readonly, timeout_s, create_directory)
        if backend in ("postgresql", "postgres"):
            return _open_postgres(url, readonly, timeout_s, application)
        raise DatabaseError(None, f"Unsupported database {backend!r}", redact(url))
    return _open_sqlite(Path(os.fspath(target)), readonly, timeout_s, create_directory)


def _open_sqlite(path: Path, readonly: bool, timeout_s: float, create_directory: bool) -> Database:
    path = path.absolute()
    quoted = urllib.parse.quote(str(path))
    if readonly:
        if not path.is_file():
            raise DatabaseError(errno.ENOENT, "No SQLite database at this path", str(path))
        # Without write access to the directory SQLite cannot create the WAL
        # index (-shm), and mode=ro alone fails with "attempt to write a
        # readonly database": immutable=1 reads the file as it is.
        writable = os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
        database = f"file:{quoted}?mode=ro" + ("" if writable else "&immutable=1")
    else:
        if create_directory:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DatabaseError(
                    err.errno, f"Cannot create the database's directory: {err.strerror}", str(path)
                ) from err
        # SQLite says only "unable to open database file" (SQLITE_CANTOPEN,
        # errno ENOENT) for a file it may not write: say why, with its errno.
        if path.exists() and not os.access(path, os.W_OK):
            raise DatabaseError(errno.EACCES, "The database file is not writable", str(path))
        if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
            raise DatabaseError(
                errno.EACCES,
                "Cannot create the database: its directory is not writable",
                str(path),
            )
        database = f"file:{quoted}"
    engine = sa.create_engine(
        sa.URL.create("sqlite", database=database, query={"uri": "true"}),
        # The driver's timeout is SQLite's busy timeout, in effect from the
        # very first statement of each connection.
        connect_args={"timeout": timeout_s},
        # Waiting for a pooled connection is waiting for the write lock by
        # another name: SQLite has one writer at a time anyway.
        pool_timeout=timeout_s,
    )

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # SQLAlchemy's recipe for pysqlite: the driver must not emit BEGIN
        # itself (it would be DEFERRED, and skipped for DDL); on_begin does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if readonly:
                cursor.execute("PRAGMA query_only = ON")
                return
            # Only a new, empty file takes a page size. Large pages hold more
            # records each: inserts measured 15-40% faster than with 4 KiB.
            cursor.execute("PRAGMA page_size = 16384")
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(
                    None,
                    f"SQLite cannot use WAL mode on this file (journal mode {mode!r})",
                    str(path),
                )
            # FULL: a commit is durable when it returns.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        # Writers take the write lock at BEGIN, where SQLite's busy handler
        # waits for it; a deferred BEGIN would fail at once ("database is
        # locked") when its read lock cannot be upgraded.
        immediate = not readonly and not conn.get_execution_options().get("qbb_read", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)
    return Database(engine, "sqlite", str(path), readonly=readonly, timeout_s=timeout_s, path=path)


def _open_postgres(url: sa.URL, readonly: bool, timeout_s: float, application: str) -> Database:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise DatabaseError(
            None, f"PostgreSQL is reached through psycopg 3, not {url.drivername!r}", redact(url)
        )
    options: dict[str, Any] = {}
    if readonly:
        options["postgresql_readonly"] = True
    engine = sa.create_engine(
        url,
        isolation_level="READ COMMITTED",
        # A connection the server dropped (restart, idle timeout) is replaced
        # instead of failing the next transaction.
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={
            "connect_timeout": max(1, int(timeout_s)),
            "application_name": f"{application}@{socket.gethostname()}:{os.getpid()}",
        },
        execution_options=options,
    )
    return Database(
        engine, "postgresql", redact(url), readonly=readonly, timeout_s=timeout_s, path=None
    )


def insert_missing(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> int:
    """Insert the rows whose key is not stored yet; return how many were new.

    Parameters
    ----------
    conn : `sqlalchemy.engine.Connection`
        A connection inside a transaction (see `Database.transact`).
    table : `sqlalchemy.Table`
        The table.
    rows : `~collections.abc.Sequence` [`~collections.abc.Mapping`]
        The rows, each with the same columns.
    keys : `~collections.abc.Sequence` [`str`]
        The columns of a unique constraint or primary key: a row whose key
        is stored is skipped, whatever its other columns hold.

    Returns
    -------
    inserted : `int`
        How many rows were inserted.

    Notes
    -----
    One statement for both dialects: ``INSERT ... ON CONFLICT (keys) DO
    NOTHING RETURNING keys``, executed once for all rows, so SQLAlchemy's
    insertmanyvalues sends them in batches, and the returned keys count
    exactly the rows that were new.
    """
    if not rows:
        return 0
    name = conn.dialect.name
    dialect_insert = postgresql.insert if name == "postgresql" else sqlite.insert
    columns = [table.c[key] for key in keys]
    statement = (
        dialect_insert(table).on_conflict_do_nothing(index_elements=columns).returning(*columns)
    )
    return len(conn.execute(statement, list(rows)).all())


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert positional rows (in the table's column order) as fast as the dialect allows.

    Parameters
    ----------
    conn : `sqlalchemy.engine.Connection`
        A connection inside a transaction (see `Database.transact`).
    table : `sqlalchemy.Table`
        The table.
    rows : `~collections.abc.Sequence` [`~collections.abc.Sequence`]
        The rows, each value in the table's column order.

    Raises
    ------
    DatabaseIntegrityError
        If a row breaks a constraint (none of the rows is stored: the
        transaction fails).
    DatabaseError
        If the database refuses the rows otherwise.

    Notes
    -----
    A plain ``INSERT``, not idempotent: for the hot path of a writer, where
    a duplicate key is a conflict to report. SQLite takes the driver's
    ``executemany`` of one prepared statement; PostgreSQL takes ``COPY ...
    FROM STDIN`` through psycopg, one round trip for the whole batch, where
    ``executemany`` pays one per row. Values travel as parameters either way.
    """
    if not rows:
        return
    names = [column.name for column in table.columns]
    if conn.dialect.name != "postgresql":
        # Positional tuples straight to the driver: SQLAlchemy Core's per-row
        # parameter processing for a list of dicts costs more than SQLite's
        # own insert (measured: 14 us/row against 8). Only placeholders.
        sql = (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        )
        conn.exec_driver_sql(sql, list(rows))
        return
    import psycopg

    driver = conn.connection.driver_connection
    assert driver is not None
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.IntegrityError as err:
        raise DatabaseIntegrityError(f"inserting into {table.name} failed: {err}") from err
    except psycopg.Error as err:
        state = getattr(err, "sqlstate", None)
        number = _ERRNO_OF_SQLSTATE.get(state or "", _ERRNO_OF_SQLSTATE.get((state or "")[:2]))
        raise DatabaseError(number, f"inserting into {table.name} failed: {err}") from err


def check_schema_version(
    conn: Connection,
    table: sa.Table,
    expected: str,
    *,
    where: str,
    what: str = "a store",
    noun: str = "version",
    key: str = "format",
    error: Callable[[str], Exception] = SchemaVersionError,
) -> None:
    """Refuse a database whose stored schema version is not ``expected``.

    Parameters
    ----------
    conn : `sqlalchemy.engine.Connection`
        A connection inside a transaction.
    table : `sqlalchemy.Table`
        A key-value table with columns ``key`` and ``value``.
    expected : `str`
        The version this library reads and writes.
    where : `str`
        The database, for the message.
    what : `str`, optional
        What the tables hold, for the message ("an event store", "a registry").
    noun : `str`, optional
        What the stored value is called in the message ("version", "format").
    key : `str`, optional
        The row holding the version.
    error : `~collections.abc.Callable`, optional
        The error to raise, called with the message; `SchemaVersionError` by
        default.

    Raises
    ------
    SchemaVersionError
        (Or ``error``) if the stored version differs, naming both, or none is
        stored.
    """
    found = conn.execute(sa.select(table.c.value).where(table.c.key == key)).scalar_one_or_none()
    if found != expected:
        stored = f"no {noun}" if found is None else f"{noun} {found!r}"
        raise error(
            f"{where} holds {what} of {stored}; this qbb_events reads and writes "
            f"{noun} {expected!r}"
        )


def translate_error(
    err: SQLAlchemyError, what: str, location: str, why: str | None = None
) -> DatabaseError | DatabaseIntegrityError:
    """Translate a driver error into the library's error tree.

    Parameters
    ----------
    err : `sqlalchemy.exc.SQLAlchemyError`
        What SQLAlchemy raised.
    what : `str`
        What was being done, for the message.
    location : `str`
        The database, for the message and ``filename``.
    why : `str`, optional
        The reason to give instead of the driver's message.

    Returns
    -------
    error : `DatabaseError` or `DatabaseIntegrityError`
        `DatabaseIntegrityError` for a refused constraint; otherwise
        `DatabaseError` with the ``errno`` that fits the driver's code, if
        any.
    """
    reason = why if why is not None else _driver_message(err)
    if isinstance(err, IntegrityError):
        return DatabaseIntegrityError(f"{what} failed in {location}: {reason}")
    number: int | None = None
    code = _sqlite_code(err)
    if code is not None:
        number = _ERRNO_OF_SQLITE.get(code)
    else:
        state = _sqlstate(err)
        if state is not None:
            number = _ERRNO_OF_SQLSTATE.get(state, _ERRNO_OF_SQLSTATE.get(state[:2]))
    lowered = reason.lower()
    if number is None and ("locked" in lowered or "busy" in lowered):
        number = errno.EBUSY
    elif number is None and "connection" in lowered and isinstance(err, sa.exc.OperationalError):
        # psycopg reports a failed connect with no SQLSTATE.
        number = errno.ECONNREFUSED if "refused" in lowered else errno.ENOTCONN
    return DatabaseError(number, f"{what} failed: {reason}", location)


def _driver_message(err: SQLAlchemyError) -> str:
    orig = getattr(err, "orig", None) if isinstance(err, DBAPIError) else None
    text = str(orig if orig is not None else err).strip()
    # psycopg's messages run over several lines (DETAIL, HINT): keep them on one.
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _sqlite_code(err: SQLAlchemyError) -> int | None:
    code = getattr(getattr(err, "orig", None), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _sqlstate(err: SQLAlchemyError) -> str | None:
    state = getattr(getattr(err, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None
