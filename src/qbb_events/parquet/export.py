"""Exporting logs to a Parquet dataset: streamed, partitioned by run, incremental."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import LogConflictError
from ..events import SCHEMA_VERSION
from ..logs import LogSource, StoredLog, logs_or_failures, run_digest, verify_stored_logs
from ._files import (
    check_format,
    open_writer,
    partition_folder,
    qbb_metadata,
    with_times,
    write_rows,
)
from .reading import exported_finals
from .rows import event_to_rows, uuid_bytes
from .schema import EVENTS_SCHEMA, PREDICTED_SCHEMA, QUANTA_SCHEMA, ROW_GROUP_ROWS

__all__ = ["ExportReport", "export_parquet"]


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What `export_parquet` did.

    Parameters
    ----------
    logs : `int`
        Logs exported now.
    skipped : `int`
        Logs the dataset already held, with the same final hash (not exported again).
    events : `int`
        Events exported now.
    flagged : `tuple` [`str`, ...]
        Locations of exported logs that failed verification (``verified`` is
        false in the quanta table).
    files : `tuple` [`pathlib.Path`, ...]
        Files written (events, predicted and quanta parts).
    unexported : `tuple` [`tuple` [`str`, `str`], ...]
        Sources that hold nothing to export, with why (an empty file, one
        that is not a log, a store that cannot be read): ``(location,
        reason)``. They are not counted in ``logs``.
    unsupported : `tuple` [`tuple` [`str`, `str`], ...]
        Logs not exported because they hold events of a schema version this
        library cannot read, with why: ``(location, reason)``. Nothing of
        them is written; the other logs are exported.
    """

    logs: int
    skipped: int
    events: int
    flagged: tuple[str, ...] = ()
    files: tuple[Path, ...] = field(default=())
    unexported: tuple[tuple[str, str], ...] = ()
    unsupported: tuple[tuple[str, str], ...] = ()


def _run_of(quantum: dict[str, Any]) -> str:
    for refs in (quantum.get("outputs") or [], quantum.get("inputs") or []):
        for ref in refs:
            if isinstance(ref, dict) and isinstance(ref.get("run"), str):
                return str(ref["run"])
    return "unknown"


def _data_id(value: Any) -> list[tuple[str, str]] | None:
    if not isinstance(value, dict):
        return None
    return [(str(k), str(v)) for k, v in sorted(value.items())]


class _Table:
    """One table's part being written: rows buffered, written in row groups of `ROW_GROUP_ROWS`."""

    def __init__(self, folder: Path, token: str, schema: pa.Schema) -> None:
        self.tmp = folder / f".part-{token}.tmp"
        self.schema = schema
        self.writer = open_writer(self.tmp, schema)
        self.rows: list[dict[str, Any]] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        # Only full row groups are written before the end: the buffer, at most
        # one row group, is all the memory an export holds.
        while len(self.rows) >= ROW_GROUP_ROWS:
            self.write(self.rows[:ROW_GROUP_ROWS])
            del self.rows[:ROW_GROUP_ROWS]

    def write(self, rows: list[dict[str, Any]]) -> None:
        untimed = pa.Table.from_pylist(rows, schema=_untimed(self.schema))
        write_rows(self.writer, with_times(untimed, self.schema))

    def finish(self, metadata: dict[str, str], path: Path) -> Path:
        if self.rows:
            self.write(self.rows)
            self.rows = []
        self.writer.add_key_value_metadata(metadata)
        self.writer.close()
        os.replace(self.tmp, path)
        return path

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


class _Part:
    """The files of one run being written by one export."""

    def __init__(self, dest: Path, run: str) -> None:
        folder = partition_folder(run)
        self.events_dir = dest / "events" / folder
        self.predicted_dir = dest / "predicted" / folder
        self.quanta_dir = dest / "quanta" / folder
        # What this export creates, so an aborted one leaves no empty folders.
        self.created = [
            path
            for folder_path in (self.events_dir, self.predicted_dir, self.quanta_dir)
            for path in (folder_path, folder_path.parent)
            if not path.exists()
        ]
        for folder_path in (self.events_dir, self.predicted_dir, self.quanta_dir):
            folder_path.mkdir(parents=True, exist_ok=True)
        self.run = run
        self.token = uuid.uuid4().hex
        self.events = _Table(self.events_dir, self.token, EVENTS_SCHEMA)
        self.predicted = _Table(self.predicted_dir, self.token, PREDICTED_SCHEMA)
        self.quanta: dict[str, list[Any]] = {name: [] for name in QUANTA_SCHEMA.names}
        self.finals: list[tuple[uuid.UUID, int, str]] = []

    def close(self) -> list[Path]:
        digest = run_digest(self.finals)
        metadata = qbb_metadata(self.run, digest, SCHEMA_VERSION)
        name = f"part-{digest[:32]}.parquet"
        quanta_tmp = self.quanta_dir / f".part-{self.token}.tmp"
        untimed = pa.table(
            {name: self.quanta[name] for name in _untimed(QUANTA_SCHEMA).names},
            schema=_untimed(QUANTA_SCHEMA),
        )
        with open_writer(quanta_tmp, QUANTA_SCHEMA) as writer:
            write_rows(writer, with_times(untimed, QUANTA_SCHEMA))
            writer.add_key_value_metadata(metadata)
        # The quanta part is published last: a dataset lists a log as
        # exported only once its events and predicted datasets are in place.
        events_path = self.events.finish(metadata, self.events_dir / name)
        predicted_path = self.predicted.finish(metadata, self.predicted_dir / name)
        quanta_path = self.quanta_dir / name
        os.replace(quanta_tmp, quanta_path)
        return [events_path, predicted_path, quanta_path]

    def abort(self) -> None:
        self.events.abort()
        self.predicted.abort()
        # Partition folders first, then their tables' folders.
        for path in sorted(self.created, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()


def _untimed(schema: pa.Schema) -> pa.Schema:
    """Drop the timestamps from a schema: `with_times` adds them from their ``*_ns``."""
    return pa.schema([f for f in schema if not pa.types.is_timestamp(f.type)])


def _exported(dest: Path) -> dict[tuple[uuid.UUID, int], str]:
    """Return the logs a dataset already holds, with final hashes; clean half-written parts."""
    check_format(dest)
    quanta = dest / "quanta"
    for folder in (dest / "events", dest / "predicted", quanta):
        for stale in folder.glob("run=*/.part-*.tmp") if folder.is_dir() else ():
            stale.unlink(missing_ok=True)
    for folder in (dest / "events", dest / "predicted"):
        for part in folder.glob("run=*/part-*.parquet") if folder.is_dir() else ():
            if not (quanta / part.parent.name / part.name).exists():
                part.unlink()  # its export was cut short before it was published
    return exported_finals(dest)


def export_parquet(
    sources: LogSource,
    dest: str | os.PathLike[str],
    *,
    run: str | None = None,
    progress: bool | None = None,
) -> ExportReport:
    """Export logs to a Parquet dataset: events, predicted and quanta tables.

    Parameters
    ----------
    sources : `LogSource`
        Log files, directories, SQLite stores or live logs (see `stored_logs`).
    dest : `str` or `os.PathLike`
        The dataset's directory: ``events/run=<run>/part-*.parquet``,
        ``predicted/run=<run>/part-*.parquet`` (each quantum's predicted
        datasets, `PREDICTED_SCHEMA`) and ``quanta/run=<run>/part-*.parquet``
        (hive partitioning, the run escaped where Hive requires, UTF-8 kept).
    run : `str`, optional
        The run to file every log under; by default each log's run is the
        run of its quantum's outputs (else of its inputs, else ``unknown``).
    progress : `bool`, optional
        Show a progress bar; by default only on a terminal.

    Returns
    -------
    report : `ExportReport`
        What was exported; which sources held nothing to export (empty,
        not logs, unreadable), each with why, in ``unexported``; and which
        logs hold a schema version this library cannot read, in
        ``unsupported`` (nothing of them is written).

    Raises
    ------
    LogConflictError
        If the dataset already holds a quantum attempt with another final
        hash (a log exported before it was finished, or another history).
    ExportFormatError
        If the dataset holds parts of another export format (format 1):
        engines cannot read a mix, so nothing is written.

    Notes
    -----
    Logs are read one at a time and rows written in row groups of
    `ROW_GROUP_ROWS`, so memory is bounded whatever the number of events.
    Exporting logs the dataset already holds is a no-op; new logs go to new
    files, never rewriting old ones. A log that fails verification is
    exported all the same (whatever whole events it holds), with
    ``verified`` false and its problems in the quanta table; a log of an
    unsupported schema version is not (its events cannot be read into
    rows), and is listed in ``unsupported`` while the others are exported.
    """
    dest = Path(dest)
    created_dest = not dest.exists()
    held = _exported(dest)
    parts: dict[str, _Part] = {}
    exported = skipped = events = 0
    flagged: list[str] = []
    unexported: list[tuple[str, str]] = []
    unsupported: list[tuple[str, str]] = []
    files: list[Path] = []
    show = Console(stderr=True).is_terminal if progress is None else progress
    try:
        # The total is unknown until the stores are read: the bar counts logs done.
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not show, transient=True) as bar:
            task = bar.add_task("exporting logs", total=None)
            for log in logs_or_failures(sources):
                outcome = _export_log(log, held, parts, dest, run)
                bar.advance(task)
                if outcome is None:
                    skipped += 1
                    continue
                if isinstance(outcome, _Unsupported):
                    unsupported.append((log.location, outcome.reason))
                    continue
                if isinstance(outcome, str):
                    unexported.append((log.location, outcome))
                    continue
                exported += 1
                events += outcome[0]
                if not outcome[1]:
                    flagged.append(log.location)
        for part in parts.values():
            files += part.close()
    except BaseException:
        for part in parts.values():
            part.abort()
        if created_dest:
            with contextlib.suppress(OSError):
                dest.rmdir()
        raise
    return ExportReport(
        exported,
        skipped,
        events,
        tuple(flagged),
        tuple(files),
        tuple(unexported),
        tuple(unsupported),
    )


@dataclass(frozen=True, slots=True)
class _Unsupported:
    """A log of a schema version this library cannot read: not exported, and why."""

    reason: str


def _export_log(
    log: StoredLog,
    held: dict[tuple[uuid.UUID, int], str],
    parts: dict[str, _Part],
    dest: Path,
    run: str | None,
) -> tuple[int, bool] | str | _Unsupported | None:
    """Export one log: events and verdict, `None` if held already, or why nothing was."""
    verdict = verify_stored_logs([log]).logs[0]
    for problem in verdict.problems:
        if problem.kind == "unsupported":
            # Its events cannot be read into rows; unlike a tampered log,
            # whose whole events are exported flagged, nothing of it is.
            return _Unsupported(str(problem))
    if verdict.quantum_id is None or verdict.attempt is None or verdict.final_hash is None:
        # Nothing readable: not a log exported with no events, but a source
        # that holds none, said as such.
        return "; ".join(str(p) for p in verdict.problems) or "it holds no events"
    key = (verdict.quantum_id, verdict.attempt)
    if key in held:
        if held[key] == verdict.final_hash:
            return None
        raise LogConflictError(
            f"{dest} already holds quantum {verdict.quantum_id} attempt {verdict.attempt} "
            f"ending in {held[key]}; {log.location} ends in {verdict.final_hash}"
        )
    held[key] = verdict.final_hash
    quantum: dict[str, Any] = {"events": 0}
    part: _Part | None = None
    chunk: list[dict[str, Any]] = []
    for event_rows in _rows_of(log, verdict.events, quantum):
        if part is None:
            part = _part(parts, dest, run or _run_of(quantum.get("quantum") or {}))
            part.predicted.add(
                [
                    {"quantum_id": key[0].bytes, "attempt": verdict.attempt, **row}
                    for row in quantum.get("predicted", [])
                ]
            )
        chunk += event_rows
        if len(chunk) >= _CHUNK_ROWS:
            part.events.add(chunk)
            chunk = []
    if part is None:
        part = _part(parts, dest, run or "unknown")
    part.events.add(chunk)
    finished = quantum.get("finished") or {}
    q = part.quanta
    info = quantum.get("quantum") or {}
    values = {
        "quantum_id": key[0].bytes,
        "attempt": verdict.attempt,
        "task_label": info.get("task_label"),
        "data_id": _data_id(info.get("data_id")),
        "status": verdict.status,
        "started_ns": quantum.get("started_ns"),
        "finished_ns": quantum.get("finished_ns"),
        "wall_ns": finished.get("wall_ns"),
        "cpu_ns": finished.get("cpu_ns"),
        "peak_rss_bytes": finished.get("peak_rss_bytes"),
        "events": quantum["events"],
        "final_hash": verdict.final_hash,
        "verified": verdict.ok,
        "problems": [str(p) for p in verdict.problems],
        "source": log.location,
    }
    for name, value in values.items():
        q[name].append(value)
    part.finals.append((verdict.quantum_id, verdict.attempt, verdict.final_hash))
    return quantum["events"], verdict.ok


_PREDICTED_COLUMNS = ("dataset_id", "role", "dataset_type", "data_id")


def _part(parts: dict[str, _Part], dest: Path, run: str) -> _Part:
    part = parts.get(run)
    if part is None:
        part = parts[run] = _Part(dest, run)
    return part


_CHUNK_ROWS = 10_000
"""Rows of one log handed to its part at a time: a long log is never held whole."""


def _rows_of(log: StoredLog, limit: int, info: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Yield the rows of each of a log's events; fill ``info`` for the other tables."""
    refs: dict[str, tuple[str, str | None, list[tuple[str, str]] | None]] = {}
    seen: set[tuple[bytes | None, str]] = set()
    task_label: str | None = None
    parsed = 0
    for _, record, _ in log:
        try:
            raw = orjson.loads(record)
        except orjson.JSONDecodeError:
            continue  # a torn or damaged record: the quanta table lists the problem
        # Only the records verification counted: a live writer's later events
        # wait for the next export.
        parsed += 1
        if parsed > limit:
            return
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            continue
        kind = raw["kind"]
        if kind == "quantum_started" and "quantum" not in info:
            started = raw.get("quantum")
            quantum: dict[str, Any] = started if isinstance(started, dict) else {}
            info["quantum"] = quantum
            info["started_ns"] = raw.get("timestamp_ns")
            task_label = quantum.get("task_label")
            info["predicted"] = predicted = []
            for role in ("inputs", "init_inputs", "outputs"):
                for ref in quantum.get(role) or []:
                    if isinstance(ref, dict) and isinstance(ref.get("id"), str):
                        description = (
                            role[:-1],
                            ref.get("dataset_type"),
                            _data_id(ref.get("data_id")),
                        )
                        refs.setdefault(ref["id"], description)
                        try:
                            dataset_id = uuid_bytes(ref["id"])
                        except ValueError:
                            continue  # not a UUID: verification reports the log
                        if (dataset_id, description[0]) not in seen:
                            seen.add((dataset_id, description[0]))
                            predicted.append(
                                dict(
                                    zip(_PREDICTED_COLUMNS, (dataset_id, *description), strict=True)
                                )
                            )
        elif kind == "quantum_finished" and "finished" not in info:
            info["finished"] = raw
            info["finished_ns"] = raw.get("timestamp_ns")
        try:
            event_rows = event_to_rows(raw)
            envelope = {
                "task_label": task_label,
                "quantum_id": uuid_bytes(raw["quantum_id"]),
                "attempt": raw["attempt"],
                "seq": raw["seq"],
                "timestamp_ns": raw["timestamp_ns"],
                "schema_version": raw["schema_version"],
                "kind": kind,
            }
        except (KeyError, TypeError, ValueError):
            continue
        for row in event_rows:
            dataset_id = row["dataset_id"]
            described = refs.get(dataset_id) if isinstance(dataset_id, str) else None
            row.update(envelope)
            row["dataset_id"] = uuid_bytes(dataset_id) if isinstance(dataset_id, str) else None
            row["role"], row["dataset_type"], row["data_id"] = described or (None, None, None)
        info["events"] += 1
        yield event_rows
