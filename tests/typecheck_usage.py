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
