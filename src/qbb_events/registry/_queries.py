"""Read queries of the registry: each an index lookup or one recursive CTE."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..model import DataIdValue, DatasetRef, DatasetType
from ..records import FileRecord
from . import _schema as s
from ._rows import canonical_data_id

__all__ = [
    "LineageStep",
    "RegisteredQuantum",
    "chunked",
    "datastore_records",
    "downstream",
    "find_dataset",
    "get_dataset",
    "producer",
    "provenance_sets",
    "quanta",
    "upstream",
]

_ACTUAL_INPUT = s.ROLE_CODES["actual_input"]
_ACTUAL_OUTPUT = s.ROLE_CODES["actual_output"]
# Depth bound of an unbounded walk: provenance is a DAG, so it only stops
# diamonds from being walked again at every depth they are reached by.
_NO_LIMIT = 1_000_000


def chunked(values: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    """Yield lists of at most ``size`` values, for ``IN (...)`` lists.

    Parameters
    ----------
    values : `~collections.abc.Iterable`
        Any values.
    size : `int`, optional
        Largest list (SQLite binds at most 32,766 parameters per statement).

    Yields
    ------
    chunk : `list`
        The next values.
    """
    chunk: list[Any] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True, slots=True)
class RegisteredQuantum:
    """A quantum attempt as the registry holds it.

    Parameters
    ----------
    id : `uuid.UUID`
        Quantum id.
    attempt : `int`
        Attempt number.
    task_label : `str` or `None`
        Label of its task.
    data_id : `dict` [`str`, `int` | `str`]
        Its data ID.
    run : `str` or `None`
        RUN collection of its datasets.
    status : `str`
        ``succeeded``, ``failed``, ``no_work``, ``aborted`` (unsealed log) or
        ``unknown`` (provenance without a status).
    start_ns, end_ns : `int` or `None`
        UTC nanoseconds of ``quantum_started`` / ``quantum_finished``.
    host : `str` or `None`
        Host it ran on.
    final_hash : `str` or `None`
        Hash of the last event of its log (`None` without a log).
    verified : `bool`
        Whether its log verified (`False` without a log).
    """

    id: uuid.UUID
    attempt: int
    task_label: str | None
    data_id: dict[str, DataIdValue]
    run: str | None
    status: str
    start_ns: int | None
    end_ns: int | None
    host: str | None
    final_hash: str | None
    verified: bool


@dataclass(frozen=True, slots=True)
class LineageStep:
    """One edge of a lineage walk: a quantum attempt actually used a dataset.

    Parameters
    ----------
    dataset_id : `uuid.UUID`
        The dataset used.
    quantum_id : `uuid.UUID`
        The quantum that used it.
    attempt : `int`
        Its attempt.
    depth : `int`
        Distance from the start, 1 for a direct edge (the smallest, when
        several paths lead there).
    """

    dataset_id: uuid.UUID
    quantum_id: uuid.UUID
    attempt: int
    depth: int


def _ref(row: Any) -> DatasetRef:
    dataset_type = DatasetType(row["name"], row["storage_class"], orjson.loads(row["dimensions"]))
    return DatasetRef(dataset_type, orjson.loads(row["data_id"]), row["run"], row["id"])


def _ref_query() -> sa.Select[Any]:
    d, t = s.datasets.c, s.dataset_types.c
    return sa.select(d.id, d.run, d.data_id, t.name, t.storage_class, t.dimensions).join_from(
        s.datasets, s.dataset_types, d.dataset_type == t.name
    )


def find_dataset(
    conn: Connection, dataset_type: str, data_id: Mapping[str, DataIdValue], run: str
) -> DatasetRef | None:
    """Look a dataset up by its natural key (the unique index)."""
    d = s.datasets.c
    row = (
        conn.execute(
            _ref_query().where(
                d.dataset_type == dataset_type,
                d.run == run,
                d.data_id == canonical_data_id(data_id),
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _ref(row)


def get_dataset(conn: Connection, dataset_id: uuid.UUID) -> DatasetRef | None:
    """Look a dataset up by id (the primary key)."""
    row = conn.execute(_ref_query().where(s.datasets.c.id == dataset_id)).mappings().first()
    return None if row is None else _ref(row)


def datastore_records(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[str, list[FileRecord]]:
    """Return the records of datasets, by datastore name, sorted by dataset id."""
    found: dict[str, list[FileRecord]] = {}
    r = s.records.c
    for chunk in chunked(sorted(set(ids))):
        statement = sa.select(s.records).where(r.dataset_id.in_(chunk))
        for row in conn.execute(statement.order_by(r.dataset_id)).mappings():
            found.setdefault(row["datastore_name"], []).append(FileRecord.model_validate(row))
    for group in found.values():
        group.sort(key=lambda record: record.dataset_id)
    return found


def _quantum(row: Any) -> RegisteredQuantum:
    values = {name: row[name] for name in RegisteredQuantum.__slots__}
    values["data_id"] = orjson.loads(row["data_id"])
    return RegisteredQuantum(**values)


def producer(conn: Connection, dataset_id: uuid.UUID) -> RegisteredQuantum | None:
    """Return the latest non-aborted quantum attempt whose actual outputs hold the dataset."""
    p, q = s.provenance.c, s.quanta.c
    statement = (
        sa.select(s.quanta)
        .join_from(s.provenance, s.quanta, sa.and_(q.id == p.quantum_id, q.attempt == p.attempt))
        .where(p.dataset_id == dataset_id, p.role == _ACTUAL_OUTPUT, q.status != "aborted")
        .order_by(q.attempt.desc())
        .limit(1)
    )
    row = conn.execute(statement).mappings().first()
    return None if row is None else _quantum(row)


def quanta(
    conn: Connection, run: str | None, task_label: str | None, status: str | None
) -> list[RegisteredQuantum]:
    """Return the quantum attempts matching every filter given, sorted by id and attempt."""
    q = s.quanta.c
    statement = sa.select(s.quanta)
    if run is not None:
        statement = statement.where(q.run == run)
    if task_label is not None:
        statement = statement.where(q.task_label == task_label)
    if status is not None:
        statement = statement.where(q.status == status)
    rows = conn.execute(statement.order_by(q.id, q.attempt)).mappings()
    return [_quantum(row) for row in rows]


def _walk(
    conn: Connection, start: sa.Select[Any], step: Any, depth: int | None
) -> list[LineageStep]:
    """Run a recursive walk and keep each edge at its smallest depth."""
    limit = _NO_LIMIT if depth is None else depth
    cte = start.cte("walk", recursive=True)
    cte = cte.union(step(cte).where(cte.c.depth < limit))
    statement = (
        sa.select(cte.c.dataset_id, cte.c.quantum_id, cte.c.attempt, sa.func.min(cte.c.depth))
        .group_by(cte.c.dataset_id, cte.c.quantum_id, cte.c.attempt)
        .order_by(sa.func.min(cte.c.depth), cte.c.dataset_id, cte.c.quantum_id, cte.c.attempt)
    )
    return [LineageStep(*row) for row in conn.execute(statement)]


def _produced_by(out: Any, used: Any, role: int) -> Any:
    """Join condition: ``used`` rows of ``role`` of the attempt of ``out``."""
    return sa.and_(
        used.c.quantum_id == out.c.quantum_id,
        used.c.attempt == out.c.attempt,
        used.c.role == role,
    )


def upstream(conn: Connection, dataset_id: uuid.UUID, depth: int | None) -> list[LineageStep]:
    """Walk to the inputs the dataset's producer actually used, and theirs, recursively."""
    out = s.provenance.alias("produced")
    used = s.provenance.alias("used")
    start = (
        sa.select(
            used.c.dataset_id, used.c.quantum_id, used.c.attempt, sa.literal(1).label("depth")
        )
        .join_from(out, used, _produced_by(out, used, _ACTUAL_INPUT))
        .where(out.c.dataset_id == dataset_id, out.c.role == _ACTUAL_OUTPUT)
    )

    def step(cte: Any) -> sa.Select[Any]:
        # From each input reached to the actual inputs of the attempt that wrote it.
        out2 = s.provenance.alias("produced2")
        used2 = s.provenance.alias("used2")
        found = sa.and_(out2.c.dataset_id == cte.c.dataset_id, out2.c.role == _ACTUAL_OUTPUT)
        return (
            sa.select(used2.c.dataset_id, used2.c.quantum_id, used2.c.attempt, cte.c.depth + 1)
            .select_from(cte)
            .join(out2, found)
            .join(used2, _produced_by(out2, used2, _ACTUAL_INPUT))
        )

    return _walk(conn, start, step, depth)


def downstream(conn: Connection, dataset_id: uuid.UUID, depth: int | None) -> list[LineageStep]:
    """Walk to the quanta that actually used the dataset, and used their outputs, recursively."""
    used = s.provenance.alias("used")
    start = sa.select(
        used.c.dataset_id, used.c.quantum_id, used.c.attempt, sa.literal(1).label("depth")
    ).where(used.c.dataset_id == dataset_id, used.c.role == _ACTUAL_INPUT)

    def step(cte: Any) -> sa.Select[Any]:
        # From each attempt reached, through its actual outputs, to their users.
        out2 = s.provenance.alias("produced2")
        used2 = s.provenance.alias("used2")
        users = sa.and_(used2.c.dataset_id == out2.c.dataset_id, used2.c.role == _ACTUAL_INPUT)
        return (
            sa.select(used2.c.dataset_id, used2.c.quantum_id, used2.c.attempt, cte.c.depth + 1)
            .select_from(cte)
            .join(out2, _produced_by(cte, out2, _ACTUAL_OUTPUT))
            .join(used2, users)
        )

    return _walk(conn, start, step, depth)


def provenance_sets(
    conn: Connection, quantum_id: uuid.UUID, attempt: int | None
) -> dict[str, frozenset[uuid.UUID]] | None:
    """Return the six provenance sets of a quantum attempt (the latest one by default)."""
    q, p = s.quanta.c, s.provenance.c
    if attempt is None:
        attempt = conn.execute(sa.select(sa.func.max(q.attempt)).where(q.id == quantum_id)).scalar()
        if attempt is None:
            return None
    else:
        held = sa.select(q.id).where(q.id == quantum_id, q.attempt == attempt)
        if conn.execute(held).first() is None:
            return None
    sets: dict[str, set[uuid.UUID]] = {role: set() for role in s.ROLES}
    rows = conn.execute(
        sa.select(p.role, p.dataset_id).where(p.quantum_id == quantum_id, p.attempt == attempt)
    )
    for role, dataset_id in rows:
        sets[s.ROLES[role]].add(dataset_id)
    return {role: frozenset(ids) for role, ids in sets.items()}
