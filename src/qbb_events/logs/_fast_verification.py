"""The fast path of verification: a whole JSON Lines log checked in bulk, or not at all.

`fast_verdict` reads a log file in large blocks of whole lines and proves,
with C-backed work only (SHA-256 of each stored line chained on the previous
stored hash, one orjson parse of each whole block, the envelope fields taken
from every event at once with ``map``), that the log has no problem at all.
If it cannot prove that, for any reason, it returns `None` and the caller
runs the full checker, which then finds and words every problem: so a
perfect log gets the same verdict either way (no problems), and an imperfect
one gets the checker's own report.

What it proves is every check the checker makes: each line is a JSON object
in the writer's layout whose hash covers its bytes and whose ``prev_hash`` is
the previous line's hash (the first the genesis hash); seqs are 0, 1, 2, ...;
one quantum and attempt (a canonical UUID); one ``quantum_started``, first,
describing the same quantum; one ``quantum_finished``, last; the current
schema version; timestamps never going back; every written or pruned
dataset a predicted output.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from hashlib import sha256
from multiprocessing import get_context
from operator import itemgetter, le
from typing import Any, Final, NamedTuple

import orjson

from ..events import GENESIS_HASH, SCHEMA_VERSION
from ._records import HASH_SUFFIX_LEN, StoredLog

__all__ = ["FastVerdict", "FileRecords", "fast_candidate", "fast_verdict", "fast_verdicts"]

BLOCK_BYTES: Final = 2**18
"""A file is read and checked in blocks of about this size: memory stays bounded."""

PARALLEL_FROM: Final = 16
"""Logs from which verification spreads over the machine's cores."""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HASH_KEY = b',"hash":"'
_GENESIS = GENESIS_HASH.encode("ascii")


class FastVerdict(NamedTuple):
    """What the fast path proved of a log with no problem (the checker builds the report).

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        Its quantum.
    attempt : `int`
        Its attempt.
    events : `int`
        How many events it holds.
    final_hash : `str`
        Its last event's hash.
    status : `str`
        The status of its ``quantum_finished``.
    """

    quantum_id: uuid.UUID
    attempt: int
    events: int
    final_hash: str
    status: str


class FileRecords:
    """The records of a JSON Lines log file: its lines, numbered from 1, without newline.

    Parameters
    ----------
    path : `str`
        The file (absolute).
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> Any:
        with open(self.path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                if line.endswith(b"\n"):
                    yield number, line[:-1], True
                else:
                    yield number, line, False


def fast_verdict(path: str) -> FastVerdict | None:
    """Return the verdict of a log file with no problem, or `None` if it may have one.

    Parameters
    ----------
    path : `str`
        A JSON Lines log file (its location in reports).

    Returns
    -------
    verdict : `FastVerdict` or `None`
        What a perfect log (no problems) holds, or `None`: the log may
        have a problem (or a shape the fast path does not handle), and only
        the full checker may judge it.
    """
    state = _State()
    try:
        with open(path, "rb") as stream:
            rest = b""
            while True:
                block = stream.read(BLOCK_BYTES)
                if not block:
                    break
                data = rest + block
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                if end and not state.check(data[:end]):
                    return None
        if rest or state.finished is None:
            return None  # a last line without its newline, or no quantum_finished
        return state.verdict()
    except (OSError, orjson.JSONDecodeError, ValueError, KeyError, IndexError, TypeError):
        return None


_SEQ, _KIND, _QUANTUM_ID = itemgetter("seq"), itemgetter("kind"), itemgetter("quantum_id")
_ATTEMPT, _VERSION = itemgetter("attempt"), itemgetter("schema_version")
_PREV, _TIME = itemgetter("prev_hash"), itemgetter("timestamp_ns")


def _ints(values: list[Any]) -> bool:
    # Exactly int: the checker refuses a bool or a float where an int belongs.
    return set(map(type, values)) == {int}


class _State:
    """What the blocks of one file checked so far established."""

    def __init__(self) -> None:
        self.prev = _GENESIS
        self.count = 0
        self.last_ts = -(2**63)
        self.quantum_id: str | None = None
        self.attempt: int | None = None
        self.outputs: frozenset[str] = frozenset()
        self.finished: int | None = None
        self.status: str | None = None

    def check(self, data: bytes) -> bool:
        """Check a block of whole lines; `False` if anything is not perfect."""
        if self.finished is not None or b"\r" in data:
            return False
        lines = data.split(b"\n")
        lines.pop()
        n = len(lines)
        cut = -HASH_SUFFIX_LEN
        if not all(
            len(line) > HASH_SUFFIX_LEN
            and line[:1] == b"{"
            and line[cut:-66] == _HASH_KEY
            and line[-2:] == b'"}'
            for line in lines
        ):
            return False
        tails = [line[-66:-2] for line in lines]
        prevs = [self.prev, *tails[:-1]]
        # Each line hashed over its stored bytes, chained on the previous stored hash.
        digests = [
            sha256(prev + line[:cut] + b"}").hexdigest().encode("ascii")
            for prev, line in zip(prevs, lines, strict=True)
        ]
        if digests != tails:
            return False
        # One parse of the whole block by the checker's own parser, in C: it
        # accepts and refuses exactly what the checker does, line by line.
        events = orjson.loads(b"[" + b",".join(lines) + b"]")
        if len(events) != n or set(map(type, events)) != {dict}:
            return False  # two values on one line, or one that is not an object
        if list(map(_PREV, events)) != [p.decode("ascii") for p in prevs]:
            return False
        if not self.envelopes(events):
            return False
        self.prev = tails[-1]
        self.count += n
        return True

    def envelopes(self, events: list[dict[str, Any]]) -> bool:
        n = len(events)
        seqs = list(map(_SEQ, events))
        if not _ints(seqs) or seqs != list(range(self.count, self.count + n)):
            return False
        kinds = list(map(_KIND, events))
        if self.quantum_id is None and not self.first(events[0]):
            return False
        if kinds.count("quantum_started") != (0 if self.count else 1):
            return False  # a second quantum_started
        attempts = list(map(_ATTEMPT, events))
        versions = list(map(_VERSION, events))
        if not (
            set(map(_QUANTUM_ID, events)) == {self.quantum_id}
            and _ints(attempts)
            and set(attempts) == {self.attempt}
            and _ints(versions)
            and set(versions) == {SCHEMA_VERSION}
        ):
            return False
        times = list(map(_TIME, events))
        if not _ints(times) or times[0] < self.last_ts or not all(map(le, times, times[1:])):
            return False
        self.last_ts = times[-1]
        sealed = kinds.count("quantum_finished")
        if sealed:
            if sealed != 1 or kinds[-1] != "quantum_finished":
                return False  # sealed before its last event
            self.finished = self.count + n - 1
            status = events[-1].get("status")
            self.status = status if isinstance(status, str) else "unknown"
        return self.named_outputs(events, kinds)

    def first(self, event: dict[str, Any]) -> bool:
        """Take the quantum from the first event, a ``quantum_started`` that describes it."""
        quantum_id = event.get("quantum_id")
        quantum = event.get("quantum")
        if not (
            event.get("kind") == "quantum_started"
            and isinstance(quantum_id, str)
            and _UUID.fullmatch(quantum_id)
            and isinstance(quantum, dict)
            and quantum.get("id") == quantum_id
        ):
            return False
        refs = quantum.get("outputs")
        self.outputs = frozenset(
            ref["id"]
            for ref in (refs if isinstance(refs, list) else [])
            if isinstance(ref, dict) and isinstance(ref.get("id"), str)
        )
        self.quantum_id = quantum_id
        self.attempt = event.get("attempt")
        return True

    def named_outputs(self, events: list[dict[str, Any]], kinds: list[str]) -> bool:
        """Tell whether every written and pruned dataset is a predicted output."""
        outputs = self.outputs
        for event, kind in zip(events, kinds, strict=True):
            if kind == "output_written":
                if event.get("dataset_id") not in outputs:
                    return False
            elif kind == "datasets_pruned":
                removed = event.get("removed")
                if not isinstance(removed, list) or not all(
                    isinstance(d, str) and d in outputs for d in removed
                ):
                    return False
        return True

    def verdict(self) -> FastVerdict:
        assert self.quantum_id is not None
        assert self.attempt is not None
        assert self.status is not None
        return FastVerdict(
            uuid.UUID(self.quantum_id),
            self.attempt,
            self.count,
            self.prev.decode("ascii"),
            self.status,
        )


def fast_candidate(log: StoredLog, validate: bool) -> bool:
    """Tell whether a log may have a fast verdict: a JSON Lines file, no schema validation.

    Parameters
    ----------
    log : `StoredLog`
        A log from any store.
    validate : `bool`
        Schema validation was asked for: only the full checker does it.

    Returns
    -------
    candidate : `bool`
        Whether `fast_verdicts` may judge it.
    """
    return not validate and isinstance(log.records, FileRecords)


def fast_verdicts(logs: Sequence[StoredLog]) -> list[FastVerdict | None]:
    """Return the fast verdict of each log file (`None` where the full checker must judge).

    Parameters
    ----------
    logs : `~collections.abc.Sequence` [`StoredLog`]
        JSON Lines logs (`fast_candidate`).

    Returns
    -------
    verdicts : `list` [`FastVerdict` or `None`]
        Aligned with ``logs``. Many files are checked on every core, in
        worker processes (logs are independent).
    """
    paths = [log.records.path for log in logs if isinstance(log.records, FileRecords)]
    if len(paths) != len(logs):
        raise TypeError("fast_verdicts judges JSON Lines files only")
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) >= PARALLEL_FROM and workers > 1:
        # forkserver: workers never inherit the caller's threads or locks.
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            return list(pool.map(fast_verdict, paths, chunksize=8))
    return [fast_verdict(path) for path in paths]
