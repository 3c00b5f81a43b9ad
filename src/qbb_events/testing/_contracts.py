"""The contract test classes every event-log backend passes, written once.

A backend is done when a subclass of each passes. The cases take pytest's
``tmp_path`` argument (any runner that supplies a fresh directory by that
name works) and use nothing but the public API and plain ``assert``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson

from ..butler import QuantumBackedButler
from ..errors import (
    LogConflictError,
    LogCorruptedError,
    LogExistsError,
    LogSealedError,
    TornLogWarning,
)
from ..events import canonical_json, chain_hash
from ..logs import (
    EventLog,
    EventStore,
    InMemoryEventLog,
    check_chain,
    copy_logs,
    encode_record,
    verify_logs,
)
from ..quantum import Quantum

__all__ = ["EventLogContract", "LogStoreContract"]


@contextlib.contextmanager
def _raises(*errors: type[BaseException]) -> Iterator[None]:
    """Fail unless the block raises one of ``errors``."""
    try:
        yield
    except errors:
        return
    raise AssertionError(f"expected {' or '.join(e.__name__ for e in errors)}, nothing was raised")


_FINISHED = {
    "status": "succeeded",
    "exception": None,
    "wall_ns": 1,
    "cpu_ns": 1,
    "peak_rss_bytes": 1,
}


def _quantum() -> Quantum:
    # No datasets: the cases append what they check themselves.
    return Quantum("contract", {"visit": 1}, inputs=[], outputs=[])


def _existence(index: int) -> dict[str, Any]:
    return {"dataset_ids": [str(uuid.UUID(int=index + 1))], "results": [index % 2 == 0]}


def _record(log: EventLog, root: Path, quantum: Quantum, events: int, *, seal: bool) -> None:
    """Start ``quantum`` on ``log``, append ``events`` checks, and seal it if asked."""
    butler = QuantumBackedButler.initialize(root, quantum, log=log)
    for index in range(events):
        log.append("existence_checked", _existence(index))
    if seal:
        butler.close()


def _continuation(last_record: bytes) -> bytes:
    """Forge the record that would follow ``last_record`` in its chain."""
    last = orjson.loads(last_record)
    body = {
        "schema_version": last["schema_version"],
        "quantum_id": last["quantum_id"],
        "attempt": last["attempt"],
        "seq": last["seq"] + 1,
        "timestamp_ns": last["timestamp_ns"] + 1,
        "kind": "existence_checked",
        "prev_hash": last["hash"],
        **_existence(0),
    }
    canonical = canonical_json(body)
    return encode_record(canonical, chain_hash(last["hash"], canonical))


def _records_of(events: int, *, seal: bool, root: Path) -> tuple[Quantum, list[bytes]]:
    log = InMemoryEventLog()
    quantum = _quantum()
    _record(log, root, quantum, events, seal=seal)
    return quantum, list(log.records())


class EventLogContract:
    """What every event log does, whatever holds it.

    Subclass it and implement `make_log`; the in-memory log is the
    reference. Logs a case makes are closed by `close_logs` after it.
    """

    def make_log(self, directory: Path, name: str) -> EventLog:
        """Return a new, unbound log of the backend under test.

        Parameters
        ----------
        directory : `pathlib.Path`
            A fresh directory for whatever the backend writes.
        name : `str`
            Distinct for each log a case makes.

        Returns
        -------
        log : `EventLog`
            A log with no events.
        """
        raise NotImplementedError

    def close_logs(self) -> None:
        """Release what `make_log` opened; called by the backend's teardown if it needs one."""

    def test_a_butler_run_is_stored_whole(self, tmp_path: Path) -> None:
        """A sealed run reads back as appended, chained, and verifies."""
        log = self.make_log(tmp_path, "a")
        _record(log, tmp_path / "repo", _quantum(), 20, seal=True)
        events = log.events
        assert log.sealed
        assert len(log) == len(events) == 22
        check_chain(events)
        assert log.last_hash == events[-1].hash
        log.close()
        report = verify_logs(log)
        assert report.ok, list(report.problems())
        assert report.logs[0].final_hash == events[-1].hash

    def test_a_sealed_log_refuses_appends(self, tmp_path: Path) -> None:
        """Nothing follows quantum_finished."""
        log = self.make_log(tmp_path, "a")
        _record(log, tmp_path / "repo", _quantum(), 3, seal=True)
        with _raises(LogSealedError):
            log.append("existence_checked", _existence(9))
        assert len(log) == 5
        log.close()

    def test_records_are_the_reference_bytes(self, tmp_path: Path) -> None:
        """Copied to files, the log is byte for byte what the reference log holds."""
        log = self.make_log(tmp_path, "a")
        quantum = _quantum()
        _record(log, tmp_path / "repo", quantum, 5, seal=True)
        log.close()
        report = copy_logs(log, tmp_path / "copied")
        assert report.ok
        (copied,) = (tmp_path / "copied").iterdir()
        assert copied.read_bytes() == b"".join(r + b"\n" for r in log.records())
        assert verify_logs(copied).digest == verify_logs(log).digest

    def test_many_logs_side_by_side(self, tmp_path: Path) -> None:
        """Logs of several quanta in one backend stay apart."""
        logs = [self.make_log(tmp_path, f"q{i}") for i in range(3)]
        quanta = [_quantum() for _ in logs]
        for index, (log, quantum) in enumerate(zip(logs, quanta, strict=True)):
            _record(log, tmp_path / f"repo{index}", quantum, index, seal=True)
        for log in logs:
            log.close()
        report = verify_logs(logs)
        assert report.ok
        assert {v.quantum_id for v in report.logs} == {q.id for q in quanta}

    def teardown_method(self) -> None:
        """Close the logs a case left open."""
        self.close_logs()


class LogStoreContract:
    """What every store of many logs does: the `EventStore` protocol's promises.

    Subclass it and implement `open_store`. Set ``torn_tails`` and implement
    `tear_last_record` for a backend whose writer can leave half a record.
    """

    torn_tails: ClassVar[bool] = False
    """Whether the backend can hold a torn last record (files can; tables cannot)."""

    def open_store(self, location: Path) -> EventStore:
        """Open the backend's store at ``location``; the same location is the same store.

        Parameters
        ----------
        location : `pathlib.Path`
            A fresh directory for the case (a backend without files may
            ignore it, but must return the same store for the same location
            within a case).

        Returns
        -------
        store : `EventStore`
            The store, opened for writing.
        """
        raise NotImplementedError

    def tear_last_record(self, location: Path, quantum_id: uuid.UUID, attempt: int) -> None:
        """Leave half of one more record at the end of a stored log, as a killed writer would."""
        raise NotImplementedError

    # -- writing and reading back --------------------------------------------------------

    def test_a_log_opened_in_the_store_is_listed_and_read_back(self, tmp_path: Path) -> None:
        """What a log appends is what the store lists and streams."""
        with self.open_store(tmp_path) as store:
            quantum = _quantum()
            log = store.open_log(quantum.id, 0)
            _record(log, tmp_path / "repo", quantum, 30, seal=True)
            log.close()
            assert store.quanta() == [(quantum.id, 0)]
            stored = [record for _, record, _ in store.stored_log(quantum.id, 0)]
            assert stored == list(log.records())
            assert [lg.location for lg in store.logs()] == [
                store.stored_log(quantum.id, 0).location
            ]
            report = verify_logs(store)
            assert report.ok, list(report.problems())
            assert report.events == 32

    def test_a_log_the_store_does_not_hold_has_no_records(self, tmp_path: Path) -> None:
        """Reading an unknown quantum attempt yields nothing, and lists nothing."""
        with self.open_store(tmp_path) as store:
            assert list(store.stored_log(uuid.uuid4(), 0)) == []
            assert store.quanta() == []

    def test_a_log_resumes_after_the_store_is_reopened(self, tmp_path: Path) -> None:
        """Opening a held log continues its chain after its stored events."""
        quantum = _quantum()
        with self.open_store(tmp_path) as store:
            log = store.open_log(quantum.id, 0)
            _record(log, tmp_path / "repo", quantum, 5, seal=False)
            log.close()
        with self.open_store(tmp_path) as store:
            log = store.open_log(quantum.id, 0)
            assert len(log) == 6
            log.append("existence_checked", _existence(6))
            log.append("quantum_finished", dict(_FINISHED))
            log.close()
            events = log.events
            check_chain(events)
            assert [e.seq for e in events] == list(range(8))
            stored = [record for _, record, _ in store.stored_log(quantum.id, 0)]
            assert stored == list(log.records())

    def test_a_sealed_log_stays_sealed_when_reopened(self, tmp_path: Path) -> None:
        """A resumed sealed log refuses appends."""
        quantum = _quantum()
        with self.open_store(tmp_path) as store:
            log = store.open_log(quantum.id, 0)
            _record(log, tmp_path / "repo", quantum, 2, seal=True)
            log.close()
        with self.open_store(tmp_path) as store:
            log = store.open_log(quantum.id, 0)
            assert log.sealed
            with _raises(LogSealedError):
                log.append("existence_checked", _existence(0))
            log.close()

    def test_a_second_writer_of_one_quantum_attempt_is_refused(self, tmp_path: Path) -> None:
        """Two writers never both extend one log: the one that lost the race is refused."""
        quantum = _quantum()
        with self.open_store(tmp_path) as store:
            first = store.open_log(quantum.id, 0)
            _record(first, tmp_path / "repo", quantum, 1, seal=False)
            try:
                second = store.open_log(quantum.id, 0)
            except LogExistsError:
                first.close()  # the backend locks a log for its one writer
            else:
                second.append("existence_checked", _existence(7))
                second.close()
                # The first writer learns it lost, at its next append or its
                # close (whichever meets the conflict: a background commit of
                # its group may have met it already).
                with _raises(LogConflictError):
                    first.append("existence_checked", _existence(8))
                    first.close()
                with contextlib.suppress(LogConflictError):
                    first.close()
            # One whole chain, unsealed: no writer finished the quantum.
            report = verify_logs(store)
            assert [p.kind for _, p in report.problems()] == ["unsealed"]
            assert report.logs[0].quantum_id == quantum.id

    # -- appending records: the merge rule ----------------------------------------------

    def test_append_records_is_idempotent_and_completes_a_prefix(self, tmp_path: Path) -> None:
        """A copy cut short is completed once; a second copy adds nothing."""
        quantum, records = _records_of(40, seal=True, root=tmp_path / "repo")
        with self.open_store(tmp_path) as store:
            assert store.append_records(records[:15]) == 15
            assert store.append_records(records) == len(records) - 15
            assert store.append_records(records) == 0
            assert [r for _, r, _ in store.stored_log(quantum.id, 0)] == records
            assert verify_logs(store).ok

    def test_another_history_is_a_conflict_and_changes_nothing(self, tmp_path: Path) -> None:
        """Records of another log of the same quantum attempt are refused."""
        quantum, records = _records_of(5, seal=False, root=tmp_path / "a")
        other = InMemoryEventLog()
        _record(other, tmp_path / "b", quantum, 6, seal=False)  # same quantum, new timestamps
        with self.open_store(tmp_path) as store:
            store.append_records(records)
            with _raises(LogConflictError):
                store.append_records(other.records())
            assert [r for _, r, _ in store.stored_log(quantum.id, 0)] == records

    def test_records_after_the_seal_are_refused(self, tmp_path: Path) -> None:
        """A sealed stored log takes no record after quantum_finished, even a well-chained one."""
        quantum, records = _records_of(2, seal=True, root=tmp_path / "repo")
        with self.open_store(tmp_path) as store:
            store.append_records(records)
            with _raises(LogSealedError):
                store.append_records([*records, _continuation(records[-1])])
            assert len(list(store.stored_log(quantum.id, 0))) == len(records)

    def test_a_record_that_does_not_match_its_hash_is_refused(self, tmp_path: Path) -> None:
        """Only records whose bytes match their hash are stored."""
        quantum, records = _records_of(3, seal=False, root=tmp_path / "repo")
        altered = records[1].replace(b'"results":[true]', b'"results":[false]')
        with self.open_store(tmp_path) as store:
            with _raises(LogCorruptedError):
                store.append_records([records[0], altered])
            assert len(list(store.stored_log(quantum.id, 0))) <= 1

    def test_logs_copy_between_this_store_and_files_byte_for_byte(self, tmp_path: Path) -> None:
        """Into the store and back out: the same bytes, and a second copy adds nothing."""
        _, records = _records_of(12, seal=True, root=tmp_path / "repo")
        source = tmp_path / "source.jsonl"
        source.write_bytes(b"".join(r + b"\n" for r in records))
        with self.open_store(tmp_path / "store") as store:
            into = copy_logs(source, store)
            assert into.ok
            assert into.events_added == len(records)
            assert copy_logs(source, store).events_added == 0
            back = copy_logs(store, tmp_path / "back")
            assert back.ok
        (copied,) = (tmp_path / "back").iterdir()
        assert copied.read_bytes() == source.read_bytes()

    # -- many writers ------------------------------------------------------------------------

    def test_concurrent_appenders_each_store_their_whole_log(self, tmp_path: Path) -> None:
        """Threads appending to their own quanta of one store lose nothing."""
        quanta = [_quantum() for _ in range(4)]
        failures: list[BaseException] = []
        with self.open_store(tmp_path) as store:
            start = threading.Barrier(len(quanta))

            def write(index: int) -> None:
                try:
                    log = store.open_log(quanta[index].id, 0)
                    butler = QuantumBackedButler.initialize(
                        tmp_path / f"repo{index}", quanta[index], log=log
                    )
                    start.wait(timeout=30)
                    for n in range(300):
                        log.append("existence_checked", _existence(n))
                    butler.close()
                    log.close()
                except BaseException as err:  # reported below, in the test's thread
                    failures.append(err)

            threads = [threading.Thread(target=write, args=(i,)) for i in range(len(quanta))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failures, failures
            assert store.quanta() == sorted((q.id, 0) for q in quanta)
            report = verify_logs(store)
            assert report.ok, list(report.problems())
            assert report.events == len(quanta) * 302

    # -- torn tails ----------------------------------------------------------------------------

    def test_a_torn_last_record_is_cut_and_the_log_resumes(self, tmp_path: Path) -> None:
        """A writer killed mid-record loses that record only (backends that can tear)."""
        if not self.torn_tails:
            return
        quantum = _quantum()
        with self.open_store(tmp_path) as store:
            log = store.open_log(quantum.id, 0)
            _record(log, tmp_path / "repo", quantum, 4, seal=False)
            log.close()
        self.tear_last_record(tmp_path, quantum.id, 0)
        with self.open_store(tmp_path) as store:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                log = store.open_log(quantum.id, 0)
            assert any(issubclass(w.category, TornLogWarning) for w in caught)
            assert len(log) == 5
            log.append("quantum_finished", dict(_FINISHED))
            log.close()
            assert verify_logs(store).ok
