"""Quantum graphs: the quanta of a run, saved to and loaded from Parquet.

A graph directory holds ``quanta.parquet`` (the export's quanta schema plus
``run``, ``order``, the topological position, and ``data_id_json``), ``predicted.parquet`` (the
export's predicted schema plus ``run`` and ``data_id_json``, which keeps
``1`` and ``"1"`` apart) and ``dataset_types.parquet``. Both big tables are
sorted by quantum id in row groups with statistics, so one quantum is read by
id from the row groups that can hold it, never the whole file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InvalidDefinitionError, QuantumNotInGraphError
from ..model import DatasetRef, DatasetType
from ..parquet import PREDICTED_SCHEMA, QUANTA_SCHEMA
from ..quantum import Quantum

__all__ = ["GRAPH_FORMAT", "QuantumGraph"]

GRAPH_FORMAT: Final = "qbb-events-graph/1"
"""Format tag stored in every graph file's metadata."""

_ROW_GROUP = 65_536
_QUANTA = (
    QUANTA_SCHEMA.append(pa.field("run", pa.string()))
    .append(pa.field("order", pa.int64(), nullable=False))
    .append(pa.field("data_id_json", pa.string(), nullable=False))
)
_PREDICTED = PREDICTED_SCHEMA.append(pa.field("run", pa.string())).append(
    pa.field("data_id_json", pa.string(), nullable=False)
)
_TYPES = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("storage_class", pa.string(), nullable=False),
        pa.field("dimensions", pa.list_(pa.string()), nullable=False),
    ]
)


def _json(data_id: Mapping[str, Any]) -> str:
    return json.dumps(dict(data_id), sort_keys=True, separators=(",", ":"))


class QuantumGraph:
    """The quanta of one run, in topological order.

    Parameters
    ----------
    quanta : `~collections.abc.Iterable` [`Quantum`]
        The quanta, upstream before downstream.
    run : `str`
        The RUN collection of its outputs.
    pipeline : `str`
        Name of the pipeline that planned it (a name only: loading a graph
        never imports anything).
    """

    def __init__(self, quanta: Iterable[Quantum], *, run: str, pipeline: str) -> None:
        self._quanta: dict[uuid.UUID, Quantum] = {q.id: q for q in quanta}
        self._run = run
        self._pipeline = pipeline

    @property
    def run(self) -> str:
        """RUN collection of the outputs (`str`)."""
        return self._run

    @property
    def pipeline(self) -> str:
        """Name of the pipeline that planned it (`str`)."""
        return self._pipeline

    def __len__(self) -> int:
        return len(self._quanta)

    def __iter__(self) -> Iterator[Quantum]:
        return iter(self._quanta.values())

    def __contains__(self, quantum_id: object) -> bool:
        return quantum_id in self._quanta

    def quantum(self, quantum_id: uuid.UUID) -> Quantum:
        """Return one quantum.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            Its id.

        Returns
        -------
        quantum : `Quantum`
            The quantum.

        Raises
        ------
        QuantumNotInGraphError
            If the graph has no such quantum (a `KeyError`).
        """
        try:
            return self._quanta[quantum_id]
        except KeyError:
            raise QuantumNotInGraphError(f"the graph holds no quantum {quantum_id}") from None

    def upstream(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        """Return, for each quantum, the quanta that write its inputs.

        Returns
        -------
        upstream : `dict` [`uuid.UUID`, `set` [`uuid.UUID`]]
            Producers of each quantum's inputs (empty for the first tasks).
        """
        producer = {ref.id: q.id for q in self for ref in q.outputs}
        return {q.id: {producer[i] for i in q.predicted_inputs if i in producer} for q in self}

    # -- Parquet ---------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, row_group_size: int = _ROW_GROUP) -> Path:
        """Write the graph to a directory of Parquet files.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The directory; created, and must not hold a graph already.
        row_group_size : `int`, optional
            Rows per row group: the most a single-quantum lookup reads.

        Returns
        -------
        path : `pathlib.Path`
            The directory.

        Raises
        ------
        FileExistsError
            If it already holds a graph (a graph is never overwritten).
        """
        dest = Path(path)
        dest.mkdir(parents=True, exist_ok=True)
        if (dest / "quanta.parquet").exists():
            raise FileExistsError(f"{dest} already holds a quantum graph")
        order = {q.id: index for index, q in enumerate(self)}
        quanta = sorted(self, key=lambda q: q.id.bytes)
        types: dict[str, DatasetType] = {}
        q_cols: dict[str, list[Any]] = {name: [] for name in _QUANTA.names}
        p_cols: dict[str, list[Any]] = {name: [] for name in _PREDICTED.names}
        for q in quanta:
            for name, value in (
                ("quantum_id", q.id.bytes),
                ("attempt", 0),
                ("task_label", q.task_label),
                ("data_id", {k: str(v) for k, v in q.data_id.items()}),
                ("events", 0),
                ("verified", False),
                ("source", "graph"),
                ("run", self._run),
                ("order", order[q.id]),
                ("problems", []),
                ("data_id_json", _json(q.data_id)),
            ):
                q_cols[name].append(value)
            for role, refs in (
                ("input", q.inputs),
                ("init_input", q.init_inputs),
                ("output", q.outputs),
            ):
                for ref in refs:
                    types[ref.dataset_type.name] = ref.dataset_type
                    for name, value in (
                        ("quantum_id", q.id.bytes),
                        ("attempt", 0),
                        ("dataset_id", ref.id.bytes),
                        ("role", role),
                        ("dataset_type", ref.dataset_type.name),
                        ("data_id", {k: str(v) for k, v in ref.data_id.items()}),
                        ("run", ref.run),
                        ("data_id_json", _json(ref.data_id)),
                    ):
                        p_cols[name].append(value)
        n = len(quanta)
        for name in _QUANTA.names:
            if not q_cols[name]:
                q_cols[name] = [None] * n
        metadata = {
            b"format": GRAPH_FORMAT.encode(),
            b"run": self._run.encode(),
            b"pipeline": self._pipeline.encode(),
            b"quanta": str(n).encode(),
        }
        type_table = pa.table(
            {
                "name": [t.name for t in types.values()],
                "storage_class": [t.storage_class for t in types.values()],
                "dimensions": [list(t.dimensions) for t in types.values()],
            },
            schema=_TYPES,
        )
        for name, table in (
            ("dataset_types", type_table),
            ("quanta", pa.table(q_cols, schema=_QUANTA)),
            ("predicted", pa.table(p_cols, schema=_PREDICTED)),
        ):
            tmp = dest / f".{name}.parquet.tmp"
            pq.write_table(
                table.replace_schema_metadata(metadata),
                tmp,
                row_group_size=row_group_size,
                compression="zstd",
                write_statistics=True,
            )
            os.replace(tmp, dest / f"{name}.parquet")
        return dest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QuantumGraph:
        """Read a whole graph.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            A directory written by `save`.

        Returns
        -------
        graph : `QuantumGraph`
            The graph, quanta in their saved topological order.

        Raises
        ------
        InvalidDefinitionError
            If the directory does not hold a graph of this format.
        """
        src, meta = _open(path)
        quanta = pq.read_table(src / "quanta.parquet").sort_by("order")
        predicted = pq.read_table(src / "predicted.parquet")
        built = _build(src, quanta, predicted)
        ordered = [built[uuid.UUID(bytes=b)] for b in quanta.column("quantum_id").to_pylist()]
        return cls(ordered, run=meta["run"], pipeline=meta["pipeline"])

    @staticmethod
    def load_quantum(path: str | os.PathLike[str], quantum_id: uuid.UUID) -> Quantum:
        """Read one quantum of a saved graph, without reading the others.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            A directory written by `save`.
        quantum_id : `uuid.UUID`
            The quantum.

        Returns
        -------
        quantum : `Quantum`
            The quantum.

        Raises
        ------
        QuantumNotInGraphError
            If the graph has no such quantum (a `KeyError`).
        InvalidDefinitionError
            If the directory does not hold a graph of this format.
        """
        src, _ = _open(path)
        # Row-group statistics on the sorted id column skip every group that
        # cannot hold the id, so only one (or two) groups are read.
        key = pc.field("quantum_id") == pa.scalar(quantum_id.bytes, pa.binary(16))
        quanta = pq.read_table(src / "quanta.parquet", filters=key)
        if not quanta.num_rows:
            raise QuantumNotInGraphError(f"the graph in {src} holds no quantum {quantum_id}")
        predicted = pq.read_table(src / "predicted.parquet", filters=key)
        return _build(src, quanta, predicted)[quantum_id]


def _open(path: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    src = Path(path)
    try:
        raw = pq.read_schema(src / "quanta.parquet").metadata or {}
    except (OSError, pa.ArrowInvalid) as err:
        raise InvalidDefinitionError(f"{src} does not hold a quantum graph: {err}") from None
    meta = {k.decode(): v.decode() for k, v in raw.items()}
    if meta.get("format") != GRAPH_FORMAT:
        raise InvalidDefinitionError(
            f"{src} holds graph format {meta.get('format')!r}, not {GRAPH_FORMAT!r}"
        )
    return src, meta


def _build(src: Path, quanta: pa.Table, predicted: pa.Table) -> dict[uuid.UUID, Quantum]:
    types = {
        row["name"]: DatasetType(row["name"], row["storage_class"], row["dimensions"])
        for row in pq.read_table(src / "dataset_types.parquet").to_pylist()
    }
    refs: dict[bytes, dict[str, list[DatasetRef]]] = {}
    columns = [
        predicted.column(name).to_pylist()
        for name in ("quantum_id", "dataset_id", "role", "dataset_type", "run", "data_id_json")
    ]
    for qid, did, role, type_name, run, data_id in zip(*columns, strict=True):
        ref = DatasetRef(types[type_name], json.loads(data_id), run, uuid.UUID(bytes=did))
        refs.setdefault(qid, {}).setdefault(role, []).append(ref)
    result = {}
    for qid, label, data_id in zip(
        quanta.column("quantum_id").to_pylist(),
        quanta.column("task_label").to_pylist(),
        quanta.column("data_id_json").to_pylist(),
        strict=True,
    ):
        roles = refs.get(qid, {})
        quantum_id = uuid.UUID(bytes=qid)
        result[quantum_id] = Quantum(
            label,
            json.loads(data_id),
            roles.get("input", []),
            roles.get("output", []),
            init_inputs=roles.get("init_input", []),
            id=quantum_id,
        )
    return result
