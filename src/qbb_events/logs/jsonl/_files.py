"""Log files in a directory: naming them, finding them, reading their records."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from .._fast_verification import FileRecords
from .._records import StoredLog

__all__ = ["LOG_SUFFIX", "file_log", "is_json", "log_file_name", "log_files", "unreadable_log"]

LOG_SUFFIX = ".jsonl"
"""The suffix of log files found in a directory."""


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


def log_files(directory: Path) -> tuple[list[Path], list[OSError]]:
    """Find the ``*.jsonl`` files of a directory tree, and what could not be searched.

    Parameters
    ----------
    directory : `pathlib.Path`
        The top of the tree.

    Returns
    -------
    files : `list` [`pathlib.Path`]
        The log files, sorted.
    unreadable : `list` [`OSError`]
        One error per directory that could not be listed (its ``filename``
        names it), so a reader reports it instead of passing over its logs.
    """
    files: list[Path] = []
    unreadable: list[OSError] = []
    for root, _, names in os.walk(directory, onerror=unreadable.append):
        for name in names:
            if name.endswith(LOG_SUFFIX):
                path = Path(root, name)
                if path.is_file():
                    files.append(path)
    return sorted(files), unreadable


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
    # Its records are a FileRecords: verification's fast path reads such files in bulk.
    return StoredLog(location, FileRecords(location))


def unreadable_log(location: str, err: BaseException) -> StoredLog:
    """Return a stored log standing for a source that could not be read.

    Reading its records raises `OSError` naming ``err``, so verification
    reports it as ``unreadable`` instead of passing over it.
    """
    message = f"{type(err).__name__}: {err}"

    def records() -> Iterator[tuple[int, bytes, bool]]:
        raise OSError(f"the source cannot be read ({message})")
        yield  # pragma: no cover - makes this a generator

    return StoredLog(location, records)


def is_json(record: bytes) -> bool:
    """Tell whether a record parses as JSON (a torn one never does)."""
    try:
        orjson.loads(record)
    except orjson.JSONDecodeError:
        return False
    return True
