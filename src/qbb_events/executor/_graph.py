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
        self._columns: _Columns | None = None
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
        return len(self._quanta) if self._columns is None else len(self._columns.order)

    def __iter__(self) -> Iterator[Quantum]:
        if self._columns is None:
            return iter(self._quanta.values())
        return (self.quantum(uuid.UUID(bytes=qid)) for qid in self._columns.order)

    def __contains__(self, quantum_id: object) -> bool:
        if self._columns is None or not isinstance(quantum_id, uuid.UUID):
            return quantum_id in self._quanta
        return quantum_id.bytes in self._columns.rows

    def quantum(self, quantum_id: uuid.UUID) -> Quantum:
        """Return one quantum.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            Its id.

        Returns
        -------
        quantum : `Quantum`
            The quantum (built from its rows on first use in a loaded graph).

        Raises
        ------
        QuantumNotInGraphError
            If the graph has no such quantum (a `KeyError`).
        """
        found = self._quanta.get(quantum_id)
        if found is None and self._columns is not None and quantum_id in self:
            found = self._quanta[quantum_id] = self._columns.build(quantum_id)
        if found is None:
            raise QuantumNotInGraphError(f"the graph holds no quantum {quantum_id}")
        return found

    def upstream(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        """Return, for each quantum, the quanta that write its inputs.

        Returns
        -------
        upstream : `dict` [`uuid.UUID`, `set` [`uuid.UUID`]]
            Producers of each quantum's inputs (empty for the first tasks).
        """
        if self._columns is not None:
            return self._columns.upstream()
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
            The graph, quanta in their saved topological order. Only the
            tables are read: each quantum is built when first asked for, so a
            million quanta load in the time Parquet takes to read them.

        Raises
        ------
        InvalidDefinitionError
            If the directory does not hold a graph of this format.
        """
        src, meta = _open(path)
        graph = cls((), run=meta["run"], pipeline=meta["pipeline"])
        graph._columns = _Columns(
            _types(src),
            pq.read_table(src / "quanta.parquet").sort_by("order"),
            pq.read_table(src / "predicted.parquet"),
        )
        return graph

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
        return _Columns(_types(src), quanta, predicted).build(quantum_id)


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


def _types(src: Path) -> dict[str, DatasetType]:
    return {
        row["name"]: DatasetType(row["name"], row["storage_class"], row["dimensions"])
        for row in pq.read_table(src / "dataset_types.parquet").to_pylist()
    }


class _Columns:
    """A saved graph's tables, and the index that finds one quantum's rows."""

    def __init__(self, types: dict[str, DatasetType], quanta: pa.Table, predicted: pa.Table):
        self.types = types
        self.quanta = quanta
        # Sorted by quantum id when saved: each quantum's rows are one run.
        self.predicted = predicted
        self.order: list[bytes] = quanta.column("quantum_id").to_pylist()
        self.rows = {qid: index for index, qid in enumerate(self.order)}
        self._spans: dict[bytes, tuple[int, int]] | None = None

    def spans(self) -> dict[bytes, tuple[int, int]]:
        if self._spans is None:
            encoded = pc.run_end_encode(self.predicted.column("quantum_id").combine_chunks())
            ends = encoded.run_ends.to_pylist()
            starts = [0, *ends[:-1]]
            self._spans = dict(
                zip(encoded.values.to_pylist(), zip(starts, ends, strict=True), strict=True)
            )
        return self._spans

    def build(self, quantum_id: uuid.UUID) -> Quantum:
        start, stop = self.spans().get(quantum_id.bytes, (0, 0))
        rows = self.predicted.slice(start, stop - start)
        roles: dict[str, list[DatasetRef]] = {}
        columns = [
            rows.column(name).to_pylist()
            for name in ("dataset_id", "role", "dataset_type", "run", "data_id_json")
        ]
        for did, role, type_name, run, data_id in zip(*columns, strict=True):
            ref = DatasetRef(self.types[type_name], json.loads(data_id), run, uuid.UUID(bytes=did))
            roles.setdefault(role, []).append(ref)
        row = self.quanta.slice(self.rows[quantum_id.bytes], 1).to_pylist()[0]
        return Quantum(
            row["task_label"],
            json.loads(row["data_id_json"]),
            roles.get("input", []),
            roles.get("output", []),
            init_inputs=roles.get("init_input", []),
            id=quantum_id,
        )

    def upstream(self) -> dict[uuid.UUID, set[uuid.UUID]]:
        # One join of inputs to the outputs that produce them, in Arrow.
        table = self.predicted.select(["quantum_id", "dataset_id", "role"])
        role = pc.cast(table.column("role"), pa.string())
        outputs = table.filter(pc.equal(role, "output")).select(["dataset_id", "quantum_id"])
        inputs = table.filter(pc.not_equal(role, "output")).select(["quantum_id", "dataset_id"])
        edges = inputs.join(
            outputs.rename_columns(["dataset_id", "producer"]), "dataset_id", join_type="inner"
        )
        result: dict[uuid.UUID, set[uuid.UUID]] = {uuid.UUID(bytes=q): set() for q in self.order}
        for consumer, producer in zip(
            edges.column("quantum_id").to_pylist(),
            edges.column("producer").to_pylist(),
            strict=True,
        ):
            result[uuid.UUID(bytes=consumer)].add(uuid.UUID(bytes=producer))
        return result
