"""A generated run for the interchange tests: successes, failures, aborted and retried attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qbb_events import (
    ArtifactNotFoundError,
    DatasetRef,
    DatasetType,
    FileDatastore,
    JsonLinesEventLog,
    Quantum,
    QuantumBackedButler,
    QuantumProvenanceData,
    fold,
    read_log,
)

RAW = DatasetType("raw", "json", ("exposure", "detector"))
CALEXP = DatasetType("calexp", "json", ("exposure", "detector"))
SRC = DatasetType("src", "json", ("exposure", "detector"))
RAW_RUN, RUN = "raw/all", "u/tester/run 1"


@dataclass
class LineageRun:
    """The logs of a generated run and what each attempt folds into."""

    logs: Path
    provenance: dict[tuple[str, int], QuantumProvenanceData] = field(default_factory=dict)
    statuses: dict[tuple[str, int], str] = field(default_factory=dict)

    def record(self, path: Path) -> None:
        """Fold one written log and remember its provenance and terminal state."""
        events = read_log(path)
        key = (str(events[0].quantum_id), events[0].attempt)
        self.provenance[key] = fold(events)
        self.statuses[key] = self.provenance[key].status or "aborted"


def generate_run(root: Path, groups: int = 2) -> LineageRun:
    """Write ``groups`` x 4 quanta: succeeded, failed, aborted-then-retried, no work.

    Returns
    -------
    run : `LineageRun`
        ``logs`` is a directory of JSON Lines logs, one per attempt.
    """
    datastore = FileDatastore(root / "repo", create=True)
    run = LineageRun(root / "logs")
    run.logs.mkdir(parents=True)

    def butler(quantum: Quantum, attempt: int = 0) -> QuantumBackedButler:
        path = run.logs / f"{quantum.id}-{attempt}.jsonl"
        return QuantumBackedButler.initialize(
            datastore, quantum, log=JsonLinesEventLog(path), attempt=attempt
        )

    for g in range(groups):
        raws = [DatasetRef(RAW, {"exposure": g, "detector": d}, RAW_RUN) for d in range(4)]
        for ref in raws[:3]:  # raws[3] is predicted by a quantum but never stored
            datastore.put({"pixels": [g, ref.data_id["detector"]]}, ref)
        calexps = [DatasetRef(CALEXP, dict(r.data_id), RUN) for r in raws]
        srcs = [DatasetRef(SRC, dict(r.data_id), RUN) for r in raws]

        # Succeeded: checks, reads, writes.
        quantum = Quantum("isr", {"exposure": g, "detector": 0}, [raws[0]], [calexps[0]])
        with butler(quantum) as b:
            b.stored_many([raws[0]])
            b.put({"value": b.get(raws[0])}, calexps[0])
        run.record(run.logs / f"{quantum.id}-0.jsonl")

        # Failed: its input is missing.
        quantum = Quantum("isr", {"exposure": g, "detector": 3}, [raws[3]], [calexps[3]])
        b = butler(quantum)
        try:
            b.get(raws[3])
        except ArtifactNotFoundError as err:
            b.finish("failed", err)
        b.close()
        run.record(run.logs / f"{quantum.id}-0.jsonl")

        # Aborted (the log ends without quantum_finished), then retried: a read, a
        # deferred read, an input marked unused, two writes and a prune.
        quantum = Quantum(
            "calibrate",
            {"exposure": g, "detector": 1},
            [raws[1], raws[2], calexps[0]],
            [srcs[1], srcs[2]],
        )
        log = JsonLinesEventLog(run.logs / f"{quantum.id}-0.jsonl")
        first = QuantumBackedButler.initialize(datastore, quantum, log=log)
        first.stored_many([raws[1], raws[2]])
        first.get(raws[1])
        log.close()  # the process was killed: no quantum_finished
        run.record(run.logs / f"{quantum.id}-0.jsonl")
        with butler(quantum, attempt=1) as b:
            b.stored_many([raws[1], raws[2], calexps[0]])
            value = b.get(raws[1])
            b.getDeferred(calexps[0]).get()
            b.get(raws[2])
            b.markInputUnused(raws[2])
            b.put({"sources": value}, srcs[1])
            b.put({"sources": []}, srcs[2])
            b.pruneDatasets([srcs[2]], disassociate=True, unstore=True, purge=True)
        run.record(run.logs / f"{quantum.id}-1.jsonl")

        # No work.
        quantum = Quantum("coadd", {"exposure": g}, [srcs[1]], [])
        b = butler(quantum)
        b.stored(srcs[1])
        b.finish("no_work")
        b.close()
        run.record(run.logs / f"{quantum.id}-0.jsonl")
    return run
