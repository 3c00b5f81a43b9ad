"""`export_lineage`: logs to OpenLineage NDJSON or W3C PROV-JSON, optionally POSTed."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from ..errors import InterchangeError
from ..logs import LogSource, LogVerification
from ..payloads import LIBRARY_VERSION
from ._attempts import QuantumAttempt, read_attempts
from ._openlineage import attempt_events, producer_uri
from ._prov import ProvBuilder

__all__ = [
    "LineageFormat",
    "LineageReport",
    "export_lineage",
    "openlineage_events",
    "post_openlineage",
    "prov_document",
]

LineageFormat = Literal["openlineage", "prov-json", "prov-n"]
"""Formats `export_lineage` writes."""


@dataclass(frozen=True)
class LineageReport:
    """What `export_lineage` exported.

    Attributes
    ----------
    format : `str`
        ``openlineage``, ``prov-json`` or ``prov-n``.
    attempts : `int`
        Quantum attempts exported.
    events : `int`
        OpenLineage events written (0 for PROV).
    bytes_written : `int`
        Size of the output.
    posted : `int`
        OpenLineage events accepted by ``url``.
    refused : `tuple` [`LogVerification`, ...]
        Logs not exported because verification found a problem.
    """

    format: str
    attempts: int
    events: int
    bytes_written: int
    posted: int = 0
    refused: tuple[LogVerification, ...] = field(default=())


def openlineage_events(
    sources: LogSource, *, refused: list[LogVerification] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the OpenLineage ``RunEvent`` documents of every quantum attempt in the sources.

    Parameters
    ----------
    sources : `LogSource`
        Log files, directories, SQLite stores or live logs (see `stored_logs`).
    refused : `list` [`LogVerification`], optional
        Filled with the verdicts of the logs verification refused (they yield nothing).

    Yields
    ------
    event : `dict`
        ``START`` then ``COMPLETE``, ``FAIL`` or ``ABORT`` for each attempt,
        JSON-compatible, per OpenLineage spec 2-0-2.
    """
    producer = producer_uri(LIBRARY_VERSION)
    for attempt in read_attempts(sources, [] if refused is None else refused):
        yield from attempt_events(attempt, producer)


def prov_document(
    sources: LogSource, *, derivations: bool = False, refused: list[LogVerification] | None = None
) -> dict[str, Any]:
    """Return the W3C PROV-JSON document of every quantum attempt in the sources.

    Parameters
    ----------
    sources : `LogSource`
        Log files, directories, SQLite stores or live logs.
    derivations : `bool`, optional
        Also state ``wasDerivedFrom`` from each actual input to each actual
        output of a quantum (their product: off by default).
    refused : `list` [`LogVerification`], optional
        Filled with the verdicts of the logs verification refused.

    Returns
    -------
    document : `dict`
        PROV-JSON with one ``prov:Bundle`` per run collection.
    """
    builder = ProvBuilder(derivations=derivations)
    for attempt in read_attempts(sources, [] if refused is None else refused):
        builder.add(attempt)
    return builder.document()


def post_openlineage(events: Iterable[dict[str, Any]], url: str, *, timeout: float = 30.0) -> int:
    """POST each event to an OpenLineage HTTP endpoint.

    Parameters
    ----------
    events : `~collections.abc.Iterable` [`dict`]
        The events.
    url : `str`
        The server's base URL (``http://host:5000``); events go to
        ``<url>/api/v1/lineage``, one per request, as the API takes them.
    timeout : `float`, optional
        Seconds to wait for each response.

    Returns
    -------
    posted : `int`
        Events the server accepted.

    Raises
    ------
    InterchangeError
        If the URL is not http(s) or the server refuses an event (its status
        and the event's run id are named).
    """
    if not url.startswith(("http://", "https://")):
        raise InterchangeError(f"An OpenLineage URL must be http:// or https://, not {url!r}.")
    endpoint = url.rstrip("/") + "/api/v1/lineage"
    posted = 0
    for event in events:
        request = urllib.request.Request(
            endpoint,
            data=orjson.dumps(event),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                posted += 1
        except (urllib.error.URLError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()  # it holds the response's socket
            run_id = event.get("run", {}).get("runId")
            raise InterchangeError(
                f"{endpoint} refused the {event.get('eventType')} event of run {run_id}: {err}"
            ) from err
    return posted


class _Counting:
    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.count = out, 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.count += len(data)


def _write_openlineage(
    attempts: Iterator[QuantumAttempt], out: _Counting, url: str | None
) -> tuple[int, int, int]:
    producer = producer_uri(LIBRARY_VERSION)
    n_attempts = n_events = posted = 0
    for attempt in attempts:
        n_attempts += 1
        pair = attempt_events(attempt, producer)
        for event in pair:
            out.write(orjson.dumps(event) + b"\n")
        n_events += 2
        if url is not None:
            posted += post_openlineage(pair, url)
    return n_attempts, n_events, posted


def export_lineage(
    sources: LogSource,
    out: str | os.PathLike[str] | IO[bytes],
    *,
    format: LineageFormat = "openlineage",
    url: str | None = None,
    derivations: bool = False,
) -> LineageReport:
    """Export the lineage of every quantum attempt in the sources to a file.

    Parameters
    ----------
    sources : `LogSource`
        Log files, directories, SQLite stores or live logs.
    out : path or binary file
        Where to write: NDJSON (one OpenLineage event a line), or one PROV-JSON
        or PROV-N document. A path is written to a temporary file and renamed into
        place, so a failed export leaves no partial file.
    format : `str`, optional
        ``openlineage``, ``prov-json``, or ``prov-n`` (needs the ``prov``
        package, the ``interop`` extra).
    url : `str`, optional
        Also POST every OpenLineage event there (`post_openlineage`).
    derivations : `bool`, optional
        PROV only: also state ``wasDerivedFrom``.

    Returns
    -------
    report : `LineageReport`
        Counts and the refused logs.

    Raises
    ------
    InterchangeError
        If the format is unknown, ``url`` is given for PROV, or the server
        refuses an event.
    """
    if format not in ("openlineage", "prov-json", "prov-n"):
        raise InterchangeError(
            f"Unknown lineage format {format!r}; known: openlineage, prov-json, prov-n."
        )
    if url is not None and format != "openlineage":
        raise InterchangeError("--url posts OpenLineage events; it needs --format openlineage.")
    refused: list[LogVerification] = []
    if isinstance(out, str | os.PathLike):
        path = Path(out)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("wb") as handle:
                report = _export(sources, _Counting(handle), format, url, derivations, refused)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return report
    return _export(sources, _Counting(out), format, url, derivations, refused)


def _provn(document: dict[str, Any]) -> str:
    # PROV-N is the prov library's serialization of the same document: the
    # W3C's reference implementation in Python writes it, so we do not.
    try:
        from prov.model import ProvDocument
    except ImportError as err:
        raise InterchangeError(
            "PROV-N needs the 'prov' package: pip install 'qbb-events[interop]'."
        ) from err
    text: str = ProvDocument.deserialize(content=orjson.dumps(document), format="json").get_provn()
    return text


def _export(
    sources: LogSource,
    out: _Counting,
    format: LineageFormat,
    url: str | None,
    derivations: bool,
    refused: list[LogVerification],
) -> LineageReport:
    attempts = read_attempts(sources, refused)
    if format == "openlineage":
        n_attempts, n_events, posted = _write_openlineage(attempts, out, url)
    else:
        builder = ProvBuilder(derivations=derivations)
        n_attempts = n_events = posted = 0
        for attempt in attempts:
            builder.add(attempt)
            n_attempts += 1
        document = builder.document()
        if format == "prov-n":
            out.write(_provn(document).encode() + b"\n")
        else:
            out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return LineageReport(
        format=format,
        attempts=n_attempts,
        events=n_events,
        bytes_written=out.count,
        posted=posted,
        refused=tuple(refused),
    )
