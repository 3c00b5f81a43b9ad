"""Uses the public API as an executor author would; checked by ``mypy --strict`` in CI.

It is not a test module: it shows that the types users see are precise.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from qbb_events import (
    DatasetRef,
    DatasetType,
    Event,
    QbbEventsError,
    Quantum,
    QuantumBackedButler,
    QuantumProvenanceData,
    fold,
    read_log,
)


def run_task(root: Path, log: Path) -> QuantumProvenanceData:
    raw = DatasetType("raw", "json", ("exposure",))
    out = DatasetType("out", "bytes", ("exposure",))
    ref_in = DatasetRef(raw, {"exposure": 1}, "run")
    ref_out = DatasetRef(out, {"exposure": 1}, "run")
    quantum = Quantum("task", {"exposure": 1}, [ref_in], [ref_out])
    with QuantumBackedButler.initialize(root, quantum, log=log) as butler:
        found: bool = butler.stored(ref_in)
        if found:
            value = butler.get(ref_in)
            butler.put(repr(value).encode(), ref_out)
        else:
            butler.markInputUnused(ref_in)
        many: dict[DatasetRef, bool] = butler.stored_many([ref_in])
        assert many
    events: list[Event] = read_log(log)
    provenance = fold(events)
    used: frozenset[uuid.UUID] = provenance.actual_inputs
    assert isinstance(used, frozenset)
    return provenance


def safe(root: Path, log: Path) -> QuantumProvenanceData | None:
    try:
        return run_task(root, log)
    except QbbEventsError:
        return None


def use_testing_helpers(root: Path) -> list[str]:
    from qbb_events.testing import MISSING, assert_provenance, event_kinds, make_quantum_butler

    raw = DatasetType("raw", "json", ("exposure",))
    present = DatasetRef(raw, {"exposure": 1}, "run")
    absent = DatasetRef(raw, {"exposure": 2}, "run")
    butler = make_quantum_butler(root, inputs={present: {"a": 1}, absent: MISSING}, outputs=[])
    butler.stored_many([present, absent])
    assert_provenance(butler, available=[present], unavailable=[absent])
    kinds: list[str] = event_kinds(butler)
    return kinds


def durable(root: Path, quantum: Quantum, store_path: Path) -> str:
    from qbb_events import (
        CopyReport,
        JsonLinesEventLog,
        Problem,
        SqliteEventStore,
        SyncPolicy,
        VerificationReport,
        copy_logs,
        verify_logs,
    )

    log = JsonLinesEventLog(root / "q.jsonl", sync=SyncPolicy.group(max_events=100))
    with QuantumBackedButler.initialize(root, quantum, log=log):
        pass
    with SqliteEventStore(store_path, sync=SyncPolicy.every_event()) as store:
        with QuantumBackedButler.initialize(root, quantum, log=store.log()):
            pass
        report: VerificationReport = verify_logs([root, store])
    problems: list[Problem] = [problem for _, problem in report.problems()]
    copied: CopyReport = copy_logs(store_path, root / "copies")
    assert copied.ok or problems
    return report.digest


def interchange(root: Path, provenance: QuantumProvenanceData) -> int:
    from typing import Any

    from qbb_events import (
        LineageReport,
        export_lineage,
        openlineage_events,
        prov_document,
    )

    text: str = provenance.to_lsst_json()
    back: QuantumProvenanceData = QuantumProvenanceData.from_lsst_json(text)
    assert back.actual_outputs == provenance.actual_outputs
    events: list[dict[str, Any]] = list(openlineage_events(root))
    document: dict[str, Any] = prov_document(root, derivations=True)
    report: LineageReport = export_lineage(root, root / "run.ndjson", format="openlineage")
    return report.attempts + len(events) + len(document)


def replay(logs: Path) -> int:
    import click
    from qbb_replay import LogResult, Options, analyze_sources, resolve_sources, run_stats

    from qbb_events.cli_contract import EXIT_PROBLEM, ContractGroup, emit_json, progress

    results: list[LogResult] = [
        result
        for batch in progress(
            analyze_sources(resolve_sources([str(logs)]), Options(fold=True), jobs=1),
            total=None,
            label="reading",
            weight=len,
        )
        for result in batch
    ]
    emit_json("qbb-replay", "stats", run_stats(results))

    @click.group(cls=ContractGroup)
    def tool() -> None:
        """A tool keeping the contract."""

    assert tool.name
    return EXIT_PROBLEM if any(not r.ok for r in results) else 0
