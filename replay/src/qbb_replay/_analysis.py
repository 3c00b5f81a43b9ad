"""One log judged from its bytes alone: integrity, re-fold, stored accounts, artifacts.

`analyze_sources` spreads the logs over worker processes (``--jobs``); each
log yields one `LogResult`, plain data that `verify`, `stats` and `report`
all read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from qbb_events import (
    FileRecord,
    FoldError,
    NotRegisteredError,
    OutputWritten,
    QbbEventsError,
    QuantumFinished,
    QuantumProvenanceData,
    QuantumStarted,
    Registry,
    StoredLog,
    fold,
    verify_logs,
)
from qbb_events.cli_contract import InputError
from qbb_events.parquet import PROVENANCE_ROLES

from ._events import parse_events
from ._sources import Source, logs_of

__all__ = ["Finding", "LogResult", "Options", "analyze_sources"]

PROVENANCE_DOCUMENT_SUFFIX = ".provenance.json"
"""A provenance document next to a log ``X.jsonl`` is ``X.provenance.json``."""

_frozen = ConfigDict(frozen=True, extra="forbid")
# Problems that leave every record whole: such a log can still be folded.
_FOLDABLE = frozenset({"unsealed", "truncated"})


class Finding(BaseModel):
    """One thing wrong with a log.

    Parameters
    ----------
    kind : `str`
        A verification problem kind (``tampered``, ``missing``, ...), or
        ``account_mismatch`` (a stored account disagrees with the re-fold),
        ``artifact_missing``, ``artifact_changed`` or ``fold_error``.
    seq : `int` or `None`
        The ``seq`` of the event at fault, when known.
    position : `int` or `None`
        Line (files) or row (tables) of the record.
    message : `str`
        The reason in words.
    """

    model_config = _frozen

    kind: str
    seq: int | None
    position: int | None
    message: str


class LogResult(BaseModel):
    """Everything replay learnt about one stored log."""

    model_config = _frozen

    location: str
    quantum_id: str | None
    attempt: int | None
    events: int
    final_hash: str | None
    verified: bool
    status: str
    findings: tuple[Finding, ...]
    task_label: str | None = None
    run: str | None = None
    data_id: str | None = None
    started_ns: int | None = None
    finished_ns: int | None = None
    wall_ns: int | None = None
    cpu_ns: int | None = None
    peak_rss_bytes: int | None = None
    kinds: dict[str, int] = {}
    predicted_inputs: int = 0
    missing_inputs: tuple[str, ...] = ()
    unused_inputs: tuple[str, ...] = ()
    unwritten_outputs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether nothing was found wrong (`bool`)."""
        return not self.findings

    @property
    def suspicious(self) -> bool:
        """Whether the quantum missed, left unused or warned about inputs (`bool`)."""
        return bool(self.missing_inputs or self.unused_inputs or self.warnings)


@dataclass(frozen=True, slots=True)
class Options:
    """What to do with each log (plain data, sent to workers).

    Parameters
    ----------
    fold : `bool`
        Re-fold every log (for stats and reports); logs with a stored account
        are re-folded in any case.
    check_files : `str` or `None`
        A datastore root whose artifacts are checked against the records.
    registry : `str` or `None`
        A registry URL (or SQLite path) whose provenance rows are compared
        with the re-fold of each log it holds.
    """

    fold: bool = False
    check_files: str | None = None
    registry: str | None = None


def analyze_sources(
    sources: Sequence[Source], options: Options, *, jobs: int = 1
) -> Iterator[list[LogResult]]:
    """Analyze every log of the sources, in batches.

    Parameters
    ----------
    sources : `~collections.abc.Sequence` [`Source`]
        Resolved sources.
    options : `Options`
        What to check.
    jobs : `int`, optional
        Worker processes; 1 works in this process.

    Returns
    -------
    batches : `~collections.abc.Iterator` [`list` [`LogResult`]]
        The results of each unit of work (some logs of a source), in order;
        with several jobs the work is already submitted when this returns.
    """
    units = _units(sources, jobs)
    if jobs <= 1:
        return (_run_unit(unit, options) for unit in units)
    # Fork starts a worker at once with everything imported (spawn costs a
    # fresh interpreter and the imports, a second or more each), but forking
    # a process that runs other threads can copy a held lock: then spawn.
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context(method))
    # Submitted now, before the caller starts anything (a progress bar's thread).
    results = pool.map(_run_unit, units, [options] * len(units))
    return _drain(pool, results)


def _drain(
    pool: ProcessPoolExecutor, results: Iterator[list[LogResult]]
) -> Iterator[list[LogResult]]:
    with pool:
        yield from results


@dataclass(frozen=True, slots=True)
class _Unit:
    sources: tuple[Source, ...]
    shard: int = 0
    shards: int = 1


def _units(sources: Sequence[Source], jobs: int) -> list[_Unit]:
    files = [s for s in sources if s.kind == "file"]
    stores = [s for s in sources if s.kind != "file"]
    # Batches small enough for a progress bar to move, large enough to keep
    # the cost of shipping work to a process low.
    size = max(1, min(200, len(files) // max(1, jobs * 4) or 1))
    units = [_Unit(tuple(files[i : i + size])) for i in range(0, len(files), size)]
    for store in stores:
        shards = max(1, jobs)
        units.extend(_Unit((store,), shard, shards) for shard in range(shards))
    return units


def _run_unit(unit: _Unit, options: Options) -> list[LogResult]:
    results = []
    with contextlib.ExitStack() as stack:
        registry = None
        if options.registry is not None:
            try:
                registry = stack.enter_context(Registry.open(options.registry))
            except (QbbEventsError, OSError) as err:
                raise InputError(f"{options.registry}: cannot open the registry ({err})") from err
        for source in unit.sources:
            accounts = _export_accounts(source.location) if source.kind == "export" else None
            for index, log in enumerate(logs_of(source)):
                if index % unit.shards == unit.shard:
                    results.append(_analyze(log, source, options, accounts, registry))
    return results


def _registry_account(registry: Registry, quantum: str, attempt: int) -> _Roles | None:
    """Return the registry's provenance of a quantum attempt, or `None` if it holds none."""
    try:
        return registry.provenance(quantum, attempt)
    except NotRegisteredError:
        return None


_Roles = dict[str, frozenset[uuid.UUID]]


def _export_accounts(dest: str) -> dict[tuple[str, int], _Roles]:
    """Read the provenance table an export stores, by quantum attempt (empty if none)."""
    folder = Path(dest) / "provenance"
    if not folder.is_dir():
        return {}
    table = pq.read_table(folder, columns=["quantum_id", "attempt", "dataset_id", "role"])
    sets: dict[tuple[str, int], dict[str, set[uuid.UUID]]] = {}
    columns = table.to_pydict()
    for quantum, attempt, dataset, role in zip(
        columns["quantum_id"],
        columns["attempt"],
        columns["dataset_id"],
        columns["role"],
        strict=True,
    ):
        roles = sets.setdefault((str(uuid.UUID(bytes=quantum)), attempt), {})
        roles.setdefault(role, set()).add(uuid.UUID(bytes=dataset))
    return {key: {r: frozenset(ids) for r, ids in roles.items()} for key, roles in sets.items()}


def _roles(p: QuantumProvenanceData) -> _Roles:
    return {
        "predicted_input": p.predicted_inputs,
        "available_input": p.available_inputs,
        "unavailable_input": p.unavailable_inputs,
        "actual_input": p.actual_inputs,
        "predicted_output": p.predicted_outputs,
        "actual_output": p.actual_outputs,
    }


def compare_roles(
    account: str, folded: _Roles, stored: Mapping[str, frozenset[uuid.UUID]]
) -> list[Finding]:
    """Return one finding per provenance role whose stored set differs from the re-fold.

    Parameters
    ----------
    account : `str`
        What holds the stored sets, for messages.
    folded : `dict` [`str`, `frozenset` [`uuid.UUID`]]
        The sets the log folds to, by role.
    stored : `~collections.abc.Mapping` [`str`, `frozenset` [`uuid.UUID`]]
        The account's sets, by role; a missing role is an empty set.

    Returns
    -------
    findings : `list` [`Finding`]
        ``account_mismatch`` findings, in `PROVENANCE_ROLES` order.
    """
    findings = []
    for role in PROVENANCE_ROLES:
        mine, theirs = folded.get(role, frozenset()), stored.get(role, frozenset())
        if mine != theirs:
            only_log = ", ".join(sorted(map(str, mine - theirs))[:3]) or "none"
            only_account = ", ".join(sorted(map(str, theirs - mine))[:3]) or "none"
            findings.append(
                Finding(
                    kind="account_mismatch",
                    seq=None,
                    position=None,
                    message=f"{account} disagrees with the log on {role}: only in the log: "
                    f"{only_log}; only in the account: {only_account}",
                )
            )
    return findings


def _analyze(
    log: StoredLog,
    source: Source,
    options: Options,
    export_accounts: dict[tuple[str, int], _Roles] | None,
    registry: Registry | None,
) -> LogResult:
    verdict = verify_logs([log]).logs[0]
    findings = [
        Finding(kind=p.kind, seq=p.seq, position=p.position, message=p.message)
        for p in verdict.problems
    ]
    verified = not findings
    quantum = str(verdict.quantum_id) if verdict.quantum_id else None
    document = _document_path(log, source)
    account = None
    if export_accounts is not None and quantum is not None:
        account = export_accounts.get((quantum, verdict.attempt or 0))
    base: dict[str, Any] = {
        "location": log.location,
        "quantum_id": quantum,
        "attempt": verdict.attempt,
        "events": verdict.events,
        "final_hash": verdict.final_hash,
        "verified": verified,
        "status": verdict.status or "aborted",
    }
    registered = None
    if registry is not None and quantum is not None:
        registered = _registry_account(registry, quantum, verdict.attempt or 0)
    wanted = (
        options.fold
        or options.check_files
        or document
        or account is not None
        or registered is not None
    )
    foldable = all(f.kind in _FOLDABLE for f in findings)
    if not (wanted and quantum is not None):
        return LogResult(**base, findings=tuple(findings))
    parsed = parse_events(log)
    try:
        provenance = fold(parsed.events)
    except FoldError as err:
        if foldable:
            findings.append(Finding(kind="fold_error", seq=None, position=None, message=str(err)))
        return LogResult(**base, findings=tuple(findings))
    if not foldable:
        # A damaged log proves nothing about its accounts; its details still
        # place it in a run and a task for statistics.
        return LogResult(**base, findings=tuple(findings), **_details(parsed.events, provenance))
    folded = _roles(provenance)
    if document is not None:
        findings.extend(_check_document(document, provenance, folded))
    if account is not None:
        findings.extend(compare_roles("the export's provenance table", folded, account))
    if registered is not None:
        findings.extend(compare_roles(f"the registry {options.registry}", folded, registered))
    if options.check_files:
        findings.extend(_check_files(Path(options.check_files), parsed.events, provenance))
    return LogResult(
        **base,
        findings=tuple(findings),
        **_details(parsed.events, provenance),
    )


def _document_path(log: StoredLog, source: Source) -> Path | None:
    if source.kind != "file":
        return None
    path = Path(log.location)
    candidate = path.with_name(path.name.removesuffix(".jsonl") + PROVENANCE_DOCUMENT_SUFFIX)
    return candidate if candidate.is_file() else None


def _check_document(
    document: Path, provenance: QuantumProvenanceData, folded: _Roles
) -> list[Finding]:
    name = f"provenance document {document}"
    try:
        stored = QuantumProvenanceData.model_validate_json(document.read_bytes())
    except (OSError, ValueError) as err:
        message = f"{name} cannot be read: {' '.join(str(err).split())[:200]}"
        return [Finding(kind="account_mismatch", seq=None, position=None, message=message)]
    findings = compare_roles(name, folded, _roles(stored))
    if stored.status != provenance.status:
        message = f"{name} says status {stored.status}, the log says {provenance.status}"
        findings.append(Finding(kind="account_mismatch", seq=None, position=None, message=message))
    if stored.datastore_records != provenance.datastore_records:
        message = f"{name} holds other datastore records than the log"
        findings.append(Finding(kind="account_mismatch", seq=None, position=None, message=message))
    return findings


def _check_files(
    root: Path, events: Sequence[Any], provenance: QuantumProvenanceData
) -> list[Finding]:
    written = {e.dataset_id: e.seq for e in events if isinstance(e, OutputWritten)}
    findings = []
    resolved_root = root.resolve()
    for records in provenance.datastore_records.values():
        for record in records:
            if not isinstance(record, FileRecord):
                continue
            problem = _artifact_problem(resolved_root, record)
            if problem is not None:
                kind, message = problem
                seq = written.get(record.dataset_id)
                findings.append(Finding(kind=kind, seq=seq, position=None, message=message))
    return findings


def _artifact_problem(root: Path, record: FileRecord) -> tuple[str, str] | None:
    path = (root / record.path).resolve()
    # A record is data: its path must not lead outside the root it names.
    if not path.is_relative_to(root):
        return "artifact_changed", f"record path {record.path} leads outside {root}"
    try:
        size = path.stat().st_size
    except OSError:
        return "artifact_missing", f"artifact {record.path} of {record.dataset_id} is missing"
    if size != record.file_size:
        return (
            "artifact_changed",
            f"artifact {record.path} holds {size} bytes, its record says {record.file_size}",
        )
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    if f"sha256:{digest.hexdigest()}" != record.checksum:
        return "artifact_changed", f"artifact {record.path} does not match its record's checksum"
    return None


def _details(events: Sequence[Any], p: QuantumProvenanceData) -> dict[str, Any]:
    started = next((e for e in events if isinstance(e, QuantumStarted)), None)
    finished = next((e for e in events if isinstance(e, QuantumFinished)), None)
    details: dict[str, Any] = {
        "kinds": dict(Counter(e.kind for e in events)),
        "predicted_inputs": len(p.predicted_inputs),
        "missing_inputs": tuple(sorted(map(str, p.unavailable_inputs))),
        "unused_inputs": tuple(sorted(map(str, p.available_inputs - p.actual_inputs))),
        "unwritten_outputs": tuple(sorted(map(str, p.predicted_outputs - p.actual_outputs))),
        "warnings": tuple(w.tag for w in p.warnings),
    }
    if events:
        details["started_ns"] = events[0].timestamp_ns
        details["finished_ns"] = events[-1].timestamp_ns
    if started is not None:
        q = started.quantum
        details["task_label"] = q.task_label
        details["data_id"] = ",".join(f"{k}={v}" for k, v in q.data_id.items())
        refs = (*q.outputs, *q.inputs)
        details["run"] = next((r.run for r in refs if r.run), None)
    if finished is not None:
        details["wall_ns"] = finished.wall_ns
        details["cpu_ns"] = finished.cpu_ns
        details["peak_rss_bytes"] = finished.peak_rss_bytes
    return details


def default_jobs() -> int:
    """Return the number of cores this process may use (`int`)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
