"""`find_orphans`: artifacts under a datastore root that no registry row nor log accounts for."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LogCorruptedError, NotADatastoreError
from ..logs import LogSource, stored_logs
from ._registry import Registry

__all__ = ["find_orphans"]


def find_orphans(
    root: str | os.PathLike[str], registry: Registry, logs: LogSource | None = None
) -> list[str]:
    """List the files under a datastore root that nothing accounts for.

    Parameters
    ----------
    root : `str` or `os.PathLike`
        The datastore root.
    registry : `Registry`
        Its registry: a file with a datastore record is accounted for.
    logs : `LogSource`, optional
        Logs whose ``output_written`` events also account for files (outputs
        of quanta not transferred yet).

    Returns
    -------
    orphans : `list` [`str`]
        Paths relative to ``root``, ``/``-separated, sorted: files no record
        and no log names, including the temporary files of killed writers.
        Nothing is deleted.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a directory.
    LogCorruptedError
        If one of ``logs`` holds no event at all (it is not a log).
    NotADatastoreError
        If a file nothing accounts for is an SQLite database, an event log or
        a Parquet file of an export or graph: the root is not a datastore, and
        nothing is listed.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"No datastore root at {base}")
    known = registry.record_paths()
    if logs is not None:
        known |= _logged_paths(logs)
    orphans = []
    for directory, _, files in os.walk(base):
        for name in files:
            relative = Path(directory, name).relative_to(base).as_posix()
            if relative not in known:
                _refuse_what_is_no_artifact(base, Path(directory, name))
                orphans.append(relative)
    return sorted(orphans)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_what_is_no_artifact(root: Path, path: Path) -> None:
    """Raise if ``path`` is clearly one of ours but no artifact: the scan's root is wrong.

    A run directory holds the datastore beside its logs, graph, export and
    registry; pointed at it instead of the datastore, an orphan scan would
    list (and ``--delete`` remove) all of those.
    """
    try:
        with path.open("rb") as stream:
            head = stream.read(512)
    except OSError:
        return  # unreadable: listed, as any other file nothing accounts for
    what = None
    if head.startswith(_SQLITE_MAGIC) or path.name.endswith(("-wal", "-shm", "-journal")):
        what = "an SQLite database (a registry or an event store)"
    elif head.startswith(b'{"attempt":'):  # the first key of every canonical event
        what = "an event log"
    elif path.suffix == ".parquet" and _written_by_us(path):
        what = "a Parquet file of an export or a quantum graph"
    if what is not None:
        raise NotADatastoreError(
            f"{root} is not a datastore root: {path.relative_to(root).as_posix()} is {what}; "
            "point the scan at the datastore itself (a run's repo/ folder)"
        )


def _written_by_us(path: Path) -> bool:
    """Whether a Parquet file carries this library's export or graph metadata."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError, pa.ArrowException):
        return False
    graph = metadata.get(b"format", b"").startswith(b"qbb-events-graph")
    return graph or any(key.startswith(b"qbb_events.") for key in metadata)


def _logged_paths(logs: LogSource) -> set[str]:
    paths = set()
    for log in stored_logs(logs):
        events = 0
        for _, record, complete in log:
            if not complete:
                continue
            try:
                event = orjson.loads(record)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(event, dict) or "kind" not in event:
                continue
            events += 1
            if event["kind"] == "output_written" and isinstance(event.get("record"), dict):
                path = event["record"].get("path")
                if isinstance(path, str):
                    paths.add(path)
        if not events:
            # A mistyped --logs must not count as "no outputs logged": the
            # files those logs account for would be listed (and deleted).
            raise LogCorruptedError(f"{log.location} holds no event: it is not an event log")
    return paths
