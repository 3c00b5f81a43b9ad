"""Copying logs between stores: idempotent, whole records only, verified on both sides."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._sql import is_database_url, is_sqlite_file
from ..errors import LogConflictError, LogCorruptedError
from ._records import StoredLog
from ._sources import LogSource, stored_logs
from ._store import EventStore
from ._verification import LogVerification, verify_stored_logs
from .jsonl import JsonLinesEventStore, is_json, log_file_name
from .postgres import PostgresEventStore
from .sqlite import STORE_SUFFIXES, SqliteEventStore

__all__ = ["CopyReport", "copy_logs", "log_file_name", "open_destination"]

# Problems that leave a log's records a sound prefix of what its writer
# meant to write: such a log is copied as far as it goes.
_PREFIX_PROBLEMS = frozenset({"unsealed", "truncated"})


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


def open_destination(destination: str | os.PathLike[str]) -> EventStore:
    """Open the store a copy writes into, refusing what is not one.

    Parameters
    ----------
    destination : `str` or `os.PathLike`
        A PostgreSQL URL; an SQLite store (an existing store file, or a new
        or empty path ending in ``.sqlite``, ``.sqlite3`` or ``.db``); or a
        directory of JSON Lines logs (existing, or a new path).

    Returns
    -------
    store : `EventStore`
        The store, opened for writing.

    Raises
    ------
    LogCorruptedError
        If the path is an existing file that is not an event store (another
        application's database, a log file, anything else); it is left
        byte for byte as it was.
    LogWriteError
        If the store cannot be opened or created.
    """
    text = os.fspath(destination)
    if is_database_url(text):
        if text.lower().startswith("sqlite"):
            import sqlalchemy as sa

            return SqliteEventStore(sa.make_url(text).database or "")
        return PostgresEventStore(text)
    path = Path(text)
    if path.is_dir():
        return JsonLinesEventStore(path)
    if path.exists():
        empty_store = path.suffix in STORE_SUFFIXES and path.stat().st_size == 0
        if is_sqlite_file(path) or empty_store:
            return SqliteEventStore(path)  # refuses another application's database
        raise LogCorruptedError(
            f"{path} is a file but not an event store: a copy goes into an SQLite store, a "
            "PostgreSQL database or a directory; the file was left as it was"
        )
    if path.suffix in STORE_SUFFIXES:
        return SqliteEventStore(path)
    return JsonLinesEventStore(path)


def copy_logs(source: LogSource, destination: str | os.PathLike[str] | EventStore) -> CopyReport:
    """Copy every log of a source into another store, verified and idempotent.

    Parameters
    ----------
    source : `LogSource`
        Files, directories, SQLite stores, PostgreSQL URLs or live logs (see
        `stored_logs`).
    destination : `str`, `os.PathLike` or `EventStore`
        A store object, or where one is (see `open_destination`): a
        PostgreSQL URL, an SQLite store, or a directory where each log
        becomes ``<quantum id>.<attempt>.jsonl`` (see `log_file_name`).

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
    LogCorruptedError
        If the destination is a file that is not an event store.
    LogWriteError
        If the destination cannot be written.

    Notes
    -----
    Each source log is verified first and copied only if sound (or cut
    short, see `CopyReport.refused`). Records are copied byte for byte, so
    the hash chain and the final hash are the same in every store. Every
    destination appends with the same merge rule (`EventStore.append_records`):
    one that already holds a prefix of a log gets the rest, one that holds
    all of it gets nothing, so copying twice stores each event once. Each
    copy is verified again once written, and its final hash compared with
    the source's.
    """
    owned = not isinstance(destination, EventStore)
    store = (
        open_destination(destination) if not isinstance(destination, EventStore) else destination
    )
    copied: list[LogVerification] = []
    refused: list[LogVerification] = []
    added = present = 0
    try:
        for log in stored_logs(source):
            verdict = verify_stored_logs([log]).logs[0]
            if not all(p.kind in _PREFIX_PROBLEMS for p in verdict.problems) or (
                verdict.quantum_id is None or verdict.attempt is None
            ):
                refused.append(verdict)
                continue
            # Only what was verified is copied, even if a live writer has
            # appended more since.
            records = itertools.islice(_whole_records(log), verdict.events)
            new = store.append_records(records)
            copy = store.stored_log(verdict.quantum_id, verdict.attempt)
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
        if owned:
            store.close()
    where = str(store.directory) if isinstance(store, JsonLinesEventStore) else repr(store)
    return CopyReport(tuple(copied), tuple(refused), added, present, where)


def _whole_records(log: StoredLog) -> Iterator[bytes]:
    for _, record, complete in log:
        if complete and record.strip():
            yield record
        elif record.strip():
            # A torn last record is never copied: only whole events are.
            if not is_json(record):
                return
            yield record
