"""What one quantum attempt contributes to the registry, as plain rows.

A `QuantumRows` is built either from a stored log (`rows_from_log`: the log
is verified, parsed and folded with `ProvenanceReducer`) or from a quantum
and its extracted provenance (`rows_from_provenance`, for
``collect_and_transfer``). It holds dicts keyed by column name, so it
pickles cheaply between transfer processes and inserts in bulk.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import FoldError, InvalidDefinitionError, QbbEventsError
from ..events import (
    DatasetTypeInfo,
    DeferredLoaded,
    DeferredRequested,
    Event,
    ExistenceChecked,
    InputMarkedUnused,
    InputRead,
    OutputWritten,
    QuantumFinished,
    QuantumStarted,
    RefInfo,
    parse_event,
)
from ..fold import ProvenanceReducer
from ..logs import LogVerification, StoredLog
from ..provenance import QuantumProvenanceData
from ..quantum import Quantum
from ..records import FileRecord
from ._schema import ROLE_CODES

__all__ = [
    "ABORT_KINDS",
    "ArtifactProblem",
    "QuantumRows",
    "canonical_data_id",
    "check_artifacts",
    "rows_from_log",
    "rows_from_provenance",
]

# Problems that do not make a log unverified: a killed quantum's log is
# unsealed and may end in a torn record, and is transferred as aborted.
ABORT_KINDS = frozenset({"unsealed", "truncated"})


def canonical_data_id(data_id: Mapping[str, int | str]) -> str:
    """Return the stored form of a data ID: JSON with sorted keys, no spaces.

    Parameters
    ----------
    data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
        A data ID.

    Returns
    -------
    text : `str`
        Equal for equal data IDs; ``1`` and ``"1"`` differ.
    """
    return orjson.dumps(dict(data_id), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class ArtifactProblem:
    """An output whose artifact does not match its record; it was not registered.

    Parameters
    ----------
    dataset_id : `uuid.UUID`
        The output.
    path : `str`
        Its recorded path, relative to the datastore root.
    message : `str`
        What is wrong (missing, size or checksum differs).
    """

    dataset_id: uuid.UUID
    path: str
    message: str


@dataclass(slots=True)
class QuantumRows:
    """The rows one quantum attempt adds to the registry.

    Parameters
    ----------
    location : `str`
        Where it came from, for messages.
    quantum : `dict`
        Its ``quantum`` row, without the batch id.
    dataset_types : `list` [`dict`]
        ``dataset_type`` rows of its registered outputs.
    datasets : `list` [`dict`]
        ``dataset`` rows of the outputs to register.
    records : `list` [`dict`]
        ``datastore_record`` rows of those outputs.
    provenance : `list` [`dict`]
        ``provenance`` rows: every role of every predicted dataset.
    artifact_problems : `list` [`ArtifactProblem`]
        Outputs held back by the artifact check.
    """

    location: str
    quantum: dict[str, Any]
    dataset_types: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    artifact_problems: list[ArtifactProblem] = field(default_factory=list)

    @property
    def key(self) -> tuple[uuid.UUID, int]:
        """The quantum attempt, ``(id, attempt)``."""
        return self.quantum["id"], self.quantum["attempt"]


class _Seqs:
    """The ``seq`` columns of provenance rows, as `PROVENANCE_SCHEMA` defines them.

    The actual input's seq is the event from which the fold of every longer
    prefix lists it as actual: the first use after its last
    ``input_marked_unused``, unless it was found missing before its first
    successful read and that read came later: then that read.
    """

    __slots__ = ("first_missing", "first_ok", "first_use", "inputs", "written")

    def __init__(self) -> None:
        self.inputs: frozenset[uuid.UUID] = frozenset()
        self.first_use: dict[uuid.UUID, int] = {}
        self.first_missing: dict[uuid.UUID, int] = {}
        self.first_ok: dict[uuid.UUID, int] = {}
        self.written: dict[uuid.UUID, int] = {}

    def apply(self, event: Event) -> None:
        seq = event.seq
        inputs = self.inputs
        if isinstance(event, QuantumStarted):
            info = event.quantum
            self.inputs = frozenset(ref.id for ref in (*info.inputs, *info.init_inputs))
        elif isinstance(event, ExistenceChecked):
            for dataset_id, found in zip(event.dataset_ids, event.results, strict=True):
                if not found and dataset_id in inputs:
                    self.first_missing.setdefault(dataset_id, seq)
        elif isinstance(event, InputRead | DeferredLoaded):
            if event.dataset_id not in inputs:
                return
            if event.failure is None:
                self.first_ok.setdefault(event.dataset_id, seq)
                self.first_use.setdefault(event.dataset_id, seq)
            elif event.failure.category == "missing":
                self.first_missing.setdefault(event.dataset_id, seq)
        elif isinstance(event, DeferredRequested):
            if event.dataset_id in inputs:
                self.first_use.setdefault(event.dataset_id, seq)
        elif isinstance(event, InputMarkedUnused):
            self.first_use.pop(event.dataset_id, None)
        elif isinstance(event, OutputWritten):
            self.written[event.dataset_id] = seq

    def actual_input(self, dataset_id: uuid.UUID) -> int | None:
        use = self.first_use.get(dataset_id)
        ok = self.first_ok.get(dataset_id)
        missing = self.first_missing.get(dataset_id)
        if use is not None and ok is not None and missing is not None and missing < ok > use:
            return ok
        return use


def _provenance_rows(
    quantum_id: uuid.UUID,
    attempt: int,
    result: QuantumProvenanceData,
    seqs: _Seqs | None,
) -> list[dict[str, Any]]:
    sets = (
        ("predicted_input", result.predicted_inputs),
        ("available_input", result.available_inputs),
        ("unavailable_input", result.unavailable_inputs),
        ("actual_input", result.actual_inputs),
        ("predicted_output", result.predicted_outputs),
        ("actual_output", result.actual_outputs),
    )
    rows = []
    for role, ids in sets:
        code = ROLE_CODES[role]
        for dataset_id in sorted(ids):
            seq = None
            if seqs is not None and role == "actual_input":
                seq = seqs.actual_input(dataset_id)
            elif seqs is not None and role == "actual_output":
                seq = seqs.written.get(dataset_id)
            rows.append(
                {
                    "quantum_id": quantum_id,
                    "attempt": attempt,
                    "role": code,
                    "dataset_id": dataset_id,
                    "seq": seq,
                }
            )
    return rows


def _output_rows(
    rows: QuantumRows,
    outputs: Iterable[uuid.UUID],
    refs: Mapping[uuid.UUID, tuple[str, str, str]],
    types: Mapping[str, tuple[str, tuple[str, ...]]],
    records: Iterable[FileRecord],
) -> None:
    """Fill the dataset, dataset-type and record rows of the outputs to register."""
    by_id = {record.dataset_id: record for record in records}
    used_types = set()
    for dataset_id in sorted(outputs):
        ref = refs.get(dataset_id)
        if ref is None:  # pragma: no cover - the fold only keeps predicted outputs
            continue
        type_name, run, data_id = ref
        used_types.add(type_name)
        rows.datasets.append(
            {"id": dataset_id, "dataset_type": type_name, "run": run, "data_id": data_id}
        )
        record = by_id.get(dataset_id)
        if record is not None:
            rows.records.append(
                {
                    "dataset_id": dataset_id,
                    "datastore_name": record.datastore_name,
                    "record_type": record.record_type,
                    "path": record.path,
                    "formatter": record.formatter,
                    "storage_class": record.storage_class,
                    "file_size": record.file_size,
                    "checksum": record.checksum,
                }
            )
    for name in sorted(used_types):
        storage_class, dimensions = types[name]
        rows.dataset_types.append(
            {
                "name": name,
                "storage_class": storage_class,
                "dimensions": orjson.dumps(list(dimensions)).decode(),
            }
        )


def rows_from_log(
    log: StoredLog, verdict: LogVerification, *, force_unverified: bool
) -> QuantumRows:
    """Parse and fold one stored log into its registry rows.

    Parameters
    ----------
    log : `StoredLog`
        The log.
    verdict : `LogVerification`
        Its verification; the caller has decided it may be transferred.
    force_unverified : `bool`
        Whether the log is transferred although it did not verify: events
        are folded up to the first one that cannot be read.

    Returns
    -------
    rows : `QuantumRows`
        Its rows. An unsealed log gives status ``aborted`` and registers no
        output (its provenance rows are all kept).

    Raises
    ------
    LogCorruptedError, FoldError
        If a verified log still cannot be parsed or folded.
    """
    reducer = ProvenanceReducer()
    seqs = _Seqs()
    started: QuantumStarted | None = None
    finished: QuantumFinished | None = None
    for _, record, complete in log:
        if not complete:
            break
        try:
            event = parse_event(orjson.loads(record))
            reducer.apply(event)
        except (QbbEventsError, ValueError):
            # A forced, unverified log is folded up to its first unreadable
            # event: what follows cannot be placed in the chain.
            if not force_unverified:
                raise
            break
        seqs.apply(event)
        if isinstance(event, QuantumStarted):
            started = event
        elif isinstance(event, QuantumFinished):
            finished = event
    if started is None:
        raise FoldError(f"{log.location}: no readable quantum_started event")
    info = started.quantum
    result = reducer.result()
    status = finished.status if finished is not None else "aborted"
    all_refs = (*info.outputs, *info.inputs, *info.init_inputs)
    runs = [ref.run for ref in all_refs if ref.run is not None]
    quantum = {
        "id": info.id,
        "attempt": started.attempt,
        "task_label": info.task_label,
        "data_id": canonical_data_id(info.data_id),
        "run": runs[0] if runs else None,
        "status": status,
        "start_ns": started.timestamp_ns,
        "end_ns": None if finished is None else finished.timestamp_ns,
        "host": started.host,
        "final_hash": verdict.final_hash,
        "verified": not ({p.kind for p in verdict.problems} - ABORT_KINDS),
    }
    rows = QuantumRows(log.location, quantum)
    rows.provenance = _provenance_rows(info.id, started.attempt, result, seqs)
    if status != "aborted":
        _output_rows(
            rows,
            result.actual_outputs,
            _ref_table(info.outputs),
            _type_table(info.dataset_types),
            (r for group in result.datastore_records.values() for r in group),
        )
    return rows


def _ref_table(refs: Iterable[RefInfo]) -> dict[uuid.UUID, tuple[str, str, str]]:
    return {
        ref.id: (ref.dataset_type, ref.run, canonical_data_id(ref.data_id))
        for ref in refs
        if ref.dataset_type is not None and ref.run is not None and ref.data_id is not None
    }


def _type_table(types: Iterable[DatasetTypeInfo]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {info.name: (info.storage_class, tuple(info.dimensions)) for info in types}


def rows_from_provenance(quantum: Quantum, provenance: QuantumProvenanceData) -> QuantumRows:
    """Build the registry rows of a quantum from its extracted provenance.

    Parameters
    ----------
    quantum : `Quantum`
        The quantum that ran.
    provenance : `QuantumProvenanceData`
        What ``extract_provenance_data`` returned for it.

    Returns
    -------
    rows : `QuantumRows`
        Attempt 0, no log (so no hash, ``verified`` false and no ``seq``),
        status from the provenance or ``unknown``.

    Raises
    ------
    InvalidDefinitionError
        If the provenance belongs to another quantum.
    """
    if provenance.quantum_id is not None and provenance.quantum_id != quantum.id:
        raise InvalidDefinitionError(
            f"Provenance of quantum {provenance.quantum_id} was paired with quantum {quantum.id}."
        )
    outputs = quantum.predicted_outputs
    refs = list(outputs.values()) or list(quantum.predicted_inputs.values())
    row = {
        "id": quantum.id,
        "attempt": 0,
        "task_label": quantum.task_label,
        "data_id": canonical_data_id(quantum.data_id),
        "run": refs[0].run if refs else None,
        "status": provenance.status or "unknown",
        "start_ns": None,
        "end_ns": None,
        "host": None,
        "final_hash": None,
        "verified": False,
    }
    rows = QuantumRows(f"quantum {quantum.id}", row)
    rows.provenance = _provenance_rows(quantum.id, 0, provenance, None)
    ref_table = {
        ref.id: (ref.dataset_type.name, ref.run, canonical_data_id(ref.data_id))
        for ref in outputs.values()
    }
    types = {
        ref.dataset_type.name: (ref.dataset_type.storage_class, ref.dataset_type.dimensions)
        for ref in outputs.values()
    }
    _output_rows(
        rows,
        provenance.actual_outputs & outputs.keys(),
        ref_table,
        types,
        (r for group in provenance.datastore_records.values() for r in group),
    )
    return rows


def check_artifacts(rows: QuantumRows, roots: Mapping[str, Path] | Path) -> None:
    """Hold back the outputs whose artifact does not match its record.

    Parameters
    ----------
    rows : `QuantumRows`
        Rows to check; datasets whose file is missing or differs in size or
        checksum are removed with their record and listed in
        ``artifact_problems``.
    roots : `~collections.abc.Mapping` [`str`, `pathlib.Path`] or `pathlib.Path`
        Root directory of each datastore, by datastore name, or one root
        for every datastore.
    """
    bad: set[uuid.UUID] = set()
    for record in rows.records:
        message = _artifact_problem(record, roots)
        if message is not None:
            bad.add(record["dataset_id"])
            rows.artifact_problems.append(
                ArtifactProblem(record["dataset_id"], record["path"], message)
            )
    if bad:
        rows.datasets = [row for row in rows.datasets if row["id"] not in bad]
        rows.records = [row for row in rows.records if row["dataset_id"] not in bad]


def _artifact_problem(record: Mapping[str, Any], roots: Mapping[str, Path] | Path) -> str | None:
    root = roots if isinstance(roots, Path) else roots.get(record["datastore_name"])
    if root is None:
        return f"no root given for datastore {record['datastore_name']!r}"
    root = root.resolve()
    path = (root / record["path"]).resolve()
    # The path comes from data: it must stay inside its root.
    if not path.is_relative_to(root):
        return f"the recorded path {record['path']!r} leaves the datastore root"
    try:
        size = os.stat(path).st_size
        if size != record["file_size"]:
            return f"size {size} differs from the recorded {record['file_size']}"
        with open(path, "rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
    except FileNotFoundError:
        return "the artifact is missing"
    except OSError as err:
        return f"the artifact cannot be read: {err}"
    if f"sha256:{digest}" != record["checksum"]:
        return f"checksum sha256:{digest} differs from the recorded {record['checksum']}"
    return None
