"""Verification of stored logs: per-quantum problem reports and a run-level digest."""

from __future__ import annotations

import bisect
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from hashlib import sha256
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeIs

from ..errors import LogCorruptedError
from ..events import GENESIS_HASH, SCHEMA_VERSION, canonical_json, chain_hash, parse_event
from ._fast_verification import fast_candidate, fast_verdicts
from ._records import StoredLog, hashed_part

__all__ = [
    "LogVerification",
    "Problem",
    "ProblemKind",
    "VerificationReport",
    "run_digest",
    "verify_stored_logs",
]

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

_frozen = ConfigDict(frozen=True, extra="forbid")
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

    model_config = _frozen

    kind: ProblemKind
    seq: int | None
    position: int | None
    message: str

    def __str__(self) -> str:
        where = [] if self.seq is None else [f"seq {self.seq}"]
        where += [] if self.position is None else [f"position {self.position}"]
        return f"{self.kind} ({', '.join(where) or 'log'}): {self.message}"


class LogVerification(BaseModel):
    """The verdict on one stored log.

    Parameters
    ----------
    location : `str`
        Where the log is stored.
    quantum_id : `uuid.UUID` or `None`
        Its quantum, from its first event (`None` if no event was readable).
    attempt : `int` or `None`
        Its attempt number.
    events : `int`
        How many records were read.
    final_hash : `str` or `None`
        The stored hash of the last event, as the run digest uses it.
    status : `str` or `None`
        The ``status`` of ``quantum_finished``, if the log is sealed.
    problems : `tuple` [`Problem`, ...]
        Everything found wrong, in stored order; empty for a sound log.
    """

    model_config = _frozen

    location: str
    quantum_id: uuid.UUID | None
    attempt: int | None
    events: int
    final_hash: str | None
    status: str | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether the log has no problem at all (`bool`)."""
        return not self.problems

    @property
    def sealed(self) -> bool:
        """Whether the log ends with ``quantum_finished`` (`bool`)."""
        return self.status is not None


class VerificationReport(BaseModel):
    """The verdict on a set of stored logs, such as a whole run.

    Parameters
    ----------
    logs : `tuple` [`LogVerification`, ...]
        One verdict per stored log, sorted by quantum id and attempt.
    digest : `str`
        `run_digest` of the logs' final hashes.
    expected_digest : `str` or `None`
        The digest the caller expected, if any.
    """

    model_config = _frozen

    logs: tuple[LogVerification, ...]
    digest: str
    expected_digest: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every log is sound and the digest is as expected (`bool`)."""
        return not any(True for _ in self.problems())

    @property
    def events(self) -> int:
        """How many records were read in all (`int`)."""
        return sum(log.events for log in self.logs)

    def problems(self) -> Iterator[tuple[LogVerification, Problem]]:
        """Yield every problem with the log it belongs to.

        Yields
        ------
        item : `tuple` [`LogVerification`, `Problem`]
            A log and one of its problems; a digest mismatch comes last,
            with a log whose location is ``run``.
        """
        for log in self.logs:
            for problem in log.problems:
                yield log, problem
        if self.expected_digest is not None and self.expected_digest != self.digest:
            run = LogVerification(
                location="run",
                quantum_id=None,
                attempt=None,
                events=self.events,
                final_hash=None,
                status=None,
                problems=(),
            )
            yield (
                run,
                Problem(
                    kind="digest_mismatch",
                    seq=None,
                    position=None,
                    message=f"run digest is {self.digest}, expected {self.expected_digest}",
                ),
            )


def run_digest(finals: Iterable[tuple[uuid.UUID, int, str]]) -> str:
    r"""Return the digest that seals a run's logs.

    Parameters
    ----------
    finals : `~collections.abc.Iterable` [`tuple` [`uuid.UUID`, `int`, `str`]]
        Each log's quantum id, attempt and final hash, in any order.

    Returns
    -------
    digest : `str`
        SHA-256 hex digest of the lines ``"<quantum id> <attempt> <final
        hash>\n"`` (hyphenated lower-case id, decimal attempt), sorted by
        quantum id string and then attempt number. Order-independent, so
        any store gives the same value for the same logs.
    """
    digest = hashlib.sha256()
    for quantum_id, attempt, final in sorted(finals, key=lambda f: (str(f[0]), f[1])):
        digest.update(f"{quantum_id} {attempt} {final}\n".encode("ascii"))
    return digest.hexdigest()


def verify_stored_logs(
    logs: Iterable[StoredLog],
    *,
    expected_digest: str | None = None,
    validate: bool = False,
) -> VerificationReport:
    """Verify stored logs one by one and digest their final hashes.

    Parameters
    ----------
    logs : `~collections.abc.Iterable` [`StoredLog`]
        The logs, from any store.
    expected_digest : `str`, optional
        A run digest recorded earlier; a different digest is a problem.
    validate : `bool`, optional
        Also validate every field of every event against its schema (about
        ten times slower); integrity checks alone find any change to a
        stored event, since its hash covers all of it.

    Returns
    -------
    report : `VerificationReport`
        The verdicts; never raises for a bad log.
    """
    slots: list[LogVerification | None] = []
    files: list[tuple[int, StoredLog]] = []
    locations: set[str] = set()
    for log in logs:
        # The same store reached twice (named and through its directory) is one log.
        if log.location not in locations:
            locations.add(log.location)
            if fast_candidate(log, validate):
                files.append((len(slots), log))
                slots.append(None)
            else:  # read now: a store's records may be readable only while it is listed
                slots.append(_LogChecker(log.location, validate).run(log))
    # Perfect log files are proved so in bulk; any other gets the full checker.
    for (index, log), fast in zip(files, fast_verdicts([f for _, f in files]), strict=True):
        slots[index] = (
            _LogChecker(log.location, validate).run(log)
            if fast is None
            else LogVerification(location=log.location, **fast._asdict(), problems=())
        )
    verdicts = [verdict for verdict in slots if verdict is not None]
    _flag_duplicate_logs(verdicts)
    verdicts.sort(key=lambda v: (str(v.quantum_id), v.attempt or 0, v.location))
    finals = [
        (v.quantum_id, v.attempt or 0, v.final_hash)
        for v in verdicts
        if v.quantum_id is not None and v.final_hash is not None
    ]
    return VerificationReport(
        logs=tuple(verdicts), digest=run_digest(finals), expected_digest=expected_digest
    )


def _flag_duplicate_logs(verdicts: list[LogVerification]) -> None:
    seen: dict[tuple[uuid.UUID, int | None], str] = {}
    for index, verdict in enumerate(verdicts):
        if verdict.quantum_id is None:
            continue
        key = (verdict.quantum_id, verdict.attempt)
        first = seen.setdefault(key, verdict.location)
        if first != verdict.location:
            problem = Problem(
                kind="duplicated",
                seq=None,
                position=None,
                message=f"another log of quantum {key[0]} attempt {key[1]} is at {first}",
            )
            verdicts[index] = verdict.model_copy(update={"problems": (*verdict.problems, problem)})


class _LogChecker:
    """Reads one stored log and collects its problems without stopping at the first.

    A record whose bytes fail their hash is reported once and then set
    aside: none of its fields (``seq``, ``prev_hash``, quantum, timestamp) is
    trusted to judge its neighbours, so one edit is one problem.
    """

    def __init__(self, location: str, validate: bool) -> None:
        self.location = location
        self.validate = validate
        self.problems: list[Problem] = []
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

    def add(self, kind: ProblemKind, message: str, seq: int | None, position: int | None) -> None:
        self.problems.append(Problem(kind=kind, seq=seq, position=position, message=message))

    def run(self, log: StoredLog) -> LogVerification:
        try:
            for position, record, complete in log:
                self.record(position, record, complete)
        except LogCorruptedError as err:
            # The store itself found its rows edited behind its back.
            self.add("tampered", f"reading stopped: {err}", err.seq, err.line)
        except OSError as err:
            self.add("unreadable", f"reading stopped: {err}", None, None)
        self.finish()
        return LogVerification(
            location=self.location,
            quantum_id=uuid.UUID(self.identity[0]) if self.identity else None,
            attempt=self.identity[1] if self.identity else None,
            events=self.count,
            final_hash=self.final_hash,
            status=self.status,
            problems=tuple(self.problems),
        )

    @property
    def expected(self) -> int:
        """The ``seq`` the next record should have, judged by position."""
        return self.last_seq + 1 if self.last_seq is not None else 0

    def record(self, position: int, record: bytes, complete: bool) -> None:
        if record[:1] != b"{" and not record.strip():
            # Blank lines are harmless only at the very end of a file.
            self.blank_at = position if self.blank_at is None else self.blank_at
            return
        if self.blank_at is not None:
            self.add("malformed", "blank line inside the log", None, self.blank_at)
            self.blank_at = None
        try:
            raw = orjson.loads(record)
        except orjson.JSONDecodeError as err:
            if not complete:
                self.add(
                    "truncated",
                    f"the last record is incomplete ({len(record)} bytes, no newline): "
                    "its writer was killed mid-write, or the file was cut",
                    self.expected,
                    position,
                )
                return
            # Inserted or in place of an event: either way its successor's
            # link cannot be checked, and no seq is taken from it.
            self.add(
                "tampered",
                f"not valid JSON ({err}): the record was altered or damaged",
                self.expected,
                position,
            )
            self.set_aside(advance=False)
            return
        self.count += 1
        if not isinstance(raw, dict):
            self.add("malformed", "a record must be a JSON object", self.expected, position)
            self.set_aside(advance=False)
            return
        self.event(raw, record, position)

    def set_aside(self, *, advance: bool) -> None:
        """Skip a record that cannot be trusted: its successor's link is unknown."""
        self.damaged.add(self.expected)
        if advance:
            self.last_seq = self.expected
        self.last_hash = None
        self.tail_damaged = True

    def event(self, raw: dict[str, Any], record: bytes, position: int) -> None:
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
            return
        parts = hashed_part(record)
        if parts is not None:
            # The writer's layout: the bytes before ',"hash"' (and a closing
            # brace) are exactly what the hash covers, so any changed byte
            # changes the hash, with no need to serialize the event again.
            covered = parts[0]
            if sha256(prev_hash.encode() + covered).hexdigest() != stored_hash:
                self.tampered("the hash does not match the event's content", position)
                return
            if self.validate and canonical_json(_without_hash(raw)) != covered:
                self.tampered("the record is not in canonical form", position)
                return
        else:
            canonical = canonical_json(_without_hash(raw))
            if chain_hash(prev_hash, canonical) != stored_hash:
                self.tampered("the hash does not match the event's content", position)
            else:
                self.tampered(
                    "the record's bytes are not the canonical form of its content: it was "
                    "rewritten (spacing, key order, escapes or line ending)",
                    position,
                )
            return
        self.tail_damaged = False
        self.envelope(raw, seq, position)
        self.order(seq, stored_hash, prev_hash, position)
        if self.validate:
            try:
                parse_event(raw)
            except LogCorruptedError as err:
                self.add("malformed", err.message, seq, position)

    def tampered(self, what: str, position: int) -> None:
        self.add("tampered", f"{what}: the event was altered", self.expected, position)
        self.set_aside(advance=True)

    def envelope(self, raw: dict[str, Any], seq: int, position: int) -> None:
        kind = raw.get("kind")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            self.version(version, seq, position)
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
        if self.sealed_at is not None:
            self.add(
                "after_seal",
                f"event follows quantum_finished (seq {self.sealed_at}): the log was sealed",
                seq,
                position,
            )
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
        if kind in _WITH_DATASETS:
            self.datasets(raw, kind, seq, position)
        if kind == "quantum_finished" and self.sealed_at is None:
            self.sealed_at = seq
            status = raw.get("status")
            self.status = status if isinstance(status, str) else "unknown"

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
                f"the log begins with {kind} seq {seq}, not quantum_started seq 0",
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
        if seq in self.seen:
            earlier = self.recent.get(seq)
            self.add(
                "duplicated",
                f"seq {seq} is stored again"
                + ("" if earlier in (None, stored_hash) else ", with other content"),
                seq,
                position,
            )
        elif seq < self.max_seq:
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
            self.add(
                "tampered",
                f"seq {seq}'s prev_hash is not seq {self.last_seq}'s hash: seq "
                f"{self.last_seq} was altered and its hash recomputed, or replaced",
                self.last_seq,
                position,
            )
        if seq not in self.seen:
            self.seen.add(seq)
            self.recent[seq] = stored_hash
            if len(self.recent) > _RECENT:
                del self.recent[next(iter(self.recent))]
        self.max_seq = max(self.max_seq, seq)
        self.last_seq = seq
        self.last_hash = stored_hash

    def finish(self) -> None:
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


def _without_hash(raw: dict[str, Any]) -> dict[str, Any]:
    body = dict(raw)
    del body["hash"]
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
