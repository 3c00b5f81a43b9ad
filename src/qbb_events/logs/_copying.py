"""Copying logs between stores: idempotent, whole records only, verified on both sides."""

from __future__ import annotations

import fcntl
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..errors import LogConflictError, LogExistsError, LogWriteError
from ._records import StoredLog
from ._sources import LOG_SUFFIX, LogSource, file_log, is_sqlite_file, stored_logs
from ._verification import LogVerification, verify_stored_logs
from .jsonl import sync_directory

if TYPE_CHECKING:
    from .sqlite import SqliteEventStore

__all__ = ["CopyReport", "copy_logs", "log_file_name"]

# Problems that leave a log's records a sound prefix of what its writer
# meant to write: such a log is copied as far as it goes.
_PREFIX_PROBLEMS = frozenset({"unsealed", "truncated"})
_SQLITE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db"})
_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What `copy_logs` did.

    Parameters
    ----------
    copied : `tuple` [`LogVerification`, ...]
        The verdicts on the destination's copies of the logs copied (or
        already there), each matching its source's final hash.
    refused : `tuple` [`LogVerification`, ...]
        Source logs not copied because they failed verification (any
        problem but ``unsealed`` or ``truncated``: a log cut short is copied
        as far as its whole records go).
    events_added : `int`
        Events the destination did not hold before.
    events_present : `int`
        Events the destination already held (a second copy adds none).
    """

    copied: tuple[LogVerification, ...]
    refused: tuple[LogVerification, ...]
    events_added: int
    events_present: int
    destination: str = field(default="")

    @property
    def ok(self) -> bool:
        """Whether every source log was copied (`bool`)."""
        return not self.refused


def log_file_name(quantum_id: uuid.UUID, attempt: int) -> str:
    """Return the file name a log directory uses for a quantum attempt.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    attempt : `int`
        The attempt.

    Returns
    -------
    name : `str`
        ``<quantum id>.<attempt>.jsonl``.
    """
    return f"{quantum_id}.{attempt}{LOG_SUFFIX}"


def copy_logs(
    source: LogSource, destination: str | os.PathLike[str] | SqliteEventStore
) -> CopyReport:
    """Copy every log of a source into another store, verified and idempotent.

    Parameters
    ----------
    source : `LogSource`
        Files, directories, SQLite stores or live logs (see `stored_logs`).
    destination : `str`, `os.PathLike` or `SqliteEventStore`
        An SQLite store (object, existing SQLite file, or a new path ending
        in ``.sqlite``, ``.sqlite3`` or ``.db``), or a directory, where each
        log becomes ``<quantum id>.<attempt>.jsonl`` (see `log_file_name`).

    Returns
    -------
    report : `CopyReport`
        What was copied, what was already there, and what was refused.

    Raises
    ------
    LogConflictError
        If the destination holds a different history for a quantum attempt
        (its events are not a prefix of the source's); logs copied before it
        stay copied.
    LogWriteError
        If the destination cannot be written.

    Notes
    -----
    Each source log is verified first and copied only if sound (or cut
    short, see `CopyReport.refused`). Records are copied byte for byte, so
    the hash chain and the final hash are the same in every store. A
    destination that already holds a prefix of a log gets the rest; one that
    holds all of it gets nothing, so copying twice stores each event once.
    Each copy is verified again once written, and its final hash compared
    with the source's.
    """
    from .sqlite import SqliteEventStore

    store: SqliteEventStore | None = None
    directory: Path | None = None
    held: dict[tuple[uuid.UUID, int], Path] = {}
    owned = False
    if isinstance(destination, SqliteEventStore):
        store = destination
    else:
        path = Path(destination)
        new_store = path.suffix in _SQLITE_SUFFIXES and (
            not path.exists() or (path.is_file() and path.stat().st_size == 0)
        )
        if is_sqlite_file(path) or new_store:
            store, owned = SqliteEventStore(path), True
        else:
            directory = path
            held = _logs_in_directory(directory)
    copied: list[LogVerification] = []
    refused: list[LogVerification] = []
    added = present = 0
    try:
        for log in stored_logs(source):
            verdict = verify_stored_logs([log]).logs[0]
            if verdict.events == 0 and not verdict.problems:
                continue  # an empty log: nothing to copy
            if not all(p.kind in _PREFIX_PROBLEMS for p in verdict.problems) or (
                verdict.quantum_id is None or verdict.attempt is None
            ):
                refused.append(verdict)
                continue
            # Only what was verified is copied, even if a live writer has
            # appended more since.
            records = itertools.islice(_whole_records(log), verdict.events)
            if store is not None:
                new = store.append_records(records)
                copy = _only_log(store, verdict)
            else:
                assert directory is not None
                key = (verdict.quantum_id, verdict.attempt)
                # A log already there under another name (its writer's, or
                # the source itself) is continued, never stored twice.
                target = held.setdefault(key, directory / log_file_name(*key))
                new = _append_to_file(target, records, log.location)
                copy = file_log(target)
            check = verify_stored_logs([copy]).logs[0]
            if check.final_hash != verdict.final_hash or check.events != verdict.events:
                raise LogConflictError(
                    f"the copy of quantum {verdict.quantum_id} attempt {verdict.attempt} at "
                    f"{copy.location} holds {check.events} events ending in "
                    f"{check.final_hash}, not the source's {verdict.events} ending in "
                    f"{verdict.final_hash}"
                )
            copied.append(check)
            added += new
            present += verdict.events - new
    finally:
        if owned and store is not None:
            store.close()
    where = str(directory) if directory is not None else repr(store)
    return CopyReport(tuple(copied), tuple(refused), added, present, where)


def _whole_records(log: StoredLog) -> Iterator[bytes]:
    for _, record, complete in log:
        if complete and record.strip():
            yield record
        elif record.strip():
            # A torn last record is never copied: only whole events are.
            if not _is_json(record):
                return
            yield record


def _logs_in_directory(directory: Path) -> dict[tuple[uuid.UUID, int], Path]:
    """Index the logs a directory already holds by quantum attempt (from their first record)."""
    held: dict[tuple[uuid.UUID, int], Path] = {}
    if not directory.is_dir():
        return held
    for log in stored_logs(directory):
        for _, record, _ in log:
            try:
                first = orjson.loads(record)
                key = (uuid.UUID(first["quantum_id"]), int(first["attempt"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                break  # not a log this copy could continue: left alone
            held.setdefault(key, Path(log.location))
            break
    return held


def _append_to_file(target: Path, records: Iterator[bytes], source: str) -> int:
    """Make ``target`` hold ``records``; return how many were added."""
    created = not target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise LogWriteError(err.errno, f"Cannot open {target}: {err.strerror}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogExistsError(f"{target} is in use by another log writer.") from None
        offset = 0
        needs_newline = False
        for position, held, complete in file_log(target):
            if not complete and not _is_json(held):
                break  # a torn tail of an earlier, killed copy: cut below
            wanted = next(records, None)
            if wanted is None or held != wanted:
                raise LogConflictError(
                    f"{target} line {position} differs from the source log "
                    f"{source}: the destination holds another history"
                )
            offset += len(held) + complete
            needs_newline = not complete
        added = 0
        try:
            if offset < os.fstat(fd).st_size:
                os.ftruncate(fd, offset)
            if needs_newline:
                os.write(fd, b"\n")
            batch: list[bytes] = []
            for record in records:
                batch.append(record + b"\n")
                if len(batch) >= _BATCH:
                    added += _write_all(fd, b"".join(batch), len(batch))
                    batch.clear()
            added += _write_all(fd, b"".join(batch), len(batch))
            os.fsync(fd)
            if created:
                sync_directory(target.parent)
        except OSError as err:
            raise LogWriteError(err.errno, f"Copying into {target} failed: {err.strerror}") from err
        return added
    finally:
        os.close(fd)


def _is_json(record: bytes) -> bool:
    try:
        orjson.loads(record)
    except orjson.JSONDecodeError:
        return False
    return True


def _write_all(fd: int, data: bytes, count: int) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return count


def _only_log(store: SqliteEventStore, verdict: LogVerification) -> StoredLog:
    assert verdict.quantum_id is not None
    assert verdict.attempt is not None
    return store.stored_log(verdict.quantum_id, verdict.attempt)
