"""Verification of stored logs: per-quantum problem reports and a run-level digest."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict

from ..errors import LogCorruptedError
from ._chain import ChainChecker, Problem, ProblemKind
from ._fast_verification import fast_candidate, fast_verdicts
from ._records import StoredLog

__all__ = [
    "LogVerification",
    "Problem",
    "ProblemKind",
    "VerificationReport",
    "run_digest",
    "verify_stored_logs",
]

_frozen = ConfigDict(frozen=True, extra="forbid")


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
    """One stored log's verdict: the chain checker in collecting mode over its records."""

    def __init__(self, location: str, validate: bool) -> None:
        self.location = location
        self.checker = ChainChecker(collect=True, validate=validate)

    def run(self, log: StoredLog) -> LogVerification:
        checker = self.checker
        check = checker.check
        try:
            for position, record, complete in log:
                check(position, record, complete)
        except LogCorruptedError as err:
            # The store itself found its rows edited behind its back.
            checker.add("tampered", f"reading stopped: {err}", err.seq, err.line)
        except OSError as err:
            checker.add("unreadable", f"reading stopped: {err}", None, None)
        problems = checker.finish()
        identity = checker.identity
        return LogVerification(
            location=self.location,
            quantum_id=uuid.UUID(identity[0]) if identity else None,
            attempt=identity[1] if identity else None,
            events=checker.count,
            final_hash=checker.final_hash,
            status=checker.status,
            problems=tuple(problems),
        )
