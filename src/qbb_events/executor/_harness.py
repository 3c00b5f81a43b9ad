"""`execute_quantum`: run one quantum the way production executors do.

The harness decides whether to skip, clobber or run; checks every predicted
input with one ``stored_many``; runs the task with a recording butler; and
seals the log with the status, caveats, exception and traceback, and the
wall time, CPU time and peak memory of this quantum alone.
"""

from __future__ import annotations

import os
import traceback as _traceback
import uuid
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .._metrics import ButlerMetrics
from ..butler import QuantumBackedButler
from ..datastore import FileDatastore
from ..errors import (
    InvalidQuantumError,
    LogCorruptedError,
    NoWorkFound,
    PartialOutputsError,
    RepeatableQuantumError,
    TornLogWarning,
)
from ..events import Event
from ..fold import fold
from ..logs import JsonLinesEventLog, SyncPolicy, iter_log, log_file_name
from ..model import DatasetRef
from ..provenance import QuantumProvenanceData
from ..quantum import Quantum
from ._memory import reset_peak_memory
from ._task import optional_inputs

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REPEATABLE",
    "QuantumReport",
    "execute_quantum",
]

EXIT_OK = 0
"""The quantum succeeded, found no work, or was skipped."""
EXIT_FAILURE = 1
"""A failure worth retrying (or a quantum blocked by missing inputs)."""
EXIT_REPEATABLE = 20
"""A failure a retry will repeat (`RepeatableQuantumError`)."""
EXIT_INVALID = 21
"""The quantum is invalid (`InvalidQuantumError`)."""

Decision = Literal["run", "skip", "clobber"]
ReportStatus = Literal["succeeded", "failed", "no_work", "blocked", "skipped"]


class QuantumReport(BaseModel):
    """What happened to one quantum attempt under the harness.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    task_label : `str`
        Its task.
    attempt : `int`
        The attempt this report is about (for a skip: the earlier attempt
        that succeeded).
    decision : `str`
        ``run``, ``skip`` (a successful earlier attempt's outputs are all
        stored) or ``clobber`` (an earlier attempt's partial outputs were
        pruned first, then it ran).
    status : `str`
        ``succeeded``, ``failed``, ``no_work``, ``blocked`` or ``skipped``.
    caveats : `tuple` [`str`, ...]
        Success caveats: ``no_work``, ``any_outputs_missing``,
        ``all_outputs_missing``, ``partial_outputs_error``.
    exit_code : `int`
        0, 1, 20 or 21 (see the ``EXIT_*`` constants).
    exc_type, message, traceback : `str` or `None`
        The exception that ended the task, if any.
    missing_inputs : `tuple` [`uuid.UUID`, ...]
        Required inputs found missing (why a quantum was blocked).
    clobbered : `tuple` [`uuid.UUID`, ...]
        Outputs of earlier attempts removed before running.
    wall_ns, cpu_ns, peak_rss_bytes : `int`
        As recorded in ``quantum_finished`` (zero for a skip).
    log_path : `str`
        The log of this attempt.
    provenance : `QuantumProvenanceData`
        The fold of that log.
    metrics : `ButlerMetrics` or `None`
        Gets and puts of the task, with their times (`None` for a skip).
    """

    model_config = ConfigDict(frozen=True)

    quantum_id: uuid.UUID
    task_label: str
    attempt: int
    decision: Decision
    status: ReportStatus
    caveats: tuple[str, ...] = ()
    exit_code: int
    exc_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    missing_inputs: tuple[uuid.UUID, ...] = ()
    clobbered: tuple[uuid.UUID, ...] = ()
    wall_ns: int = 0
    cpu_ns: int = 0
    peak_rss_bytes: int = 0
    log_path: str
    provenance: QuantumProvenanceData
    metrics: ButlerMetrics | None = None

    @property
    def ok(self) -> bool:
        """Whether the process running it would exit 0 (`bool`)."""
        return self.exit_code == EXIT_OK


def _read_quietly(path: Path) -> list[Event] | None:
    # An earlier attempt killed mid-write has a torn tail: its whole events
    # still say what it wrote. A log that does not read at all decides nothing.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornLogWarning)
            return list(iter_log(path))
    except (LogCorruptedError, OSError):
        return None


def _earlier_attempts(
    logs: Path, quantum_id: uuid.UUID, attempt: int | None
) -> tuple[int, list[int]]:
    # Probing names one by one costs a stat per attempt, where listing the
    # directory would cost one entry per quantum of the run.
    found = []
    index = 0
    while (logs / log_file_name(quantum_id, index)).exists():
        found.append(index)
        index += 1
    if attempt is None:
        attempt = index
    return attempt, [a for a in found if a < attempt]


def execute_quantum(
    task: Any,
    quantum: Quantum,
    root: str | os.PathLike[str] | FileDatastore,
    *,
    log: str | os.PathLike[str],
    attempt: int | None = None,
    skip_existing: bool = True,
    clobber: bool = True,
    metrics: ButlerMetrics | None = None,
    sync: SyncPolicy | None = None,
    upstream_failed: Collection[uuid.UUID] = (),
) -> QuantumReport:
    """Run one quantum with a recording butler and seal its log.

    Parameters
    ----------
    task : `Task`
        Any object with ``run(butler, quantum)`` (and optionally
        ``optional_inputs``).
    quantum : `Quantum`
        The quantum to run.
    root : `str`, `os.PathLike` or `FileDatastore`
        The datastore; it must exist.
    log : `str` or `os.PathLike`
        Directory of the quantum's logs: attempt ``k`` is written to
        ``<quantum id>.<k>.jsonl`` (`log_file_name`).
    attempt : `int`, optional
        Attempt number; by default the one after the last log found.
    skip_existing : `bool`, optional
        Skip the quantum when an earlier attempt succeeded and every output
        its log records as written is still stored.
    clobber : `bool`, optional
        Remove outputs an earlier, unsuccessful attempt left behind (with
        ``pruneDatasets(purge=True)``, logged) before running; without it
        such a quantum fails.
    metrics : `ButlerMetrics`, optional
        Where the butler counts and times the task's gets and puts (one
        object may gather many quanta); a fresh one by default. The report
        holds a copy as it stands after this quantum.
    upstream_failed : `~collections.abc.Collection` [`uuid.UUID`], optional
        Inputs whose producing quantum failed or was killed: the quantum is
        blocked by them even if their files exist, so a failed quantum's
        partial outputs never become inputs (an executor that knows the
        graph passes them).
    sync : `SyncPolicy`, optional
        When the log reaches the disk; by default ``on_close``: the seal is
        synced (as under every policy), events before it are written at once
        (a killed process loses none) and synced with it.

    Returns
    -------
    report : `QuantumReport`
        Decision, status, caveats, exit code, exception and provenance.

    Raises
    ------
    BaseException
        Anything that is not an `Exception` (``KeyboardInterrupt``,
        ``SystemExit``) after the log was sealed as ``failed``.
    LogExistsError
        If the log of ``attempt`` already holds events.

    Notes
    -----
    Every predicted input is checked with one ``stored_many`` before the task
    runs, so ``unchecked_predicted_inputs`` never fires under the harness. A
    required input found missing makes the quantum ``blocked``: the task does
    not run. A quantum's log is a handful of events: syncing it once, at the
    seal, costs one ``fdatasync`` where group commit would add a second and a
    thread; power lost before the seal loses at most an unfinished attempt,
    which is retried as if killed. Peak memory is this quantum's own where the platform can reset
    the process peak (Linux); elsewhere it is the process's lifetime peak.
    """
    logs = Path(log)
    logs.mkdir(parents=True, exist_ok=True)
    datastore = root if isinstance(root, FileDatastore) else FileDatastore(root)
    attempt, earlier = _earlier_attempts(logs, quantum.id, attempt)
    outputs = list(quantum.outputs)
    decision: Decision = "run"
    partial: list[DatasetRef] = []
    if earlier:
        last = earlier[-1]
        events = _read_quietly(logs / log_file_name(quantum.id, last))
        previous = fold(events) if events else None
        if (
            skip_existing
            and previous is not None
            and previous.status in ("succeeded", "no_work")
            and all(datastore.exists(quantum.predicted_outputs[i]) for i in previous.actual_outputs)
        ):
            return QuantumReport(
                quantum_id=quantum.id,
                task_label=quantum.task_label,
                attempt=last,
                decision="skip",
                status="skipped",
                exit_code=EXIT_OK,
                log_path=str(logs / log_file_name(quantum.id, last)),
                provenance=previous,
            )
        # Anything still stored was written by an earlier attempt of this very
        # quantum (its outputs are its own), even a write whose event a kill cut.
        partial = [ref for ref in outputs if datastore.exists(ref)]
        if partial and clobber:
            decision = "clobber"
    path = logs / log_file_name(quantum.id, attempt)
    metrics = ButlerMetrics() if metrics is None else metrics
    reset_peak_memory()
    butler = QuantumBackedButler.initialize(
        datastore,
        quantum,
        log=JsonLinesEventLog(path, sync=sync or SyncPolicy.on_close()),
        attempt=attempt,
        metrics=metrics,
    )
    with butler:
        if decision == "clobber":
            butler.pruneDatasets(partial, disassociate=True, unstore=True, purge=True)
        found = butler.stored_many(list(quantum.inputs) + list(quantum.init_inputs))
        optional = optional_inputs(task)
        failed_upstream = set(upstream_failed)
        missing = tuple(
            ref.id
            for ref, ok in found.items()
            if ref.id in failed_upstream or (not ok and ref.dataset_type.name not in optional)
        )
        result = _run_task(task, butler, quantum, missing, partial if not clobber else [])
    provenance = butler.extract_provenance_data()
    finished = butler.events[-1]
    return QuantumReport(
        quantum_id=quantum.id,
        task_label=quantum.task_label,
        attempt=attempt,
        decision=decision,
        missing_inputs=missing,
        clobbered=tuple(ref.id for ref in partial) if decision == "clobber" else (),
        wall_ns=getattr(finished, "wall_ns", 0),
        cpu_ns=getattr(finished, "cpu_ns", 0),
        peak_rss_bytes=getattr(finished, "peak_rss_bytes", 0),
        log_path=str(path),
        provenance=provenance,
        metrics=metrics.model_copy(),
        **result,
    )


def _run_task(
    task: Any,
    butler: QuantumBackedButler,
    quantum: Quantum,
    missing: tuple[uuid.UUID, ...],
    left_behind: list[DatasetRef],
) -> dict[str, Any]:
    """Run the task and seal the log; return the report's outcome fields."""
    if missing:
        butler.finish("blocked", record_process=True)
        return {"status": "blocked", "exit_code": EXIT_FAILURE}
    if left_behind:
        err = RuntimeError(
            f"{len(left_behind)} output(s) of an earlier attempt are still stored and "
            "clobber is off, e.g. "
            f"{left_behind[0]!r}"
        )
        return _failed(butler, err, "", EXIT_FAILURE)
    status: Literal["succeeded", "no_work"] = "succeeded"
    caveats: list[str] = []
    error: BaseException | None = None
    try:
        task.run(butler, quantum)
    except NoWorkFound as err:
        status, error = "no_work", err
        caveats.append("no_work")
    except PartialOutputsError as err:
        error = err
        caveats.append("partial_outputs_error")
    except RepeatableQuantumError as err:
        return _failed(butler, err, _traceback.format_exc(), EXIT_REPEATABLE)
    except InvalidQuantumError as err:
        return _failed(butler, err, _traceback.format_exc(), EXIT_INVALID)
    except Exception as err:
        return _failed(butler, err, _traceback.format_exc(), EXIT_FAILURE)
    except BaseException as err:
        # Interrupted: the log is sealed as failed and the interruption goes on.
        butler.finish("failed", err, traceback=_traceback.format_exc(), record_process=True)
        raise
    written = butler.extract_provenance_data().actual_outputs
    predicted = quantum.predicted_outputs.keys()
    if predicted and not written:
        caveats.append("all_outputs_missing")
    if predicted - written:
        caveats.append("any_outputs_missing")
    trace = None if error is None else "".join(_traceback.format_exception(error))
    butler.finish(status, error, caveats=caveats, traceback=trace, record_process=True)
    return {
        "status": status,
        "caveats": tuple(caveats),
        "exit_code": EXIT_OK,
        "exc_type": None if error is None else type(error).__name__,
        "message": None if error is None else str(error),
        "traceback": trace,
    }


def _failed(butler: QuantumBackedButler, err: Exception, trace: str, code: int) -> dict[str, Any]:
    butler.finish("failed", err, traceback=trace or None, record_process=True)
    return {
        "status": "failed",
        "exit_code": code,
        "exc_type": type(err).__name__,
        "message": str(err),
        "traceback": trace or None,
    }
