"""Finding stored logs: one function decides what a path or URL is, and refuses what it is not.

`source_kind` tells a JSON Lines log file, a directory of them, an SQLite
store, a PostgreSQL URL and a Parquet export apart, and refuses anything
else, naming it. `stored_logs` reads every kind but the Parquet export
(which `qbb_events.verify_export` reads); a directory that cannot be listed,
inside a tree of logs, is yielded as an unreadable log, never passed over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, TypeAlias, cast

import sqlalchemy as sa

from .._sql import is_database_url, is_sqlite_file
from ..errors import LogCorruptedError, QbbEventsError
from ._base import EventLog
from ._records import StoredLog
from ._store import EventStore, LogStore
from ._verification import VerificationReport, verify_stored_logs
from .jsonl import JsonLinesEventStore, file_log, unreadable_log

__all__ = [
    "LogSource",
    "SourceKind",
    "logs_or_failures",
    "source_kind",
    "stored_logs",
    "verify_logs",
]

SourceKind = Literal["jsonl", "directory", "sqlite", "postgresql", "parquet"]
"""What a path or URL holds, as `source_kind` tells it."""

LogSource: TypeAlias = (
    "str | os.PathLike[str] | LogStore | StoredLog | EventLog | Iterable[LogSource]"
)
"""Where logs can be read from: a log file, a directory searched for
``*.jsonl`` files, an SQLite store file, a PostgreSQL URL, a store object, a
stored or live log, or any iterable of these."""

_SNIFF = 4096


def source_kind(target: str | os.PathLike[str]) -> SourceKind:
    """Tell what a path or URL holds, refusing what holds no logs.

    Parameters
    ----------
    target : `str` or `os.PathLike`
        A file, a directory, or a database URL.

    Returns
    -------
    kind : `SourceKind`
        ``"postgresql"`` for a PostgreSQL URL, ``"sqlite"`` for an SQLite
        URL or file (by its header), ``"parquet"`` for a directory holding an
        export's ``events`` and ``quanta`` tables, ``"directory"`` for any
        other directory, ``"jsonl"`` for a text file (an empty file is a log
        with no events).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    LogCorruptedError
        If it is a file holding binary data (not a log, nor an SQLite
        database), or neither a file nor a directory.
    """
    if is_database_url(target):
        text = str(target)
        return "sqlite" if text.lower().startswith("sqlite") else "postgresql"
    path = Path(target)
    if path.is_dir():
        if (path / "events").is_dir() and (path / "quanta").is_dir():
            return "parquet"
        return "directory"
    if not path.exists():
        raise FileNotFoundError(f"No log file, directory or store at {path}")
    if not path.is_file():
        raise LogCorruptedError(f"{path} is neither a file nor a directory: it holds no logs")
    if is_sqlite_file(path):
        return "sqlite"
    try:
        with open(path, "rb") as stream:
            head = stream.read(_SNIFF)
    except OSError:
        return "jsonl"  # reading it will report why it cannot be read
    if _is_binary(head):
        raise LogCorruptedError(
            f"{path} is not a JSON Lines log, an SQLite store or a Parquet export: "
            "it holds binary data"
        )
    return "jsonl"


def _is_binary(head: bytes) -> bool:
    # NUL never occurs in JSON text; nor does a first line that is not UTF-8
    # and not even the start of an object. A damaged line further on is the
    # verifier's to report, in place.
    if b"\x00" in head:
        return True
    first = head.split(b"\n", 1)[0]
    if first.lstrip()[:1] == b"{":
        return False
    try:
        first.decode("utf-8")
    except UnicodeDecodeError:
        return len(first) < len(head) or len(head) < _SNIFF
    return False


def _live_log(log: EventLog) -> StoredLog:
    def records() -> Iterator[tuple[int, bytes, bool]]:
        for position, record in enumerate(log.records(), start=1):
            yield position, record, True

    return StoredLog(repr(log), records)


def stored_logs(source: LogSource) -> Iterator[StoredLog]:
    """Yield every log a source holds.

    Parameters
    ----------
    source : `LogSource`
        A JSON Lines file; a directory, searched recursively for ``*.jsonl``
        files in sorted order; an SQLite store file (recognized by its
        header) or URL; a PostgreSQL URL; a store object; a `StoredLog`; a
        live `EventLog` (its records are rebuilt from its events); or an
        iterable of these. Stores are opened read-only.

    Yields
    ------
    log : `StoredLog`
        Each log, streamed: nothing is read until its records are. A
        subdirectory that cannot be listed is yielded as a log whose records
        cannot be read.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    LogCorruptedError
        If a path holds no logs (see `source_kind`), or is a Parquet export.
    """
    if isinstance(source, StoredLog):
        yield source
    elif isinstance(source, EventLog):
        yield _live_log(source)
    elif isinstance(source, LogStore):
        yield from source.logs()
    elif isinstance(source, str | os.PathLike):
        kind = source_kind(source)
        if kind == "jsonl":
            yield file_log(source)
        elif kind == "directory":
            yield from JsonLinesEventStore(source).logs()
        elif kind == "parquet":
            raise LogCorruptedError(
                f"{source} is a Parquet export, not a store of logs: verify_export reads it"
            )
        else:
            with _open_readonly(source, kind) as store:
                yield from store.logs()
    else:
        for item in source:
            yield from stored_logs(item)


def _open_readonly(target: str | os.PathLike[str], kind: SourceKind) -> EventStore:
    if kind == "postgresql":
        from .postgres import PostgresEventStore

        return PostgresEventStore(str(target), readonly=True)
    from .sqlite import SqliteEventStore

    text = os.fspath(target)
    path = sa.make_url(text).database or "" if is_database_url(text) else text
    return SqliteEventStore(path, readonly=True)


def verify_logs(
    source: LogSource,
    *,
    expected_digest: str | None = None,
    validate: bool = False,
) -> VerificationReport:
    """Verify every log of a source: chains, order, sealing, dataset ids.

    Parameters
    ----------
    source : `LogSource`
        Files, directories, SQLite stores, PostgreSQL URLs, store objects or
        live logs (see `stored_logs`).
    expected_digest : `str`, optional
        A run digest recorded earlier (`VerificationReport.digest`); a
        different digest is reported as a problem.
    validate : `bool`, optional
        Also validate every field of every event against its schema.

    Returns
    -------
    report : `VerificationReport`
        One verdict per log, each naming the quantum, the ``seq`` and the
        exact problem, and the run digest. It never raises for a bad log;
        check ``report.ok``. A source that cannot be read (a foreign file, a
        directory that cannot be listed, a server that cannot be reached) is
        a log with an ``unreadable`` problem; a log with no events is
        ``not_started``.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.

    Notes
    -----
    Memory stays bounded whatever a log's length: records are streamed, and
    each log's checker keeps its seqs as runs, not one entry per event.
    """
    return verify_stored_logs(
        logs_or_failures(source), expected_digest=expected_digest, validate=validate
    )


def logs_or_failures(source: LogSource) -> Iterator[StoredLog]:
    """Yield each log of each source; a source that cannot be listed is an unreadable log.

    As `stored_logs`, except that a source that cannot be read (not a log,
    a foreign database, a server that cannot be reached) is yielded as a
    log whose records cannot be read, so the reader reports it and goes on.
    A path that does not exist still raises `FileNotFoundError`.
    """
    items: list[LogSource] = (
        [source] if _is_single(source) else list(cast("Iterable[LogSource]", source))
    )
    for item in items:
        try:
            yield from stored_logs(item)
        except FileNotFoundError:
            raise
        except (QbbEventsError, OSError, LookupError) as err:
            location = os.fspath(item) if isinstance(item, str | os.PathLike) else repr(item)
            yield unreadable_log(location, err)


def _is_single(source: LogSource) -> bool:
    return isinstance(source, str | os.PathLike | StoredLog | EventLog | LogStore)
