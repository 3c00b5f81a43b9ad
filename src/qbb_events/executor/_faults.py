"""Failure injection for the main job: fail, lose an output, or be killed.

Each draw is a pure function of (seed, what, quantum id, attempt), so a run
is reproducible and a retry draws afresh.
"""

from __future__ import annotations

import hashlib
import os
import signal
import uuid
from dataclasses import dataclass
from typing import Any

from ..butler import QuantumBackedButler
from ..model import DatasetRef
from ..quantum import Quantum
from ._task import optional_inputs

__all__ = ["FaultInjection", "InjectedFailureError"]


class InjectedFailureError(RuntimeError):
    """The failure `FaultInjection` makes a task raise."""


@dataclass(frozen=True)
class FaultInjection:
    """Rates of injected faults, each a probability per quantum attempt.

    Parameters
    ----------
    fail_rate : `float`
        The task raises `InjectedFailureError` after it ran (its outputs are then
        partial outputs of a failed attempt).
    missing_rate : `float`
        The task's first output is not written (the put is dropped).
    kill_rate : `float`
        The worker kills itself with SIGKILL after the task ran, before the
        log is sealed.
    seed : `int`
        Seed of every draw.
    """

    fail_rate: float = 0.0
    missing_rate: float = 0.0
    kill_rate: float = 0.0
    seed: int = 0

    @property
    def active(self) -> bool:
        """Whether any rate is above zero (`bool`)."""
        return max(self.fail_rate, self.missing_rate, self.kill_rate) > 0

    def draw(self, what: str, quantum_id: uuid.UUID, attempt: int) -> bool:
        """Return whether the fault ``what`` happens to this attempt.

        Parameters
        ----------
        what : `str`
            ``fail``, ``missing`` or ``kill``.
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.

        Returns
        -------
        happens : `bool`
            A deterministic draw against the rate of ``what``.
        """
        rate = {"fail": self.fail_rate, "missing": self.missing_rate, "kill": self.kill_rate}[what]
        digest = hashlib.sha256(f"{self.seed}:{what}:{quantum_id}:{attempt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def wrap(self, task: Any, attempt: int) -> Any:
        """Return ``task`` with these faults injected into one attempt.

        Parameters
        ----------
        task : `Task`
            The task.
        attempt : `int`
            The attempt it will run as.

        Returns
        -------
        task : `Task`
            A task that runs ``task`` and injects the drawn faults.
        """
        return task if not self.active else _Faulty(task, self, attempt)


class _DroppingButler:
    """A butler whose put of one output does nothing (a lost output)."""

    def __init__(self, butler: QuantumBackedButler, dropped: uuid.UUID) -> None:
        self._butler = butler
        self._dropped = dropped

    def put(self, obj: Any, ref: DatasetRef, /) -> DatasetRef:
        if ref.id == self._dropped:
            return ref
        return self._butler.put(obj, ref)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._butler, name)


class _Faulty:
    def __init__(self, task: Any, faults: FaultInjection, attempt: int) -> None:
        self._task = task
        self._faults = faults
        self._attempt = attempt
        self.optional_inputs = optional_inputs(task)

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        draw = self._faults.draw
        target: Any = butler
        if quantum.outputs and draw("missing", quantum.id, self._attempt):
            target = _DroppingButler(butler, quantum.outputs[0].id)
        self._task.run(target, quantum)
        if draw("kill", quantum.id, self._attempt):
            os.kill(os.getpid(), signal.SIGKILL)
        if draw("fail", quantum.id, self._attempt):
            raise InjectedFailureError(f"injected failure (attempt {self._attempt})")
