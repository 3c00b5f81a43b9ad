"""The task protocol: what the executor harness runs.

A task is any object with ``run(butler, quantum)``. It reads its inputs and
writes its outputs through the `QuantumBackedButler` it is given, and tells
its executor how it ended by returning (success) or by raising:

- `NoWorkFound`: nothing to do (status ``no_work``);
- `PartialOutputsError`: some outputs written, then an error worth reporting
  (status ``succeeded`` with the caveat ``partial_outputs_error``);
- `RepeatableQuantumError`: a failure a retry would repeat (exit code 20);
- `InvalidQuantumError`: the quantum is wrong (exit code 21);
- anything else: a failure worth retrying (exit code 1).

A task may also have ``optional_inputs``, the names of input dataset types it
can do without; every other predicted input is required, and a quantum
missing one is recorded as ``blocked`` without running the task.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

from ..butler import QuantumBackedButler
from ..quantum import Quantum

__all__ = ["Task", "optional_inputs"]


@runtime_checkable
class Task(Protocol):
    """What the executor harness runs for a quantum."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Read the quantum's inputs and write its outputs through ``butler``.

        Parameters
        ----------
        butler : `QuantumBackedButler`
            The recording butler of this quantum attempt.
        quantum : `Quantum`
            The quantum: its data ID and predicted inputs and outputs.
        """


def optional_inputs(task: object) -> frozenset[str]:
    """Return the input dataset type names a task can do without.

    Parameters
    ----------
    task : `object`
        A task; its ``optional_inputs`` attribute is read if it has one.

    Returns
    -------
    names : `frozenset` [`str`]
        Dataset type names; empty when the task declares none.
    """
    names: object = getattr(task, "optional_inputs", ())
    if isinstance(names, str) or not isinstance(names, Collection):
        return frozenset()
    return frozenset(str(name) for name in names)
