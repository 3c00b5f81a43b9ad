"""The chain checker: the one place a stored log's records are checked.

`ChainChecker` reads one log's records in stored order. In *raising* mode
(`read_log`, `iter_log`, the stores' reads) the first problem raises a
`LogCorruptedError` naming the record's position and ``seq``, and each
record comes back as its `Event`. In *collecting* mode (`verify_logs`) every
problem is kept as a `Problem` and reading goes on: a record whose bytes fail
their hash is reported once and then set aside, since none of its fields
can be trusted to judge its neighbours, so one edit is one problem.

Both modes run the same checks in the same code; they differ only where
their purpose does. Reading must return events in order, so it needs each
record to be the next ``seq`` and stops there; verification describes the
whole log, so it tells missing, duplicated and reordered events apart at the
end. Reading parses every event (the caller wants it, and an event of an
unknown kind or newer schema raises its own error type); verification parses
only with ``validate``, since the hash over the stored bytes already proves
an event unchanged.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterator
from hashlib import sha256
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeIs

from ..errors import LogCorruptedError
from ..events import GENESIS_HASH, SCHEMA_VERSION, Event, canonical_json, chain_hash, parse_event
from ._records import hashed_part

__all__ = ["ChainChecker", "Problem", "ProblemKind"]

ProblemKind = Literal[
    "tampered",
    "missing",
    "reordered",
    "duplicated",
    "truncated",
    "unsealed",
    "spliced",
    "after_seal",
    "time_reversed",
    "not_started",
    "inconsistent",
    "malformed",
    "unsupported",
    "unreadable",
    "digest_mismatch",
]
"""What verification can find wrong; see `docs/event-log.md` for each."""

_HASH_MISMATCH = "the hash does not match the event's content: the event was altered"
_NOT_CANONICAL = (
    "the record's bytes are not the canonical form of its content: it was rewritten "
    "(spacing, key order, escapes or line ending)"
)
_WITH_DATASETS = frozenset({"quantum_started", "output_written", "datasets_pruned"})


class Problem(BaseModel):
    """One thing wrong with a log.

    Parameters
    ----------
    kind : `ProblemKind`
        What is wrong: ``tampered`` (an event's hash does not match its
        content, or the next event's ``prev_hash`` does not name it),
        ``missing``, ``reordered``, ``duplicated``, ``truncated`` (a torn
        last record), ``unsealed`` (no ``quantum_finished``), ``spliced``
        (events of another quantum attempt), ``after_seal``,
        ``time_reversed``, ``not_started`` (the log does not begin with
        ``quantum_started``), ``inconsistent`` (a dataset id the quantum does
        not own), ``malformed`` (not an event), ``unsupported`` (a schema
        version or kind this library cannot read), ``unreadable`` (the store
        could not be read) or ``digest_mismatch`` (the run digest differs
        from the expected one).
    seq : `int` or `None`
        The ``seq`` of the event at fault, when known.
    position : `int` or `None`
        Where the record is stored: its line (files) or row (tables).
    message : `str`
        The problem in words, naming what was expected and found.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProblemKind
    seq: int | None
    position: int | None
    message: str

    def __str__(self) -> str:
        where = [] if self.seq is None else [f"seq {self.seq}"]
        where += [] if self.position is None else [f"position {self.position}"]
        return f"{self.kind} ({', '.join(where) or 'log'}): {self.message}"


class ChainChecker:
    """Checks one log's records in stored order, raising or collecting.

    Parameters
    ----------
    collect : `bool`, optional
        Collect every problem in `problems` instead of raising at the first.
    validate : `bool`, optional
        In collecting mode, also validate every event against its schema and
        require records in canonical form (raising mode always does both).
    location : `str`, optional
        Where the log is stored, to name in a torn record's message.

    Notes
    -----
    Memory stays bounded whatever the log's length: the seqs seen are kept
    as runs, and only the latest events' hashes are kept.
    """

    def __init__(
        self, *, collect: bool = False, validate: bool = False, location: str = ""
    ) -> None:
        self.collect = collect
        self.validate = validate or not collect
        self.location = location
        self.problems: list[Problem] = []
        self.torn: str | None = None
        self.identity: tuple[str, int] | None = None
        self.outputs: frozenset[str] | None = None
        self.seen = _SeqSet()
        # Hashes of the latest events only, to tell a duplicate's content
        # apart: memory stays bounded whatever the log's length.
        self.recent: dict[int, str] = {}
        self.damaged: set[int] = set()
        self.max_seq = -1
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.last_ts = 0
        self.sealed_at: int | None = None
        self.status: str | None = None
        self.final_hash: str | None = None
        self.tail_damaged = False
        self.blank_at: int | None = None
        self.count = 0

    @property
    def expected(self) -> int:
        """The ``seq`` the next record should have, judged by position (`int`)."""
        return self.last_seq + 1 if self.last_seq is not None else 0

    def add(self, kind: ProblemKind, message: str, seq: int | None, position: int | None) -> None:
        """Report a problem: raise it (raising mode) or keep it (collecting mode)."""
        if not self.collect:
            raise LogCorruptedError(message, line=position, seq=seq)
        self.problems.append(Problem(kind=kind, seq=seq, position=position, message=message))

    def check(self, position: int, record: bytes, complete: bool = True) -> Event | None:
        """Check the next stored record.

        Parameters
        ----------
        position : `int`
            Its line (files) or row (tables), from 1.
        record : `bytes`
            The record as stored, without a line ending.
        complete : `bool`, optional
            `False` for a file's last line when it lacks its newline.

        Returns
        -------
        event : `Event` or `None`
            In raising mode, the checked event; `None` for a blank line, a
            torn last record (then `torn` holds why), and in collecting mode.
        """
        if record[:1] != b"{" and not record.strip():
            # Blank lines are harmless only at the very end of a file.
            self.blank_at = position if self.blank_at is None else self.blank_at
            return None
        if self.blank_at is not None:
            blank, self.blank_at = self.blank_at, None
            self.add("malformed", "blank line inside the log", None, blank)
        try:
            raw = orjson.loads(record)
        except orjson.JSONDecodeError as err:
            self.not_json(position, record, complete, err)
            return None
        self.count += 1
        if not isinstance(raw, dict):
            self.add("malformed", "a record must be a JSON object", self.expected, position)
            self.set_aside(advance=False)
            return None
        return self.event(raw, position, record)

    def check_raw(self, raw: dict[str, Any], position: int) -> Event:
        """Check the next event given as its fields, with no stored bytes (raising mode)."""
        event = self.event(raw, position, None)
        assert event is not None  # raising mode returns every event it passes
        return event

    def not_json(
        self, position: int, record: bytes, complete: bool, err: orjson.JSONDecodeError
    ) -> None:
        """Report a record that does not parse: torn, damaged, or never a record at all."""
        if not self.collect and not _looks_like_a_record(record):
            self.add(
                "malformed",
                "not a JSON Lines log record: binary or foreign data, not an event",
                None,
                position,
            )
        if not complete:
            # Only the last line can lack its newline, and a cut JSON object
            # never parses: its writer was killed mid-write. A whole last
            # event without its newline is read normally.
            self.torn = (
                f"{self.location}: line {position} is incomplete ({len(record)} bytes, no "
                "newline): its writer was killed mid-write; it was ignored."
            )
            if self.collect:
                self.add(
                    "truncated",
                    f"the last record is incomplete ({len(record)} bytes, no newline): "
                    "its writer was killed mid-write, or the file was cut",
                    self.expected,
                    position,
                )
            return
        # Inserted or in place of an event: either way its successor's link
        # cannot be checked, and no seq is taken from it.
        self.add(
            "tampered",
            f"not valid JSON ({err}): the record was altered or damaged",
            None if not self.collect else self.expected,
            position,
        )
        self.set_aside(advance=False)

    def set_aside(self, *, advance: bool) -> None:
        """Skip a record that cannot be trusted: its successor's link is unknown."""
        self.damaged.add(self.expected)
        if advance:
            self.last_seq = self.expected
        self.last_hash = None
        self.tail_damaged = True

    def event(self, raw: dict[str, Any], position: int, record: bytes | None) -> Event | None:
        """Check one parsed record: its hash, envelope and place in the chain."""
        parsed: Event | None = None
        if not self.collect:
            # Reading returns the event, and an event this library cannot
            # read raises its own error type even if its hash is also wrong.
            try:
                parsed = parse_event(raw)
            except LogCorruptedError as err:
                raise err.at_line(position) from None
        seq = raw.get("seq")
        stored_hash = raw.get("hash")
        prev_hash = raw.get("prev_hash")
        if type(stored_hash) is str:
            # The digest seals what is stored, whatever state it is in.
            self.final_hash = stored_hash
        if (
            type(seq) is not int
            or type(stored_hash) is not str
            or type(prev_hash) is not str
            or not prev_hash.isascii()
        ):
            self.add(
                "malformed",
                "an event needs an integer seq and hex prev_hash and hash",
                self.expected,
                position,
            )
            self.set_aside(advance=True)
            return None
        if not self.hash_holds(raw, record, seq, stored_hash, prev_hash, position):
            return None
        self.tail_damaged = False
        if not self.collect and seq != self.expected:
            # Reading returns events in order: the next record must be the next seq.
            what = (
                "an event is missing or events are reordered"
                if seq > self.expected
                else "an event is duplicated or events are reordered"
            )
            self.add(
                "missing" if seq > self.expected else "duplicated",
                f"expected seq {self.expected}, found seq {seq}: {what}",
                seq,
                position,
            )
        self.envelope(raw, seq, position)
        self.order(seq, stored_hash, prev_hash, position)
        if self.collect and self.validate:
            try:
                parse_event(raw)
            except LogCorruptedError as err:
                self.add("malformed", err.message, seq, position)
        return parsed

    def hash_holds(
        self,
        raw: dict[str, Any],
        record: bytes | None,
        seq: int,
        stored_hash: str,
        prev_hash: str,
        position: int,
    ) -> bool:
        """Check that the stored hash covers the record's bytes; set the record aside if not."""
        parts = None if record is None else hashed_part(record)
        if parts is not None:
            # The writer's layout: the bytes before ',"hash"' (and a closing
            # brace) are exactly what the hash covers, so any changed byte
            # changes the hash, with no need to serialize the event again.
            covered = parts[0]
            if sha256(prev_hash.encode() + covered).hexdigest() != stored_hash:
                return self.tampered(_HASH_MISMATCH, seq, position)
            if self.validate and canonical_json(_without_hash(raw)) != covered:
                return self.tampered(_NOT_CANONICAL, seq, position)
            return True
        canonical = canonical_json(_without_hash(raw))
        if chain_hash(prev_hash, canonical) != stored_hash:
            return self.tampered(_HASH_MISMATCH, seq, position)
        if record is None:
            return True  # events given as fields: there are no stored bytes to compare
        return self.tampered(_NOT_CANONICAL, seq, position)

    def tampered(self, what: str, seq: int, position: int) -> bool:
        # Reading names the seq the record claims; verification does not
        # trust a damaged record's fields and names the seq its place implies.
        self.add(
            "tampered",
            what,
            self.expected if self.collect else seq,
            position,
        )
        self.set_aside(advance=True)
        return False

    def envelope(self, raw: dict[str, Any], seq: int, position: int) -> None:
        """Check the fields every event carries: version, quantum attempt, seal, time."""
        kind = raw.get("kind")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            self.version(version, seq, position)
        sealed = self.sealed_at is not None
        if sealed and not self.collect:
            self.after_seal(seq, position)  # reading stops at the seal before anything else
        identity = self.identity
        if identity is None:
            self.first(raw, kind, seq, position)
        elif raw.get("quantum_id") != identity[0] or raw.get("attempt") != identity[1]:
            self.add(
                "spliced",
                f"event of quantum {raw.get('quantum_id')} attempt {raw.get('attempt')} in the "
                f"log of quantum {identity[0]} attempt {identity[1]}: logs were spliced",
                seq,
                position,
            )
        if sealed and self.collect:
            self.after_seal(seq, position)
        if self.collect:
            # What verification also reports, though the chain is whole: the
            # events still read, so reading does not refuse them.
            self.time(raw, seq, position)
            if kind in _WITH_DATASETS:
                self.datasets(raw, kind, seq, position)
        if kind == "quantum_finished" and self.sealed_at is None:
            self.sealed_at = seq
            status = raw.get("status")
            self.status = status if isinstance(status, str) else "unknown"

    def after_seal(self, seq: int, position: int) -> None:
        self.add(
            "after_seal",
            f"event follows quantum_finished (seq {self.sealed_at}): the log was sealed",
            seq,
            position,
        )

    def time(self, raw: dict[str, Any], seq: int, position: int) -> None:
        ts = raw.get("timestamp_ns")
        if type(ts) is not int:
            self.add("malformed", "timestamp_ns is not an integer", seq, position)
        elif seq > self.max_seq:
            # An event out of order is reported as such, not for its time.
            if ts < self.last_ts:
                self.add(
                    "time_reversed",
                    f"timestamp {ts} is earlier than the previous event's {self.last_ts}",
                    seq,
                    position,
                )
            else:
                self.last_ts = ts

    def version(self, version: object, seq: int, position: int) -> None:
        if not _is_int(version) or version < 1:
            self.add("malformed", f"no valid schema_version ({version!r})", seq, position)
        elif version > SCHEMA_VERSION:
            self.add(
                "unsupported",
                f"written with schema version {version}; this qbb_events reads versions up to "
                f"{SCHEMA_VERSION}: upgrade to one that reads version {version}",
                seq,
                position,
            )

    def first(self, raw: dict[str, Any], kind: object, seq: int, position: int) -> None:
        if not self.damaged and (kind != "quantum_started" or seq != 0):
            self.add(
                "not_started",
                f"the log begins with {kind} seq {seq}, not quantum_started seq 0: "
                "a log must start with quantum_started",
                seq,
                position,
            )
        quantum_id, attempt = raw.get("quantum_id"), raw.get("attempt")
        if _is_uuid(quantum_id) and _is_int(attempt):
            self.identity = (quantum_id, attempt)
        else:
            self.add("malformed", "quantum_id is not a UUID or attempt not an int", seq, None)

    def datasets(self, raw: dict[str, Any], kind: object, seq: int, position: int) -> None:
        if kind == "quantum_started":
            quantum = raw.get("quantum")
            if not isinstance(quantum, dict):
                self.add("malformed", "quantum_started holds no quantum", seq, position)
                return
            if quantum.get("id") != raw.get("quantum_id"):
                self.add(
                    "inconsistent",
                    f"quantum_started describes quantum {quantum.get('id')}, but the event "
                    f"belongs to {raw.get('quantum_id')}",
                    seq,
                    position,
                )
            outputs = quantum.get("outputs")
            refs = outputs if isinstance(outputs, list) else []
            self.outputs = frozenset(
                ref["id"]
                for ref in refs
                if isinstance(ref, dict) and isinstance(ref.get("id"), str)
            )
            return
        if kind == "output_written":
            named = [raw.get("dataset_id")]
        elif kind == "datasets_pruned":
            removed = raw.get("removed")
            named = list(removed) if isinstance(removed, list) else [removed]
        else:
            return
        if self.outputs is None:
            return  # quantum_started is missing or damaged: that is reported already
        outputs = self.outputs
        stray = [str(d) for d in named if not isinstance(d, str) or d not in outputs]
        if stray:
            what = "written" if kind == "output_written" else "deleted"
            self.add(
                "inconsistent",
                f"{kind} names {', '.join(stray)}, which the quantum does not predict as an "
                f"output, so it cannot have {what} it",
                seq,
                position,
            )

    def order(self, seq: int, stored_hash: str, prev_hash: str, position: int) -> None:
        """Place the event in the chain: duplicates, disorder, and its link to its predecessor."""
        # Reading has required the next seq already: only its link is left to check.
        collect = self.collect
        if collect and seq in self.seen:
            earlier = self.recent.get(seq)
            self.add(
                "duplicated",
                f"seq {seq} is stored again"
                + ("" if earlier in (None, stored_hash) else ", with other content"),
                seq,
                position,
            )
        elif collect and seq < self.max_seq:
            self.add(
                "reordered",
                f"seq {seq} is stored after seq {self.max_seq}",
                seq,
                position,
            )
        elif seq == 0 and prev_hash != GENESIS_HASH:
            self.add("tampered", "the first event's prev_hash is not the genesis hash", 0, position)
        elif (
            # Only an event stored right after its predecessor can be linked to it.
            self.last_seq is not None
            and seq == self.last_seq + 1
            and self.last_hash is not None
            and prev_hash != self.last_hash
        ):
            # Verification names the event at fault; reading, where it stopped.
            self.add(
                "tampered",
                f"seq {seq}'s prev_hash is not seq {self.last_seq}'s hash: seq "
                f"{self.last_seq} was altered and its hash recomputed, or replaced",
                self.last_seq if collect else seq,
                position,
            )
        if collect and seq not in self.seen:
            self.seen.add(seq)
            self.recent[seq] = stored_hash
            if len(self.recent) > _RECENT:
                del self.recent[next(iter(self.recent))]
        self.max_seq = max(self.max_seq, seq)
        self.last_seq = seq
        self.last_hash = stored_hash

    def finish(self) -> list[Problem]:
        """Report what only the whole log shows (collecting mode) and return every problem."""
        if not self.count and not self.problems:
            # An empty file (a writer killed before its first event, or
            # something that is not a log at all) proves nothing: reported.
            self.add(
                "not_started",
                "the log holds no events: no quantum_started was ever stored",
                0,
                None,
            )
        for first, last in self.seen.gaps(self.damaged):
            span = f"seq {first}" if first == last else f"seqs {first} to {last}"
            self.add("missing", f"{span} not stored: events were deleted", first, None)
        if self.count and self.sealed_at is None and not self.tail_damaged:
            self.add(
                "unsealed",
                f"no quantum_finished after seq {self.max_seq}: the quantum did not finish, "
                "or the log's tail was cut",
                self.max_seq + 1,
                None,
            )
        return self.problems


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


def _without_hash(raw: dict[str, Any]) -> dict[str, Any]:
    body = dict(raw)
    body.pop("hash", None)
    return body


class _SeqSet:
    """The seqs seen in a log, as sorted disjoint runs ``[start, end)``.

    A sound log is one run however long it is, so verification's memory
    does not grow with the events; only disorder adds runs. A forged huge
    seq is one more run, never the range it spans.
    """

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, seq: int) -> bool:
        index = bisect.bisect_right(self.starts, seq) - 1
        return index >= 0 and seq < self.ends[index]

    def add(self, seq: int) -> None:
        """Add a seq that is not in the set."""
        starts, ends = self.starts, self.ends
        if ends and ends[-1] == seq:  # the common case: the next event
            ends[-1] = seq + 1
            return
        index = bisect.bisect_right(starts, seq)
        joins_left = index > 0 and ends[index - 1] == seq
        joins_right = index < len(starts) and starts[index] == seq + 1
        if joins_left and joins_right:
            ends[index - 1] = ends[index]
            del starts[index], ends[index]
        elif joins_left:
            ends[index - 1] = seq + 1
        elif joins_right:
            starts[index] = seq
        else:
            starts.insert(index, seq)
            ends.insert(index, seq + 1)

    def gaps(self, also: set[int]) -> Iterator[tuple[int, int]]:
        """Yield the runs ``(first, last)`` of seqs from 0 in neither this set nor ``also``."""
        runs = sorted([*zip(self.starts, self.ends, strict=True), *((s, s + 1) for s in also)])
        expected = 0
        for start, end in runs:
            if start > expected:
                yield expected, start - 1
            expected = max(expected, end)


_RECENT = 4096
"""How many latest events' hashes a checker keeps to describe a duplicate."""


def _is_int(value: object) -> TypeIs[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_uuid(value: object) -> TypeIs[str]:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
