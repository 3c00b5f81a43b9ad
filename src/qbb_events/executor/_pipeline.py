"""Pipelines: tasks with their input and output dataset types, planned into graphs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..butler import QuantumBackedButler
from ..errors import InvalidDefinitionError
from ..ids import deterministic_uuid
from ..model import DataIdValue, DatasetRef, DatasetType
from ..quantum import Quantum

__all__ = ["Pipeline", "TaskDef"]


@dataclass(frozen=True)
class TaskDef:
    """One task of a pipeline: what it runs on, reads and writes.

    Parameters
    ----------
    label : `str`
        The task's label, unique in its pipeline.
    task : `Task`
        The object whose ``run(butler, quantum)`` does the work.
    dimensions : `tuple` [`str`, ...]
        Data ID keys of its quanta: one quantum per distinct value.
    inputs : `tuple` [`DatasetType`, ...]
        Input dataset types. A quantum takes every dataset of each whose data
        ID agrees with the quantum's on their common keys.
    outputs : `tuple` [`DatasetType`, ...]
        Output dataset types; their dimensions must be among the task's.
    optional_inputs : `frozenset` [`str`]
        Input type names the task can do without; a quantum missing any other
        input is ``blocked``.
    """

    label: str
    task: Any
    dimensions: tuple[str, ...]
    inputs: tuple[DatasetType, ...] = ()
    outputs: tuple[DatasetType, ...] = ()
    optional_inputs: frozenset[str] = field(default_factory=frozenset)

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        """Run the task (a `TaskDef` is itself a task the harness can run).

        Parameters
        ----------
        butler : `QuantumBackedButler`
            The recording butler.
        quantum : `Quantum`
            The quantum.
        """
        self.task.run(butler, quantum)


def _default_data_ids(pipeline: Pipeline, quanta: int) -> list[dict[str, DataIdValue]]:
    keys = sorted({key for task in pipeline.tasks for key in task.dimensions})
    per_task = max(1, quanta // max(1, len(pipeline.tasks)))
    return [dict.fromkeys(keys, index) for index in range(per_task)]


class Pipeline:
    """Tasks connected by their dataset types, in a topological order.

    Parameters
    ----------
    tasks : `~collections.abc.Iterable` [`TaskDef`]
        The tasks, in any order.
    name : `str`
        A name recorded in the graphs it plans.
    data_ids : `~collections.abc.Callable`, optional
        ``data_ids(quanta)`` returns full data IDs (every key of every task)
        for a run of about ``quanta`` quanta; by default rows with every key
        equal to 0, 1, 2, ...

    Raises
    ------
    InvalidDefinitionError
        Duplicate labels, a type written by two tasks, an output with a key
        its task lacks, or a cycle.
    """

    def __init__(
        self,
        tasks: Iterable[TaskDef],
        *,
        name: str = "pipeline",
        data_ids: Callable[[int], Iterable[Mapping[str, DataIdValue]]] | None = None,
    ) -> None:
        tasks = list(tasks)
        labels = [task.label for task in tasks]
        if len(set(labels)) != len(labels):
            raise InvalidDefinitionError(f"Pipeline {name!r} repeats a task label: {labels}.")
        producer: dict[str, TaskDef] = {}
        for task in tasks:
            for out in task.outputs:
                if out.name in producer:
                    raise InvalidDefinitionError(
                        f"Dataset type {out.name!r} is written by both "
                        f"{producer[out.name].label!r} and {task.label!r}."
                    )
                if not set(out.dimensions) <= set(task.dimensions):
                    raise InvalidDefinitionError(
                        f"Output {out.name!r} of {task.label!r} has keys {out.dimensions} "
                        f"outside the task's {task.dimensions}."
                    )
                producer[out.name] = task
        order: list[TaskDef] = []
        state: dict[str, int] = {}

        def visit(task: TaskDef, path: tuple[str, ...]) -> None:
            if state.get(task.label) == 2:
                return
            if state.get(task.label) == 1:
                raise InvalidDefinitionError(f"Pipeline {name!r} has a cycle: {path}.")
            state[task.label] = 1
            for dataset_type in task.inputs:
                upstream = producer.get(dataset_type.name)
                if upstream is not None:
                    visit(upstream, (*path, upstream.label))
            state[task.label] = 2
            order.append(task)

        for task in tasks:
            visit(task, (task.label,))
        self._tasks = tuple(order)
        self._name = name
        self._data_ids = data_ids

    @property
    def name(self) -> str:
        """The pipeline's name (`str`)."""
        return self._name

    @property
    def tasks(self) -> tuple[TaskDef, ...]:
        """Tasks in topological order (`tuple` [`TaskDef`, ...])."""
        return self._tasks

    def task(self, label: str) -> TaskDef:
        """Return the task with a label.

        Parameters
        ----------
        label : `str`
            A task label.

        Returns
        -------
        task : `TaskDef`
            The task.

        Raises
        ------
        InvalidDefinitionError
            If no task has that label.
        """
        for task in self._tasks:
            if task.label == label:
                return task
        raise InvalidDefinitionError(f"Pipeline {self._name!r} has no task {label!r}.")

    def data_ids(self, quanta: int) -> list[dict[str, DataIdValue]]:
        """Return the full data IDs of a run of about ``quanta`` quanta.

        Parameters
        ----------
        quanta : `int`
            Target number of quanta.

        Returns
        -------
        data_ids : `list` [`dict`]
            Rows holding every key of every task.
        """
        if self._data_ids is None:
            return _default_data_ids(self, quanta)
        return [dict(row) for row in self._data_ids(quanta)]

    def plan(self, data_ids: Iterable[Mapping[str, DataIdValue]], *, run: str) -> list[Quantum]:
        """Make the quanta of a run, in topological order.

        Parameters
        ----------
        data_ids : `~collections.abc.Iterable` [`~collections.abc.Mapping`]
            Full data IDs; each task gets one quantum per distinct projection
            onto its dimensions.
        run : `str`
            RUN collection of every dataset; ids are deterministic in (run,
            type, data ID), and quantum ids in (run, task, data ID).

        Returns
        -------
        quanta : `list` [`Quantum`]
            One task's outputs are the next tasks' inputs.
        """
        rows = [dict(row) for row in data_ids]
        datasets: dict[str, list[DatasetRef]] = {}
        quanta: list[Quantum] = []
        for task in self._tasks:
            keys = task.dimensions
            projections = list(dict.fromkeys(_project(row, keys) for row in rows))
            lookups = [self._index(dt, keys, rows, datasets, run) for dt in task.inputs]
            produced: dict[str, list[DatasetRef]] = {dt.name: [] for dt in task.outputs}
            for values in projections:
                data_id = dict(zip(keys, values, strict=True))
                inputs = [
                    ref
                    for (common, index) in lookups
                    for ref in index.get(tuple(data_id[k] for k in common), ())
                ]
                outputs = []
                for dt in task.outputs:
                    ref = DatasetRef.deterministic(dt, {k: data_id[k] for k in dt.dimensions}, run)
                    produced[dt.name].append(ref)
                    outputs.append(ref)
                quantum_id = deterministic_uuid(
                    ["quantum", run, task.label, json.dumps(data_id, sort_keys=True)]
                )
                quanta.append(Quantum(task.label, data_id, inputs, outputs, id=quantum_id))
            datasets.update(produced)
        return quanta

    def _index(
        self,
        dataset_type: DatasetType,
        keys: Sequence[str],
        rows: list[dict[str, DataIdValue]],
        datasets: dict[str, list[DatasetRef]],
        run: str,
    ) -> tuple[tuple[str, ...], dict[tuple[DataIdValue, ...], list[DatasetRef]]]:
        refs = datasets.get(dataset_type.name)
        if refs is None:
            # Not written by this pipeline: it must already be in the datastore.
            refs = [
                DatasetRef.deterministic(
                    dataset_type, dict(zip(dataset_type.dimensions, v, strict=True)), run
                )
                for v in dict.fromkeys(_project(row, dataset_type.dimensions) for row in rows)
            ]
            datasets[dataset_type.name] = refs
        common = tuple(k for k in keys if k in dataset_type.dimensions)
        index: dict[tuple[DataIdValue, ...], list[DatasetRef]] = {}
        for ref in refs:
            index.setdefault(tuple(ref.data_id[k] for k in common), []).append(ref)
        return common, index


def _project(row: Mapping[str, DataIdValue], keys: Sequence[str]) -> tuple[DataIdValue, ...]:
    try:
        return tuple(row[k] for k in keys)
    except KeyError as err:
        raise InvalidDefinitionError(f"Data ID {dict(row)} has no key {err}.") from None
