"""The contract every event-log store passes: the in-memory log is the reference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.workflows import run_workflow

from qbb_events import (
    EventLog,
    InMemoryEventLog,
    JsonLinesEventLog,
    LogSealedError,
    SqliteEventStore,
    SyncPolicy,
    check_chain,
    copy_logs,
    fold,
    read_log,
    verify_logs,
)

POLICIES = {
    "every_event": SyncPolicy.every_event(),
    "group": SyncPolicy.group(),
    "on_close": SyncPolicy.on_close(),
}

MakeLog = Callable[[str], EventLog]


@pytest.fixture(
    params=["memory"]
    + [f"{store}-{policy}" for store in ("jsonl", "sqlite") for policy in POLICIES]
)
def make_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeLog]:
    """A factory of fresh, unbound logs of one store and policy."""
    store_name, _, policy_name = request.param.partition("-")
    stores: list[SqliteEventStore] = []

    def make(name: str) -> EventLog:
        if store_name == "memory":
            return InMemoryEventLog()
        policy = POLICIES[policy_name]
        if store_name == "jsonl":
            return JsonLinesEventLog(tmp_path / "logs" / f"{name}.jsonl", sync=policy)
        if not stores:
            stores.append(SqliteEventStore(tmp_path / "logs.sqlite", sync=policy))
        return stores[0].log()

    yield make
    for store in stores:
        store.close()


def test_a_butler_run_is_stored_whole(make_log: MakeLog, tmp_path: Path) -> None:
    log = make_log("a")
    butler = run_workflow(tmp_path / "repo", log)
    events = butler.events
    assert log.events == events
    assert log.sealed
    assert len(log) == len(events)
    check_chain(events)
    assert fold(events) == butler.extract_provenance_data()
    assert log.last_hash == events[-1].hash
    log.close()
    report = verify_logs(log)
    assert report.ok, list(report.problems())
    assert report.logs[0].final_hash == events[-1].hash


def test_a_sealed_log_refuses_appends(make_log: MakeLog, tmp_path: Path) -> None:
    log = make_log("a")
    run_workflow(tmp_path / "repo", log)
    with pytest.raises(LogSealedError):
        log.append("input_marked_unused", {"dataset_id": str(log.events[0].quantum_id)})
    log.close()


def test_every_store_holds_the_same_records(make_log: MakeLog, tmp_path: Path) -> None:
    """Copied to files, any store's log is byte for byte what the file log writes."""
    log = make_log("a")
    butler = run_workflow(tmp_path / "repo", log)
    log.close()
    report = copy_logs(log, tmp_path / "copied")
    assert report.ok
    (copied,) = (tmp_path / "copied").iterdir()
    assert read_log(copied) == list(butler.events)
    assert verify_logs(copied).digest == verify_logs(log).digest


def test_many_logs_in_one_store(make_log: MakeLog, tmp_path: Path) -> None:
    logs = [make_log(f"q{i}") for i in range(3)]
    butlers = [run_workflow(tmp_path / f"repo{i}", log) for i, log in enumerate(logs)]
    for log in logs:
        log.close()
    report = verify_logs(logs)
    assert report.ok
    assert {v.quantum_id for v in report.logs} == {b.events[0].quantum_id for b in butlers}
