"""The SQLite event store: one database file holding the logs of many quanta.

A node that runs many quanta keeps their logs in one SQLite file instead of
one JSON Lines file each. Every row of ``qbb_events`` holds one event's
record, the very bytes a JSON Lines file holds on its line (see
`qbb_events.logs.stored`), under the key ``(quantum_id, attempt, seq)``;
``qbb_logs`` holds one claim row per quantum attempt (how many events, the
last hash, whether sealed, which process wrote it); ``qbb_meta`` holds the
store format version.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ..errors import (
    LogClosedError,
    LogConflictError,
    LogCorruptedError,
    LogSealedError,
    LogWriteError,
    SchemaVersionError,
)
from ..events import GENESIS_HASH, Event
from ._reading import _ChainChecker
from ._records import StoredLog
from ._sql_log import SqliteEventLog
from ._sql_schema import (
    _ADVANCE,
    _ERRNO_OF_SQLITE,
    _INSERT_EVENTS,
    _T,
    STORE_FORMAT,
    _as_uuid,
    _Claim,
    _events,
    _Incoming,
    _is_busy,
    _logs,
    _meta,
    _metadata,
    _on_begin,
    _parse_incoming,
    _Row,
    _sqlite_code,
    _Stored,
    _writer,
)
from ._sync import SyncPolicy

__all__ = ["STORE_FORMAT", "SqliteEventLog", "SqliteEventStore"]

_PAGE_ROWS = 10_000
"""Rows read per query when streaming a log, and records per batch when copying."""


class SqliteEventStore:
    """An SQLite database holding the event logs of many quanta.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The database file; it and its directory are created if missing.
        Several processes may open the same file at once, even a new one.
    sync : `SyncPolicy`, optional
        Default policy of the logs `log` and `resume` make (``group`` by
        default).
    busy_timeout_s : `float`, optional
        How long a write waits for another writer to release the database
        before it raises `LogWriteError`.

    Raises
    ------
    LogWriteError
        If the file cannot be opened or created, or SQLite cannot use WAL
        mode on it.
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
        self._policy = sync if sync is not None else SyncPolicy()
        self._busy_timeout_s = float(busy_timeout_s)
        self._closed = False
        self._readonly = readonly
        self._open_logs: weakref.WeakSet[SqliteEventLog] = weakref.WeakSet()
        self._open_lock = threading.Lock()
        if readonly:
            # Read-only: no tables, pragmas or journal-mode switch, so a file
            # that is not a store (or an archive) is never changed by reading.
            database = f"file:{self._path}?mode=ro"
            url = sa.URL.create("sqlite", database=database, query={"uri": "true"})
        else:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise LogWriteError(
                    err.errno, f"Cannot create the store's directory: {err}", str(self._path)
                ) from err
            url = sa.URL.create("sqlite", database=str(self._path))
        self._engine = sa.create_engine(
            url,
            # The driver's timeout is SQLite's busy timeout, in effect from the
            # very first statement of each connection.
            connect_args={"timeout": self._busy_timeout_s},
            # Waiting for a pooled connection is waiting for the write lock
            # by another name: SQLite has one writer at a time anyway.
            pool_timeout=self._busy_timeout_s,
        )
        sa.event.listen(self._engine, "connect", self._on_connect)
        sa.event.listen(self._engine, "begin", _on_begin)
        try:
            if readonly:
                self._transact(self._check_format, "opening the store", read=True)
            else:
                self._transact(self._prepare, "opening the store")
        except BaseException:
            self._engine.dispose()
            raise

    # -- connections and transactions ----------------------------------------

    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        # SQLAlchemy's recipe for pysqlite: the driver must not emit BEGIN
        # itself (it would be DEFERRED, and skipped for DDL); `_on_begin` does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if self._readonly:
                cursor.execute("PRAGMA query_only = ON")
                return
            # Only a new, empty file takes a page size. Large pages hold more
            # records each: inserts measured 15-40% faster than with 4 KiB.
            cursor.execute("PRAGMA page_size = 16384")
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LogWriteError(
                    None,
                    f"SQLite cannot use WAL mode on this file (journal mode {mode!r})",
                    str(self._path),
                )
            # FULL: a commit is durable when it returns, which quantum_finished,
            # close() and every_event promise; the group policy amortizes it.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    def _transact(self, work: Callable[[Connection], _T], what: str, *, read: bool = False) -> _T:
        """Run ``work`` in one transaction, retrying while the database is busy.

        ``work`` may run more than once, each time in a fresh transaction.
        `IntegrityError` and the library's own errors pass through; any other
        database error becomes `LogWriteError`.
        """
        if self._closed:
            raise LogClosedError(f"The event store {self._path} is closed.")
        deadline = time.monotonic() + self._busy_timeout_s
        pause = 0.001
        while True:
            try:
                with self._engine.connect() as conn:
                    if read:
                        conn.execution_options(qbb_read=True)
                    with conn.begin():
                        return work(conn)
            except IntegrityError:
                raise
            except OperationalError as err:
                remaining = deadline - time.monotonic()
                if not _is_busy(err):
                    raise self._write_error(err, what) from err
                if remaining <= 0:
                    raise self._write_error(
                        err,
                        what,
                        f"the database stayed locked by other writers for "
                        f"{self._busy_timeout_s:g} s",
                    ) from err
                # The busy handler covers BEGIN IMMEDIATE; this covers what it
                # cannot (WAL recovery, a journal-mode switch by a new opener).
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.05)
            except SQLAlchemyError as err:
                raise self._write_error(err, what) from err

    def _write_error(
        self, err: SQLAlchemyError, what: str, why: str | None = None
    ) -> LogWriteError:
        code = _sqlite_code(err)
        number = None if code is None else _ERRNO_OF_SQLITE.get(code)
        if number is None and isinstance(err, OperationalError) and _is_busy(err):
            number = errno.EBUSY
        if why is None:
            why = str(getattr(err, "orig", None) or err)
        return LogWriteError(number, f"{what} failed: {why}", str(self._path))

    def _prepare(self, conn: Connection) -> None:
        # In one BEGIN IMMEDIATE transaction, so processes opening a new file
        # at once create the tables exactly once: the first holds the write
        # lock through check and creation, the others then find them.
        _metadata.create_all(conn, checkfirst=True)
        conn.execute(
            sqlite_insert(_meta).values(key="format", value=STORE_FORMAT).on_conflict_do_nothing()
        )
        self._check_format(conn)

    def _check_format(self, conn: Connection) -> None:
        tables = set(sa.inspect(conn).get_table_names())
        if not {"qbb_meta", "qbb_logs", "qbb_events"} <= tables:
            raise LogCorruptedError(
                f"{self._path} is an SQLite database but not a qbb_events event store "
                f"(its tables: {', '.join(sorted(tables)) or 'none'})"
            )
        found = conn.execute(
            sa.select(_meta.c.value).where(_meta.c.key == "format")
        ).scalar_one_or_none()
        if found != STORE_FORMAT:
            raise SchemaVersionError(
                f"{self._path} holds an event store of format {found!r}; this qbb_events "
                f"reads format {STORE_FORMAT!r}"
            )

    # -- public API ----------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file (`pathlib.Path`)."""
        return self._path

    @property
    def sync_policy(self) -> SyncPolicy:
        """Default policy of the logs this store makes (`SyncPolicy`)."""
        return self._policy

    def log(self, *, sync: SyncPolicy | None = None) -> SqliteEventLog:
        """Return a new, empty log to record one quantum attempt.

        Parameters
        ----------
        sync : `SyncPolicy`, optional
            When its events are committed; the store's policy by default.

        Returns
        -------
        log : `SqliteEventLog`
            An unbound log: the butler binds it to its quantum attempt and
            appends ``quantum_started``, which claims the attempt in the store.

        Raises
        ------
        LogClosedError
            If the store is closed.

        Examples
        --------
        >>> log = store.log()  # doctest: +SKIP
        >>> butler = QuantumBackedButler.initialize(root, quantum, log=log)  # doctest: +SKIP
        """
        self._check_open(writing=True)
        return SqliteEventLog(self, sync if sync is not None else self._policy)

    def resume(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> SqliteEventLog:
        """Return a log that appends after the stored events of a quantum attempt.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.
        sync : `SyncPolicy`, optional
            When its events are committed; the store's policy by default.

        Returns
        -------
        log : `SqliteEventLog`
            A log holding the stored events (checked as by `read`); a sealed
            log refuses appends with `LogSealedError`.

        Raises
        ------
        LookupError
            If the store holds no log of that quantum attempt.
        LogCorruptedError
            If the stored log fails its checks.

        Notes
        -----
        A writer that was killed leaves every event it committed: its
        uncommitted group (at most the policy's ``max_events`` or
        ``max_delay_ms`` of events; everything since the last commit under
        ``on_close``) is lost, and the resumed log continues after the last
        committed event. If the first writer is still alive, whichever of the
        two commits second gets `LogConflictError`.
        """
        self._check_open(writing=True)
        events, records = self._read(quantum_id, attempt)
        log = SqliteEventLog(self, sync if sync is not None else self._policy)
        log._resume_from(events, records)
        return log

    def quanta(self) -> list[tuple[uuid.UUID, int]]:
        """List the quantum attempts the store holds a log of.

        Returns
        -------
        keys : `list` [`tuple` [`uuid.UUID`, `int`]]
            ``(quantum_id, attempt)`` pairs, sorted.
        """
        # Event rows whose claim row is gone are listed too, so that reading
        # them reports the missing claim instead of skipping them unseen.
        keys = sa.union(
            sa.select(_logs.c.quantum_id, _logs.c.attempt),
            sa.select(_events.c.quantum_id, _events.c.attempt).distinct(),
        ).subquery()
        rows = self._transact(
            lambda conn: conn.execute(
                sa.select(keys.c.quantum_id, keys.c.attempt).order_by(
                    keys.c.quantum_id, keys.c.attempt
                )
            ).all(),
            "listing the logs",
            read=True,
        )
        listed: list[tuple[uuid.UUID, int]] = []
        for quantum_id, attempt in rows:
            try:
                listed.append((uuid.UUID(quantum_id), int(attempt)))
            except (TypeError, ValueError, AttributeError):
                raise LogCorruptedError(
                    f"{self._path} lists quantum {quantum_id!r} attempt {attempt!r}, which is "
                    "not a UUID and an attempt number: the table was edited"
                ) from None
        # Hyphenated lower-case hex sorts as the UUIDs' integers do.
        return listed

    def read(self, quantum_id: uuid.UUID, attempt: int) -> list[Event]:
        """Read one quantum attempt's log and check it whole.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.

        Returns
        -------
        events : `list` [`Event`]
            Its committed events, in order.

        Raises
        ------
        LookupError
            If the store holds no log of that quantum attempt.
        LogCorruptedError
            As `read_log` (``line`` is the row number, from 1), or if a row's
            key columns disagree with its record, or rows were removed or
            added behind the store's back (the claim row's count and last
            hash do not match the rows).
        SchemaVersionError, UnknownEventKindError
            For events this library cannot read.
        """
        return self._read(quantum_id, attempt)[0]

    def _read(self, quantum_id: uuid.UUID, attempt: int) -> tuple[list[Event], list[bytes]]:
        quantum_id = _as_uuid(quantum_id)
        key = str(quantum_id)

        def work(conn: Connection) -> tuple[list[Event], list[bytes]]:
            claim = self._claim_of(conn, key, attempt)
            if claim is None:
                raise LookupError(
                    f"{self._path} holds no log of quantum {quantum_id} attempt {attempt}"
                )
            checker = _ChainChecker()
            events: list[Event] = []
            records: list[bytes] = []
            position = 0
            for page in self._pages(conn, key, attempt):
                for seq, kind, digest, record in page:
                    position += 1
                    try:
                        raw = orjson.loads(record)
                    except orjson.JSONDecodeError as err:
                        raise LogCorruptedError(
                            f"not valid JSON ({err})", line=position, seq=seq
                        ) from None
                    if not isinstance(raw, dict):
                        raise LogCorruptedError(
                            "an event must be a JSON object", line=position, seq=seq
                        )
                    event = checker.check(raw, position, record)
                    if (event.quantum_id, event.attempt, event.seq, event.kind, event.hash) != (
                        quantum_id,
                        attempt,
                        seq,
                        kind,
                        digest,
                    ):
                        raise LogCorruptedError(
                            "the row's key columns do not match its record",
                            line=position,
                            seq=seq,
                        )
                    events.append(event)
                    records.append(record)
            last_hash = events[-1].hash if events else GENESIS_HASH
            sealed = bool(events) and events[-1].kind == "quantum_finished"
            if claim != (len(events), last_hash, sealed):
                raise LogCorruptedError(
                    f"the store lists {claim.events} events ending in {claim.last_hash} "
                    f"(sealed: {claim.sealed}), but {len(events)} ending in {last_hash} "
                    f"are stored: rows were removed, added or changed outside the store",
                    seq=len(events),
                )
            return events, records

        # One read transaction: the claim row and the rows are one snapshot.
        return self._transact(work, f"reading quantum {quantum_id} attempt {attempt}", read=True)

    def stored_log(self, quantum_id: uuid.UUID, attempt: int) -> StoredLog:
        """Return one quantum attempt's log as its stored records.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.

        Returns
        -------
        log : `StoredLog`
            Its ``records()`` yield ``(row, record, True)`` ordered by
            ``seq``, ``row`` counting from 1, reading
            ``10,000`` rows per query so memory stays bounded; a log the store
            does not hold has no records. Nothing is read until then.
        """
        quantum_id = _as_uuid(quantum_id)
        key = str(quantum_id)
        label = f"quantum {quantum_id} attempt {attempt}"

        def records() -> Iterator[tuple[int, bytes, bool]]:
            position = 0
            last_seq = -1
            record = b""
            quantum_key = b'"quantum_id":"%s"' % key.encode()
            while True:
                # Each page in its own short read transaction: a slow reader
                # must not hold a snapshot that stops WAL checkpoints.

                def page_after(conn: Connection, after: int = last_seq) -> Sequence[_Stored]:
                    return self._page(conn, key, attempt, after)

                page = self._transact(page_after, f"reading {label}", read=True)
                for seq, _, _, record in page:
                    position += 1
                    # Sorted keys put "timestamp_ns" right after "seq", so the
                    # key columns can be checked against the record cheaply.
                    if (
                        type(record) is not bytes
                        or b'"seq":%d,' % seq not in record
                        or quantum_key not in record
                    ):
                        raise LogCorruptedError(
                            f"{label}: row {position} (seq column {seq}) does not match its "
                            "record: the table was edited outside the store",
                            line=position,
                        )
                    yield position, record, True
                if len(page) < _PAGE_ROWS:
                    break
                last_seq = page[-1][0]
            claim = self._transact(
                lambda conn: self._claim_of(conn, key, attempt), f"reading {label}", read=True
            )
            stored = _Claim(position, record[-66:-2].decode() if record else GENESIS_HASH, False)
            sealed = b'"kind":"quantum_finished"' in record
            if claim is None or (claim.events, claim.last_hash, claim.sealed) != (
                stored.events,
                stored.last_hash,
                sealed,
            ):
                listed = (
                    "no claim row"
                    if claim is None
                    else f"a claim row of {claim.events} events ending in {claim.last_hash} "
                    f"(sealed: {claim.sealed})"
                )
                raise LogCorruptedError(
                    f"{label}: the store holds {listed}, but {position} rows ending in "
                    f"{stored.last_hash} (sealed: {sealed}): rows or the claim were removed, "
                    "added or changed outside the store"
                )

        return StoredLog(f"{self._path} {label}", records)

    def logs(self) -> Iterator[StoredLog]:
        """Yield every stored log, one per quantum attempt.

        Yields
        ------
        log : `StoredLog`
            As `stored_log`, in the order of `quanta`.
        """
        for quantum_id, attempt in self.quanta():
            yield self.stored_log(quantum_id, attempt)

    def append_records(self, records: Iterable[bytes]) -> int:
        """Append stored records, such as another store's, continuing their logs.

        Parameters
        ----------
        records : `~collections.abc.Iterable` [`bytes`]
            Records (see `qbb_events.logs.stored`) of any quantum attempts,
            each attempt's in ``seq`` order.

        Returns
        -------
        inserted : `int`
            How many records were new to the store.

        Raises
        ------
        LogConflictError
            If a record holds another event than the store at its ``seq``, or
            a new record does not continue the stored log: its ``seq`` leaves a
            gap, or its ``prev_hash`` is not the stored last hash.
        LogSealedError
            If a new record follows a stored ``quantum_finished``.
        LogCorruptedError
            If a record is not JSON, lacks its envelope, or does not match its
            hash.
        LogWriteError
            If the database cannot be written.

        Notes
        -----
        A record whose ``seq`` is stored with the same hash is skipped, so
        copying a log twice stores it once, and a copy that was cut short
        continues where it stopped. Records are taken ``10,000`` at a time;
        each quantum attempt's records of a batch go in one transaction. On an
        error, what was appended before it stays: a whole prefix of each log.
        """
        self._check_open(writing=True)
        inserted = 0
        batch: dict[tuple[str, int], list[_Incoming]] = {}
        count = 0
        for record in records:
            item = _parse_incoming(record)
            batch.setdefault((item.quantum_id, item.attempt), []).append(item)
            count += 1
            if count >= _PAGE_ROWS:
                inserted += self._append_batch(batch)
                batch, count = {}, 0
        if batch:
            inserted += self._append_batch(batch)
        return inserted

    def close(self) -> None:
        """Close the logs still open, then release the database.

        Idempotent.

        Raises
        ------
        LogWriteError, LogConflictError
            If a log still open could not commit its pending events (the
            first such error); every log is closed and the store released
            all the same.
        """
        if self._closed:
            return
        with self._open_lock:
            logs = list(self._open_logs)
        failure: BaseException | None = None
        for log in logs:
            try:
                log.close()
            except (LogWriteError, LogConflictError) as err:
                failure = failure or err
        self._closed = True
        self._engine.dispose()
        if failure is not None:
            raise failure

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"SqliteEventStore({str(self._path)!r}{state})"

    # -- internals -----------------------------------------------------------

    def _check_open(self, *, writing: bool = False) -> None:
        if self._closed:
            raise LogClosedError(f"The event store {self._path} is closed.")
        if writing and self._readonly:
            raise LogWriteError(
                errno.EROFS, "The event store was opened read-only.", str(self._path)
            )

    def _opened(self, log: SqliteEventLog) -> None:
        with self._open_lock:
            self._open_logs.add(log)

    def _closed_log(self, log: SqliteEventLog) -> None:
        with self._open_lock:
            self._open_logs.discard(log)

    @staticmethod
    def _claim_of(conn: Connection, quantum_id: str, attempt: int) -> _Claim | None:
        row = conn.execute(
            sa.select(_logs.c.events, _logs.c.last_hash, _logs.c.sealed).where(
                _logs.c.quantum_id == quantum_id, _logs.c.attempt == attempt
            )
        ).first()
        return None if row is None else _Claim(row[0], row[1], bool(row[2]))

    @staticmethod
    def _page(conn: Connection, quantum_id: str, attempt: int, after_seq: int) -> Sequence[_Stored]:
        # Keyset pagination: each query seeks the key directly, however deep.
        rows = conn.execute(
            sa.select(_events.c.seq, _events.c.kind, _events.c.hash, _events.c.record)
            .where(
                _events.c.quantum_id == quantum_id,
                _events.c.attempt == attempt,
                _events.c.seq > after_seq,
            )
            .order_by(_events.c.seq)
            .limit(_PAGE_ROWS)
        ).all()
        return cast(Sequence[_Stored], rows)

    def _pages(
        self, conn: Connection, quantum_id: str, attempt: int
    ) -> Iterator[Sequence[_Stored]]:
        last_seq = -1
        while True:
            page = self._page(conn, quantum_id, attempt, last_seq)
            yield page
            if len(page) < _PAGE_ROWS:
                return
            last_seq = page[-1][0]

    def _claim(self, row: _Row) -> None:
        """Store the first event of a log with its claim row, in one commit."""
        quantum_id, attempt = row[0], row[1]
        claim = _logs.insert().values(
            quantum_id=quantum_id,
            attempt=attempt,
            events=1,
            last_hash=row[5],
            sealed=row[3] == "quantum_finished",
            writer=_writer(),
            created_ns=time.time_ns(),
        )

        def work(conn: Connection) -> None:
            conn.execute(claim)
            conn.exec_driver_sql(_INSERT_EVENTS, [row])

        try:
            self._transact(work, f"claiming quantum {quantum_id} attempt {attempt}")
        except IntegrityError as err:
            raise LogConflictError(
                f"quantum {quantum_id} attempt {attempt} already has a log in {self._path}"
            ) from err

    def _commit(self, rows: list[_Row], prev_hash: str) -> None:
        """Store events that continue a claimed log after ``prev_hash``, in one commit."""
        quantum_id, attempt, first = rows[0][0], rows[0][1], rows[0][2]
        last = rows[-1]
        advance = {
            "key_quantum_id": quantum_id,
            "key_attempt": attempt,
            "old_events": first,
            "old_last_hash": prev_hash,
            "new_events": last[2] + 1,
            "new_last_hash": last[5],
            "new_sealed": last[3] == "quantum_finished",
            "new_writer": _writer(),
        }

        def work(conn: Connection) -> None:
            if conn.execute(_ADVANCE, advance).rowcount != 1:
                found = self._claim_of(conn, quantum_id, attempt)
                state = (
                    "no claim row"
                    if found is None
                    else f"{found.events} events ending in {found.last_hash}"
                    + (", sealed" if found.sealed else "")
                )
                raise LogConflictError(
                    f"quantum {quantum_id} attempt {attempt} in {self._path} changed under "
                    f"this log: seq {first} must follow {first} events ending in {prev_hash}, "
                    f"but the store holds {state} (another writer appended to it)"
                )
            conn.exec_driver_sql(_INSERT_EVENTS, rows)

        what = f"committing seq {first}-{last[2]} of quantum {quantum_id} attempt {attempt}"
        try:
            self._transact(work, what)
        except IntegrityError as err:
            raise LogConflictError(
                f"quantum {quantum_id} attempt {attempt} in {self._path} already holds "
                f"events at seq {first}-{last[2]}: another writer appended to it"
            ) from err

    def _append_batch(self, batch: dict[tuple[str, int], list[_Incoming]]) -> int:
        inserted = 0
        for quantum_id, attempt in batch:

            def work(conn: Connection, q: str = quantum_id, a: int = attempt) -> int:
                return self._append_group(conn, q, a, batch[q, a])

            try:
                inserted += self._transact(
                    work, f"appending records of quantum {quantum_id} attempt {attempt}"
                )
            except IntegrityError as err:
                raise LogConflictError(
                    f"quantum {quantum_id} attempt {attempt} in {self._path} was appended to "
                    "by another writer during the copy"
                ) from err
        return inserted

    def _append_group(
        self, conn: Connection, quantum_id: str, attempt: int, items: list[_Incoming]
    ) -> int:
        label = f"quantum {quantum_id} attempt {attempt} in {self._path}"
        claim = self._claim_of(conn, quantum_id, attempt)
        stored, last_hash, sealed = claim if claim is not None else _Claim(0, GENESIS_HASH, False)
        overlap = [item.seq for item in items if item.seq < stored]
        known: dict[int, str] = {}
        if overlap:
            known = {
                seq: digest
                for seq, digest in conn.execute(
                    sa.select(_events.c.seq, _events.c.hash).where(
                        _events.c.quantum_id == quantum_id,
                        _events.c.attempt == attempt,
                        _events.c.seq.between(min(overlap), max(overlap)),
                    )
                )
            }
        new: list[_Row] = []
        for item in items:
            count = stored + len(new)
            if item.seq < count:
                held = known.get(item.seq) if item.seq < stored else new[item.seq - stored][5]
                if held != item.hash:
                    raise LogConflictError(
                        f"{label} holds another event at seq {item.seq} "
                        f"(hash {held}, not {item.hash}): the histories diverge"
                    )
                continue
            if sealed:
                raise LogSealedError(
                    f"{label} is sealed by quantum_finished at seq {count - 1}; "
                    f"cannot append seq {item.seq}"
                )
            if item.seq != count:
                raise LogConflictError(
                    f"{label}: seq {item.seq} does not continue the log, which ends "
                    f"with {count} events; seq {count} is missing"
                )
            if item.prev_hash != last_hash:
                raise LogConflictError(
                    f"{label}: seq {item.seq} names prev_hash {item.prev_hash}, but the "
                    f"stored log ends in {last_hash}"
                )
            if count == 0 and item.kind != "quantum_started":
                raise LogCorruptedError(
                    f"a log must start with quantum_started, not {item.kind}", seq=0
                )
            new.append(item.row())
            last_hash = item.hash
            sealed = item.kind == "quantum_finished"
        if not new:
            return 0
        if claim is None:
            conn.execute(
                _logs.insert().values(
                    quantum_id=quantum_id,
                    attempt=attempt,
                    events=len(new),
                    last_hash=last_hash,
                    sealed=sealed,
                    writer=_writer(),
                    created_ns=time.time_ns(),
                )
            )
        else:
            conn.execute(
                _logs.update()
                .where(_logs.c.quantum_id == quantum_id, _logs.c.attempt == attempt)
                .values(events=stored + len(new), last_hash=last_hash, sealed=sealed)
            )
        conn.exec_driver_sql(_INSERT_EVENTS, new)
        return len(new)
