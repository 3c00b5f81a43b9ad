"""`find_orphans`: artifacts under a datastore root that no registry row nor log accounts for."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

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
                orphans.append(relative)
    return sorted(orphans)


def _logged_paths(logs: LogSource) -> set[str]:
    paths = set()
    for log in stored_logs(logs):
        for _, record, complete in log:
            if not complete or b'"output_written"' not in record:
                continue
            try:
                event = orjson.loads(record)
            except orjson.JSONDecodeError:
                continue
            if event.get("kind") == "output_written" and isinstance(event.get("record"), dict):
                path = event["record"].get("path")
                if isinstance(path, str):
                    paths.add(path)
    return paths
