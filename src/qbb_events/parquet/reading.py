"""Reading an export back: the original records, rebuilt from rows and checked."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..events import GENESIS_HASH, canonical_json, chain_hash
from ..logs import (
    LogVerification,
    Problem,
    StoredLog,
    VerificationReport,
    encode_record,
    verify_stored_logs,
)
from .rows import rows_to_body

__all__ = ["exact_times", "exported_logs", "verify_export"]


def _parts(dest: Path, table: str) -> list[Path]:
    # Only published parts count: one whose quanta twin is missing is debris
    # of an export cut short, which the next export removes.
    return sorted(
        part
        for part in (dest / table).glob("run=*/part-*.parquet")
        if (dest / "quanta" / part.parent.name / part.name).exists()
    )


def exported_logs(dest: str | os.PathLike[str]) -> Iterator[StoredLog]:
    """Yield every log of an export, its records rebuilt from the rows.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.

    Yields
    ------
    log : `StoredLog`
        One per quantum attempt: each event's body is rebuilt from its rows,
        its ``prev_hash`` from the chain, and its record from its canonical
        JSON, so verifying these logs checks the export against the logs'
        final hashes (see `verify_export`).
    """
    for part in _parts(Path(dest), "events"):
        for key, events in _logs_of(part):
            yield StoredLog(f"{part}#{key[0]}/{key[1]}", _rebuilt(events))


def _logs_of(part: Path) -> Iterator[tuple[tuple[uuid.UUID, int], list[list[dict[str, Any]]]]]:
    """Group a part's rows into logs (consecutive quantum attempts) and events (seq)."""
    key: tuple[uuid.UUID, int] | None = None
    events: list[list[dict[str, Any]]] = []
    for batch in pq.ParquetFile(part).iter_batches():
        table = exact_times(pa.Table.from_batches([batch]))
        for row in table.to_pylist():
            row_key = (uuid.UUID(bytes=row["quantum_id"]), row["attempt"])
            if row_key != key:
                if key is not None:
                    yield key, events
                key, events = row_key, []
            if events and events[-1][0]["seq"] == row["seq"]:
                events[-1].append(row)
            else:
                events.append([row])
    if key is not None:
        yield key, events


def exact_times(table: pa.Table) -> pa.Table:
    """Return event rows with ``timestamp`` as the exact integer nanoseconds, in either format.

    Parameters
    ----------
    table : `pyarrow.Table`
        Rows of an events table: format 2 (``timestamp_ns``) or format 1
        (``timestamp`` in nanoseconds).

    Returns
    -------
    table : `pyarrow.Table`
        The same rows, ``timestamp`` an ``int64`` of nanoseconds and no
        ``timestamp_ns``: what the records are rebuilt from.
    """
    index = table.schema.get_field_index("timestamp")
    if "timestamp_ns" in table.column_names:
        exact = table["timestamp_ns"]
        table = table.drop_columns(["timestamp_ns"])
    else:
        # Format 1 keeps nanoseconds in the timestamp itself.
        exact = table["timestamp"].cast(pa.int64())
    if index < 0:
        return table.append_column("timestamp", exact)
    return table.set_column(index, "timestamp", exact)


def _rebuilt(events: list[list[dict[str, Any]]]) -> Any:
    def records() -> Iterator[tuple[int, bytes, bool]]:
        for position, record in enumerate(rebuilt_records(events), start=1):
            yield position, record, True

    return records


def rebuilt_records(events: Sequence[Sequence[dict[str, Any]]]) -> Iterator[bytes]:
    """Yield the records of one log's events rebuilt from their rows.

    Parameters
    ----------
    events : `~collections.abc.Sequence` [`~collections.abc.Sequence` [`dict`]]
        Each event's rows in ``seq`` order (and each event's in ``item``
        order), ids as 16 bytes and timestamps as integer nanoseconds.

    Yields
    ------
    record : `bytes`
        Each event's stored record; its ``prev_hash`` is rebuilt from the chain.
    """
    prev = GENESIS_HASH
    for rows in events:
        first = rows[0]
        envelope = {
            "schema_version": first["schema_version"],
            "quantum_id": str(uuid.UUID(bytes=first["quantum_id"])),
            "attempt": first["attempt"],
            "seq": first["seq"],
            "timestamp_ns": first["timestamp"],
            "kind": first["kind"],
            "prev_hash": prev,
        }
        strings = [{**row, "dataset_id": _uuid_text(row["dataset_id"])} for row in rows]
        canonical = canonical_json(rows_to_body(envelope, strings))
        prev = chain_hash(prev, canonical)
        yield encode_record(canonical, prev)


def _uuid_text(value: bytes | None) -> str | None:
    return None if value is None else str(uuid.UUID(bytes=value))


def exported_finals(dest: Path) -> dict[tuple[uuid.UUID, int], str]:
    """Return the final hash the quanta table recorded for each exported log."""
    finals: dict[tuple[uuid.UUID, int], str] = {}
    for part in _parts(dest, "quanta"):
        table = pq.read_table(part, columns=["quantum_id", "attempt", "final_hash"])
        columns = [table.column(name).to_pylist() for name in table.column_names]
        for qid, attempt, final in zip(*columns, strict=True):
            finals[(uuid.UUID(bytes=qid), attempt)] = final
    return finals


def verify_export(dest: str | os.PathLike[str]) -> VerificationReport:
    """Verify an export: rebuild every log and check it against the quanta table.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.

    Returns
    -------
    report : `VerificationReport`
        One verdict per exported log, as `verify_logs` gives; a rebuilt
        chain that does not end in the final hash the quanta table recorded
        at export is reported as ``tampered``.
    """
    dest = Path(dest)
    finals = exported_finals(dest)
    report = verify_stored_logs(exported_logs(dest))
    checked = []
    rebuilt = {(v.quantum_id, v.attempt) for v in report.logs}
    for (quantum_id, attempt), final in sorted(finals.items(), key=lambda kv: str(kv[0])):
        if (quantum_id, attempt) not in rebuilt:
            checked.append(
                LogVerification(
                    location=f"{dest}#{quantum_id}/{attempt}",
                    quantum_id=quantum_id,
                    attempt=attempt,
                    events=0,
                    final_hash=None,
                    status=None,
                    problems=(
                        Problem(
                            kind="missing",
                            seq=0,
                            position=None,
                            message=f"the quanta table lists it (ending in {final}), but the "
                            "events table holds none of its events",
                        ),
                    ),
                )
            )
    for verdict in report.logs:
        expected = (
            None
            if verdict.quantum_id is None or verdict.attempt is None
            else finals.get((verdict.quantum_id, verdict.attempt))
        )
        if expected is not None and expected != verdict.final_hash:
            problem = Problem(
                kind="tampered",
                seq=None,
                position=None,
                message=f"the rebuilt chain ends in {verdict.final_hash}, but the quanta "
                f"table recorded {expected} at export",
            )
            verdict = verdict.model_copy(update={"problems": (*verdict.problems, problem)})
        checked.append(verdict)
    return report.model_copy(update={"logs": tuple(checked)})
