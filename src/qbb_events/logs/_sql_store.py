"""The SQL event store: the table store the SQLite and PostgreSQL backends share.

One database holds the logs of many quanta. Every row of ``qbb_events``
holds one event's record, the very bytes a JSON Lines file holds on its line
(see `qbb_events.logs._records`), under the key ``(quantum_id, attempt,
seq)``; ``qbb_logs`` holds one claim row per quantum attempt (how many
events, the last hash, whether sealed, which process wrote it); ``qbb_meta``
holds the store format version. Everything dialect-specific (connecting,
pragmas, retries, error translation) is the SQL layer's (`qbb_events._sql`);
the backends only open their `Database`.
"""

from __future__ import annotations

import errno
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._sql import Database, check_schema_version, insert_missing, insert_rows
from ..errors import (
    DatabaseError,
    DatabaseIntegrityError,
    LogClosedError,
    LogConflictError,
    LogCorruptedError,
    LogWriteError,
)
from ..events import GENESIS_HASH, Event
from ._merge import Tail, missing_suffix
from ._reading import _ChainChecker
from ._records import Envelope, StoredLog, parse_envelope
from ._sql_log import SqlEventLog
from ._sql_schema import (
    STORE_FORMAT,
    _as_uuid,
    _Claim,
    _Row,
    _Stored,
    _writer,
    key_of,
    make_tables,
)
from ._sync import SyncPolicy

__all__ = ["STORE_FORMAT", "SqlEventStore"]

_PAGE_ROWS = 10_000
"""Rows read per query when streaming a log, and records per batch when copying."""

_T = TypeVar("_T")
_Log = TypeVar("_Log", bound=SqlEventLog)


class SqlEventStore(Generic[_Log]):
    """An SQL database holding the event logs of many quanta (the backends' shared part).

    Subclassed by `SqliteEventStore` and `PostgresEventStore`, which open the
    database; everything else (claims, group commits, reading, idempotent
    appends) is written here once.

    Parameters
    ----------
    database : `qbb_events._sql.Database`
        The opened database.
    sync : `SyncPolicy` or `None`
        Default policy of the logs `log` and `resume` make.
    log_class : `type`
        The backend's log class, made by `log` and `resume`.
    """

    def __init__(self, database: Database, sync: SyncPolicy | None, log_class: type[_Log]) -> None:
        self._log_class = log_class
        self._db = database
        self._engine = database.engine
        self._location = database.location
        self._tables = make_tables(database.dialect)
        self._policy = sync if sync is not None else SyncPolicy()
        self._closed = False
        self._readonly = database.readonly
        self._open_logs: weakref.WeakSet[SqlEventLog] = weakref.WeakSet()
        self._open_lock = threading.Lock()
        try:
            if self._readonly:
                self._transact(self._check_format, "opening the store", read=True)
            else:
                self._transact(self._prepare, "opening the store")
        except BaseException:
            database.dispose()
            raise

    # -- transactions ----------------------------------------------------------

    def _key(self, quantum_id: uuid.UUID | None) -> object:
        assert quantum_id is not None, "a log is bound before its first event"
        return key_of(self._db.dialect, quantum_id)

    def _transact(self, work: Callable[[Connection], _T], what: str, *, read: bool = False) -> _T:
        """Run ``work`` in one transaction of the SQL layer (retried while busy).

        `DatabaseIntegrityError` passes through, for the caller to name the
        conflict; any other database error becomes `LogWriteError`.
        """
        if self._closed:
            raise LogClosedError(f"The event store {self._location} is closed.")
        try:
            return self._db.transact(work, what, read=read)
        except DatabaseError as err:
            raise LogWriteError(err.errno, err.strerror, err.filename) from err

    def _prepare(self, conn: Connection) -> None:
        # In one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on
        # PostgreSQL), so processes opening a new store at once create the
        # tables exactly once: the first holds the lock through check and
        # creation, the others then find them.
        self._db.lock_schema(conn)
        tables = self._db.table_names(conn)
        if tables and not {"qbb_meta", "qbb_logs", "qbb_events"} <= tables:
            self._not_a_store(tables)
        self._tables.metadata.create_all(conn, checkfirst=True)
        insert_missing(conn, self._tables.meta, [{"key": "format", "value": STORE_FORMAT}], ["key"])
        self._check_format(conn)

    def _not_a_store(self, tables: set[str]) -> None:
        raise LogCorruptedError(
            f"{self._location} is a database but not a qbb_events event store "
            f"(its tables: {', '.join(sorted(tables)) or 'none'}); it was left as it was"
        )

    def _check_format(self, conn: Connection) -> None:
        tables = self._db.table_names(conn)
        if not {"qbb_meta", "qbb_logs", "qbb_events"} <= tables:
            self._not_a_store(tables)
        check_schema_version(
            conn,
            self._tables.meta,
            STORE_FORMAT,
            where=self._location,
            what="an event store",
            noun="format",
        )

    # -- public API ----------------------------------------------------------

    @property
    def sync_policy(self) -> SyncPolicy:
        """Default policy of the logs this store makes (`SyncPolicy`)."""
        return self._policy

    def log(self, *, sync: SyncPolicy | None = None) -> _Log:
        """Return a new, empty log to record one quantum attempt.

        Parameters
        ----------
        sync : `SyncPolicy`, optional
            When its events are committed; the store's policy by default.

        Returns
        -------
        log : `SqlEventLog`
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
        return self._log_class(self, sync if sync is not None else self._policy)

    def resume(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> _Log:
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
        log : `SqlEventLog`
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
        log = self._log_class(self, sync if sync is not None else self._policy)
        log._resume_from(events, records)
        return log

    def open_log(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> _Log:
        """Return the log of a quantum attempt: resumed if held, else new and bound to it.

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
        log : `SqlEventLog`
            As `resume` if the store holds the log; otherwise as `log`, bound
            to the quantum attempt, whose first event claims it (and raises
            `LogConflictError` if another writer claimed it first).
        """
        self._check_open(writing=True)
        key = self._key(quantum_id)
        claim = self._transact(
            lambda conn: self._claim_of(conn, key, attempt), "looking up the log", read=True
        )
        if claim is not None:
            return self.resume(quantum_id, attempt, sync=sync)
        log = self.log(sync=sync)
        log.bind(quantum_id, attempt)
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
            sa.select(self._tables.logs.c.quantum_id, self._tables.logs.c.attempt),
            sa.select(self._tables.events.c.quantum_id, self._tables.events.c.attempt).distinct(),
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
                listed.append((_as_uuid(quantum_id), int(attempt)))
            except (TypeError, ValueError, AttributeError):
                raise LogCorruptedError(
                    f"{self._location} lists quantum {quantum_id!r} attempt {attempt!r}, which is "
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
        key = self._key(quantum_id)

        def work(conn: Connection) -> tuple[list[Event], list[bytes]]:
            claim = self._claim_of(conn, key, attempt)
            if claim is None:
                raise LookupError(
                    f"{self._location} holds no log of quantum {quantum_id} attempt {attempt}"
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
        key = self._key(quantum_id)
        label = f"quantum {quantum_id} attempt {attempt}"

        def records() -> Iterator[tuple[int, bytes, bool]]:
            position = 0
            last_seq = -1
            record = b""
            quantum_key = b'"quantum_id":"%s"' % str(quantum_id).encode()
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
            if claim is None and position == 0:
                return  # a log the store does not hold: no records
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

        return StoredLog(f"{self._location} {label}", records)

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
        batch: dict[tuple[str, int], list[Envelope]] = {}
        count = 0
        for record in records:
            item = parse_envelope(record)
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

    def __enter__(self) -> Self:
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
        return f"{type(self).__name__}({self._location!r}{state})"

    # -- internals -----------------------------------------------------------

    def _check_open(self, *, writing: bool = False) -> None:
        if self._closed:
            raise LogClosedError(f"The event store {self._location} is closed.")
        if writing and self._readonly:
            raise LogWriteError(
                errno.EROFS, "The event store was opened read-only.", str(self._location)
            )

    def _opened(self, log: SqlEventLog) -> None:
        with self._open_lock:
            self._open_logs.add(log)

    def _closed_log(self, log: SqlEventLog) -> None:
        with self._open_lock:
            self._open_logs.discard(log)

    def _claim_of(self, conn: Connection, quantum_id: object, attempt: int) -> _Claim | None:
        row = conn.execute(
            sa.select(
                self._tables.logs.c.events,
                self._tables.logs.c.last_hash,
                self._tables.logs.c.sealed,
            ).where(
                self._tables.logs.c.quantum_id == quantum_id, self._tables.logs.c.attempt == attempt
            )
        ).first()
        return None if row is None else _Claim(row[0], row[1], bool(row[2]))

    def _page(
        self, conn: Connection, quantum_id: object, attempt: int, after_seq: int
    ) -> Sequence[_Stored]:
        # Keyset pagination: each query seeks the key directly, however deep.
        events = self._tables.events.c
        rows = conn.execute(
            sa.select(
                events.seq,
                events.kind,
                events.hash,
                events.record,
            )
            .where(
                events.quantum_id == quantum_id,
                events.attempt == attempt,
                events.seq > after_seq,
            )
            .order_by(events.seq)
            .limit(_PAGE_ROWS)
        ).all()
        return cast(Sequence[_Stored], rows)

    def _pages(
        self, conn: Connection, quantum_id: object, attempt: int
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
        claim = self._tables.logs.insert().values(
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
            insert_rows(conn, self._tables.events, [row])

        try:
            self._transact(work, f"claiming quantum {quantum_id} attempt {attempt}")
        except DatabaseIntegrityError as err:
            raise LogConflictError(
                f"quantum {quantum_id} attempt {attempt} already has a log in {self._location}"
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
            if conn.execute(self._tables.advance, advance).rowcount != 1:
                found = self._claim_of(conn, quantum_id, attempt)
                state = (
                    "no claim row"
                    if found is None
                    else f"{found.events} events ending in {found.last_hash}"
                    + (", sealed" if found.sealed else "")
                )
                raise LogConflictError(
                    f"quantum {quantum_id} attempt {attempt} in {self._location} changed under "
                    f"this log: seq {first} must follow {first} events ending in {prev_hash}, "
                    f"but the store holds {state} (another writer appended to it)"
                )
            insert_rows(conn, self._tables.events, rows)

        what = f"committing seq {first}-{last[2]} of quantum {quantum_id} attempt {attempt}"
        try:
            self._transact(work, what)
        except DatabaseIntegrityError as err:
            raise LogConflictError(
                f"quantum {quantum_id} attempt {attempt} in {self._location} already holds "
                f"events at seq {first}-{last[2]}: another writer appended to it"
            ) from err

    def _append_batch(self, batch: dict[tuple[str, int], list[Envelope]]) -> int:
        inserted = 0
        for quantum_id, attempt in batch:
            key = self._key(uuid.UUID(quantum_id))

            def work(
                conn: Connection, q: str = quantum_id, a: int = attempt, k: object = key
            ) -> int:
                return self._append_group(conn, q, k, a, batch[q, a])

            try:
                inserted += self._transact(
                    work, f"appending records of quantum {quantum_id} attempt {attempt}"
                )
            except DatabaseIntegrityError as err:
                raise LogConflictError(
                    f"quantum {quantum_id} attempt {attempt} in {self._location} was appended to "
                    "by another writer during the copy"
                ) from err
        return inserted

    def _append_group(
        self, conn: Connection, quantum_id: str, key: object, attempt: int, items: list[Envelope]
    ) -> int:
        label = f"quantum {quantum_id} attempt {attempt} in {self._location}"
        claim = self._claim_of(conn, key, attempt)
        stored, last_hash, sealed = claim if claim is not None else _Claim(0, GENESIS_HASH, False)
        overlap = [item.seq for item in items if item.seq < stored]
        known: dict[int, str] = {}
        if overlap:
            known = {
                seq: digest
                for seq, digest in conn.execute(
                    sa.select(self._tables.events.c.seq, self._tables.events.c.hash).where(
                        self._tables.events.c.quantum_id == key,
                        self._tables.events.c.attempt == attempt,
                        self._tables.events.c.seq.between(min(overlap), max(overlap)),
                    )
                )
            }
        fresh = missing_suffix(label, Tail(stored, last_hash, sealed), known.get, items)
        if fresh:
            last_hash, sealed = fresh[-1].hash, fresh[-1].kind == "quantum_finished"
        new: list[_Row] = [
            (key, e.attempt, e.seq, e.kind, e.timestamp_ns, e.hash, e.record) for e in fresh
        ]
        if not new:
            return 0
        if claim is None:
            conn.execute(
                self._tables.logs.insert().values(
                    quantum_id=key,
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
                self._tables.logs.update()
                .where(
                    self._tables.logs.c.quantum_id == key, self._tables.logs.c.attempt == attempt
                )
                .values(events=stored + len(new), last_hash=last_hash, sealed=sealed)
            )
        insert_rows(conn, self._tables.events, new)
        return len(new)
