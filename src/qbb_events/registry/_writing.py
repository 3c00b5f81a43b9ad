"""Writing batches of `QuantumRows` into the registry: one transaction each, exactly once.

Every insert skips rows whose key exists (``ON CONFLICT DO NOTHING``), so a
batch written twice, or by two processes at once, adds its rows once. What
was skipped is then read back and compared: identical content is counted as
existing, other content is a `TransferConflict` and is never overwritten.
Rows go in a fixed table order, each table's rows sorted by key, so
concurrent transactions take their locks in one global order and cannot
deadlock on each other (a lost race is retried by `Database.transact` anyway).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._sql import Database, inserted_keys
from ..ids import uuid7
from . import _schema as s
from ._queries import chunked
from ._report import TransferConflict, TransferReport, attempt_key
from ._rows import QuantumRows

__all__ = ["write_batch"]

_PROVENANCE_KEY = ["quantum_id", "attempt", "role", "dataset_id"]
_RECORD_KEY = ["dataset_id", "datastore_name"]
_QUANTUM_KEY = ["id", "attempt"]


def write_batch(database: Database, batch: Sequence[QuantumRows], report: TransferReport) -> None:
    """Write a batch of quantum attempts in one transaction and count it in ``report``.

    Parameters
    ----------
    database : `Database`
        The registry's database.
    batch : `~collections.abc.Sequence` [`QuantumRows`]
        The attempts of the batch.
    report : `TransferReport`
        Updated with what was new, existing or in conflict once the
        transaction has committed.

    Raises
    ------
    DatabaseError
        If the database fails.
    """
    if not batch:
        return

    def work(conn: Connection) -> TransferReport:
        # A fresh report per try: a retried transaction must not count twice.
        part = TransferReport()
        _write(conn, batch, part)
        return part

    report.merge(database.transact(work, f"writing a batch of {len(batch)} quanta"))


def _write(conn: Connection, batch: Sequence[QuantumRows], report: TransferReport) -> None:
    todo = _new_attempts(conn, batch, report)
    if not todo:
        return
    bad_types = _dataset_types(conn, todo, report)
    runs = sorted({row["run"] for r in todo for row in r.datasets})
    inserted_keys(conn, s.runs, [{"name": name} for name in runs], ["name"])
    registered = _datasets(conn, todo, bad_types, report)
    _records(conn, todo, registered, report)
    batch_id = uuid7()
    conn.execute(
        sa.insert(s.batches),
        {
            "id": batch_id,
            "committed_ns": time.time_ns(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "quanta": 0,
            "datasets": 0,
            "provenance_rows": 0,
        },
    )
    mine = _quanta(conn, todo, batch_id, report)
    rows = sorted(
        (row for r in todo if r.key in mine for row in r.provenance),
        key=lambda row: (row["quantum_id"], row["attempt"], row["role"], row["dataset_id"]),
    )
    inserted_keys(conn, s.provenance, rows, _PROVENANCE_KEY)
    report.provenance_rows_new += len(rows)
    conn.execute(
        sa.update(s.batches)
        .where(s.batches.c.id == batch_id)
        .values(quanta=len(mine), datasets=report.datasets_new, provenance_rows=len(rows))
    )
    report.batches += 1


def _new_attempts(
    conn: Connection, batch: Sequence[QuantumRows], report: TransferReport
) -> list[QuantumRows]:
    """Return the attempts of the batch the registry does not hold yet (first of each key)."""
    unique: dict[tuple[uuid.UUID, int], QuantumRows] = {}
    for rows in batch:
        unique.setdefault(rows.key, rows)
    held = _held_quanta(conn, list(unique))
    todo = []
    for key, rows in sorted(unique.items()):
        if key not in held:
            todo.append(rows)
        elif held[key] == rows.quantum["final_hash"]:
            report.quanta_existing += 1
        else:
            report.conflicts.append(_quantum_conflict(key, held[key], rows))
    return todo


def _held_quanta(
    conn: Connection, keys: Sequence[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], str | None]:
    held: dict[tuple[uuid.UUID, int], str | None] = {}
    q = s.quanta.c
    for chunk in chunked(keys):
        statement = sa.select(q.id, q.attempt, q.final_hash).where(
            sa.tuple_(q.id, q.attempt).in_(chunk)
        )
        for quantum_id, attempt, final_hash in conn.execute(statement):
            held[quantum_id, attempt] = final_hash
    return held


def _quantum_conflict(
    key: tuple[uuid.UUID, int], held: str | None, rows: QuantumRows
) -> TransferConflict:
    return TransferConflict(
        "quantum",
        attempt_key(*key),
        f"the registry holds this quantum attempt from a log ending in {held}, "
        f"{rows.location} ends in {rows.quantum['final_hash']}",
    )


def _dataset_types(
    conn: Connection, todo: Sequence[QuantumRows], report: TransferReport
) -> set[str]:
    """Insert the dataset types; return the names held with another definition."""
    wanted: dict[str, dict[str, Any]] = {}
    for rows in todo:
        for row in rows.dataset_types:
            wanted.setdefault(row["name"], row)
    inserted_keys(conn, s.dataset_types, [wanted[name] for name in sorted(wanted)], ["name"])
    bad = set()
    t = s.dataset_types.c
    for chunk in chunked(sorted(wanted)):
        for name, storage_class, dimensions in conn.execute(
            sa.select(t.name, t.storage_class, t.dimensions).where(t.name.in_(chunk))
        ):
            row = wanted[name]
            if (storage_class, dimensions) != (row["storage_class"], row["dimensions"]):
                bad.add(name)
                report.conflicts.append(
                    TransferConflict(
                        "dataset_type",
                        name,
                        f"the registry holds {name!r} as ({storage_class}, {dimensions}), "
                        f"the transfer brings ({row['storage_class']}, {row['dimensions']})",
                    )
                )
    return bad


def _datasets(
    conn: Connection, todo: Sequence[QuantumRows], bad_types: set[str], report: TransferReport
) -> set[uuid.UUID]:
    """Insert the outputs; return the ids now registered with exactly this content."""
    wanted: dict[uuid.UUID, dict[str, Any]] = {}
    for rows in todo:
        for row in rows.datasets:
            if row["dataset_type"] in bad_types:
                continue
            first = wanted.setdefault(row["id"], row)
            if first is not row and first != row:
                report.conflicts.append(_dataset_conflict(row["id"], first, row))
    ordered = [wanted[key] for key in sorted(wanted)]
    # Any constraint: a clash on (type, run, data ID) is found and reported below.
    new = {key for (key,) in inserted_keys(conn, s.datasets, ordered, ["id"], any_constraint=True)}
    report.datasets_new += len(new)
    registered = set(new)
    rest = [key for key in sorted(wanted) if key not in new]
    d = s.datasets.c
    held: dict[uuid.UUID, dict[str, Any]] = {}
    for chunk in chunked(rest):
        for found in conn.execute(
            sa.select(d.id, d.dataset_type, d.run, d.data_id).where(d.id.in_(chunk))
        ).mappings():
            held[found["id"]] = dict(found)
    for key in rest:
        brought = wanted[key]
        prior = held.get(key)
        if prior == brought:
            registered.add(key)
            report.datasets_existing += 1
        elif prior is not None:
            report.conflicts.append(_dataset_conflict(key, prior, brought))
        else:
            other = conn.execute(
                sa.select(d.id).where(
                    d.dataset_type == brought["dataset_type"],
                    d.run == brought["run"],
                    d.data_id == brought["data_id"],
                )
            ).scalar()
            report.conflicts.append(
                TransferConflict(
                    "dataset",
                    str(key),
                    f"the registry holds {brought['dataset_type']} {brought['data_id']} in run "
                    f"{brought['run']!r} under another id, {other}",
                )
            )
    return registered


def _dataset_conflict(
    key: uuid.UUID, held: dict[str, Any], brought: dict[str, Any]
) -> TransferConflict:
    def show(row: dict[str, Any]) -> str:
        return f"{row['dataset_type']} {row['data_id']} in run {row['run']!r}"

    return TransferConflict(
        "dataset", str(key), f"the registry holds {show(held)}, the transfer brings {show(brought)}"
    )


def _records(
    conn: Connection,
    todo: Sequence[QuantumRows],
    registered: set[uuid.UUID],
    report: TransferReport,
) -> None:
    wanted: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for rows in todo:
        for row in rows.records:
            if row["dataset_id"] in registered:
                wanted.setdefault((row["dataset_id"], row["datastore_name"]), row)
    ordered = [wanted[key] for key in sorted(wanted)]
    new = set(inserted_keys(conn, s.records, ordered, _RECORD_KEY))
    report.records_new += len(new)
    rest = [key for key in sorted(wanted) if key not in new]
    r = s.records.c
    for chunk in chunked(rest):
        ids = [key[0] for key in chunk]
        for stored in conn.execute(sa.select(s.records).where(r.dataset_id.in_(ids))).mappings():
            row = dict(stored)
            brought = wanted.get((row["dataset_id"], row["datastore_name"]))
            if brought is not None and row != brought:
                report.conflicts.append(
                    TransferConflict(
                        "record",
                        str(row["dataset_id"]),
                        f"the registry holds {row['path']} ({row['file_size']} bytes, "
                        f"{row['checksum']}) in {row['datastore_name']!r}, the transfer "
                        f"brings {brought['path']} ({brought['file_size']} bytes, "
                        f"{brought['checksum']})",
                    )
                )


def _quanta(
    conn: Connection, todo: Sequence[QuantumRows], batch_id: uuid.UUID, report: TransferReport
) -> set[tuple[uuid.UUID, int]]:
    """Insert the quantum rows; return the attempts this batch added.

    Another process may have added some since `_new_attempts` looked: those
    are counted as existing, or as conflicts if they came from another log.
    """
    inserted_keys(conn, s.quanta, [{**r.quantum, "batch_id": batch_id} for r in todo], _QUANTUM_KEY)
    q = s.quanta.c
    mine: set[tuple[uuid.UUID, int]] = set()
    keys = [r.key for r in todo]
    held: dict[tuple[uuid.UUID, int], tuple[str | None, uuid.UUID]] = {}
    for chunk in chunked(keys):
        for quantum_id, attempt, final_hash, owner in conn.execute(
            sa.select(q.id, q.attempt, q.final_hash, q.batch_id).where(
                sa.tuple_(q.id, q.attempt).in_(chunk)
            )
        ):
            held[quantum_id, attempt] = (final_hash, owner)
    for rows in todo:
        final_hash, owner = held[rows.key]
        if owner == batch_id:
            mine.add(rows.key)
            report.quanta_new += 1
        elif final_hash == rows.quantum["final_hash"]:
            report.quanta_existing += 1
        else:
            report.conflicts.append(_quantum_conflict(rows.key, final_hash, rows))
    return mine
