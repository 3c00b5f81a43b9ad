"""A generated three-task run, executed with real butlers, for the registry tests.

``isr`` (one quantum per exposure) reads a raw and writes a calib; the last
raw was never ingested, so its quantum fails. ``warp`` reads its calib and
its neighbour's, sometimes marking the neighbour unused or only requesting
it deferred, and writes a warp. ``coadd`` checks every warp and reads those
present. The logs are JSON Lines files under ``logs/``, the artifacts under
``repo/``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    Quantum,
    QuantumBackedButler,
    QuantumProvenanceData,
)

RAW = DatasetType("raw", "json", ("exposure",))
CALIB = DatasetType("calib", "json", ("exposure",))
WARP = DatasetType("warp", "json", ("exposure",))
COADD = DatasetType("coadd", "json", ("patch",))


@dataclass
class GeneratedRun:
    root: Path
    datastore: FileDatastore
    logs: list[Path]
    quanta: list[Quantum]
    provenance: list[QuantumProvenanceData]

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"


def _execute(run: GeneratedRun, quantum: Quantum, body: object, rng: random.Random) -> None:
    path = run.log_dir / f"{quantum.task_label}-{quantum.id}.jsonl"
    butler = QuantumBackedButler.initialize(run.datastore, quantum, log=path)
    try:
        body(butler, quantum, rng)  # type: ignore[operator]
    except (FileNotFoundError, LookupError) as err:
        butler.finish("failed", err)
    butler.close()
    run.logs.append(path)
    run.quanta.append(quantum)
    run.provenance.append(butler.extract_provenance_data())


def _isr(butler: QuantumBackedButler, quantum: Quantum, rng: random.Random) -> None:
    (raw,) = quantum.inputs
    butler.stored(raw)
    value = butler.get(raw)
    butler.put({"calib": value["v"] * 2}, quantum.outputs[0])


def _warp(butler: QuantumBackedButler, quantum: Quantum, rng: random.Random) -> None:
    own, neighbour = quantum.inputs
    butler.stored_many([own, neighbour])
    total = butler.get(own)["calib"]
    choice = rng.random()
    if choice < 0.3:
        butler.getDeferred(neighbour)
    elif choice < 0.6 and butler.stored(neighbour):
        butler.get(neighbour)
        butler.markInputUnused(neighbour)
    elif butler.stored(neighbour):
        total += butler.get(neighbour)["calib"]
    butler.put({"warp": total}, quantum.outputs[0])


def _coadd(butler: QuantumBackedButler, quantum: Quantum, rng: random.Random) -> None:
    present = butler.stored_many(quantum.inputs)
    total = sum(butler.get(ref)["warp"] for ref, found in present.items() if found)
    butler.put({"coadd": total}, quantum.outputs[0])


def three_task_run(
    root: Path, *, exposures: int = 6, seed: int = 0, run: str = "gen/run"
) -> GeneratedRun:
    """Execute the three-task run in ``root``."""
    rng = random.Random(seed)
    generated = GeneratedRun(root, FileDatastore(root / "repo"), [], [], [])
    raws = [DatasetRef(RAW, {"exposure": e}, "gen/raw") for e in range(exposures)]
    for exposure, ref in enumerate(raws[:-1]):
        generated.datastore.put({"v": exposure}, ref)
    calibs = [DatasetRef(CALIB, {"exposure": e}, run) for e in range(exposures)]
    warps = [DatasetRef(WARP, {"exposure": e}, run) for e in range(exposures)]
    coadd = DatasetRef(COADD, {"patch": 0}, run)
    for raw, calib in zip(raws, calibs, strict=True):
        quantum = Quantum("isr", dict(raw.data_id), [raw], [calib])
        _execute(generated, quantum, _isr, rng)
    for e in range(exposures):
        inputs = [calibs[e], calibs[(e + 1) % exposures]]
        quantum = Quantum("warp", {"exposure": e}, inputs, [warps[e]])
        _execute(generated, quantum, _warp, rng)
    _execute(generated, Quantum("coadd", {"patch": 0}, warps, [coadd]), _coadd, rng)
    return generated
