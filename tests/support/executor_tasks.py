"""Tasks and pipelines the executor tests name as ``support.executor_tasks:FUNC``."""

from __future__ import annotations

from typing import Any

from qbb_events import (
    DatasetType,
    InvalidQuantumError,
    Pipeline,
    Quantum,
    QuantumBackedButler,
    RepeatableQuantumError,
    TaskDef,
)

SOURCE = DatasetType("source", "json", ("index",))
RESULT = DatasetType("result", "json", ("index",))


class Source:
    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        butler.put({"index": quantum.data_id["index"]}, quantum.outputs[0])


class Double:
    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        value = butler.get(quantum.inputs[0])
        butler.put({"double": 2 * value["index"]}, quantum.outputs[0])


class Raises:
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        raise self.error(f"{self.error.__name__} from the task")


class UsesAfterUnused:
    """Reads its input, then claims it did not use it, and writes what it read."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        value = butler.get(quantum.inputs[0])
        butler.markInputUnused(quantum.inputs[0])
        butler.put({"copied": value}, quantum.outputs[0])


class DependsOnPresence:
    """Checks its input, marks it unused, and writes whether it was there."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        present = butler.stored(quantum.inputs[0])
        butler.markInputUnused(quantum.inputs[0])
        butler.put({"present": present}, quantum.outputs[0])


def _two_tasks(second: Any, name: str) -> Pipeline:
    return Pipeline(
        [
            TaskDef("source", Source(), ("index",), (), (SOURCE,)),
            TaskDef("second", second, ("index",), (SOURCE,), (RESULT,)),
        ],
        name=name,
        data_ids=lambda quanta: [{"index": i} for i in range(max(1, quanta // 2))],
    )


def doubling() -> Pipeline:
    return _two_tasks(Double(), "doubling")


def repeatable() -> Pipeline:
    return _two_tasks(Raises(RepeatableQuantumError), "repeatable")


def invalid() -> Pipeline:
    return _two_tasks(Raises(InvalidQuantumError), "invalid")


def dishonest() -> Pipeline:
    return _two_tasks(UsesAfterUnused(), "dishonest")


def presence() -> Pipeline:
    return _two_tasks(DependsOnPresence(), "presence")


def not_a_pipeline() -> str:
    return "nope"
