"""The SQLite event store: many quanta in one file, claims, copies, sync policies, crashes."""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from support.store_workers import (
    empty_quantum,
    existence_payload,
    kill_mid_group,
    run_writers,
)
from support.workflows import run_workflow, stored_line

from qbb_events import (
    Event,
    InvalidDefinitionError,
    LogClosedError,
    LogConflictError,
    LogCorruptedError,
    LogSealedError,
    LogWriteError,
    QuantumBackedButler,
    SchemaVersionError,
    StoredLog,
    SyncPolicy,
    canonical_json,
    chain_hash,
    check_chain,
    fold,
)
from qbb_events.logs import _sql_store as sqlite_module
from qbb_events.logs import encode_record
from qbb_events.logs.sqlite import SqliteEventLog, SqliteEventStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "node" / "events.sqlite"


@pytest.fixture
def store(store_path: Path) -> Iterator[SqliteEventStore]:
    with SqliteEventStore(store_path) as opened:
        yield opened


def peek(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run a query on a connection of our own: what another process would see."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def stored_rows(path: Path, quantum_id: uuid.UUID | None = None) -> int:
    if quantum_id is None:
        return int(peek(path, "SELECT count(*) FROM qbb_events")[0][0])
    return int(
        peek(path, "SELECT count(*) FROM qbb_events WHERE quantum_id = ?", str(quantum_id))[0][0]
    )


def records_of(log: StoredLog) -> list[bytes]:
    return [record for _, record, _ in log]


def all_records(store: SqliteEventStore) -> list[bytes]:
    return [record for log in store.logs() for record in records_of(log)]


def started(store: SqliteEventStore, root: Path, sync: SyncPolicy | None = None) -> Any:
    """A butler of an empty quantum logging to a new log of ``store``."""
    quantum = empty_quantum(str(uuid.uuid4()))
    return QuantumBackedButler.initialize(root, quantum, log=store.log(sync=sync))


def rehashed(data: dict[str, Any]) -> bytes:
    """The record of an event dict whose ``hash`` was recomputed for its content."""
    body = {k: v for k, v in data.items() if k != "hash"}
    canonical = canonical_json(body)
    return encode_record(canonical, chain_hash(body["prev_hash"], canonical))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Fault:
    """Makes the store's inserts of events fail, as a full or broken disk would."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.on = False
        self.hits = 0
        sa.event.listen(store._engine, "before_cursor_execute", self._check)

    def _check(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.on and statement.startswith("INSERT INTO qbb_events"):
            self.hits += 1
            raise sqlite3.OperationalError("disk I/O error")


# -- storing and reading back ------------------------------------------------


def test_a_butler_run_is_stored_and_read_back(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    log = store.log()
    assert isinstance(log, SqliteEventLog)
    assert log.store is store
    assert log.sync_policy == SyncPolicy()
    butler = run_workflow(tmp_path / "repo", log)
    quantum_id = butler.quantum_id
    events = store.read(quantum_id, 0)
    assert events == list(butler.events)
    check_chain(events)
    assert fold(events) == butler.extract_provenance_data()
    assert store.quanta() == [(quantum_id, 0)]
    # Each row holds the very bytes a JSON Lines file holds on the event's line.
    stored = store.stored_log(quantum_id, 0)
    assert str(store_path) in stored.location
    assert str(quantum_id) in stored.location
    assert list(stored) == [
        (position, stored_line(event), True)
        for position, event in enumerate(butler.events, start=1)
    ]
    assert records_of(stored) == [stored_line(e) for e in events]
    rows = peek(
        store_path,
        "SELECT quantum_id, attempt, seq, kind, timestamp_ns, hash FROM qbb_events ORDER BY seq",
    )
    assert rows == [
        (str(e.quantum_id), e.attempt, e.seq, e.kind, e.timestamp_ns, e.hash) for e in events
    ]
    ((count, last_hash, sealed, writer, created_ns),) = peek(
        store_path, "SELECT events, last_hash, sealed, writer, created_ns FROM qbb_logs"
    )
    assert (count, last_hash, sealed) == (len(events), events[-1].hash, 1)
    assert writer == f"{socket.gethostname()}:{os.getpid()}"
    assert created_ns > 0
    assert peek(store_path, "PRAGMA journal_mode") == [("wal",)]
    assert peek(store_path, "SELECT key, value FROM qbb_meta") == [("format", "1")]


def test_many_quanta_share_one_file(tmp_path: Path, store: SqliteEventStore) -> None:
    first = run_workflow(tmp_path / "repo", store.log())
    retry = run_workflow(tmp_path / "repo2", store.log(), attempt=1, quantum_id=first.quantum_id)
    other = run_workflow(tmp_path / "repo3", store.log())
    butlers = {(b.quantum_id, a): b for b, a in ((first, 0), (retry, 1), (other, 0))}
    assert store.quanta() == sorted(butlers)
    logs = list(store.logs())
    assert len(logs) == 3
    for (quantum_id, attempt), log in zip(store.quanta(), logs, strict=True):
        butler = butlers[quantum_id, attempt]
        assert log.location.endswith(f"quantum {quantum_id} attempt {attempt}")
        assert records_of(log) == [stored_line(e) for e in butler.events]
        assert store.read(quantum_id, attempt) == list(butler.events)
    # A store opened again later finds them all.
    with SqliteEventStore(store.path) as again:
        assert again.quanta() == store.quanta()
        assert all_records(again) == all_records(store)


def test_pages_and_batches_cover_logs_longer_than_a_page(
    tmp_path: Path, store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_PAGE_ROWS", 4)
    butlers = [run_workflow(tmp_path / f"repo{k}", store.log()) for k in range(2)]
    for butler in butlers:
        events = list(butler.events)
        assert len(events) > 8
        assert store.read(butler.quantum_id, 0) == events
        assert records_of(store.stored_log(butler.quantum_id, 0)) == [
            stored_line(e) for e in events
        ]
    with SqliteEventStore(tmp_path / "copy.sqlite") as copy:
        assert copy.append_records(all_records(store)) == sum(len(b.events) for b in butlers)
        assert all_records(copy) == all_records(store)


def test_an_unbound_log_refuses_its_first_event(store: SqliteEventStore) -> None:
    log = store.log()
    with pytest.raises(InvalidDefinitionError, match="bind"):
        log.append("existence_checked", existence_payload(0))
    assert len(log) == 0
    log.close()


# -- one log per quantum attempt -----------------------------------------------


def test_a_second_log_of_the_same_attempt_is_refused(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    quantum = empty_quantum(str(uuid.uuid4()))
    butler = QuantumBackedButler.initialize(tmp_path / "repo", quantum, log=store.log())
    with pytest.raises(LogConflictError) as info:
        QuantumBackedButler.initialize(tmp_path / "repo", quantum, log=store.log())
    message = str(info.value)
    assert f"quantum {quantum.id} attempt 0 already has a log in {store_path}" in message
    # The same through another store object, as another process would.
    with SqliteEventStore(store_path) as other:
        second = other.log()
        second.bind(quantum.id, 0)
        with pytest.raises(LogConflictError, match="already has a log"):
            second.append("quantum_started", dict(butler.events[0].model_dump(mode="json")))
        assert len(second) == 0
        assert second.events == ()
    # The first log is unaffected, and another attempt is a log of its own.
    butler.log.append("existence_checked", existence_payload(1))
    butler.close()
    assert store.read(quantum.id, 0) == list(butler.events)
    retry = QuantumBackedButler.initialize(tmp_path / "repo", quantum, log=store.log(), attempt=1)
    retry.close()
    assert store.quanta() == [(quantum.id, 0), (quantum.id, 1)]


def test_a_writer_that_lost_a_race_gets_a_conflict(tmp_path: Path, store: SqliteEventStore) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.group(max_events=2, max_delay_ms=60_000))
    quantum_id = butler.quantum_id
    log = butler.log
    log.append("existence_checked", existence_payload(1))
    log.append("existence_checked", existence_payload(2))  # commits seq 1-2
    # A second writer resumes the same attempt and commits first.
    other = store.resume(quantum_id, 0, sync=SyncPolicy.every_event())
    assert len(other) == 3
    other.append("existence_checked", existence_payload(3))
    log.append("existence_checked", existence_payload(4))
    with pytest.raises(LogConflictError, match="another writer"):
        log.append("existence_checked", existence_payload(5))
    # seq 3 of the first writer was acknowledged but cannot be stored: its log
    # refuses everything from now on, and says so again at close.
    with pytest.raises(LogConflictError):
        log.append("existence_checked", existence_payload(6))
    with pytest.raises(LogConflictError):
        butler.close()
    other.close()
    events = store.read(quantum_id, 0)
    assert events == list(other.events)
    assert len(events) == 4


# -- copying records between stores ----------------------------------------------


def test_append_records_copies_once(tmp_path: Path, store: SqliteEventStore) -> None:
    butlers = [run_workflow(tmp_path / f"repo{k}", store.log()) for k in range(2)]
    records = all_records(store)
    with SqliteEventStore(tmp_path / "copy.sqlite") as copy:
        assert copy.append_records(iter(records)) == len(records)
        assert copy.append_records(records) == 0
        assert copy.quanta() == store.quanta()
        for butler in butlers:
            assert copy.read(butler.quantum_id, 0) == list(butler.events)
        assert all_records(copy) == records
        assert stored_rows(copy.path) == len(records)
    # A copy cut short continues where it stopped.
    one = records_of(store.stored_log(butlers[0].quantum_id, 0))
    with SqliteEventStore(tmp_path / "partial.sqlite") as partial:
        assert partial.append_records(one[:5]) == 5
        assert partial.read(butlers[0].quantum_id, 0) == list(butlers[0].events[:5])
        assert partial.append_records(one) == len(one) - 5
        assert partial.read(butlers[0].quantum_id, 0) == list(butlers[0].events)
        check_chain(partial.read(butlers[0].quantum_id, 0))


def test_append_records_takes_json_lines(tmp_path: Path, store: SqliteEventStore) -> None:
    path = tmp_path / "q.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    assert store.append_records(path.read_bytes().splitlines()) == len(butler.events)
    assert store.read(butler.quantum_id, 0) == list(butler.events)
    assert records_of(store.stored_log(butler.quantum_id, 0)) == path.read_bytes().splitlines()


def test_append_records_refuses_another_history(tmp_path: Path, store: SqliteEventStore) -> None:
    quantum_id = uuid.uuid4()
    ours = run_workflow(tmp_path / "repo", store.log(), quantum_id=quantum_id)
    theirs = run_workflow(tmp_path / "repo2", None, quantum_id=quantum_id)
    assert theirs.events[0].hash != ours.events[0].hash
    with pytest.raises(LogConflictError, match="another event at seq 0"):
        store.append_records(stored_line(e) for e in theirs.events)
    assert store.read(quantum_id, 0) == list(ours.events)


def test_append_records_refuses_a_gap(tmp_path: Path, store: SqliteEventStore) -> None:
    butler = run_workflow(tmp_path / "repo", None)
    lines = [stored_line(e) for e in butler.events]
    assert store.append_records(lines[:3]) == 3
    with pytest.raises(LogConflictError) as info:
        store.append_records(lines[4:])
    message = str(info.value)
    assert f"quantum {butler.quantum_id} attempt 0" in message
    assert "seq 4" in message
    assert "seq 3 is missing" in message
    assert store.read(butler.quantum_id, 0) == list(butler.events[:3])
    # A log must start at seq 0.
    with (
        SqliteEventStore(store.path.with_name("other.sqlite")) as other,
        pytest.raises(LogConflictError, match="seq 1 does not continue"),
    ):
        other.append_records(lines[1:])


def test_append_records_refuses_a_wrong_prev_hash(tmp_path: Path, store: SqliteEventStore) -> None:
    butler = run_workflow(tmp_path / "repo", None)
    events = butler.events
    assert store.append_records(stored_line(e) for e in events[:3]) == 3
    forged = events[3].model_dump(mode="json")
    forged["prev_hash"] = events[1].hash
    with pytest.raises(LogConflictError) as info:
        store.append_records([rehashed(forged)])
    message = str(info.value)
    assert "seq 3" in message
    assert f"prev_hash {events[1].hash}" in message
    assert events[2].hash in message
    assert len(store.read(butler.quantum_id, 0)) == 3


def test_append_records_refuses_events_after_quantum_finished(
    tmp_path: Path, store: SqliteEventStore
) -> None:
    butler = run_workflow(tmp_path / "repo", store.log())
    last = butler.events[-1]
    extra = {**butler.events[1].model_dump(mode="json"), "seq": last.seq + 1}
    extra["prev_hash"] = last.hash
    with pytest.raises(LogSealedError, match="sealed"):
        store.append_records([rehashed(extra)])
    assert store.read(butler.quantum_id, 0) == list(butler.events)


def test_append_records_refuses_records_that_do_not_match_their_hash(
    tmp_path: Path, store: SqliteEventStore
) -> None:
    butler = run_workflow(tmp_path / "repo", None)
    lines = [stored_line(e) for e in butler.events]
    altered = lines[0].replace(b"calibrate", b"calibrat\xc3\xa9")
    with pytest.raises(LogCorruptedError, match="does not match its hash"):
        store.append_records([altered])
    with pytest.raises(LogCorruptedError, match="not valid JSON"):
        store.append_records([lines[0][:-5]])
    with pytest.raises(LogCorruptedError, match="lacks"):
        store.append_records([orjson.dumps({"seq": 0})])
    # A log starts with quantum_started.
    first = {**butler.events[1].model_dump(mode="json"), "seq": 0, "prev_hash": "0" * 64}
    with pytest.raises(LogCorruptedError, match="must start with quantum_started"):
        store.append_records([rehashed(first)])
    assert store.quanta() == []


# -- sync policies ---------------------------------------------------------------


def test_every_event_commits_before_append_returns(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.every_event())
    log = butler.log
    assert stored_rows(store_path) == 1
    for index in range(5):
        log.append("existence_checked", existence_payload(index))
        assert stored_rows(store_path) == len(log) == index + 2
        assert log.pending == 0
    butler.close()
    assert stored_rows(store_path) == 7


def test_group_commits_once_max_events_are_pending(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.group(max_events=5, max_delay_ms=60_000))
    log = butler.log
    # quantum_started is committed at once, with the claim.
    assert stored_rows(store_path) == 1
    for index in range(4):
        log.append("existence_checked", existence_payload(index))
    assert stored_rows(store_path) == 1
    assert log.pending == 4
    log.append("existence_checked", existence_payload(4))
    assert stored_rows(store_path) == 6
    assert log.pending == 0
    for index in range(3):
        log.append("existence_checked", existence_payload(index))
    assert stored_rows(store_path) == 6
    butler.close()
    assert stored_rows(store_path) == len(log) == 10
    assert store.read(butler.quantum_id, 0) == list(butler.events)


def test_group_commits_within_max_delay_when_idle(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.group(max_delay_ms=20))
    log = butler.log
    for index in range(3):
        log.append("existence_checked", existence_payload(index))
    # The writer is idle now: the flusher commits the group on its own.
    assert wait_until(lambda: stored_rows(store_path) == 4)
    assert log.pending == 0
    log.append("existence_checked", existence_payload(3))
    assert wait_until(lambda: stored_rows(store_path) == 5)
    butler.close()
    assert store.read(butler.quantum_id, 0) == list(butler.events)


def test_on_close_commits_on_close(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.on_close())
    log = butler.log
    for index in range(10):
        log.append("existence_checked", existence_payload(index))
    assert stored_rows(store_path) == 1
    assert log.pending == 10
    log.close()
    assert stored_rows(store_path) == 11
    assert store.read(butler.quantum_id, 0)[-1].kind == "existence_checked"
    log.close()  # idempotent
    with pytest.raises(LogClosedError, match="closed"):
        log.append("existence_checked", existence_payload(0))


@pytest.mark.parametrize(
    "policy",
    [SyncPolicy.every_event(), SyncPolicy.group(max_delay_ms=60_000), SyncPolicy.on_close()],
    ids=["every_event", "group", "on_close"],
)
def test_quantum_finished_is_committed_by_its_append(
    tmp_path: Path, store: SqliteEventStore, store_path: Path, policy: SyncPolicy
) -> None:
    butler = started(store, tmp_path / "repo", policy)
    for index in range(3):
        butler.log.append("existence_checked", existence_payload(index))
    butler.finish()
    assert butler.log.sealed
    assert stored_rows(store_path) == 5
    assert peek(store_path, "SELECT events, sealed FROM qbb_logs") == [(5, 1)]
    butler.close()
    with pytest.raises(LogSealedError):
        store.resume(butler.quantum_id, 0).append("existence_checked", existence_payload(0))


def test_logs_in_threads_share_a_store(tmp_path: Path, store: SqliteEventStore) -> None:
    butlers = [
        started(store, tmp_path / f"repo{k}", SyncPolicy.group(max_events=50)) for k in range(4)
    ]

    def work(butler: Any) -> None:
        for index in range(500):
            butler.log.append("existence_checked", existence_payload(index))
        butler.close()

    threads = [threading.Thread(target=work, args=(b,)) for b in butlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for butler in butlers:
        events = store.read(butler.quantum_id, 0)
        assert len(events) == 502
        assert events == list(butler.events)


# -- failures ----------------------------------------------------------------------


def test_a_failed_commit_refuses_the_append(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.every_event())
    log = butler.log
    fault = Fault(store)
    fault.on = True
    with pytest.raises(LogWriteError, match="disk I/O error") as info:
        log.append("existence_checked", existence_payload(0))
    assert isinstance(info.value, OSError)
    assert info.value.filename == str(store_path)
    assert len(log) == 1
    # Nothing acknowledged was lost: the log goes on once the disk is back.
    fault.on = False
    log.append("existence_checked", existence_payload(1))
    butler.close()
    events = store.read(butler.quantum_id, 0)
    assert events == list(butler.events)
    assert len(events) == 3


def test_a_failed_group_commit_is_reported_until_close(
    tmp_path: Path, store: SqliteEventStore
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.group(max_events=3, max_delay_ms=60_000))
    log = butler.log
    fault = Fault(store)
    fault.on = True
    log.append("existence_checked", existence_payload(0))
    log.append("existence_checked", existence_payload(1))
    with pytest.raises(LogWriteError) as info:
        log.append("existence_checked", existence_payload(2))
    # seq 1 and 2 were acknowledged but are not stored: the error says so.
    assert "seq 1-2" in str(info.value)
    assert "resume" in str(info.value)
    assert len(log) == 3
    fault.on = False
    with pytest.raises(LogWriteError, match="seq 1-2"):
        log.append("existence_checked", existence_payload(3))
    with pytest.raises(LogWriteError, match="seq 1-2"):
        butler.close()
    log.close()  # closed now; nothing more to report
    # The store holds a whole prefix, which a resumed log continues.
    assert len(store.read(butler.quantum_id, 0)) == 1
    resumed = store.resume(butler.quantum_id, 0)
    resumed.append("existence_checked", existence_payload(4))
    resumed.close()
    events = store.read(butler.quantum_id, 0)
    assert [e.seq for e in events] == [0, 1]
    check_chain(events)


def test_a_failed_background_commit_is_raised_at_the_next_append_and_close(
    tmp_path: Path, store: SqliteEventStore
) -> None:
    butler = started(store, tmp_path / "repo", SyncPolicy.group(max_delay_ms=10))
    log = butler.log
    fault = Fault(store)
    fault.on = True
    log.append("existence_checked", existence_payload(0))
    assert wait_until(lambda: fault.hits > 0 and log.pending == 0)
    fault.on = False
    with pytest.raises(LogWriteError, match="seq 1-1"):
        log.append("existence_checked", existence_payload(1))
    with pytest.raises(LogWriteError, match="seq 1-1"):
        log.close()
    assert len(store.read(butler.quantum_id, 0)) == 1


def test_a_locked_database_times_out_with_a_write_error(tmp_path: Path, store_path: Path) -> None:
    with SqliteEventStore(store_path, busy_timeout_s=0.3) as store:
        log = store.log(sync=SyncPolicy.every_event())
        blocker = sqlite3.connect(store_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(LogWriteError, match="locked") as info:
                QuantumBackedButler.initialize(
                    tmp_path / "repo", empty_quantum(str(uuid.uuid4())), log=log
                )
            assert info.value.errno == errno.EBUSY
            assert len(log) == 0
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        # The claim was refused, not lost: the log takes its first event now.
        butler = QuantumBackedButler.initialize(
            tmp_path / "repo", empty_quantum(str(uuid.uuid4())), log=log
        )
        butler.close()
        assert len(store.read(butler.quantum_id, 0)) == 2


def test_read_checks_the_stored_rows(
    tmp_path: Path, store: SqliteEventStore, store_path: Path
) -> None:
    butler = run_workflow(tmp_path / "repo", store.log())
    quantum_id = str(butler.quantum_id)
    with pytest.raises(LookupError, match="no log"):
        store.read(uuid.uuid4(), 0)
    with pytest.raises(LookupError):
        store.read(butler.quantum_id, 1)

    def tamper(sql: str, *args: Any) -> None:
        conn = sqlite3.connect(store_path)
        with conn:
            conn.execute(sql, args)
        conn.close()

    last = len(butler.events) - 1
    tamper("DELETE FROM qbb_events WHERE quantum_id = ? AND seq = ?", quantum_id, last)
    with pytest.raises(LogCorruptedError, match="removed, added or changed"):
        store.read(butler.quantum_id, 0)
    tamper("UPDATE qbb_events SET record = replace(record, 'calibrate', 'calibrat!') WHERE seq = 0")
    with pytest.raises(LogCorruptedError, match="altered") as info:
        store.read(butler.quantum_id, 0)
    assert info.value.line == 1
    assert info.value.seq == 0


def test_a_store_of_another_format_is_refused(store_path: Path) -> None:
    SqliteEventStore(store_path).close()
    conn = sqlite3.connect(store_path)
    with conn:
        conn.execute("UPDATE qbb_meta SET value = '2' WHERE key = 'format'")
    conn.close()
    with pytest.raises(SchemaVersionError, match="format '2'"):
        SqliteEventStore(store_path)


def test_closing_the_store_commits_and_closes_its_logs(tmp_path: Path, store_path: Path) -> None:
    store = SqliteEventStore(store_path, sync=SyncPolicy.on_close())
    assert repr(store) == f"SqliteEventStore({str(store_path)!r})"
    butler = started(store, tmp_path / "repo")
    butler.log.append("existence_checked", existence_payload(0))
    assert "events=2" in repr(butler.log)
    store.close()
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(LogClosedError):
        butler.log.append("existence_checked", existence_payload(1))
    with pytest.raises(LogClosedError):
        store.log()
    with pytest.raises(LogClosedError):
        store.quanta()
    with SqliteEventStore(store_path) as again:
        assert len(again.read(butler.quantum_id, 0)) == 2


def test_bad_arguments(store_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout_s"):
        SqliteEventStore(store_path, busy_timeout_s=0)


# -- processes ---------------------------------------------------------------------


@pytest.mark.slow
def test_four_processes_append_to_one_file_at_once(tmp_path: Path, store_path: Path) -> None:
    count, writers = 10_000, 4
    quanta = [str(uuid.uuid4()) for _ in range(writers)]
    run_writers(str(store_path), tmp_path, quanta, count, 100)
    with SqliteEventStore(store_path) as store:
        assert sorted(str(q) for q, _ in store.quanta()) == sorted(quanta)
        for quantum_id in quanta:
            events: list[Event] = store.read(uuid.UUID(quantum_id), 0)  # checks the chain
            check_chain(events)
            assert len(events) == count + 2
            assert events[-1].kind == "quantum_finished"
    # Every event is stored once.
    assert stored_rows(store_path) == writers * (count + 2)
    assert peek(
        store_path,
        "SELECT count(*) FROM (SELECT DISTINCT quantum_id, attempt, seq FROM qbb_events)",
    ) == [(writers * (count + 2),)]


def test_committed_events_survive_a_killed_writer_and_resume_continues(
    tmp_path: Path, store_path: Path
) -> None:
    quantum_id = str(uuid.uuid4())
    committed = 1000
    kill_mid_group(str(store_path), tmp_path / "repo", quantum_id, committed)
    key = uuid.UUID(quantum_id)
    with SqliteEventStore(store_path) as store:
        survived = store.read(key, 0)
        check_chain(survived)
        # Every group committed before the kill is there; the group it was
        # filling is lost, leaving whole groups only.
        assert len(survived) >= committed + 1
        assert (len(survived) - 1) % 100 == 0
        log = store.resume(key, 0, sync=SyncPolicy.group(max_events=7))
        assert log.events == tuple(survived)
        assert log.last_hash == survived[-1].hash
        for index in range(20):
            log.append("existence_checked", existence_payload(index))
        log.append(
            "quantum_finished",
            {
                "status": "failed",
                "exception": None,
                "wall_ns": 0,
                "cpu_ns": 0,
                "peak_rss_bytes": 0,
            },
        )
        assert log.sealed
        log.close()
        events = store.read(key, 0)
        check_chain(events)
        assert events[: len(survived)] == survived
        assert len(events) == len(survived) + 21
        assert events == list(log.events)
        assert fold(events).quantum_id == key


def test_resume_of_an_unknown_attempt_is_refused(store: SqliteEventStore) -> None:
    with pytest.raises(LookupError):
        store.resume(uuid.uuid4(), 0)


def test_a_damaged_database_error_names_no_blank_errno(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises((LogWriteError, LogCorruptedError)) as caught:
        SqliteEventStore(path)
    assert "Errno None" not in str(caught.value)
    assert str(path) in str(caught.value)
