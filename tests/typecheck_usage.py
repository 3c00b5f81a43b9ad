"""Uses the public API as an executor author would; checked by ``mypy --strict`` in CI.

It is not a test module: it shows that the types users see are precise.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from qbb_events import (
    ButlerMetrics,
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


def registry_usage(root: Path, quantum: Quantum, url: str) -> int:
    from qbb_events import (
        LineageStep,
        QuantumProvenanceData,
        RegisteredQuantum,
        Registry,
        TransferReport,
        find_orphans,
        transfer_run,
    )

    with QuantumBackedButler.initialize(root, quantum, log=root / "q.jsonl") as butler:
        pass
    provenance = butler.extract_provenance_data()
    with Registry.create(url) as registry:
        report: TransferReport = QuantumProvenanceData.collect_and_transfer(
            registry, [quantum], [provenance]
        )
        again: TransferReport = transfer_run(registry, root / "q.jsonl", workers=1)
        sets: dict[str, frozenset[uuid.UUID]] = registry.provenance(quantum.id)
        first: list[LineageStep] = registry.upstream(quantum.id, depth=2)
        held: list[RegisteredQuantum] = registry.quanta(task_label=quantum.task_label)
        orphans: list[str] = find_orphans(root, registry)
    return (
        report.datasets_new + again.quanta_new + len(sets) + len(first) + len(held) + len(orphans)
    )


def stores(root: Path, quantum: Quantum, url: str) -> list[tuple[uuid.UUID, int]]:
    from qbb_events import (
        EventLog,
        EventStore,
        InMemoryEventStore,
        PostgresEventLog,
        PostgresEventStore,
        SourceKind,
        copy_logs,
        source_kind,
    )

    with PostgresEventStore(url) as postgres:
        log: PostgresEventLog = postgres.log()
        with QuantumBackedButler.initialize(root, quantum, log=log):
            pass
        memory: EventStore = InMemoryEventStore()
        copy_logs(postgres, memory)
        again: EventLog = memory.open_log(quantum.id, 0)
        assert again.sealed
        kind: SourceKind = source_kind(url)
        assert kind == "postgresql"
        return memory.quanta()


def executor(root: Path, out: Path) -> int:
    from qbb_events import (
        DatasetType,
        FaultInjection,
        NoWorkFound,
        Pipeline,
        QuantumGraph,
        QuantumReport,
        RerunReport,
        RunReport,
        TaskDef,
        execute_quantum,
        load_pipeline,
        rerun_quantum,
        run_pipeline,
    )

    class Count:
        def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
            if not quantum.inputs:
                raise NoWorkFound("nothing")
            butler.put({"n": len(quantum.inputs)}, quantum.outputs[0])

    counted = DatasetType("counted", "json", ("i",))
    pipeline = Pipeline([TaskDef("count", Count(), ("i",), (), (counted,))], name="count")
    graph = QuantumGraph(pipeline.plan([{"i": 0}], run="r"), run="r", pipeline=pipeline.name)
    graph.save(out / "graph")
    quantum: Quantum = QuantumGraph.load_quantum(out / "graph", next(iter(graph)).id)
    report: QuantumReport = execute_quantum(Count(), quantum, root, log=out / "logs")
    again: RerunReport = rerun_quantum(load_pipeline(None).tasks[0], quantum, root, out / "logs")
    run: RunReport = run_pipeline(out / "run", quanta=10, faults=FaultInjection(kill_rate=0.1))
    return report.exit_code + len(again.differing) + len(run.quanta)


def butler_surface(root: Path, quantum: Quantum, destination: Path) -> ButlerMetrics:
    from qbb_events import (
        DEFAULT_DATASTORE_NAME,
        ArtifactURI,
        DatasetRefURIs,
        FileDatastore,
        FileRecord,
    )

    store = FileDatastore(root, name=DEFAULT_DATASTORE_NAME, create=True)
    records: dict[str, list[FileRecord]] = store.export_records(quantum.inputs)
    metrics = ButlerMetrics()
    butler = QuantumBackedButler.initialize(store, quantum, metrics=metrics)
    again = QuantumBackedButler.from_predicted(
        store, quantum.inputs, [], datastore_records=records, metrics=ButlerMetrics()
    )
    writeable: bool = butler.isWriteable()
    names: tuple[str, ...] = butler.get_datastore_names()
    roots: dict[str, Path] = butler.get_datastore_roots()
    ref = quantum.inputs[0]
    uri: ArtifactURI = butler.getURI(ref, predict=True)
    local: Path = Path(uri)
    url: str = uri.geturl()
    uris: DatasetRefURIs = butler.getURIs(ref, predict=True)
    many: dict[DatasetRef, DatasetRefURIs] = butler.get_many_uris(
        quantum.inputs, predict=False, allow_missing=True
    )
    copied: list[Path] = butler.retrieve_artifacts(
        quantum.inputs, destination, transfer="hardlink", preserve_path=False, overwrite=True
    )
    zipped: Path = butler.retrieve_artifacts_zip(quantum.inputs, destination, overwrite=True)
    predicted: dict[str, list[FileRecord]] = butler.export_predicted_datastore_records(
        quantum.inputs
    )
    with butler.record_metrics() as inner:
        butler.get(ref)
    n: int = inner.n_get + metrics.n_put
    seconds: float = inner.time_in_get + metrics.time_in_put
    metrics.reset()
    provenance = QuantumProvenanceData.direct(**butler.extract_provenance_data().model_dump())
    assert writeable
    assert names
    assert roots
    assert local
    assert url
    assert uris
    assert many is not None
    assert copied
    assert zipped
    assert predicted
    assert n >= 0
    assert seconds >= 0
    assert provenance
    again.close()
    butler.close()
    return metrics


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
