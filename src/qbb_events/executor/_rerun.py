"""`rerun_quantum`: re-execute a finished quantum with only its actual inputs.

The definition of *actual inputs* is "re-running the quantum with only these
inputs gives identical outputs". This makes it a check: a scratch datastore
receives hard links to the actual inputs alone, the task runs there under the
harness, and each output's checksum is compared with the original's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..butler import QuantumBackedButler
from ..datastore import FileDatastore
from ..errors import InvalidDefinitionError, LogCorruptedError, TornLogWarning
from ..events import DeferredLoaded, InputRead
from ..fold import fold
from ..logs import iter_log, log_file_name
from ..model import DatasetRef
from ..provenance import QuantumProvenanceData
from ..quantum import Quantum
from ._harness import execute_quantum

__all__ = ["RerunReport", "rerun_quantum"]


def _label(ref: DatasetRef) -> str:
    data_id = ",".join(f"{k}={v}" for k, v in ref.data_id.items())
    return f"{ref.dataset_type.name}({data_id})"


class RerunReport(BaseModel):
    """The verdict of re-running a quantum on its actual inputs alone.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    attempt : `int`
        The original attempt compared against.
    verdict : `str`
        ``identical`` (every output the same checksum), ``differing`` (some
        output differs or is written by only one of the two) or ``failed``
        (the re-run did not succeed).
    differing : `list` [`str`]
        Outputs that differ, as ``type(data ID)``.
    missing_reads : `list` [`str`]
        Inputs the re-run tried to read and did not find: inputs the task used
        but did not declare actual.
    actual_inputs : `int`
        Inputs linked into the scratch datastore.
    scratch : `str`
        The scratch directory (datastore ``repo/`` and ``logs/``).
    message : `str` or `None`
        The re-run's exception, if it failed.
    """

    model_config = ConfigDict(frozen=True)

    quantum_id: uuid.UUID
    attempt: int
    verdict: Literal["identical", "differing", "failed"]
    differing: list[str]
    missing_reads: list[str]
    actual_inputs: int
    scratch: str
    message: str | None = None


class _AllOptional:
    # In the scratch datastore the unused inputs are missing by design: the
    # task must run and show whether it needs them, not be blocked.
    def __init__(self, task: Any, quantum: Quantum) -> None:
        self._task = task
        self.optional_inputs = frozenset(
            ref.dataset_type.name for ref in quantum.predicted_inputs.values()
        )

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        self._task.run(butler, quantum)


def _last_success(logs: Path, quantum: Quantum) -> tuple[int, QuantumProvenanceData]:
    attempt, best = 0, None
    while (logs / log_file_name(quantum.id, attempt)).exists():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TornLogWarning)
                provenance = fold(list(iter_log(logs / log_file_name(quantum.id, attempt))))
        except LogCorruptedError:
            provenance = None
        if provenance is not None and provenance.status == "succeeded":
            best = (attempt, provenance)
        attempt += 1
    if best is None:
        raise InvalidDefinitionError(
            f"quantum {quantum.id} has no succeeded attempt in {logs} to re-run"
        )
    return best


def _checksums(provenance: QuantumProvenanceData) -> dict[uuid.UUID, str]:
    return {
        record.dataset_id: record.checksum
        for records in provenance.datastore_records.values()
        for record in records
        if record.checksum is not None
    }


def rerun_quantum(
    task: Any,
    quantum: Quantum,
    root: str | os.PathLike[str],
    logs: str | os.PathLike[str],
    *,
    scratch: str | os.PathLike[str] | None = None,
) -> RerunReport:
    """Re-execute a finished quantum on its actual inputs alone and compare outputs.

    Parameters
    ----------
    task : `Task`
        The quantum's task.
    quantum : `Quantum`
        The quantum.
    root : `str` or `os.PathLike`
        The run's datastore.
    logs : `str` or `os.PathLike`
        The run's log directory; the last succeeded attempt is compared.
    scratch : `str` or `os.PathLike`, optional
        An empty directory for the scratch datastore and logs; a new
        temporary directory by default (left for inspection).

    Returns
    -------
    report : `RerunReport`
        ``identical``, ``differing`` (which outputs) or ``failed`` (the missing
        reads named).

    Raises
    ------
    InvalidDefinitionError
        If the quantum has no succeeded attempt.
    """
    datastore = FileDatastore(root)
    attempt, original = _last_success(Path(logs), quantum)
    where = Path(tempfile.mkdtemp(prefix="qbb-rerun-") if scratch is None else scratch)
    copy = FileDatastore(where / "repo", create=True)
    for dataset_id in original.actual_inputs:
        ref = quantum.predicted_inputs[dataset_id]
        target = copy.path(ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(datastore.path(ref), target)
        except OSError:  # another file system: a copy proves the same
            shutil.copy2(datastore.path(ref), target)
    report = execute_quantum(
        _AllOptional(task, quantum), quantum, copy, log=where / "logs", attempt=0
    )
    events = list(iter_log(report.log_path))
    missing = sorted(
        _name(quantum, e.dataset_id)
        for e in events
        if isinstance(e, InputRead | DeferredLoaded)
        and not e.ok
        and e.failure is not None
        and e.failure.category == "missing"
    )
    if report.status != "succeeded":
        verdict: Literal["identical", "differing", "failed"] = "failed"
        differing: list[str] = []
    else:
        before, after = _checksums(original), _checksums(report.provenance)
        differing = sorted(
            _label(quantum.predicted_outputs[i])
            for i in before.keys() | after.keys()
            if before.get(i) != after.get(i)
        )
        verdict = "differing" if differing else "identical"
    return RerunReport(
        quantum_id=quantum.id,
        attempt=attempt,
        verdict=verdict,
        differing=differing,
        missing_reads=missing,
        actual_inputs=len(original.actual_inputs),
        scratch=str(where),
        message=None if report.exc_type is None else f"{report.exc_type}: {report.message}",
    )


def _name(quantum: Quantum, dataset_id: uuid.UUID) -> str:
    ref = quantum.predicted_inputs.get(dataset_id)
    return str(dataset_id) if ref is None else _label(ref)
