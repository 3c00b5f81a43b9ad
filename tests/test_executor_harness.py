"""The executor harness: decisions, statuses, caveats, exit codes, kills, retries, memory."""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog

from qbb_events import (
    ButlerMetrics,
    DatasetRef,
    DatasetType,
    FileDatastore,
    InvalidQuantumError,
    NoWorkFound,
    PartialOutputsError,
    Quantum,
    QuantumBackedButler,
    RepeatableQuantumError,
    execute_quantum,
    read_log,
    verify_logs,
)
from qbb_events.executor import EXIT_FAILURE, EXIT_INVALID, EXIT_OK, EXIT_REPEATABLE

RUN = "harness/run"
IN = DatasetType("source", "json", ("index",))
OPT = DatasetType("extra", "json", ("index",))
OUT = DatasetType("result", "json", ("index",))
OUT2 = DatasetType("result2", "json", ("index",))


class Recorder:
    """A task that runs a function and remembers it ran."""

    def __init__(self, body: Any, optional: frozenset[str] = frozenset()) -> None:
        self.body = body
        self.calls = 0
        self.optional_inputs = optional

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        self.calls += 1
        self.body(butler, quantum)


def _quantum(index: int = 0, *, optional: bool = False, outputs: int = 1) -> Quantum:
    inputs = [DatasetRef.deterministic(IN, {"index": index}, RUN)]
    if optional:
        inputs.append(DatasetRef.deterministic(OPT, {"index": index}, RUN))
    outs = [DatasetRef.deterministic(t, {"index": index}, RUN) for t in (OUT, OUT2)[:outputs]]
    # The same arguments name the same quantum, in this process or another.
    qid = uuid.uuid5(uuid.NAMESPACE_URL, f"harness/{index}/{optional}/{outputs}")
    return Quantum("double", {"index": index}, inputs, outs, id=qid)


@pytest.fixture
def root(tmp_path: Path) -> FileDatastore:
    store = FileDatastore(tmp_path / "repo", create=True)
    for index in range(3):
        store.put({"index": index}, DatasetRef.deterministic(IN, {"index": index}, RUN))
    return store


def double(butler: QuantumBackedButler, quantum: Quantum) -> None:
    value = butler.get(quantum.inputs[0])
    for ref in quantum.outputs:
        butler.put({"double": 2 * value["index"]}, ref)


def test_a_task_that_succeeds(root: FileDatastore, tmp_path: Path) -> None:
    quantum = _quantum(outputs=2)
    with structlog.testing.capture_logs() as logged:
        report = execute_quantum(Recorder(double), quantum, root, log=tmp_path / "logs")
    assert (report.status, report.decision, report.exit_code, report.caveats) == (
        "succeeded",
        "run",
        EXIT_OK,
        (),
    )
    assert report.ok
    assert report.attempt == 0
    assert report.provenance.actual_outputs == set(quantum.predicted_outputs)
    assert report.provenance.actual_inputs == {quantum.inputs[0].id}
    # Every predicted input was checked before the task ran.
    assert not [e for e in logged if e["event"] == "unchecked_predicted_inputs"]
    events = read_log(report.log_path)
    assert [e.kind for e in events][:2] == ["quantum_started", "existence_checked"]
    finished = events[-1]
    assert finished.kind == "quantum_finished"
    assert finished.pid == os.getpid()
    assert finished.host
    assert finished.wall_ns > 0
    assert finished.cpu_ns > 0
    assert finished.peak_rss_bytes > 0
    assert report.wall_ns == finished.wall_ns
    assert report.metrics is not None
    assert (report.metrics.n_get, report.metrics.n_put) == (1, 2)
    assert verify_logs([tmp_path / "logs"]).ok


def test_a_task_that_raises_keeps_its_events(root: FileDatastore, tmp_path: Path) -> None:
    def fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.get(quantum.inputs[0])
        raise ValueError("bad pixels")

    report = execute_quantum(Recorder(fail), _quantum(), root, log=tmp_path / "logs")
    assert (report.status, report.exit_code, report.exc_type) == (
        "failed",
        EXIT_FAILURE,
        "ValueError",
    )
    assert report.message == "bad pixels"
    assert report.traceback is not None
    assert "in fail" in report.traceback
    events = read_log(report.log_path)
    assert [e.kind for e in events] == [
        "quantum_started",
        "existence_checked",
        "input_read",
        "quantum_finished",
    ]
    assert events[-1].status == "failed"
    assert events[-1].exception is not None
    assert events[-1].exception.exc_type == "ValueError"
    assert events[-1].traceback == report.traceback


@pytest.mark.parametrize(
    ("error", "code"),
    [(RepeatableQuantumError, EXIT_REPEATABLE), (InvalidQuantumError, EXIT_INVALID)],
)
def test_exit_codes_of_failures_that_will_repeat(
    root: FileDatastore, tmp_path: Path, error: type[Exception], code: int
) -> None:
    def fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
        raise error("no")

    report = execute_quantum(Recorder(fail), _quantum(), root, log=tmp_path / "logs")
    assert (report.status, report.exit_code) == ("failed", code)


def test_a_task_that_writes_only_some_outputs(root: FileDatastore, tmp_path: Path) -> None:
    def half(butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"x": 1}, quantum.outputs[0])

    report = execute_quantum(Recorder(half), _quantum(outputs=2), root, log=tmp_path / "logs")
    assert report.status == "succeeded"
    assert report.caveats == ("any_outputs_missing",)
    assert read_log(report.log_path)[-1].caveats == ("any_outputs_missing",)


def test_a_task_that_reads_nothing(root: FileDatastore, tmp_path: Path) -> None:
    def nothing(butler: QuantumBackedButler, quantum: Quantum) -> None:
        pass

    quantum = _quantum()
    report = execute_quantum(Recorder(nothing), quantum, root, log=tmp_path / "logs")
    assert report.status == "succeeded"
    assert set(report.caveats) == {"any_outputs_missing", "all_outputs_missing"}
    assert report.provenance.actual_inputs == set()
    assert report.provenance.available_inputs == set(quantum.predicted_inputs)
    assert report.provenance.warnings == []


def test_a_task_that_finds_no_work(root: FileDatastore, tmp_path: Path) -> None:
    def none(butler: QuantumBackedButler, quantum: Quantum) -> None:
        raise NoWorkFound("empty field")

    report = execute_quantum(Recorder(none), _quantum(), root, log=tmp_path / "logs")
    assert (report.status, report.exit_code) == ("no_work", EXIT_OK)
    assert report.caveats[0] == "no_work"
    assert "all_outputs_missing" in report.caveats
    assert report.provenance.status == "no_work"


def test_partial_outputs_error_is_a_success_with_a_caveat(
    root: FileDatastore, tmp_path: Path
) -> None:
    def partial(butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"x": 1}, quantum.outputs[0])
        raise PartialOutputsError("second output failed")

    report = execute_quantum(Recorder(partial), _quantum(outputs=2), root, log=tmp_path / "logs")
    assert (report.status, report.exit_code) == ("succeeded", EXIT_OK)
    assert report.caveats == ("partial_outputs_error", "any_outputs_missing")
    assert report.exc_type == "PartialOutputsError"


def test_a_missing_required_input_blocks_the_quantum(root: FileDatastore, tmp_path: Path) -> None:
    task = Recorder(double)
    quantum = _quantum(index=7)  # no source for index 7 was written
    report = execute_quantum(task, quantum, root, log=tmp_path / "logs")
    assert (report.status, report.exit_code, task.calls) == ("blocked", EXIT_FAILURE, 0)
    assert report.missing_inputs == (quantum.inputs[0].id,)
    assert read_log(report.log_path)[-1].status == "blocked"
    assert report.provenance.unavailable_inputs == {quantum.inputs[0].id}


def test_a_missing_optional_input_does_not_block(root: FileDatastore, tmp_path: Path) -> None:
    task = Recorder(double, optional=frozenset({"extra"}))
    report = execute_quantum(task, _quantum(optional=True), root, log=tmp_path / "logs")
    assert (report.status, task.calls) == ("succeeded", 1)


def test_a_successful_attempt_is_skipped(root: FileDatastore, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    quantum = _quantum()
    first = execute_quantum(Recorder(double), quantum, root, log=logs)
    task = Recorder(double)
    again = execute_quantum(task, quantum, root, log=logs)
    assert (again.decision, again.status, again.attempt, task.calls) == ("skip", "skipped", 0, 0)
    assert again.provenance == first.provenance
    assert sorted(p.name for p in logs.iterdir()) == [f"{quantum.id}.0.jsonl"]


def test_without_skip_existing_a_success_is_clobbered_and_rerun(
    root: FileDatastore, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    quantum = _quantum()
    execute_quantum(Recorder(double), quantum, root, log=logs)
    report = execute_quantum(Recorder(double), quantum, root, log=logs, skip_existing=False)
    assert (report.decision, report.status, report.attempt) == ("clobber", "succeeded", 1)
    assert report.clobbered == (quantum.outputs[0].id,)
    kinds = [e.kind for e in read_log(report.log_path)]
    assert kinds[1] == "datasets_pruned"


def test_partial_outputs_of_a_failed_attempt_are_clobbered(
    root: FileDatastore, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    quantum = _quantum(outputs=2)

    def write_then_fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"x": 1}, quantum.outputs[0])
        raise RuntimeError("disk hiccup")

    failed = execute_quantum(Recorder(write_then_fail), quantum, root, log=logs)
    assert failed.status == "failed"
    assert failed.attempt == 0
    refused = execute_quantum(Recorder(double), quantum, root, log=logs, clobber=False)
    assert (refused.status, refused.decision, refused.attempt) == ("failed", "run", 1)
    assert "clobber is off" in (refused.message or "")
    retried = execute_quantum(Recorder(double), quantum, root, log=logs)
    assert (retried.decision, retried.status, retried.attempt) == ("clobber", "succeeded", 2)
    pruned = read_log(retried.log_path)[1]
    assert pruned.kind == "datasets_pruned"
    assert pruned.purge
    assert pruned.removed == (quantum.outputs[0].id,)
    report = verify_logs([logs])
    assert report.ok
    assert [log.attempt for log in report.logs] == [0, 1, 2]


def test_retries_number_attempts_each_with_its_own_sealed_log(
    root: FileDatastore, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    outcomes = iter([RuntimeError("flaky"), RuntimeError("flaky"), None])

    def flaky(butler: QuantumBackedButler, quantum: Quantum) -> None:
        error = next(outcomes)
        if error is not None:
            raise error
        double(butler, quantum)

    task = Recorder(flaky)
    statuses = [execute_quantum(task, _quantum(), root, log=logs).status for _ in range(3)]
    assert statuses == ["failed", "failed", "succeeded"]
    verified = verify_logs([logs])
    assert verified.ok
    assert [(log.attempt, log.status) for log in verified.logs] == [
        (0, "failed"),
        (1, "failed"),
        (2, "succeeded"),
    ]


def _killed_worker(root: str, logs: str) -> None:
    def put_then_die(butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"x": 1}, quantum.outputs[0])
        os.kill(os.getpid(), signal.SIGKILL)

    execute_quantum(Recorder(put_then_die), _quantum(outputs=2), root, log=logs)


def test_a_killed_quantum_leaves_an_unsealed_log_and_is_retried(
    root: FileDatastore, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    process = multiprocessing.get_context("spawn").Process(
        target=_killed_worker, args=(str(root.root), str(logs))
    )
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    quantum = _quantum(outputs=2)
    verified = verify_logs([logs])
    (log,) = verified.logs
    assert log.status is None
    assert {p.kind for p in log.problems} == {"unsealed"}
    events = read_log(logs / f"{quantum.id}.0.jsonl")
    assert [e.kind for e in events][-1] == "output_written"
    retried = execute_quantum(Recorder(double), quantum, root, log=logs)
    assert (retried.attempt, retried.decision, retried.status) == (1, "clobber", "succeeded")
    assert retried.clobbered == (quantum.outputs[0].id,)


def test_peak_memory_is_each_quantums_own_in_one_worker(
    root: FileDatastore, tmp_path: Path
) -> None:
    size = 200 * 2**20

    def big(butler: QuantumBackedButler, quantum: Quantum) -> None:
        block = bytearray(size)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        double(butler, quantum)

    large = execute_quantum(Recorder(big), _quantum(0), root, log=tmp_path / "logs")
    small = execute_quantum(Recorder(double), _quantum(1), root, log=tmp_path / "logs")
    assert large.peak_rss_bytes - small.peak_rss_bytes > size // 2


def test_inputs_left_by_a_failed_upstream_quantum_block(
    root: FileDatastore, tmp_path: Path
) -> None:
    # The source exists on disk, but the quantum that wrote it failed.
    task = Recorder(double, optional=frozenset({"source"}))
    quantum = _quantum()
    report = execute_quantum(
        task, quantum, root, log=tmp_path / "logs", upstream_failed=[quantum.inputs[0].id]
    )
    assert (report.status, task.calls) == ("blocked", 0)
    assert report.missing_inputs == (quantum.inputs[0].id,)


def test_metrics_gather_many_quanta(root: FileDatastore, tmp_path: Path) -> None:
    metrics = ButlerMetrics()
    for index in range(3):
        execute_quantum(
            Recorder(double), _quantum(index), root, log=tmp_path / "l", metrics=metrics
        )
    assert (metrics.n_get, metrics.n_put) == (3, 3)
    assert metrics.time_in_get > 0
