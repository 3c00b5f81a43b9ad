"""What each command-line source is, and the stored logs it holds.

A source is a JSON Lines log file, a directory of them, an SQLite store, a
Parquet export (a directory holding ``quanta/``) or a PostgreSQL URL. Anything
else is refused up front with one line naming it, so a check never passes on
input it could not read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

import qbb_events
from qbb_events import SCHEMA_VERSION, SqliteEventStore, StoredLog, exported_logs, stored_logs
from qbb_events.cli_contract import InputError

__all__ = ["Source", "SourceKind", "logs_of", "resolve_sources"]

SourceKind = Literal["file", "sqlite", "export", "postgres"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_ENVELOPE = frozenset(
    {"schema_version", "quantum_id", "attempt", "seq", "timestamp_ns", "kind", "prev_hash", "hash"}
)
# A log whose first lines were damaged is still a log: it is judged by verify.
_SNIFF_LINES = 3


@dataclass(frozen=True, slots=True)
class Source:
    """One resolved source of logs; plain data, so it can go to a worker process.

    Parameters
    ----------
    kind : `SourceKind`
        ``file`` (one JSON Lines log), ``sqlite``, ``export`` or ``postgres``.
    location : `str`
        Absolute path, or the URL.
    """

    kind: SourceKind
    location: str


def resolve_sources(arguments: Sequence[str]) -> list[Source]:
    """Resolve command-line sources into single logs and stores.

    Parameters
    ----------
    arguments : `~collections.abc.Sequence` [`str`]
        Paths and URLs as given.

    Returns
    -------
    sources : `list` [`Source`]
        Directories are expanded into their ``*.jsonl`` files (sorted).

    Raises
    ------
    InputError
        For a path that does not exist, a directory with no log, a file that
        is not a log (empty, binary, another tool's JSON Lines) or a log of a
        newer schema version: exit 2 with one line naming it.
    """
    sources: list[Source] = []
    for argument in arguments:
        if argument.startswith(("postgresql://", "postgresql+")):
            sources.append(Source("postgres", argument))
            continue
        path = Path(argument)
        if not path.exists():
            raise InputError(f"{argument}: no such file, directory or store")
        if path.is_dir():
            sources.extend(_directory(path))
        elif _is_sqlite(path):
            sources.append(Source("sqlite", os.path.abspath(path)))
        else:
            _sniff(path)
            sources.append(Source("file", os.path.abspath(path)))
    return sources


def _directory(path: Path) -> list[Source]:
    if (path / "quanta").is_dir():
        return [Source("export", os.path.abspath(path))]
    try:
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    except OSError as err:
        raise InputError(f"{path}: cannot be listed ({err})") from err
    if not files:
        raise InputError(f"{path}: directory holds no log (*.jsonl) and is no Parquet export")
    for file in files:
        _sniff(file)
    return [Source("file", os.path.abspath(f)) for f in files]


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err})") from err


def _sniff(path: Path) -> None:
    """Refuse a file that holds no event at all, or events of a newer version."""
    try:
        with open(path, "rb") as stream:
            lines = [stream.readline(1 << 20) for _ in range(_SNIFF_LINES)]
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err})") from err
    if not lines[0]:
        raise InputError(f"{path}: empty file, not a log (no quantum_started)")
    for number, line in enumerate(lines, start=1):
        raw = _json_object(line)
        if raw is None or len(_ENVELOPE & raw.keys()) < 3:
            continue
        version = raw.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise InputError(
                f"{path}: line {number} seq {raw.get('seq')} was written with schema version "
                f"{version}; this qbb_events reads versions up to {SCHEMA_VERSION}"
            )
        return
    raise InputError(f"{path}: line 1 is not a qbb_events event: the file is not a log")


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def logs_of(source: Source) -> Iterator[StoredLog]:
    """Yield the stored logs of one source, streamed.

    Parameters
    ----------
    source : `Source`
        A resolved source.

    Yields
    ------
    log : `StoredLog`
        Each log it holds.

    Raises
    ------
    InputError
        If a store cannot be opened (not a store, another schema, a
        PostgreSQL URL while this qbb_events has no PostgreSQL store).
    """
    try:
        if source.kind == "file":
            yield from stored_logs(source.location)
        elif source.kind == "sqlite":
            with SqliteEventStore(source.location, readonly=True) as store:
                yield from store.logs()
        elif source.kind == "export":
            yield from exported_logs(source.location)
        else:
            yield from _postgres_logs(source.location)
    except (qbb_events.QbbEventsError, OSError, LookupError) as err:
        raise InputError(f"{source.location}: cannot be read as a log store ({err})") from err


def _postgres_logs(url: str) -> Iterator[StoredLog]:
    # The PostgreSQL store lands with the store-contract issue; until then a
    # URL is refused by name rather than misread as a path.
    store_class = getattr(qbb_events, "PostgresEventStore", None)
    if store_class is None:
        raise InputError(f"{url}: this qbb_events has no PostgresEventStore to read it")
    with store_class(url) as store:
        yield from store.logs()
