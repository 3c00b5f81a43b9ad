"""`TransferReport`: what a transfer added, skipped, refused and found in conflict."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ._rows import ArtifactProblem

__all__ = ["RefusedLog", "TransferConflict", "TransferReport"]

ConflictKind = Literal["dataset", "dataset_type", "record", "quantum"]


@dataclass(frozen=True, slots=True)
class TransferConflict:
    """Something the registry already holds with other content; it was left as it was.

    Parameters
    ----------
    kind : `str`
        ``dataset`` (same id, other type, run or data ID; or same type, run
        and data ID under another id), ``dataset_type`` (same name, other
        storage class or dimensions), ``record`` (same dataset and datastore,
        other record) or ``quantum`` (same quantum attempt, other log).
    key : `str`
        The id or name in conflict.
    message : `str`
        What the registry holds and what the transfer brought.
    """

    kind: ConflictKind
    key: str
    message: str


@dataclass(frozen=True, slots=True)
class RefusedLog:
    """A log that was not transferred because it did not verify.

    Parameters
    ----------
    location : `str`
        Where the log is stored.
    problems : `tuple` [`str`, ...]
        Its verification problems.
    """

    location: str
    problems: tuple[str, ...]


@dataclass(slots=True)
class TransferReport:
    """What one transfer did.

    Parameters
    ----------
    logs : `int`
        Logs (or provenance documents) read.
    quanta_new : `int`
        Quantum attempts added.
    quanta_existing : `int`
        Quantum attempts the registry already held from the same log.
    datasets_new : `int`
        Output datasets registered.
    datasets_existing : `int`
        Outputs the registry already held, identical.
    records_new : `int`
        Datastore records added.
    provenance_rows_new : `int`
        Provenance rows added.
    batches : `int`
        Transactions committed.
    conflicts : `list` [`TransferConflict`]
        Rows held with other content, never overwritten.
    refused : `list` [`RefusedLog`]
        Logs that did not verify (without ``force_unverified``).
    unverified : `list` [`str`]
        Logs transferred although they did not verify; their quanta are
        marked ``verified = false``.
    aborted : `list` [`str`]
        Quantum attempts (``id/attempt``) whose log was unsealed: registered
        with status ``aborted`` and no outputs.
    artifact_problems : `list` [`ArtifactProblem`]
        Outputs not registered because their artifact does not match.
    """

    logs: int = 0
    quanta_new: int = 0
    quanta_existing: int = 0
    datasets_new: int = 0
    datasets_existing: int = 0
    records_new: int = 0
    provenance_rows_new: int = 0
    batches: int = 0
    conflicts: list[TransferConflict] = field(default_factory=list)
    refused: list[RefusedLog] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    artifact_problems: list[ArtifactProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was refused, in conflict or held back (`bool`)."""
        return not (self.conflicts or self.refused or self.artifact_problems)

    def merge(self, other: TransferReport) -> None:
        """Add another report's counts and lists to this one.

        Parameters
        ----------
        other : `TransferReport`
            A report of another part of the same transfer.
        """
        for name in (
            "logs",
            "quanta_new",
            "quanta_existing",
            "datasets_new",
            "datasets_existing",
            "records_new",
            "provenance_rows_new",
            "batches",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.conflicts.extend(other.conflicts)
        self.refused.extend(other.refused)
        self.unverified.extend(other.unverified)
        self.aborted.extend(other.aborted)
        self.artifact_problems.extend(other.artifact_problems)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data.

        Returns
        -------
        data : `dict`
            Every field, ids as strings, plus ``ok``.
        """
        data = asdict(self)
        for problem in data["artifact_problems"]:
            problem["dataset_id"] = str(problem["dataset_id"])
        data["ok"] = self.ok
        return data


def attempt_key(quantum_id: uuid.UUID, attempt: int) -> str:
    """Return ``id/attempt``, how reports name a quantum attempt."""
    return f"{quantum_id}/{attempt}"
