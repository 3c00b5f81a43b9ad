"""Reading a JSON Lines log back, checking every event and the hash chain."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import LogCorruptedError, TornLogWarning
from ..events import GENESIS_HASH, Event, canonical_json, chain_hash, parse_event
from ._records import encode_record

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


def _looks_like_a_record(line: bytes) -> bool:
    """Tell a damaged or torn record from data that was never a log's (binary, foreign)."""
    if b"\x00" in line or line.lstrip()[:1] != b"{":
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        # A record torn mid-character ends in a partial one; anything else is not text.
        return err.start >= len(line) - 3 and not line.endswith(b"\n")
    return True


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
    checker = _ChainChecker()
    blank_since: int | None = None
    offset = 0
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            offset += len(line)
            if not line.strip():
                # Blank lines are tolerated only at the very end of the file.
                blank_since = number if blank_since is None else blank_since
                continue
            if blank_since is not None:
                raise LogCorruptedError("blank line inside the log", line=blank_since)
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                if not _looks_like_a_record(line):
                    raise LogCorruptedError(
                        "not a JSON Lines log record: binary or foreign data, not an event",
                        line=number,
                    ) from None
                if not line.endswith(b"\n"):
                    # Only the last line can lack its newline, and a cut JSON
                    # object never parses: its writer was killed mid-write. A
                    # whole last event without its newline is read normally.
                    yield _Torn(
                        f"{os.fspath(path)}: line {number} is incomplete ({len(line)} "
                        "bytes, no newline): its writer was killed mid-write; it was ignored."
                    )
                    return
                raise LogCorruptedError(f"not valid JSON ({err})", line=number) from None
            if not isinstance(raw, dict):
                raise LogCorruptedError("an event must be a JSON object", line=number)
            record = line[:-1] if line.endswith(b"\n") else line
            yield checker.check(raw, number, record), offset, record


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


class _ChainChecker:
    """Checks events one at a time against the chain built so far."""

    def __init__(self) -> None:
        self.expected_seq = 0
        self.prev_hash = GENESIS_HASH
        self.quantum: tuple[uuid.UUID, int] | None = None
        self.sealed_at: int | None = None

    def check(self, raw: dict[str, Any], line: int | None, record: bytes | None = None) -> Event:
        """Check the next event; ``record``, when given, is its stored bytes."""
        try:
            event = parse_event(raw)
        except LogCorruptedError as err:
            # parse_event knows the seq but not where the event is stored.
            raise err.at_line(line) from None
        seq = event.seq
        if seq != self.expected_seq:
            what = (
                "an event is missing or events are reordered"
                if seq > self.expected_seq
                else "an event is duplicated or events are reordered"
            )
            raise LogCorruptedError(
                f"expected seq {self.expected_seq}, found seq {seq}: {what}", line=line, seq=seq
            )
        if self.sealed_at is not None:
            raise LogCorruptedError(
                f"event follows quantum_finished (seq {self.sealed_at}): the log was sealed",
                line=line,
                seq=seq,
            )
        identity = (event.quantum_id, event.attempt)
        if self.quantum is None:
            if event.kind != "quantum_started":
                raise LogCorruptedError(
                    f"a log must start with quantum_started, not {event.kind}", line=line, seq=seq
                )
            self.quantum = identity
        elif identity != self.quantum:
            raise LogCorruptedError(
                f"event belongs to quantum {identity[0]} attempt {identity[1]}, not "
                f"{self.quantum[0]} attempt {self.quantum[1]}: logs were spliced",
                line=line,
                seq=seq,
            )
        if event.prev_hash != self.prev_hash:
            raise LogCorruptedError(
                "prev_hash does not match the previous event's hash: an earlier event was "
                "altered, removed or replaced",
                line=line,
                seq=seq,
            )
        canonical = canonical_json({k: v for k, v in raw.items() if k != "hash"})
        if chain_hash(self.prev_hash, canonical) != event.hash:
            raise LogCorruptedError(
                "hash does not match the event's content: the event was altered",
                line=line,
                seq=seq,
            )
        if record is not None and encode_record(canonical, event.hash) != record:
            raise LogCorruptedError(
                "the record's bytes are not the canonical form of its content: it was "
                "rewritten (spacing, key order, escapes or line ending)",
                line=line,
                seq=seq,
            )
        self.prev_hash = event.hash
        self.expected_seq += 1
        if event.kind == "quantum_finished":
            self.sealed_at = seq
        return event


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
    checker = _ChainChecker()
    for position, event in enumerate(events, start=1):
        checker.check(event.model_dump(mode="json"), position)
