"""The timeline of one quantum attempt, and its provenance as it stood at any moment."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from qbb_events import Event, QuantumProvenanceData, fold
from qbb_events.cli_contract import InputError

from ._events import DatasetNames

__all__ = ["TimelineRow", "provenance_state", "state_at", "timeline"]


class TimelineRow(BaseModel):
    """One event of a timeline, for people.

    Parameters
    ----------
    seq : `int`
        The event's ``seq``.
    offset_ns : `int`
        Nanoseconds since the log's first event.
    timestamp_ns : `int`
        The event's UTC timestamp.
    kind : `str`
        The event kind.
    datasets : `list` [`str`]
        The datasets it names, as ``type(key=value,...)``.
    outcome : `str`
        What happened, in a few words.
    duration_ns : `int` or `None`
        How long the call took, when recorded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    offset_ns: int
    timestamp_ns: int
    kind: str
    datasets: list[str]
    outcome: str
    duration_ns: int | None


def timeline(events: Sequence[Event]) -> list[TimelineRow]:
    """Describe each event of a log on one row.

    Parameters
    ----------
    events : `~collections.abc.Sequence` [`Event`]
        One log's events, in order.

    Returns
    -------
    rows : `list` [`TimelineRow`]
        One per event.
    """
    names = DatasetNames(list(events))
    start = events[0].timestamp_ns if events else 0
    return [_row(event, names, start) for event in events]


def _ids(event: Event) -> list[uuid.UUID]:
    single = getattr(event, "dataset_id", None)
    if isinstance(single, uuid.UUID):
        return [single]
    many = getattr(event, "dataset_ids", None)
    return list(many) if many is not None else []


def _error(error: Any) -> str:
    return f"{error.exc_type}: {error.message}" if error is not None else ""


def _outcome(event: Event, names: DatasetNames) -> tuple[str, int | None]:
    data: Any = event
    kind = event.kind
    if kind == "quantum_started":
        q = data.quantum
        inputs = len(q.inputs) + len(q.init_inputs)
        return (
            f"task {q.task_label}, {inputs} inputs, {len(q.outputs)} outputs, "
            f"host {data.host} pid {data.pid}",
            None,
        )
    if kind == "existence_checked":
        found = sum(data.results)
        if len(data.results) == 1:
            return ("found" if found else "not found"), None
        return f"{found} of {len(data.results)} found", None
    if kind in ("input_read", "deferred_loaded"):
        if data.ok:
            return f"ok, {data.bytes_read} B", data.duration_ns
        return f"{data.failure.category}: {_error(data.failure)}", data.duration_ns
    if kind == "deferred_requested":
        return "handle made, nothing read", None
    if kind == "input_marked_unused":
        return "marked unused", None
    if kind == "output_written":
        return f"written, {data.record.file_size} B", data.duration_ns
    if kind == "output_rejected":
        return f"rejected ({data.reason}): {_error(data.error)}", None
    if kind == "datasets_pruned":
        flags = f"unstore={data.unstore} purge={data.purge}"
        refused = f"; refused: {_error(data.error)}" if data.error is not None else ""
        return f"removed {len(data.removed)} ({flags}){refused}", None
    if kind == "quantum_finished":
        exception = f": {_error(data.exception)}" if data.exception is not None else ""
        return f"{data.status}{exception}", data.wall_ns
    return "-", getattr(event, "duration_ns", None)


def _row(event: Event, names: DatasetNames, start: int) -> TimelineRow:
    outcome, duration = _outcome(event, names)
    return TimelineRow(
        seq=event.seq,
        offset_ns=event.timestamp_ns - start,
        timestamp_ns=event.timestamp_ns,
        kind=event.kind,
        datasets=[names(i) for i in _ids(event)],
        outcome=outcome,
        duration_ns=duration,
    )


def state_at(events: Sequence[Event], at: str) -> tuple[int, QuantumProvenanceData]:
    """Fold the prefix of a log that stood at a moment.

    Parameters
    ----------
    events : `~collections.abc.Sequence` [`Event`]
        One log's events, in order.
    at : `str`
        A ``seq`` (an integer: the state just after that event), an ISO 8601
        time (``2026-12-02T05:40:00.5Z``; naive means UTC) or an offset from
        the first event in seconds (``+1.5`` or ``+1.5s``).

    Returns
    -------
    last : `int`
        How many events the prefix holds.
    provenance : `QuantumProvenanceData`
        ``fold`` of that prefix.

    Raises
    ------
    InputError
        If ``at`` is neither, or a ``seq`` the log does not hold.
    """
    if at.isdigit():
        seq = int(at)
        if seq >= len(events):
            raise InputError(f"--at {at}: the log holds seqs 0 to {len(events) - 1}")
        count = seq + 1
    else:
        limit = _time_limit(events, at)
        count = sum(1 for e in events if e.timestamp_ns <= limit)
    return count, fold(events[:count])


def _time_limit(events: Sequence[Event], at: str) -> int:
    if at.startswith("+"):
        try:
            seconds = float(at[1:].removesuffix("s"))
        except ValueError:
            raise InputError(f"--at {at}: not an offset in seconds such as +1.5s") from None
        return (events[0].timestamp_ns if events else 0) + round(seconds * 1e9)
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        raise InputError(
            f"--at {at}: neither a seq, an ISO 8601 time nor an offset such as +1.5s"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def provenance_state(p: QuantumProvenanceData, names: DatasetNames) -> dict[str, list[str]]:
    """Name the datasets of each provenance set.

    Parameters
    ----------
    p : `QuantumProvenanceData`
        A fold.
    names : `DatasetNames`
        Names of the quantum's datasets.

    Returns
    -------
    sets : `dict` [`str`, `list` [`str`]]
        ``predicted_inputs``, ``available_inputs``, ``unavailable_inputs``,
        ``actual_inputs``, ``predicted_outputs`` and ``actual_outputs``, each
        a sorted list of names.
    """
    return {
        "predicted_inputs": names.many(p.predicted_inputs),
        "available_inputs": names.many(p.available_inputs),
        "unavailable_inputs": names.many(p.unavailable_inputs),
        "actual_inputs": names.many(p.actual_inputs),
        "predicted_outputs": names.many(p.predicted_outputs),
        "actual_outputs": names.many(p.actual_outputs),
    }
