"""`Quantum`: one execution of one task on one data ID, with its predicted datasets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .errors import InvalidDefinitionError
from .ids import as_uuid, uuid7
from .model import DataId, DataIdValue, DatasetRef, check_text
from .records import FileRecord, record_from_data

__all__ = ["Quantum"]


def _ref_list(refs: Any, what: str) -> list[DatasetRef]:
    if isinstance(refs, Mapping):
        groups = list(refs.values())
        for group in groups:
            if isinstance(group, DatasetRef | str | bytes) or not isinstance(group, Iterable):
                raise InvalidDefinitionError(
                    f"Quantum {what} mapping values must be iterables of DatasetRef, "
                    f"got {type(group).__name__}."
                )
        refs = [ref for group in groups for ref in group]
    if isinstance(refs, DatasetRef | str | bytes) or not isinstance(refs, Iterable):
        raise InvalidDefinitionError(f"Quantum {what} must be an iterable of DatasetRef.")
    result = list(refs)
    for ref in result:
        if not isinstance(ref, DatasetRef):
            raise InvalidDefinitionError(
                f"Quantum {what} must hold DatasetRef objects, got {type(ref).__name__}."
            )
    return result


def _dedupe(
    refs: list[DatasetRef], seen: dict[uuid.UUID, DatasetRef], what: str
) -> tuple[DatasetRef, ...]:
    result = []
    for ref in refs:
        prior = seen.get(ref.id)
        if prior is None:
            seen[ref.id] = ref
            result.append(ref)
        elif prior != ref:
            raise InvalidDefinitionError(
                f"Quantum {what} lists dataset id {ref.id} twice with different "
                f"definitions: {prior!r} and {ref!r}."
            )
    return tuple(result)


class Quantum:
    """One execution of one task on one data ID, with its predicted datasets.

    Parameters
    ----------
    task_label : `str`
        Label of the task in its pipeline.
    data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
        Data ID the task runs on.
    inputs : `~collections.abc.Iterable` [`DatasetRef`] or mapping of name to refs
        Predicted inputs.
    outputs : `~collections.abc.Iterable` [`DatasetRef`] or mapping of name to refs
        Predicted outputs.
    init_inputs : `~collections.abc.Iterable` [`DatasetRef`] or mapping, optional
        Predicted init-inputs; they count as predicted inputs.
    id : `uuid.UUID` or `str`, optional
        Quantum id; `None` makes a new UUIDv7.
    datastore_records : `~collections.abc.Mapping` [`str`, iterable of `FileRecord`], optional
        Datastore records of the inputs, by datastore name.

    Raises
    ------
    InvalidDefinitionError
        If an argument is malformed, a dataset id appears twice with different
        definitions, or a dataset is both an input and an output.
    """

    __slots__ = (
        "_data_id",
        "_datastore_records",
        "_id",
        "_init_inputs",
        "_input_ids",
        "_inputs",
        "_output_ids",
        "_outputs",
        "_task_label",
    )

    def __init__(
        self,
        task_label: str,
        data_id: Mapping[str, DataIdValue],
        inputs: Iterable[DatasetRef] | Mapping[Any, Iterable[DatasetRef]],
        outputs: Iterable[DatasetRef] | Mapping[Any, Iterable[DatasetRef]],
        init_inputs: Iterable[DatasetRef] | Mapping[Any, Iterable[DatasetRef]] = (),
        id: uuid.UUID | str | None = None,
        datastore_records: Mapping[str, Iterable[FileRecord | Mapping[str, Any]]] | None = None,
    ) -> None:
        self._task_label = check_text(task_label, "Task label")
        self._data_id = DataId(data_id)
        self._id = uuid7() if id is None else as_uuid(id, "Quantum id")
        seen_inputs: dict[uuid.UUID, DatasetRef] = {}
        self._inputs = _dedupe(_ref_list(inputs, "inputs"), seen_inputs, "inputs")
        self._init_inputs = _dedupe(
            _ref_list(init_inputs, "init_inputs"), seen_inputs, "inputs and init-inputs"
        )
        seen_outputs: dict[uuid.UUID, DatasetRef] = {}
        self._outputs = _dedupe(_ref_list(outputs, "outputs"), seen_outputs, "outputs")
        both = seen_inputs.keys() & seen_outputs.keys()
        if both:
            raise InvalidDefinitionError(
                f"Datasets {sorted(map(str, both))} are listed both as inputs and as outputs "
                f"of quantum {self._task_label!r} {self._data_id.to_dict()}."
            )
        self._input_ids = MappingProxyType(seen_inputs)
        self._output_ids = MappingProxyType(seen_outputs)
        records: dict[str, tuple[FileRecord, ...]] = {}
        for name, group in (datastore_records or {}).items():
            records[check_text(name, "Datastore name")] = tuple(map(record_from_data, group))
        self._datastore_records = MappingProxyType(records)

    @property
    def id(self) -> uuid.UUID:
        """Quantum id (`uuid.UUID`)."""
        return self._id

    @property
    def task_label(self) -> str:
        """Task label (`str`)."""
        return self._task_label

    @property
    def data_id(self) -> DataId:
        """Data ID the task runs on (`DataId`)."""
        return self._data_id

    @property
    def inputs(self) -> tuple[DatasetRef, ...]:
        """Predicted inputs, without init-inputs (`tuple` [`DatasetRef`, ...])."""
        return self._inputs

    @property
    def init_inputs(self) -> tuple[DatasetRef, ...]:
        """Predicted init-inputs (`tuple` [`DatasetRef`, ...])."""
        return self._init_inputs

    @property
    def outputs(self) -> tuple[DatasetRef, ...]:
        """Predicted outputs (`tuple` [`DatasetRef`, ...])."""
        return self._outputs

    @property
    def predicted_inputs(self) -> Mapping[uuid.UUID, DatasetRef]:
        """Inputs and init-inputs by id (`~collections.abc.Mapping`)."""
        return self._input_ids

    @property
    def predicted_outputs(self) -> Mapping[uuid.UUID, DatasetRef]:
        """Outputs by id (`~collections.abc.Mapping`)."""
        return self._output_ids

    @property
    def datastore_records(self) -> Mapping[str, tuple[FileRecord, ...]]:
        """Datastore records of the inputs, by datastore name (`~collections.abc.Mapping`)."""
        return self._datastore_records

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantum):
            return NotImplemented
        return self is other or (
            self._id == other._id
            and self._task_label == other._task_label
            and self._data_id == other._data_id
            and self._inputs == other._inputs
            and self._init_inputs == other._init_inputs
            and self._outputs == other._outputs
            and self._datastore_records == other._datastore_records
        )

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self._task_label, self._data_id, self._inputs, self._outputs, self._init_inputs)
        return (Quantum, (*args, self._id, dict(self._datastore_records)))

    def __repr__(self) -> str:
        return (
            f"Quantum({self._task_label!r}, {self._data_id.to_dict()!r}, "
            f"inputs={len(self._inputs) + len(self._init_inputs)}, "
            f"outputs={len(self._outputs)}, id={self._id})"
        )
