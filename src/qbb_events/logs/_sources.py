"""Finding stored logs: files, directories of files, SQLite stores and live logs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeAlias, cast, runtime_checkable

from ..errors import QbbEventsError
from ._base import EventLog
from ._fast_verification import FileRecords
from ._records import StoredLog
from ._verification import VerificationReport, verify_stored_logs

__all__ = [
    "LOG_SUFFIX",
    "LogSource",
    "LogStore",
    "file_log",
    "is_sqlite_file",
    "stored_logs",
    "verify_logs",
]

LOG_SUFFIX = ".jsonl"
"""The suffix of log files found in a directory."""

_SQLITE_MAGIC = b"SQLite format 3\x00"


@runtime_checkable
class LogStore(Protocol):
    """A store holding many logs, such as `SqliteEventStore`."""

    def logs(self) -> Iterator[StoredLog]:
        """Yield each stored log."""
        ...


LogSource: TypeAlias = (
    "str | os.PathLike[str] | LogStore | StoredLog | EventLog | Iterable[LogSource]"
)
"""Where logs can be read from: a log file, a directory searched for
``*.jsonl`` files, an SQLite store file or object, a stored or live log, or
any iterable of these."""


def file_log(path: str | os.PathLike[str]) -> StoredLog:
    """Return a JSON Lines log file as a stored log.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file.

    Returns
    -------
    log : `StoredLog`
        Its records are its lines, numbered from 1, without their newline.
    """
    location = os.path.abspath(path)
    return StoredLog(location, FileRecords(location))


def is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    """Tell whether a file is an SQLite database, by its header.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Any file.

    Returns
    -------
    sqlite : `bool`
        Whether it starts with the SQLite magic string.
    """
    with contextlib.suppress(OSError), open(path, "rb") as stream:
        return stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
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
        header) or `SqliteEventStore`; a `StoredLog`; a live `EventLog`
        (its records are rebuilt from its events); or an iterable of these.

    Yields
    ------
    log : `StoredLog`
        Each log, streamed: nothing is read until its records are.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    """
    if isinstance(source, StoredLog):
        yield source
    elif isinstance(source, EventLog):
        yield _live_log(source)
    elif isinstance(source, LogStore):
        yield from source.logs()
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            for child in sorted(path.rglob(f"*{LOG_SUFFIX}")):
                if child.is_file():
                    yield file_log(child)
        elif not path.exists():
            raise FileNotFoundError(f"No log file, directory or store at {path}")
        elif is_sqlite_file(path):
            from .sqlite import SqliteEventStore

            with SqliteEventStore(path, readonly=True) as store:
                yield from store.logs()
        else:
            yield file_log(path)
    else:
        for item in source:
            yield from stored_logs(item)


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
        Files, directories, SQLite stores or live logs (see `stored_logs`).
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
        check ``report.ok``.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    """
    return verify_stored_logs(
        _logs_or_failures(source), expected_digest=expected_digest, validate=validate
    )


def _logs_or_failures(source: LogSource) -> Iterator[StoredLog]:
    """Each log of each source; a source that cannot be listed becomes an unreadable log."""
    items: list[LogSource] = (
        [source] if _is_single(source) else list(cast("Iterable[LogSource]", source))
    )
    for item in items:
        try:
            yield from stored_logs(item)
        except FileNotFoundError:
            raise
        except (QbbEventsError, OSError, LookupError) as err:
            yield _unreadable(item, err)


def _is_single(source: LogSource) -> bool:
    return isinstance(source, str | os.PathLike | StoredLog | EventLog | LogStore)


def _unreadable(item: object, err: Exception) -> StoredLog:
    message = f"{type(err).__name__}: {err}"

    def records() -> Iterator[tuple[int, bytes, bool]]:
        raise OSError(f"the store cannot be read ({message})")
        yield  # pragma: no cover - makes this a generator

    location = os.fspath(item) if isinstance(item, str | os.PathLike) else repr(item)
    return StoredLog(location, records)
