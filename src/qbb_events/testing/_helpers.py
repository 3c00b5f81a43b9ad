"""Helpers for testing tasks and executors against the recording butler (see the package)."""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Final, get_args

from ..butler import QuantumBackedButler
from ..datastore import FileDatastore
from ..errors import ArgumentTypeError, InvalidDefinitionError
from ..events import Event, QuantumStarted
from ..fold import fold
from ..logs import EventLog
from ..model import DataIdValue, DatasetRef
from ..provenance import QuantumProvenanceData, WarningTag
from ..quantum import Quantum

__all__ = ["MISSING", "assert_provenance", "event_kinds", "make_quantum_butler"]


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Value for an input of `make_quantum_butler` that is predicted but not stored."""

_WARNING_TAGS: Final = frozenset(get_args(WarningTag))


# -- making a butler -------------------------------------------------------


def make_quantum_butler(
    root: str | os.PathLike[str] | FileDatastore,
    *,
    inputs: Mapping[DatasetRef, object],
    outputs: Iterable[DatasetRef],
    init_inputs: Mapping[DatasetRef, object] | None = None,
    task_label: str = "test_task",
    data_id: Mapping[str, DataIdValue] | None = None,
    log: EventLog | str | os.PathLike[str] | None = None,
) -> QuantumBackedButler:
    """Store a quantum's inputs and return a recording butler for it.

    Parameters
    ----------
    root : `str`, `os.PathLike` or `FileDatastore`
        Datastore root directory (created if absent), or the datastore itself.
    inputs : `~collections.abc.Mapping` [`DatasetRef`, `object`]
        Predicted inputs and the object to store for each; `MISSING` leaves
        that input predicted but not stored, to simulate an absent input.
    outputs : `~collections.abc.Iterable` [`DatasetRef`]
        Predicted outputs; nothing is written for them.
    init_inputs : `~collections.abc.Mapping` [`DatasetRef`, `object`], optional
        Predicted init-inputs, as ``inputs``.
    task_label : `str`, optional
        Label of the task in the quantum.
    data_id : `~collections.abc.Mapping` [`str`, `int` | `str`], optional
        Data ID of the quantum; empty by default.
    log : `EventLog`, `str`, `os.PathLike` or `None`, optional
        Where to record events, as for `QuantumBackedButler.initialize`.

    Returns
    -------
    butler : `QuantumBackedButler`
        A butler whose log holds ``quantum_started``; the quantum carries the
        datastore records of the inputs written.

    Raises
    ------
    ArgumentTypeError
        If ``inputs`` or ``init_inputs`` is not a mapping (a `TypeError`).
    InvalidDefinitionError
        If the quantum is malformed (e.g. a dataset both input and output) or
        a ref is in both ``inputs`` and ``init_inputs`` (a `ValueError`).
    StorageClassError
        If an object does not fit its dataset type's storage class.
    OutputAlreadyStoredError
        If an input is already stored under ``root``: give each test its own
        root, or its own RUN.

    Notes
    -----
    The quantum is validated before anything is written. Objects are written
    with `FileDatastore.put`, so they must fit the storage class of their
    dataset type (``json``: dicts, lists and scalars; ``arrow``: tables;
    ``bytes``: bytes).
    """
    init_inputs = {} if init_inputs is None else init_inputs
    for what, given in (("inputs", inputs), ("init_inputs", init_inputs)):
        if not isinstance(given, Mapping):
            raise ArgumentTypeError(
                f"{what} must be a mapping of DatasetRef to the object to store (or MISSING), "
                f"not {type(given).__name__}."
            )
    both = inputs.keys() & init_inputs.keys()
    if both:
        raise InvalidDefinitionError(
            f"{sorted(map(repr, both))} are given both as inputs and as init_inputs."
        )
    outputs = list(outputs)
    data_id = {} if data_id is None else data_id
    # A Quantum reads a mapping as dataset type name -> refs: hand it the refs alone.
    draft = Quantum(task_label, data_id, list(inputs), outputs, init_inputs=list(init_inputs))
    datastore = root if isinstance(root, FileDatastore) else FileDatastore(root)
    records = [
        datastore.put(obj, ref)
        for ref, obj in (*inputs.items(), *init_inputs.items())
        if obj is not MISSING
    ]
    quantum = Quantum(
        task_label,
        data_id,
        draft.inputs,
        draft.outputs,
        init_inputs=draft.init_inputs,
        id=draft.id,
        datastore_records={datastore.name: records} if records else None,
    )
    return QuantumBackedButler.initialize(datastore, quantum, log=log)


# -- events ----------------------------------------------------------------


def event_kinds(source: QuantumBackedButler | Iterable[Event]) -> list[str]:
    """Return the kinds of recorded events, in order.

    Parameters
    ----------
    source : `QuantumBackedButler` or `~collections.abc.Iterable` [`Event`]
        A butler (its events so far) or events, e.g. from `read_log`.

    Returns
    -------
    kinds : `list` [`str`]
        E.g. ``["quantum_started", "input_read", "output_written"]``.
    """
    events = source.events if isinstance(source, QuantumBackedButler) else source
    return [event.kind for event in events]


# -- provenance ------------------------------------------------------------


def assert_provenance(
    source: QuantumProvenanceData | QuantumBackedButler | Iterable[Event],
    /,
    *,
    available: Iterable[DatasetRef | uuid.UUID] | None = None,
    actual_inputs: Iterable[DatasetRef | uuid.UUID] | None = None,
    unavailable: Iterable[DatasetRef | uuid.UUID] | None = None,
    actual_outputs: Iterable[DatasetRef | uuid.UUID] | None = None,
    warnings: Iterable[str] | None = None,
) -> None:
    """Assert that provenance holds exactly the expected datasets.

    Each keyword left at `None` is not checked; each one given must match its
    field exactly (give an empty iterable to expect an empty set).

    Parameters
    ----------
    source : `QuantumProvenanceData`, `QuantumBackedButler` or iterable of `Event`
        The provenance; or a butler, whose ``extract_provenance_data()`` is
        checked and must also equal ``fold(butler.events)``; or a log's events,
        which are folded.
    available : `~collections.abc.Iterable` [`DatasetRef` | `uuid.UUID`], optional
        Expected ``available_inputs``.
    actual_inputs : `~collections.abc.Iterable` [`DatasetRef` | `uuid.UUID`], optional
        Expected ``actual_inputs``.
    unavailable : `~collections.abc.Iterable` [`DatasetRef` | `uuid.UUID`], optional
        Expected ``unavailable_inputs``.
    actual_outputs : `~collections.abc.Iterable` [`DatasetRef` | `uuid.UUID`], optional
        Expected ``actual_outputs``.
    warnings : `~collections.abc.Iterable` [`str`], optional
        Expected set of warning tags, e.g. ``{"unchecked_predicted_inputs"}``.

    Raises
    ------
    AssertionError
        If any field differs, listing for each field the datasets missing
        and unexpected. Datasets are named ``dataset_type(key=value, ...)``
        when known from the log's ``quantum_started`` event or from the refs
        given, else by UUID.
    ArgumentTypeError
        If an expectation is not an iterable of refs or UUIDs (of strings for
        ``warnings``) (a `TypeError`).
    InvalidDefinitionError
        If ``warnings`` names an unknown tag (a `ValueError`).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    given_refs: list[DatasetRef] = []
    expected_sets = {
        "available_inputs": _expected_ids(available, "available", given_refs),
        "actual_inputs": _expected_ids(actual_inputs, "actual_inputs", given_refs),
        "unavailable_inputs": _expected_ids(unavailable, "unavailable", given_refs),
        "actual_outputs": _expected_ids(actual_outputs, "actual_outputs", given_refs),
    }
    expected_tags = _expected_tags(warnings)
    problems: list[str] = []
    events: list[Event] = []
    if isinstance(source, QuantumProvenanceData):
        provenance = source
    elif isinstance(source, QuantumBackedButler):
        events = list(source.events)
        provenance = source.extract_provenance_data()
        folded = fold(events)
        if provenance != folded:
            fields = [
                name
                for name in type(provenance).model_fields
                if getattr(provenance, name) != getattr(folded, name)
            ]
            problems.append(
                f"extract_provenance_data() differs from fold(butler.events) in {fields}"
            )
    elif isinstance(source, Iterable):
        events = list(source)
        provenance = fold(events)
    else:
        raise ArgumentTypeError(
            "assert_provenance needs a QuantumProvenanceData, a QuantumBackedButler or events, "
            f"not {type(source).__name__}."
        )

    names = _Names(events, given_refs)
    for field, expected in expected_sets.items():
        if expected is None:
            continue
        actual: frozenset[uuid.UUID] = getattr(provenance, field)
        diff = _describe(names.of(expected - actual), names.of(actual - expected))
        if diff:
            problems.append(f"{field}: {diff}")
    if expected_tags is not None:
        found = {w.tag: w.dataset_ids for w in provenance.warnings}
        unexpected = [
            f"{tag!r} ({', '.join(names.of(found[tag]))})"
            for tag in sorted(found.keys() - expected_tags)
        ]
        diff = _describe(sorted(map(repr, expected_tags - found.keys())), unexpected)
        if diff:
            problems.append(f"warnings: {diff}")
    if problems:
        raise AssertionError(
            "provenance does not match the expectations:\n"
            + "\n".join(f"  {line}" for line in problems)
        )


def _expected_ids(
    items: Iterable[DatasetRef | uuid.UUID] | None, what: str, refs: list[DatasetRef]
) -> frozenset[uuid.UUID] | None:
    if items is None:
        return None
    if isinstance(items, DatasetRef | str | bytes) or not isinstance(items, Iterable):
        raise ArgumentTypeError(
            f"{what} must be an iterable of DatasetRef or UUID, not {type(items).__name__}."
        )
    ids = set()
    for item in items:
        if isinstance(item, DatasetRef):
            ids.add(item.id)
            refs.append(item)
        elif isinstance(item, uuid.UUID):
            ids.add(item)
        else:
            raise ArgumentTypeError(
                f"{what} must hold DatasetRef or UUID objects, got {type(item).__name__} {item!r}."
            )
    return frozenset(ids)


def _expected_tags(tags: Iterable[str] | None) -> frozenset[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ArgumentTypeError(
            f"warnings must be a set of tag strings, not {type(tags).__name__} {tags!r}."
        )
    result = frozenset(tags)
    unknown = result - _WARNING_TAGS
    if unknown:
        raise InvalidDefinitionError(
            f"Unknown warning tag(s) {sorted(map(repr, unknown))}; known: {sorted(_WARNING_TAGS)}."
        )
    return result


def _describe(missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected)}")
    return "; ".join(parts)


def _label(dataset_type: str, data_id: Mapping[str, DataIdValue]) -> str:
    return f"{dataset_type}({', '.join(f'{k}={v!r}' for k, v in data_id.items())})"


class _Names:
    """Readable names of datasets, from ``quantum_started`` and the refs given."""

    def __init__(self, events: list[Event], refs: Iterable[DatasetRef]) -> None:
        labels: dict[uuid.UUID, str] = {}
        started = next((e for e in events if isinstance(e, QuantumStarted)), None)
        if started is not None:
            info = started.quantum
            for ref_info in (*info.inputs, *info.init_inputs, *info.outputs):
                if ref_info.dataset_type is not None and ref_info.data_id is not None:
                    labels[ref_info.id] = _label(ref_info.dataset_type, ref_info.data_id)
        for ref in refs:
            labels.setdefault(ref.id, _label(ref.dataset_type.name, ref.data_id))
        # Two datasets with one label (e.g. in two runs) also get their id.
        counts: dict[str, int] = {}
        for label in labels.values():
            counts[label] = counts.get(label, 0) + 1
        self._labels = {
            dataset_id: label if counts[label] == 1 else f"{label} {dataset_id}"
            for dataset_id, label in labels.items()
        }

    def of(self, ids: Iterable[uuid.UUID]) -> list[str]:
        """Return the sorted names of datasets."""
        return sorted(self._labels.get(i, str(i)) for i in ids)
