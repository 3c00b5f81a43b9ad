"""Reading one stored log's events, and naming its datasets for people."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from qbb_events import Event, QbbEventsError, QuantumStarted, StoredLog, parse_event
from qbb_events.cli_contract import InputError

__all__ = ["DatasetNames", "LogEvents", "parse_events", "read_events"]


@dataclass(frozen=True, slots=True)
class LogEvents:
    """The events of one log that could be parsed, in stored order.

    Parameters
    ----------
    location : `str`
        Where the log is stored.
    events : `list` [`Event`]
        The whole events up to the first record that is not one.
    error : `str` or `None`
        Why reading stopped early, naming the position and ``seq``.
    """

    location: str
    events: list[Event]
    error: str | None


def parse_events(log: StoredLog) -> LogEvents:
    """Parse a stored log's records into events, stopping at the first bad one.

    Parameters
    ----------
    log : `StoredLog`
        Any stored log.

    Returns
    -------
    events : `LogEvents`
        Integrity is not judged here (verification does that); a torn last
        record simply ends the events.
    """
    events: list[Event] = []
    try:
        for position, record, complete in log:
            if not record.strip():
                continue
            try:
                events.append(parse_event(orjson.loads(record)))
            except (orjson.JSONDecodeError, QbbEventsError, TypeError) as err:
                if not complete:
                    break
                return LogEvents(log.location, events, f"position {position}: {err}")
    except (OSError, QbbEventsError) as err:
        return LogEvents(log.location, events, str(err))
    return LogEvents(log.location, events, None)


def read_events(log: StoredLog) -> list[Event]:
    """Return a log's events, or refuse a log that cannot be read whole.

    Parameters
    ----------
    log : `StoredLog`
        Any stored log.

    Returns
    -------
    events : `list` [`Event`]
        Its events in order.

    Raises
    ------
    InputError
        If a record is not an event: one line with the location and position.
    """
    parsed = parse_events(log)
    if parsed.error is not None:
        raise InputError(f"{log.location}: {parsed.error}")
    if not parsed.events:
        raise InputError(f"{log.location}: holds no event")
    return parsed.events


class DatasetNames:
    """Names datasets as ``type(key=value,...)`` from a log's ``quantum_started``.

    Parameters
    ----------
    events : `~collections.abc.Iterable` [`Event`]
        The log's events; only the first ``quantum_started`` is used.
    """

    def __init__(self, events: list[Event]) -> None:
        self._names: dict[uuid.UUID, str] = {}
        started = next((e for e in events if isinstance(e, QuantumStarted)), None)
        if started is None:
            return
        q = started.quantum
        for ref in (*q.inputs, *q.init_inputs, *q.outputs):
            data_id = ",".join(f"{k}={v}" for k, v in (ref.data_id or {}).items())
            self._names[ref.id] = f"{ref.dataset_type or '?'}({data_id})"

    def __call__(self, dataset_id: uuid.UUID) -> str:
        """Return the name of a dataset, or its id if the quantum does not know it."""
        return self._names.get(dataset_id, str(dataset_id))

    def many(self, ids: Iterator[uuid.UUID] | frozenset[uuid.UUID] | set[uuid.UUID]) -> list[str]:
        """Return the sorted names of datasets."""
        return sorted(self(i) for i in ids)
