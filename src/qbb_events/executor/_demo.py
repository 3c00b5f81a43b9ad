"""The built-in pipelines: a five-task demo doing small real work, and a trivial one.

Demo: ``ingest -> calibrate -> measure -> coadd -> summary`` over visits and
detectors. ``calibrate`` turns raw Arrow tables into calibrated ones,
``measure`` reads its calibrated table deferred and marks the raw table it was
also given as unused, ``coadd`` and ``summary`` take whatever upstream outputs
exist (their inputs are optional). Every task is deterministic in its data
ID, so re-running a quantum gives byte-identical outputs.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..butler import QuantumBackedButler
from ..errors import NoWorkFound
from ..model import DataIdValue, DatasetType
from ..quantum import Quantum
from ._pipeline import Pipeline, TaskDef

__all__ = ["demo_pipeline", "trivial_pipeline"]

_DETECTORS = 4
_ROWS = 64

RAW = DatasetType("raw", "arrow", ("visit", "detector"))
CALEXP = DatasetType("calexp", "arrow", ("visit", "detector"))
CATALOG = DatasetType("catalog", "json", ("visit", "detector"))
COADD = DatasetType("coadd", "json", ("visit",))
SUMMARY = DatasetType("summary", "arrow", ())


def _output(quantum: Quantum, name: str) -> Any:
    return next(ref for ref in quantum.outputs if ref.dataset_type.name == name)


def _inputs(quantum: Quantum, name: str) -> list[Any]:
    return [ref for ref in quantum.inputs if ref.dataset_type.name == name]


class Ingest:
    """Write a small raw table of pixel fluxes, derived from the data ID."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Write ``raw``."""
        visit, detector = int(quantum.data_id["visit"]), int(quantum.data_id["detector"])
        index = pa.array(range(_ROWS), pa.int64())
        flux = pc.add(pc.multiply(index, visit + 1), detector * 7 % 13)
        butler.put(
            pa.table({"pixel": index, "flux": pc.cast(flux, pa.float64())}), _output(quantum, "raw")
        )


class Calibrate:
    """Scale and offset the raw fluxes (Arrow compute)."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Read ``raw``, write ``calexp``."""
        (raw,) = _inputs(quantum, "raw")
        table = butler.get(raw, parameters={"columns": ["pixel", "flux"]})
        flux = pc.subtract(pc.multiply(table.column("flux"), 1.1), 2.0)
        butler.put(table.set_column(1, "flux", flux), _output(quantum, "calexp"))


class Measure:
    """Summarize a calibrated table; the raw table it is also given goes unused."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Read ``calexp`` deferred, mark ``raw`` unused, write ``catalog``."""
        (calexp,) = _inputs(quantum, "calexp")
        for raw in _inputs(quantum, "raw"):
            butler.markInputUnused(raw)
        table = butler.getDeferred(calexp).get()
        flux = table.column("flux")
        catalog = {
            "n": table.num_rows,
            "mean_flux": round(pc.mean(flux).as_py(), 6),
            "max_flux": pc.max(flux).as_py(),
        }
        butler.put(catalog, _output(quantum, "catalog"))


class Coadd:
    """Combine the catalogs of a visit that exist (they are optional)."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Read the stored catalogs, write ``coadd``; no catalog at all is no work."""
        catalogs = [ref for ref in _inputs(quantum, "catalog") if butler.stored(ref)]
        if not catalogs:
            raise NoWorkFound(f"no catalog of visit {quantum.data_id['visit']} was written")
        rows = [butler.get(ref) for ref in catalogs]
        total = sum(row["n"] for row in rows)
        coadd = {
            "detectors": sorted(int(ref.data_id["detector"]) for ref in catalogs),
            "n": total,
            "mean_flux": round(sum(r["mean_flux"] * r["n"] for r in rows) / total, 6),
        }
        butler.put(coadd, _output(quantum, "coadd"))


class Summary:
    """Tabulate every coadd that exists."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Read the stored coadds, write ``summary``."""
        coadds = [ref for ref in _inputs(quantum, "coadd") if butler.stored(ref)]
        rows = [(int(ref.data_id["visit"]), butler.get(ref)) for ref in coadds]
        table = pa.table(
            {
                "visit": pa.array([v for v, _ in rows], pa.int64()),
                "detectors": pa.array([len(c["detectors"]) for _, c in rows], pa.int64()),
                "mean_flux": pa.array([c["mean_flux"] for _, c in rows], pa.float64()),
            }
        )
        butler.put(table, _output(quantum, "summary"))


def _demo_data_ids(quanta: int) -> list[dict[str, DataIdValue]]:
    # 3 quanta per (visit, detector), one per visit, one summary.
    visits = max(1, round((quanta - 1) / (3 * _DETECTORS + 1)))
    return [{"visit": v, "detector": d} for v in range(visits) for d in range(_DETECTORS)]


def demo_pipeline() -> Pipeline:
    """Return the built-in demo pipeline (five tasks, json and arrow datasets).

    Returns
    -------
    pipeline : `Pipeline`
        ``ingest -> calibrate -> measure -> coadd -> summary``; ``measure``
        also predicts ``raw`` and marks it unused; ``coadd`` and ``summary``
        have optional inputs.
    """
    return Pipeline(
        [
            TaskDef("ingest", Ingest(), ("visit", "detector"), (), (RAW,)),
            TaskDef("calibrate", Calibrate(), ("visit", "detector"), (RAW,), (CALEXP,)),
            TaskDef("measure", Measure(), ("visit", "detector"), (CALEXP, RAW), (CATALOG,)),
            TaskDef("coadd", Coadd(), ("visit",), (CATALOG,), (COADD,), frozenset({"catalog"})),
            TaskDef("summary", Summary(), (), (COADD,), (SUMMARY,), frozenset({"coadd"})),
        ],
        name="demo",
        data_ids=_demo_data_ids,
    )


class _Produce:
    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"index": quantum.data_id["index"]}, quantum.outputs[0])


class _Consume:
    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"seen": butler.get(quantum.inputs[0])}, quantum.outputs[0])


def trivial_pipeline() -> Pipeline:
    """Return a two-task pipeline of trivial tasks (one tiny json dataset each).

    Returns
    -------
    pipeline : `Pipeline`
        ``produce -> consume`` over ``index``: what the executor benchmark
        runs to measure the harness rather than the work.
    """
    first = DatasetType("token", "json", ("index",))
    second = DatasetType("receipt", "json", ("index",))
    return Pipeline(
        [
            TaskDef("produce", _Produce(), ("index",), (), (first,)),
            TaskDef("consume", _Consume(), ("index",), (first,), (second,)),
        ],
        name="trivial",
        data_ids=lambda quanta: [{"index": i} for i in range(max(1, quanta // 2))],
    )
