"""A small chained run: what ``qbb-events demo`` executes.

Four quanta of three tasks run one after the other against one local
datastore, each with its own JSON Lines log. The chain exercises the cases
provenance exists for: an input that is missing, an input read and then
marked unused, a deferred input never loaded, and outputs that are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .butler import QuantumBackedButler
from .datastore import FileDatastore
from .model import DatasetRef, DatasetType
from .provenance import QuantumProvenanceData
from .quantum import Quantum

__all__ = ["DemoQuantum", "run_demo"]

RAW = DatasetType("raw", "json", ("exposure", "detector"))
CALEXP = DatasetType("calexp", "arrow", ("exposure", "detector"))
CONFIG = DatasetType("isr_config", "json", ())
COADD = DatasetType("coadd", "arrow", ("detector",))
SUMMARY = DatasetType("summary", "json", ("detector",))


@dataclass(frozen=True)
class DemoQuantum:
    """One executed quantum of the demo.

    Attributes
    ----------
    quantum : `Quantum`
        The quantum.
    provenance : `QuantumProvenanceData`
        What its log folds into.
    log_path : `pathlib.Path`
        Its JSON Lines log.
    note : `str`
        What the demo made this quantum do.
    """

    quantum: Quantum
    provenance: QuantumProvenanceData
    log_path: Path
    note: str


def _isr(butler: QuantumBackedButler, quantum: Quantum) -> None:
    raw_ref, config_ref = quantum.inputs[0], quantum.init_inputs[0]
    butler.stored_many([raw_ref, config_ref])
    pixels = butler.get(raw_ref)["pixels"]
    gain = butler.get(config_ref)["gain"]
    table = pa.table({"pixel": list(range(len(pixels))), "value": [p * gain for p in pixels]})
    butler.put(table, quantum.outputs[0])


def _coadd(butler: QuantumBackedButler, quantum: Quantum) -> None:
    found = butler.stored_many(quantum.inputs)
    tables = [butler.get(ref) for ref, ok in found.items() if ok]
    # The demo task decides the last image it read is too noisy to use.
    butler.markInputUnused(next(ref for ref, ok in reversed(found.items()) if ok))
    total = sum(t.column("value").to_pylist()[0] for t in tables[:-1])
    butler.put(
        pa.table({"detector": [quantum.data_id["detector"]], "sum": [total]}), quantum.outputs[0]
    )


def _summary(butler: QuantumBackedButler, quantum: Quantum) -> None:
    coadd_ref, calexp_ref = quantum.inputs
    # A deferred handle the task never loads still counts as used.
    butler.getDeferred(calexp_ref)
    coadd = butler.get(coadd_ref, parameters={"columns": ["sum"]})
    butler.put({"sum": coadd.column("sum")[0].as_py()}, quantum.outputs[0])


def run_demo(
    root: str | Path, on_quantum: Callable[[DemoQuantum], None] | None = None
) -> list[DemoQuantum]:
    """Execute the demo chain in ``root`` and return each quantum's provenance.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Directory of the datastore (``repo/``) and the logs (``logs/``);
        created if absent. Each call uses a new RUN, so it may be reused.
    on_quantum : callable, optional
        Called with each quantum as soon as it has run.

    Returns
    -------
    quanta : `list` [`DemoQuantum`]
        The executed quanta, in order.
    """
    root = Path(root)
    datastore = FileDatastore(root / "repo", create=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"_{time.time_ns() % 1_000_000:06d}"
    raw_run, run = f"demo/raw_{stamp}", f"demo/run_{stamp}"
    detector = 1
    raws = [DatasetRef(RAW, {"exposure": e, "detector": detector}, raw_run) for e in (1, 2, 3)]
    # Exposure 3 was never ingested: its raw is predicted but has no artifact.
    for exposure, ref in zip((1, 2), raws, strict=False):
        datastore.put({"pixels": [exposure, exposure + 1, exposure + 2]}, ref)
    config = DatasetRef(CONFIG, {}, run)
    datastore.put({"gain": 2}, config)
    calexps = [DatasetRef(CALEXP, dict(r.data_id), run) for r in raws]
    coadd = DatasetRef(COADD, {"detector": detector}, run)
    summary = DatasetRef(SUMMARY, {"detector": detector}, run)

    plan: list[tuple[Quantum, Callable[[QuantumBackedButler, Quantum], None], str]] = [
        *(
            (
                Quantum("isr", dict(raw.data_id), [raw], [calexp], init_inputs=[config]),
                _isr,
                "reads raw + config, writes calexp"
                + ("; raw is missing, so the task fails" if i == 2 else ""),
            )
            for i, (raw, calexp) in enumerate(zip(raws, calexps, strict=True))
        ),
        (
            Quantum("coadd", {"detector": detector}, calexps, [coadd]),
            _coadd,
            "one calexp missing; reads two, marks one unused",
        ),
        (
            Quantum("summary", {"detector": detector}, [coadd, calexps[0]], [summary]),
            _summary,
            "reads coadd columns; calexp requested deferred, never loaded",
        ),
    ]
    done: list[DemoQuantum] = []
    for quantum, task, note in plan:
        log_path = root / "logs" / f"{quantum.task_label}-{quantum.id}.jsonl"
        butler = QuantumBackedButler.initialize(datastore, quantum, log=log_path)
        try:
            task(butler, quantum)
        except (FileNotFoundError, LookupError) as err:
            butler.finish("failed", err)
        butler.close()
        result = DemoQuantum(quantum, butler.extract_provenance_data(), log_path, note)
        done.append(result)
        if on_quantum is not None:
            on_quantum(result)
    return done
