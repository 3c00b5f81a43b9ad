"""Reading a JSON Lines log back, checking every event and the hash chain."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import TornLogWarning
from ..events import Event
from ._chain import ChainChecker

__all__ = ["LogScan", "check_chain", "iter_log", "read_log", "scan_log"]


def read_log(path: str | os.PathLike[str]) -> list[Event]:
    """Read a JSON Lines log and check it whole.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A log written by `JsonLinesEventLog`.

    Returns
    -------
    events : `list` [`Event`]
        Its events, in order.

    Raises
    ------
    LogCorruptedError
        If a line is not JSON, an event does not validate, ``seq`` skips or
        repeats, ``prev_hash`` does not name the previous event, a hash does
        not match the event's content, the quantum changes, or an event
        follows ``quantum_finished``. The message names the line and ``seq``.
    SchemaVersionError, UnknownEventKindError
        For events this library cannot read.

    Warns
    -----
    TornLogWarning
        If the last line is incomplete (its writer was killed mid-write): the
        whole events before it are returned. A last line that holds a whole
        event without its newline, and blank lines at the end, are accepted.
    """
    return list(iter_log(path))


def iter_log(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Stream a JSON Lines log, checking each event as it is read.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A log written by `JsonLinesEventLog`.

    Yields
    ------
    event : `Event`
        Each event, in order, once it has passed every check of `read_log`.

    Raises
    ------
    LogCorruptedError, SchemaVersionError, UnknownEventKindError
        As `read_log`, when the offending line is reached.

    Warns
    -----
    TornLogWarning
        If the last line is incomplete.

    Notes
    -----
    Memory stays bounded by one line whatever the log's length, so
    ``fold(iter_log(path))`` folds a log of any size.
    """
    for item in _checked_lines(path):
        if isinstance(item, _Torn):
            warnings.warn(item.message, TornLogWarning, stacklevel=2)
            return
        yield item[0]


class _Torn:
    """The last line of a file is incomplete: its writer was killed mid-write."""

    def __init__(self, message: str) -> None:
        self.message = message


def _checked_lines(
    path: str | os.PathLike[str],
) -> Iterator[tuple[Event, int, bytes] | _Torn]:
    """Yield each checked event, the file offset just past its line, and its record.

    A torn last line ends the stream with a `_Torn` instead of an event.
    """
    checker = ChainChecker(location=os.fspath(path))
    check = checker.check
    offset = 0
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            offset += len(line)
            complete = line.endswith(b"\n")
            record = line[:-1] if complete else line
            event = check(number, record, complete)
            if event is not None:
                yield event, offset, record
            elif checker.torn is not None:
                yield _Torn(checker.torn)
                return


@dataclass(frozen=True, slots=True)
class LogScan:
    """What `scan_log` found in a log file.

    Parameters
    ----------
    events : `list` [`Event`]
        The whole events, checked.
    records : `list` [`bytes`]
        Their records, as stored.
    end : `int`
        File offset just past the last whole event's line: what a torn tail
        or trailing blank lines would be cut back to.
    needs_newline : `bool`
        Whether the last whole event lacks its newline.
    """

    events: list[Event]
    records: list[bytes]
    end: int
    needs_newline: bool


def scan_log(path: str | os.PathLike[str]) -> LogScan:
    """Check a log file and find where its last whole event ends.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A log written by `JsonLinesEventLog`.

    Returns
    -------
    scan : `LogScan`
        Its events and the offset to resume appending from.

    Raises
    ------
    LogCorruptedError, SchemaVersionError, UnknownEventKindError
        As `read_log`: only a torn last line is not corruption.
    """
    events: list[Event] = []
    records: list[bytes] = []
    end = 0
    needs_newline = False
    for item in _checked_lines(path):
        if isinstance(item, _Torn):
            break
        event, end, record = item
        events.append(event)
        records.append(record)
    if events:
        with open(path, "rb") as stream:
            stream.seek(end - 1)
            needs_newline = stream.read(1) != b"\n"
    return LogScan(events, records, end, needs_newline)


def check_chain(events: Iterable[Event]) -> None:
    """Check that events form one whole, untampered log.

    Parameters
    ----------
    events : `~collections.abc.Iterable` [`Event`]
        Events in order, e.g. a butler's `events`.

    Raises
    ------
    LogCorruptedError
        As `read_log`, naming the ``seq`` (and the position, as ``line``).
    """
    checker = ChainChecker()
    for position, event in enumerate(events, start=1):
        checker.check_raw(event.model_dump(mode="json"), position)
