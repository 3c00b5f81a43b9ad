"""Behaviour of `QuantumBackedButler` against SPEC sections 4, 5 and 6.

Every scenario also checks that ``extract_provenance_data() == fold(events)``
(the ``butler`` fixture checks it once more at teardown, with the hash chain).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import importlib
import importlib.util
import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pydantic
import pytest
from structlog.testing import capture_logs

import qbb_events
from qbb_events import (
    EVENT_KINDS,
    GENESIS_HASH,
    SCHEMA_VERSION,
    ArtifactExistsError,
    ArtifactNotFoundError,
    BadReadRequestError,
    ButlerClosedError,
    DatasetRef,
    DatasetType,
    DeferredDatasetHandle,
    Event,
    FileDatastore,
    InMemoryEventLog,
    InvalidDefinitionError,
    LogExistsError,
    LogSealedError,
    OutputAlreadyStoredError,
    OutputNotPredictedError,
    ProvenanceReducer,
    PruneArgumentError,
    PruneNotOwnedError,
    Quantum,
    QuantumBackedButler,
    QuantumProvenanceData,
    StorageClassError,
    UnreadableArtifactError,
    check_chain,
    fold,
    read_log,
)

RUN = "test/run"
DIMS = ("visit", "detector")
RAW = DatasetType("raw", "json", DIMS)


# -- helpers -------------------------------------------------------------


def provenance(butler: QuantumBackedButler) -> QuantumProvenanceData:
    """Extract provenance, asserting it is the fold of the butler's log."""
    result = butler.extract_provenance_data()
    assert result == fold(butler.events)
    return result


def assert_consistent(butler: QuantumBackedButler) -> None:
    events = butler.events
    assert [e.seq for e in events] == list(range(len(events)))
    check_chain(events)
    provenance(butler)


@contextlib.contextmanager
def appends_one(butler: QuantumBackedButler, kind: str) -> Iterator[list[Event]]:
    """Assert the body appends exactly one event, of ``kind``; yield a list that gets it."""
    before = len(butler.events)
    new: list[Event] = []
    try:
        yield new
    finally:
        events = butler.events
        assert len(events) == before + 1, [e.kind for e in events[before:]]
        assert events[-1].kind == kind
        assert events[-1].seq == before
        new.append(events[-1])
    provenance(butler)


def appends_none(butler: QuantumBackedButler) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def check() -> Iterator[None]:
        before = butler.events
        try:
            yield
        finally:
            assert butler.events == before

    return check()


def warning_tags(prov: QuantumProvenanceData) -> dict[str, set[uuid.UUID]]:
    return {w.tag: set(w.dataset_ids) for w in prov.warnings}


def file_bytes(datastore: FileDatastore, ref: DatasetRef) -> bytes:
    return datastore.path(ref).read_bytes()


# -- fixtures ------------------------------------------------------------


@pytest.fixture
def setup(make_quantum):
    return make_quantum()


@pytest.fixture
def butler(setup) -> Iterator[QuantumBackedButler]:
    b = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    yield b
    assert_consistent(b)


@pytest.fixture
def outside(datastore) -> DatasetRef:
    """A stored dataset that is not part of the quantum."""
    ref = DatasetRef(RAW, {"visit": 99, "detector": 0}, RUN)
    datastore.put({"outside": True}, ref)
    return ref


@pytest.fixture
def outside_missing() -> DatasetRef:
    """A dataset outside the quantum that is not stored."""
    return DatasetRef(RAW, {"visit": 98, "detector": 0}, RUN)


# -- get -----------------------------------------------------------------


def test_get_predicted_input_success(butler, setup):
    ref = setup.inputs[0]
    with appends_one(butler, "input_read") as new:
        obj = butler.get(ref)
    assert obj == setup.contents[ref.id]
    (event,) = new
    assert event.dataset_id == ref.id
    assert event.ok is True
    assert event.failure is None
    assert event.bytes_read == len(file_bytes(setup.datastore, ref))
    prov = provenance(butler)
    assert ref.id in prov.available_inputs
    assert ref.id in prov.actual_inputs
    assert ref.id not in prov.unavailable_inputs


def test_get_missing_artifact_marks_unavailable_and_raises(make_quantum):
    setup = make_quantum(missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref = setup.inputs[0]
    with appends_one(butler, "input_read") as new, pytest.raises(ArtifactNotFoundError) as info:
        butler.get(ref)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, LookupError)
    (event,) = new
    assert event.ok is False
    assert event.failure is not None
    assert event.failure.category == "missing"
    assert event.failure.exc_type == "ArtifactNotFoundError"
    assert event.bytes_read == 0
    prov = provenance(butler)
    assert ref.id in prov.unavailable_inputs
    assert ref.id not in prov.available_inputs
    assert ref.id not in prov.actual_inputs
    # A missing input that was never used is not "used but missing".
    assert "inputs_used_but_missing" not in warning_tags(prov)
    assert_consistent(butler)


@pytest.mark.parametrize(
    ("storage_class", "garbage"),
    [("json", b'{"value": '), ("json", b""), ("arrow", b"PAR1 not really parquet")],
)
def test_get_unreadable_artifact_marks_unavailable(datastore, storage_class, garbage):
    dataset_type = DatasetType("thing", storage_class, DIMS)
    ref = DatasetRef(dataset_type, {"visit": 1, "detector": 0}, RUN)
    path = datastore.path(ref)
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    quantum = Quantum("task", {"visit": 1}, inputs=[ref], outputs=[])
    butler = QuantumBackedButler.initialize(datastore, quantum)
    with appends_one(butler, "input_read") as new, pytest.raises(UnreadableArtifactError) as info:
        butler.get(ref)
    assert isinstance(info.value, OSError)
    assert new[0].failure.category == "missing"
    prov = provenance(butler)
    assert prov.unavailable_inputs == {ref.id}
    assert prov.available_inputs == frozenset()
    assert prov.actual_inputs == frozenset()
    assert_consistent(butler)


def test_get_directory_in_place_of_artifact_is_unavailable(datastore):
    ref = DatasetRef(RAW, {"visit": 1, "detector": 0}, RUN)
    datastore.path(ref).mkdir(parents=True)
    butler = QuantumBackedButler.initialize(datastore, Quantum("t", {}, [ref], []))
    with appends_one(butler, "input_read") as new, pytest.raises(IsADirectoryError):
        butler.get(ref)
    assert new[0].failure.category == "missing"
    assert provenance(butler).unavailable_inputs == {ref.id}


def test_get_outside_quantum_is_logged_but_changes_no_set(butler, setup, outside, outside_missing):
    before = provenance(butler)
    with appends_one(butler, "input_read") as new:
        assert butler.get(outside) == {"outside": True}
    assert new[0].dataset_id == outside.id
    assert new[0].ok is True
    with appends_one(butler, "input_read") as new, pytest.raises(ArtifactNotFoundError):
        butler.get(outside_missing)
    assert new[0].dataset_id == outside_missing.id
    assert new[0].failure.category == "missing"
    after = provenance(butler)
    assert after == before
    for ids in (after.available_inputs, after.unavailable_inputs, after.actual_inputs):
        assert outside.id not in ids
        assert outside_missing.id not in ids


def _bad_requests(setup):
    ref = setup.inputs[0]
    other_class = DatasetRef(DatasetType("raw", "bytes", DIMS), ref.data_id, ref.run, id=ref.id)
    other_run = DatasetRef(ref.dataset_type, ref.data_id, "other/run", id=ref.id)
    return {
        "unknown parameter": (ref, {"parameters": {"columns": ["a"]}}),
        "parameters not a mapping": (ref, {"parameters": ["columns"]}),
        "wrong storageClass keyword": (ref, {"storageClass": "arrow"}),
        "predicted id, other storage class": (other_class, {}),
        "predicted id, other run": (other_run, {}),
    }


BAD_REQUESTS = [
    "unknown parameter",
    "parameters not a mapping",
    "wrong storageClass keyword",
    "predicted id, other storage class",
    "predicted id, other run",
]


@pytest.mark.parametrize("case", BAD_REQUESTS)
@pytest.mark.parametrize("stored", [True, False], ids=["stored", "missing"])
def test_get_bad_request_raises_value_error_and_keeps_input_unmarked(make_quantum, case, stored):
    setup = make_quantum(missing=() if stored else (0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref, kwargs = _bad_requests(setup)[case]
    with appends_one(butler, "input_read") as new, pytest.raises(BadReadRequestError) as info:
        butler.get(ref, **kwargs)
    assert isinstance(info.value, ValueError)
    assert new[0].dataset_id == ref.id
    assert new[0].failure.category == "bad_request"
    prov = provenance(butler)
    input_id = setup.inputs[0].id
    assert input_id not in prov.unavailable_inputs
    assert input_id not in prov.available_inputs
    assert input_id not in prov.actual_inputs
    assert_consistent(butler)


def test_bad_request_after_success_changes_nothing(butler, setup):
    ref = setup.inputs[0]
    butler.get(ref)
    before = provenance(butler)
    with pytest.raises(BadReadRequestError):
        butler.get(ref, parameters={"nope": 1})
    assert provenance(butler) == before


def test_get_arrow_with_columns(datastore, arrow_type):
    ref = DatasetRef(arrow_type, {"visit": 1, "detector": 0}, RUN)
    datastore.put(pa.table({"a": [1, 2], "b": ["x", "y"]}), ref)
    butler = QuantumBackedButler.initialize(datastore, Quantum("t", {}, [ref], []))
    with appends_one(butler, "input_read"):
        table = butler.get(ref, parameters={"columns": ["a"]})
    assert table.column_names == ["a"]
    with appends_one(butler, "input_read") as new, pytest.raises(BadReadRequestError):
        butler.get(ref, parameters={"columns": ["missing_column"]})
    assert new[0].failure.category == "bad_request"
    prov = provenance(butler)
    assert prov.actual_inputs == prov.available_inputs == {ref.id}
    assert prov.unavailable_inputs == frozenset()


# -- getDeferred -----------------------------------------------------------


def test_get_deferred_does_no_io_and_makes_input_actual(datastore):
    # Neither the artifact nor its directory exists.
    ref = DatasetRef(RAW, {"visit": 1, "detector": 0}, RUN)
    butler = QuantumBackedButler.initialize(datastore, Quantum("t", {}, [ref], []))
    with appends_one(butler, "deferred_requested") as new:
        handle = butler.getDeferred(ref)
    assert isinstance(handle, DeferredDatasetHandle)
    assert handle.ref == ref
    assert new[0].dataset_id == ref.id
    assert not datastore.path(ref).parent.exists()
    prov = provenance(butler)
    assert prov.actual_inputs == {ref.id}
    assert prov.available_inputs == frozenset()
    assert prov.unavailable_inputs == frozenset()
    assert_consistent(butler)


def test_deferred_handle_get_success(butler, setup):
    ref = setup.inputs[0]
    handle = butler.getDeferred(ref)
    with appends_one(butler, "deferred_loaded") as new:
        assert handle.get() == setup.contents[ref.id]
    assert new[0].ok is True
    assert new[0].dataset_id == ref.id
    assert new[0].bytes_read == len(file_bytes(setup.datastore, ref))
    prov = provenance(butler)
    assert ref.id in prov.available_inputs
    assert ref.id in prov.actual_inputs


def test_deferred_handle_get_missing(make_quantum):
    setup = make_quantum(missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref = setup.inputs[0]
    handle = butler.getDeferred(ref)
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(FileNotFoundError):
        handle.get()
    assert new[0].failure.category == "missing"
    butler.stored(setup.inputs[1])
    prov = provenance(butler)
    assert ref.id in prov.unavailable_inputs
    # Made actual by getDeferred, found missing, never read: dropped, with a warning.
    assert ref.id not in prov.actual_inputs
    assert warning_tags(prov) == {"inputs_used_but_missing": {ref.id}}
    assert_consistent(butler)


def test_deferred_handle_bad_request(butler, setup):
    ref = setup.inputs[0]
    handle = butler.getDeferred(ref, parameters={"bogus": 1})
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(BadReadRequestError):
        handle.get()
    assert new[0].failure.category == "bad_request"
    with pytest.raises(BadReadRequestError):
        butler.getDeferred(ref, storageClass="bytes").get()
    prov = provenance(butler)
    assert ref.id not in prov.unavailable_inputs
    assert ref.id in prov.actual_inputs  # from getDeferred itself


# -- stored / exists / stored_many -------------------------------------------


@pytest.mark.parametrize("method", ["stored", "exists"])
def test_stored_found_and_not_found(make_quantum, method):
    setup = make_quantum(missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    present, absent = setup.inputs
    with appends_one(butler, "existence_checked") as new:
        assert getattr(butler, method)(present) is True
    assert new[0].dataset_ids == (present.id,)
    assert new[0].results == (True,)
    with appends_one(butler, "existence_checked") as new:
        assert getattr(butler, method)(absent) is False
    assert new[0].dataset_ids == (absent.id,)
    assert new[0].results == (False,)
    prov = provenance(butler)
    assert prov.available_inputs == {present.id}
    assert prov.unavailable_inputs == {absent.id}
    # Checking is not using.
    assert prov.actual_inputs == frozenset()
    assert prov.warnings == []
    assert_consistent(butler)


def test_exists_is_the_same_event_as_stored(make_quantum):
    setup = make_quantum()
    fields = []
    for method in ("stored", "exists"):
        butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
        getattr(butler, method)(setup.inputs[0])
        event = butler.events[-1]
        fields.append(
            event.model_dump(exclude={"timestamp_ns", "hash", "prev_hash", "quantum_id", "seq"})
        )
        fields.append(provenance(butler).model_dump(exclude={"quantum_id"}))
    assert fields[0] == fields[2]
    assert fields[1] == fields[3]


def test_stored_outside_quantum_changes_no_set(butler, outside, outside_missing):
    before = provenance(butler)
    with appends_one(butler, "existence_checked"):
        assert butler.stored(outside) is True
    with appends_one(butler, "existence_checked"):
        assert butler.exists(outside_missing) is False
    assert provenance(butler) == before


def test_stored_many_one_event(make_quantum, outside, outside_missing):
    setup = make_quantum(n_inputs=3, missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    refs = [*setup.inputs, outside, outside_missing]
    with appends_one(butler, "existence_checked") as new:
        result = butler.stored_many(refs)
    assert result == {
        setup.inputs[0]: True,
        setup.inputs[1]: False,
        setup.inputs[2]: True,
        outside: True,
        outside_missing: False,
    }
    assert new[0].dataset_ids == tuple(ref.id for ref in refs)
    assert new[0].results == (True, False, True, True, False)
    prov = provenance(butler)
    assert prov.available_inputs == {setup.inputs[0].id, setup.inputs[2].id}
    assert prov.unavailable_inputs == {setup.inputs[1].id}
    assert prov.actual_inputs == frozenset()
    assert prov.warnings == []
    with appends_one(butler, "existence_checked") as new:
        assert butler.stored_many([]) == {}
    assert new[0].dataset_ids == ()
    assert_consistent(butler)


# -- markInputUnused -----------------------------------------------------------


def test_mark_input_unused_then_read_again(butler, setup):
    ref = setup.inputs[0]
    butler.get(ref)
    with appends_one(butler, "input_marked_unused") as new:
        assert butler.markInputUnused(ref) is None
    assert new[0].dataset_id == ref.id
    prov = provenance(butler)
    assert ref.id not in prov.actual_inputs
    assert ref.id in prov.available_inputs
    butler.get(ref)
    assert ref.id in provenance(butler).actual_inputs


def test_mark_input_unused_after_get_deferred(butler, setup):
    ref = setup.inputs[0]
    handle = butler.getDeferred(ref)
    butler.markInputUnused(ref)
    assert ref.id not in provenance(butler).actual_inputs
    handle.get()
    assert ref.id in provenance(butler).actual_inputs


def test_mark_input_unused_never_raises(butler, setup, outside):
    before = provenance(butler)
    with appends_one(butler, "input_marked_unused"):
        butler.markInputUnused(outside)
    with appends_one(butler, "input_marked_unused"):
        butler.markInputUnused(setup.outputs[0])
    with appends_one(butler, "input_marked_unused"):
        butler.markInputUnused(setup.inputs[1])  # never used
    assert provenance(butler) == before


def test_mark_input_unused_after_close_is_ignored(butler, setup):
    butler.get(setup.inputs[0])
    butler.close()
    before = provenance(butler)
    with appends_none(butler):
        butler.markInputUnused(setup.inputs[0])
        butler.markInputUnused(DatasetRef(RAW, {"visit": 7, "detector": 7}, RUN))
    assert provenance(butler) == before
    assert setup.inputs[0].id in before.actual_inputs


# -- put -------------------------------------------------------------------


GOOD_OBJECTS = {
    "json": {"a": [1, 2, 3], "b": "text"},
    "arrow": pa.table({"x": [1, 2, 3]}),
    "bytes": b"\x00\x01\xff",
}
BAD_OBJECTS = {"json": {1, 2}, "arrow": {"x": [1]}, "bytes": "not bytes"}


@pytest.fixture
def typed_outputs(datastore):
    refs = {
        sc: DatasetRef(DatasetType(f"out_{sc}", sc, DIMS), {"visit": 3, "detector": 0}, RUN)
        for sc in ("json", "arrow", "bytes")
    }
    quantum = Quantum("t", {"visit": 3}, inputs=[], outputs=list(refs.values()))
    return QuantumBackedButler.initialize(datastore, quantum), refs


@pytest.mark.parametrize("storage_class", ["json", "arrow", "bytes"])
def test_put_predicted_output_writes_record(typed_outputs, datastore, storage_class):
    butler, refs = typed_outputs
    ref = refs[storage_class]
    obj = GOOD_OBJECTS[storage_class]
    with appends_one(butler, "output_written") as new:
        assert butler.put(obj, ref) == ref
    record = new[0].record
    assert new[0].dataset_id == ref.id
    on_disk = datastore.root / record.path
    assert on_disk == datastore.path(ref)
    data = on_disk.read_bytes()
    assert record.dataset_id == ref.id
    assert record.datastore_name == datastore.name
    assert record.storage_class == storage_class
    assert record.file_size == len(data) == os.path.getsize(on_disk)
    assert record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    read_back = datastore.get(ref)
    if storage_class == "arrow":
        assert read_back.equals(obj)
    else:
        assert read_back == obj
    prov = provenance(butler)
    assert prov.actual_outputs == {ref.id}
    assert prov.datastore_records == {datastore.name: [record]}
    assert_consistent(butler)


def test_put_not_predicted_is_rejected(butler, setup, outside_missing):
    with (
        appends_one(butler, "output_rejected") as new,
        pytest.raises(OutputNotPredictedError) as info,
    ):
        butler.put({"a": 1}, outside_missing)
    assert isinstance(info.value, RuntimeError)
    assert new[0].dataset_id == outside_missing.id
    assert new[0].reason == "not_predicted"
    assert new[0].error.exc_type == "OutputNotPredictedError"
    assert not setup.datastore.path(outside_missing).exists()
    # An input is not an output either.
    with appends_one(butler, "output_rejected"), pytest.raises(OutputNotPredictedError):
        butler.put({"a": 1}, setup.inputs[0])
    assert provenance(butler).actual_outputs == frozenset()


def test_put_predicted_id_with_other_definition_is_rejected(butler, setup):
    out = setup.outputs[0]
    other = DatasetRef(DatasetType("calexp", "bytes", DIMS), out.data_id, out.run, id=out.id)
    with appends_one(butler, "output_rejected") as new, pytest.raises(RuntimeError):
        butler.put(b"x", other)
    assert new[0].reason == "not_predicted"
    assert not setup.datastore.path(other).exists()
    assert not setup.datastore.path(out).exists()
    assert provenance(butler).actual_outputs == frozenset()


def test_second_put_is_refused_and_keeps_first_artifact(butler, setup):
    out = setup.outputs[0]
    butler.put({"first": 1}, out)
    first_bytes = file_bytes(setup.datastore, out)
    first = provenance(butler)
    with (
        appends_one(butler, "output_rejected") as new,
        pytest.raises(OutputAlreadyStoredError) as info,
    ):
        butler.put({"second": 2}, out)
    assert isinstance(info.value, RuntimeError)
    assert new[0].reason == "already_written"
    assert file_bytes(setup.datastore, out) == first_bytes
    assert setup.datastore.get(out) == {"first": 1}
    after = provenance(butler)
    assert after == first
    assert out.id in after.actual_outputs
    (record,) = after.datastore_records[setup.datastore.name]
    assert record.checksum == "sha256:" + hashlib.sha256(first_bytes).hexdigest()
    # No temporary file is left behind.
    assert sorted(p.name for p in setup.datastore.path(out).parent.iterdir()) == [
        setup.datastore.path(out).name
    ]


def test_put_refused_when_artifact_exists_from_elsewhere(butler, setup):
    out = setup.outputs[0]
    setup.datastore.put({"stale": True}, out)
    with appends_one(butler, "output_rejected"), pytest.raises(OutputAlreadyStoredError):
        butler.put({"fresh": True}, out)
    assert setup.datastore.get(out) == {"stale": True}
    assert provenance(butler).actual_outputs == frozenset()


@pytest.mark.parametrize(
    ("disassociate", "purge"), [(False, False), (True, True)], ids=["unstore", "purge"]
)
def test_put_again_after_prune_unstore(butler, setup, disassociate, purge):
    out = setup.outputs[0]
    butler.put({"first": 1}, out)
    butler.pruneDatasets([out], disassociate=disassociate, unstore=True, purge=purge)
    assert not setup.datastore.path(out).exists()
    with appends_one(butler, "output_written") as new:
        butler.put({"second": 2}, out)
    assert setup.datastore.get(out) == {"second": 2}
    prov = provenance(butler)
    assert out.id in prov.actual_outputs
    assert prov.datastore_records == {setup.datastore.name: [new[0].record]}


@pytest.mark.parametrize("storage_class", ["json", "arrow", "bytes"])
def test_put_object_not_fitting_storage_class(typed_outputs, datastore, storage_class):
    butler, refs = typed_outputs
    ref = refs[storage_class]
    with appends_one(butler, "output_rejected") as new, pytest.raises(StorageClassError) as info:
        butler.put(BAD_OBJECTS[storage_class], ref)
    assert isinstance(info.value, TypeError)
    assert new[0].reason == "invalid_object"
    assert not datastore.path(ref).exists()
    prov = provenance(butler)
    assert prov.actual_outputs == frozenset()
    assert prov.datastore_records == {}
    # The output can still be written properly afterwards.
    butler.put(GOOD_OBJECTS[storage_class], ref)
    assert provenance(butler).actual_outputs == {ref.id}
    assert_consistent(butler)


# -- pruneDatasets -------------------------------------------------------------


@pytest.fixture
def written(butler, setup):
    for k, out in enumerate(setup.outputs):
        butler.put({"out": k}, out)
    return setup.outputs


@pytest.mark.parametrize(
    ("disassociate", "unstore", "purge"),
    [
        (False, False, True),  # purge without disassociate
        (False, True, True),  # purge without disassociate
        (True, False, True),  # purge without unstore
        (True, False, False),  # disassociate without purge: the defaults
        (True, True, False),  # disassociate without purge
    ],
)
def test_prune_argument_rules(butler, setup, written, disassociate, unstore, purge):
    before = provenance(butler)
    with appends_one(butler, "datasets_pruned") as new, pytest.raises(PruneArgumentError) as info:
        butler.pruneDatasets(written, disassociate=disassociate, unstore=unstore, purge=purge)
    assert isinstance(info.value, TypeError)
    event = new[0]
    assert (event.disassociate, event.unstore, event.purge) == (disassociate, unstore, purge)
    assert event.dataset_ids == tuple(ref.id for ref in written)
    assert event.removed == ()
    assert event.error is not None
    assert event.error.exc_type == "PruneArgumentError"
    for ref in written:
        assert setup.datastore.path(ref).exists()
    assert provenance(butler) == before


def test_prune_defaults_are_refused(butler, written):
    with appends_one(butler, "datasets_pruned"), pytest.raises(TypeError):
        butler.pruneDatasets(written)


def test_prune_tags_are_refused(butler, written):
    with appends_one(butler, "datasets_pruned"), pytest.raises(TypeError):
        butler.pruneDatasets(written, disassociate=False, unstore=True, tags=["tagged"])


def test_prune_unstore_only_keeps_output_actual_without_record(butler, setup, written):
    pruned, kept = written
    with appends_one(butler, "datasets_pruned") as new:
        butler.pruneDatasets([pruned], disassociate=False, unstore=True, purge=False)
    assert new[0].removed == (pruned.id,)
    assert new[0].error is None
    assert not setup.datastore.path(pruned).exists()
    assert setup.datastore.path(kept).exists()
    prov = provenance(butler)
    assert prov.actual_outputs == {pruned.id, kept.id}
    (record,) = prov.datastore_records[setup.datastore.name]
    assert record.dataset_id == kept.id


def test_prune_purge_removes_from_actual_outputs(butler, setup, written):
    pruned, kept = written
    with appends_one(butler, "datasets_pruned") as new:
        butler.pruneDatasets([pruned], disassociate=True, unstore=True, purge=True)
    assert new[0].removed == (pruned.id,)
    assert not setup.datastore.path(pruned).exists()
    prov = provenance(butler)
    assert prov.actual_outputs == {kept.id}
    assert [r.dataset_id for r in prov.datastore_records[setup.datastore.name]] == [kept.id]


def test_prune_nothing_flags_is_a_no_op(butler, setup, written):
    before = provenance(butler)
    with appends_one(butler, "datasets_pruned") as new:
        butler.pruneDatasets(written, disassociate=False, unstore=False, purge=False)
    assert new[0].removed == ()
    assert new[0].error is None
    assert all(setup.datastore.path(ref).exists() for ref in written)
    assert provenance(butler) == before


def test_prune_unwritten_output(butler, setup):
    out = setup.outputs[0]
    with appends_one(butler, "datasets_pruned") as new:
        butler.pruneDatasets([out], disassociate=True, unstore=True, purge=True)
    assert new[0].removed == ()
    assert provenance(butler).actual_outputs == frozenset()


@pytest.mark.parametrize("target", ["input", "outside", "input and output", "redefined output"])
@pytest.mark.parametrize("purge", [False, True])
def test_prune_not_owned_is_refused_before_deleting(butler, setup, written, outside, target, purge):
    redefined = DatasetRef(
        DatasetType("calexp", "json", DIMS), written[0].data_id, "other/run", id=written[0].id
    )
    refs = {
        "input": [setup.inputs[0]],
        "outside": [outside],
        "input and output": [written[0], setup.inputs[0]],
        "redefined output": [redefined],
    }[target]
    setup.datastore.put({"x": 1}, redefined)
    before = provenance(butler)
    with appends_one(butler, "datasets_pruned") as new, pytest.raises(PruneNotOwnedError) as info:
        butler.pruneDatasets(refs, disassociate=purge, unstore=True, purge=purge)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, ValueError)
    assert new[0].removed == ()
    assert new[0].error.exc_type == "PruneNotOwnedError"
    for ref in [*refs, *written, *setup.inputs, outside, redefined]:
        assert setup.datastore.path(ref).exists()
    assert provenance(butler) == before
    # The inputs are still readable.
    assert butler.get(setup.inputs[0]) == setup.contents[setup.inputs[0].id]


# -- the fold (SPEC 5) ----------------------------------------------------------


def test_inputs_used_but_missing_warning(make_quantum):
    setup = make_quantum(missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    missing, present = setup.inputs
    butler.getDeferred(missing)
    butler.getDeferred(present)
    assert butler.stored_many(setup.inputs) == {missing: False, present: True}
    with capture_logs() as logs:
        prov = provenance(butler)
    assert prov.actual_inputs == {present.id}
    assert prov.available_inputs == {present.id}
    assert prov.unavailable_inputs == {missing.id}
    (warning,) = prov.warnings
    assert warning.tag == "inputs_used_but_missing"
    assert warning.dataset_ids == [missing.id]
    (entry,) = [e for e in logs if e["event"] == "inputs_used_but_missing"]
    assert entry["log_level"] == "warning"
    assert entry["dataset_ids"] == [str(missing.id)]
    assert entry["quantum_id"] == str(butler.quantum_id)
    assert_consistent(butler)


def test_unchecked_predicted_inputs_warning(make_quantum):
    setup = make_quantum(n_inputs=3)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    butler.get(setup.inputs[0])
    butler.stored(setup.inputs[1])
    butler.getDeferred(setup.inputs[2])  # used, but never checked
    with capture_logs() as logs:
        prov = provenance(butler)
    assert warning_tags(prov) == {"unchecked_predicted_inputs": {setup.inputs[2].id}}
    (entry,) = [e for e in logs if e["event"] == "unchecked_predicted_inputs"]
    assert entry["log_level"] == "warning"
    assert entry["dataset_ids"] == [str(setup.inputs[2].id)]
    assert prov.actual_inputs == {setup.inputs[0].id, setup.inputs[2].id}
    assert_consistent(butler)


def test_no_warnings_when_everything_is_checked(butler, setup):
    butler.stored_many(setup.inputs)
    with capture_logs() as logs:
        prov = provenance(butler)
    assert prov.warnings == []
    assert logs == []


def test_missing_then_read_successfully_stays_actual(make_quantum):
    """SPEC 6.1: a successful read proves use."""
    setup = make_quantum(missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref, other = setup.inputs
    butler.getDeferred(ref)
    assert butler.stored(ref) is False
    with pytest.raises(ArtifactNotFoundError):
        butler.get(ref)
    setup.datastore.put({"late": True}, ref)  # the artifact shows up
    assert butler.get(ref) == {"late": True}
    butler.stored(other)
    with capture_logs() as logs:
        prov = provenance(butler)
    assert ref.id in prov.actual_inputs
    assert ref.id in prov.available_inputs
    assert ref.id in prov.unavailable_inputs
    assert prov.warnings == []
    assert logs == []


def test_missing_then_deferred_load_succeeds_stays_actual(make_quantum):
    setup = make_quantum(missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref, other = setup.inputs
    handle = butler.getDeferred(ref)
    assert butler.stored(ref) is False
    setup.datastore.put({"late": True}, ref)
    assert handle.get() == {"late": True}
    butler.stored(other)
    prov = provenance(butler)
    assert ref.id in prov.actual_inputs
    assert prov.warnings == []


def test_read_outside_quantum_never_triggers_unchecked_warning(butler, setup, outside):
    """SPEC 6.2: only predicted inputs count as checked."""
    butler.stored_many(setup.inputs)
    butler.get(outside)
    butler.stored(outside)
    butler.getDeferred(outside)
    prov = provenance(butler)
    assert prov.warnings == []
    assert outside.id not in prov.predicted_inputs


def test_unchecked_warning_names_only_predicted_inputs(butler, setup, outside):
    butler.get(outside)
    butler.get(setup.inputs[0])
    prov = provenance(butler)
    assert warning_tags(prov) == {"unchecked_predicted_inputs": {setup.inputs[1].id}}


def test_extract_twice_gives_same_result_and_warnings(make_quantum):
    """SPEC 6.6: extraction is a pure read."""
    setup = make_quantum(n_inputs=3, missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    butler.getDeferred(setup.inputs[0])
    butler.stored(setup.inputs[0])
    butler.get(setup.inputs[1])
    n_events = len(butler.events)
    with capture_logs() as first_logs:
        first = provenance(butler)
    with capture_logs() as second_logs:
        second = provenance(butler)
    assert first == second
    assert first.warnings == second.warnings
    assert {w.tag for w in first.warnings} == {
        "inputs_used_but_missing",
        "unchecked_predicted_inputs",
    }
    assert first_logs == second_logs
    assert {e["event"] for e in first_logs} == {w.tag for w in first.warnings}
    assert len(butler.events) == n_events
    # Later calls still work from the same state.
    butler.close()
    assert provenance(butler).model_dump(exclude={"status"}) == first.model_dump(exclude={"status"})


def test_init_inputs_count_as_predicted_inputs(make_quantum):
    setup = make_quantum(n_inputs=1, n_init_inputs=2)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    (started,) = butler.events
    assert [r.id for r in started.quantum.init_inputs] == [r.id for r in setup.init_inputs]
    init0, init1 = setup.init_inputs
    prov = provenance(butler)
    assert prov.predicted_inputs == {setup.inputs[0].id, init0.id, init1.id}
    butler.get(init0)
    butler.stored(setup.inputs[0])
    prov = provenance(butler)
    assert init0.id in prov.actual_inputs
    assert init0.id in prov.available_inputs
    assert warning_tags(prov) == {"unchecked_predicted_inputs": {init1.id}}
    assert_consistent(butler)


def test_datastore_records_grouped_by_datastore_name(tmp_path, make_quantum):
    setup = make_quantum(n_outputs=3)
    store = FileDatastore(tmp_path / "other", name="store_a", create=True)
    for ref in setup.inputs:
        store.put({"copy": True}, ref)
    butler = QuantumBackedButler.initialize(store, setup.quantum)
    records = {}
    for ref in setup.outputs:
        butler.put({"k": 1}, ref)
        records[ref.id] = butler.events[-1].record
    butler.pruneDatasets([setup.outputs[1]], disassociate=False, unstore=True)
    prov = provenance(butler)
    assert prov.predicted_outputs == {ref.id for ref in setup.outputs}
    assert prov.actual_outputs == {ref.id for ref in setup.outputs}
    assert list(prov.datastore_records) == ["store_a"]
    kept = sorted([setup.outputs[0].id, setup.outputs[2].id])
    assert prov.datastore_records["store_a"] == [records[i] for i in kept]
    assert all(r.datastore_name == "store_a" for r in prov.datastore_records["store_a"])
    assert_consistent(butler)


def test_provenance_json_round_trip(butler, setup, written):
    butler.get(setup.inputs[0])
    prov = provenance(butler)
    assert QuantumProvenanceData.model_validate_json(prov.model_dump_json()) == prov


# -- events ------------------------------------------------------------------


def test_every_call_appends_exactly_one_event(make_quantum, outside_missing, tmp_path):
    setup = make_quantum(n_inputs=3, missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    in0, in1, in2 = setup.inputs
    out0, out1 = setup.outputs
    handles: list[DeferredDatasetHandle] = []
    steps = [
        (lambda: butler.stored(in0), "existence_checked", None),
        (lambda: butler.exists(in1), "existence_checked", None),
        (lambda: butler.stored_many([in0, in1, in2]), "existence_checked", None),
        (lambda: butler.get(in0), "input_read", None),
        (lambda: butler.get(in1), "input_read", ArtifactNotFoundError),
        (lambda: butler.get(in0, parameters={"x": 1}), "input_read", BadReadRequestError),
        (lambda: handles.append(butler.getDeferred(in2)), "deferred_requested", None),
        (lambda: handles[0].get(), "deferred_loaded", None),
        (lambda: butler.getDeferred(in1).get(), "deferred_loaded", ArtifactNotFoundError),
        (lambda: butler.markInputUnused(in0), "input_marked_unused", None),
        (lambda: butler.put({"a": 1}, out0), "output_written", None),
        (lambda: butler.put({"a": 2}, out0), "output_rejected", OutputAlreadyStoredError),
        (lambda: butler.put({"a": 1}, outside_missing), "output_rejected", OutputNotPredictedError),
        (lambda: butler.put({1}, out1), "output_rejected", StorageClassError),
        (lambda: butler.pruneDatasets([out0]), "datasets_pruned", PruneArgumentError),
        (
            lambda: butler.pruneDatasets([in0], disassociate=False, unstore=True),
            "datasets_pruned",
            PruneNotOwnedError,
        ),
        (lambda: butler.getURI(in0), "uri_requested", None),
        (lambda: butler.getURI(in1), "uri_requested", ArtifactNotFoundError),
        (lambda: butler.get_many_uris([in0, in1], predict=True), "uri_requested", None),
        (lambda: butler.retrieve_artifacts([in0], tmp_path / "out"), "artifacts_retrieved", None),
        (
            lambda: butler.retrieve_artifacts([in0], tmp_path / "out"),
            "artifacts_retrieved",
            ArtifactExistsError,
        ),
        (lambda: butler.retrieve_artifacts_zip([in0], tmp_path), "artifacts_retrieved", None),
        (
            lambda: butler.pruneDatasets([out0], disassociate=True, unstore=True, purge=True),
            "datasets_pruned",
            None,
        ),
        (butler.close, "quantum_finished", None),
    ]
    for call, kind, error in steps:
        before = len(butler.events)
        if error is None:
            call()
        else:
            with pytest.raises(error):
                call()
        events = butler.events
        # getDeferred(...).get() is two calls: allow the deferred_requested before it.
        added = [e.kind for e in events[before:]]
        if added == ["deferred_requested", "deferred_loaded"]:
            added = added[1:]
        assert added == [kind], (kind, added)
        provenance(butler)
    events = butler.events
    assert {e.kind for e in events} == EVENT_KINDS
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].prev_hash == GENESIS_HASH
    for prev, event in itertools.pairwise(events):
        assert event.prev_hash == prev.hash
        assert event.timestamp_ns >= prev.timestamp_ns
    for event in events:
        assert event.quantum_id == butler.quantum_id == setup.quantum.id
        assert event.attempt == 0
        assert event.schema_version == SCHEMA_VERSION
    check_chain(events)
    # Folding a prefix and then the rest gives the same result as the whole.
    whole = fold(events)
    for k in range(len(events) + 1):
        assert ProvenanceReducer().update(events[:k]).update(events[k:]).result() == whole
    assert whole == butler.extract_provenance_data()


def test_quantum_started_carries_whole_quantum(make_quantum):
    setup = make_quantum(n_inputs=2, n_outputs=1, n_init_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, attempt=2)
    (event,) = butler.events
    assert event.kind == "quantum_started"
    assert event.seq == 0
    assert event.prev_hash == GENESIS_HASH
    assert event.attempt == 2
    assert event.quantum_id == setup.quantum.id
    assert event.pid == os.getpid()
    assert event.host
    assert event.library_version == qbb_events.__version__
    info = event.quantum
    assert info.id == setup.quantum.id
    assert info.task_label == "isr"
    assert info.data_id == {"visit": 1}
    for recorded, refs in (
        (info.inputs, setup.inputs),
        (info.init_inputs, setup.init_inputs),
        (info.outputs, setup.outputs),
    ):
        assert [(r.id, r.dataset_type, r.run, r.data_id) for r in recorded] == [
            (r.id, r.dataset_type.name, r.run, r.data_id.to_dict()) for r in refs
        ]
    types = {t.name: (t.storage_class, t.dimensions) for t in info.dataset_types}
    for ref in (*setup.inputs, *setup.init_inputs, *setup.outputs):
        assert types[ref.dataset_type.name] == (
            ref.dataset_type.storage_class,
            ref.dataset_type.dimensions,
        )
    prov = provenance(butler)
    assert prov.quantum_id == setup.quantum.id
    assert prov.predicted_inputs == {r.id for r in (*setup.inputs, *setup.init_inputs)}
    assert prov.predicted_outputs == {r.id for r in setup.outputs}
    assert prov.status is None


def test_close_seals_the_log(butler, setup):
    butler.get(setup.inputs[0])
    with appends_one(butler, "quantum_finished") as new:
        butler.close()
    event = new[0]
    assert event.status == "succeeded"
    assert event.exception is None
    assert event.wall_ns >= 0
    assert event.cpu_ns >= 0
    assert event.peak_rss_bytes > 0
    assert butler.finished
    with appends_none(butler):
        butler.close()  # idempotent
    prov = provenance(butler)
    assert prov.status == "succeeded"
    assert setup.inputs[0].id in prov.actual_inputs


CLOSED_CALLS = {
    "get": lambda b, s: b.get(s.inputs[0]),
    "getDeferred": lambda b, s: b.getDeferred(s.inputs[0]),
    "stored": lambda b, s: b.stored(s.inputs[0]),
    "exists": lambda b, s: b.exists(s.inputs[0]),
    "stored_many": lambda b, s: b.stored_many(s.inputs),
    "put": lambda b, s: b.put({"a": 1}, s.outputs[0]),
    "pruneDatasets": lambda b, s: b.pruneDatasets([s.outputs[0]], disassociate=False, unstore=True),
    "finish": lambda b, s: b.finish("succeeded"),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
def test_calls_after_close_raise(butler, setup, call):
    butler.close()
    with appends_none(butler), pytest.raises(ButlerClosedError) as info:
        CLOSED_CALLS[call](butler, setup)
    assert isinstance(info.value, RuntimeError)
    assert not setup.datastore.path(setup.outputs[0]).exists()


def test_deferred_handle_after_close_raises(butler, setup):
    handle = butler.getDeferred(setup.inputs[0])
    butler.close()
    with appends_none(butler), pytest.raises(ButlerClosedError):
        handle.get()


def test_finish_no_work_then_close(butler):
    with appends_one(butler, "quantum_finished"):
        butler.finish("no_work")
    butler.close()
    assert provenance(butler).status == "no_work"
    assert [e.kind for e in butler.events] == ["quantum_started", "quantum_finished"]


@pytest.mark.parametrize("log_kind", ["memory", "jsonl"])
def test_appending_to_sealed_log_raises(setup, tmp_path, log_kind):
    log = InMemoryEventLog() if log_kind == "memory" else tmp_path / "q.jsonl"
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=log)
    butler.close()
    with appends_none(butler), pytest.raises(LogSealedError):
        butler.log.append("input_marked_unused", {"dataset_id": setup.inputs[0].id})
    assert_consistent(butler)


def test_context_manager_success(setup):
    with QuantumBackedButler.initialize(setup.datastore, setup.quantum) as butler:
        butler.get(setup.inputs[0])
    assert butler.finished
    assert butler.events[-1].kind == "quantum_finished"
    assert butler.events[-1].status == "succeeded"
    assert provenance(butler).status == "succeeded"


def test_context_manager_failure_records_exception(setup):
    with (
        pytest.raises(KeyError, match="boom"),
        QuantumBackedButler.initialize(setup.datastore, setup.quantum) as butler,
    ):
        raise KeyError("boom")
    event = butler.events[-1]
    assert event.kind == "quantum_finished"
    assert event.status == "failed"
    assert event.exception is not None
    assert event.exception.exc_type == "KeyError"
    assert "boom" in event.exception.message
    assert provenance(butler).status == "failed"
    with pytest.raises(ButlerClosedError):
        butler.get(setup.inputs[0])
    assert_consistent(butler)


# -- construction ------------------------------------------------------------


def test_from_predicted_with_refs(setup):
    butler = QuantumBackedButler.from_predicted(setup.datastore.root, setup.inputs, setup.outputs)
    (started,) = butler.events
    assert [r.dataset_type for r in started.quantum.inputs] == ["raw", "raw"]
    assert started.quantum.task_label is None
    prov = provenance(butler)
    assert prov.predicted_inputs == {r.id for r in setup.inputs}
    assert prov.predicted_outputs == {r.id for r in setup.outputs}
    assert butler.get(setup.inputs[0]) == setup.contents[setup.inputs[0].id]
    butler.stored(setup.inputs[1])
    butler.put({"o": 1}, setup.outputs[0])
    prov = provenance(butler)
    assert prov.actual_inputs == {setup.inputs[0].id}
    assert prov.available_inputs == {r.id for r in setup.inputs}
    assert prov.actual_outputs == {setup.outputs[0].id}
    assert prov.warnings == []
    # A redefined predicted input is still a bad request.
    other = DatasetRef(RAW, setup.inputs[0].data_id, "other/run", id=setup.inputs[0].id)
    with pytest.raises(BadReadRequestError):
        butler.get(other)
    assert_consistent(butler)


@pytest.mark.parametrize("as_str", [False, True], ids=["uuid", "str"])
def test_from_predicted_with_bare_ids(setup, as_str, outside):
    def ids(refs):
        return [str(r.id) if as_str else r.id for r in refs]

    quantum_id = uuid.uuid4()
    butler = QuantumBackedButler.from_predicted(
        setup.datastore, ids(setup.inputs), ids(setup.outputs), quantum_id=quantum_id
    )
    (started,) = butler.events
    assert started.quantum_id == quantum_id
    assert [r.id for r in started.quantum.inputs] == [r.id for r in setup.inputs]
    assert all(
        r.dataset_type is None and r.run is None and r.data_id is None
        for r in (*started.quantum.inputs, *started.quantum.outputs)
    )
    in0, in1 = setup.inputs
    butler.get(in0)
    butler.getDeferred(in1)
    butler.stored(in1)
    butler.get(outside)
    butler.put({"o": 1}, setup.outputs[0])
    with pytest.raises(OutputNotPredictedError):
        butler.put({"o": 1}, DatasetRef(RAW, {"visit": 5, "detector": 5}, RUN))
    prov = provenance(butler)
    assert prov.quantum_id == quantum_id
    assert prov.predicted_inputs == {in0.id, in1.id}
    assert prov.available_inputs == {in0.id, in1.id}
    assert prov.actual_inputs == {in0.id, in1.id}
    assert prov.actual_outputs == {setup.outputs[0].id}
    assert prov.warnings == []
    assert_consistent(butler)


def test_from_predicted_refuses_dataset_both_input_and_output(setup):
    with pytest.raises(InvalidDefinitionError) as info:
        QuantumBackedButler.from_predicted(setup.datastore, setup.inputs, [setup.inputs[0].id])
    assert isinstance(info.value, ValueError)


def test_initialize_with_root_path(setup, datastore_root):
    butler = QuantumBackedButler.initialize(str(datastore_root), setup.quantum)
    assert butler.get(setup.inputs[0]) == setup.contents[setup.inputs[0].id]
    assert provenance(butler).actual_inputs == {setup.inputs[0].id}


@pytest.mark.parametrize("as_str", [False, True], ids=["path", "str"])
def test_jsonl_log_reads_back_to_same_provenance(make_quantum, tmp_path, as_str):
    setup = make_quantum(n_inputs=3, missing=(2,))
    path = tmp_path / "logs" / "quantum.jsonl"
    butler = QuantumBackedButler.initialize(
        setup.datastore, setup.quantum, log=str(path) if as_str else path
    )
    in0, in1, in2 = setup.inputs
    butler.get(in0)
    butler.getDeferred(in1)
    butler.getDeferred(in2)
    butler.stored(in2)
    butler.put({"o": 1}, setup.outputs[0])
    # The log is readable while the quantum runs.
    assert read_log(path) == list(butler.events)
    butler.close()
    events = read_log(path)
    assert events == list(butler.events)
    assert events[-1].kind == "quantum_finished"
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(events)
    prov = butler.extract_provenance_data()
    assert fold(events) == prov == fold(butler.events)
    assert prov.actual_inputs == {in0.id, in1.id}
    assert warning_tags(prov) == {
        "inputs_used_but_missing": {in2.id},
        "unchecked_predicted_inputs": {in1.id},
    }
    # A log path that already holds events is refused.
    with pytest.raises(LogExistsError) as info:
        QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=path)
    assert isinstance(info.value, FileExistsError)
    assert read_log(path) == events


def test_arguments_of_the_wrong_type_are_refused_before_anything_is_logged(tmp_path):
    raw = DatasetType("raw", "json", ())
    ref = DatasetRef(raw, {}, RUN)
    butler = QuantumBackedButler.initialize(tmp_path, Quantum("t", {}, [ref], []))
    calls = [
        lambda: butler.get("not a ref"),
        lambda: butler.getDeferred(ref.id),
        lambda: butler.stored(None),
        lambda: butler.stored_many([ref, "x"]),
        lambda: butler.put({}, {"id": ref.id}),
        lambda: butler.pruneDatasets([ref.id], disassociate=False),
    ]
    for call in calls:
        with pytest.raises(qbb_events.ArgumentTypeError, match="DatasetRef") as info:
            call()
        assert isinstance(info.value, TypeError)
    assert len(butler.events) == 1
    with pytest.raises(qbb_events.ArgumentTypeError, match="Quantum"):
        QuantumBackedButler.initialize(tmp_path, "quantum")  # type: ignore[arg-type]
    with pytest.raises(qbb_events.ArgumentTypeError, match="log must be"):
        QuantumBackedButler.initialize(tmp_path, Quantum("t", {}, [ref], []), log=42)


@pytest.mark.parametrize("method", ["stored", "stored_many"])
def test_existence_of_a_predicted_id_is_checked_as_the_quantum_defines_it(make_quantum, method):
    setup = make_quantum(missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    present, absent = setup.inputs
    other = DatasetType("raw_bytes", "bytes", present.dataset_type.dimensions)
    # Same ids, another definition: the answer must still be true of the ids.
    for ref, expected in ((present, True), (absent, False)):
        retyped = DatasetRef(other, dict(ref.data_id), ref.run, id=ref.id)
        if method == "stored":
            assert butler.stored(retyped) is expected
        else:
            assert butler.stored_many([retyped]) == {retyped: expected}
    prov = butler.extract_provenance_data()
    assert prov.available_inputs == {present.id}
    assert prov.unavailable_inputs == {absent.id}
    assert prov == fold(butler.events)


# -- regression: argument checks before anything is deleted or opened ---------------

_numpy = importlib.import_module("numpy") if importlib.util.find_spec("numpy") else None

NON_BOOL_FLAGS = [
    {"disassociate": True, "unstore": True, "purge": "no"},
    {"disassociate": True, "unstore": True, "purge": 1},
    {"disassociate": False, "unstore": 1, "purge": False},
    {"disassociate": False, "unstore": 2, "purge": False},
    {"disassociate": "yes", "unstore": True, "purge": True},
    {"disassociate": None, "unstore": True, "purge": True},
]
if _numpy is not None:
    NON_BOOL_FLAGS += [
        {"disassociate": False, "unstore": _numpy.True_, "purge": False},
        {"disassociate": _numpy.True_, "unstore": _numpy.True_, "purge": _numpy.True_},
        {"disassociate": _numpy.False_, "unstore": True, "purge": False},
    ]


@pytest.mark.parametrize("log_kind", ["memory", "file"])
@pytest.mark.parametrize("flags", NON_BOOL_FLAGS, ids=repr)
def test_prune_non_bool_flags_are_refused_before_anything(make_quantum, tmp_path, log_kind, flags):
    setup = make_quantum()
    path = tmp_path / "logs" / "q.jsonl"
    butler = QuantumBackedButler.initialize(
        setup.datastore, setup.quantum, log=path if log_kind == "file" else None
    )
    for k, out in enumerate(setup.outputs):
        butler.put({"out": k}, out)
    before = provenance(butler)
    with appends_none(butler), pytest.raises(qbb_events.ArgumentTypeError) as info:
        butler.pruneDatasets(setup.outputs, **flags)
    assert isinstance(info.value, TypeError)
    assert "must be a bool" in str(info.value)
    for k, out in enumerate(setup.outputs):
        assert setup.datastore.get(out) == {"out": k}
    assert butler.extract_provenance_data() == before
    assert fold(butler.events) == butler.extract_provenance_data()
    # The log took no damage: later calls append, and a file log reads back whole.
    with appends_one(butler, "datasets_pruned"):
        butler.pruneDatasets(setup.outputs[:1], disassociate=True, unstore=True, purge=True)
    butler.close()
    assert_consistent(butler)
    assert provenance(butler).actual_outputs == {setup.outputs[1].id}
    if log_kind == "file":
        assert read_log(path) == list(butler.events)


@pytest.mark.parametrize("tags", ["", "tagged"])
def test_prune_a_string_of_tags_is_one_tag(butler, setup, written, tags):
    with appends_one(butler, "datasets_pruned") as new, pytest.raises(PruneArgumentError) as info:
        butler.pruneDatasets(written, disassociate=False, unstore=True, tags=tags)
    assert repr([tags]) in str(info.value)
    assert new[0].removed == ()
    assert all(setup.datastore.path(ref).exists() for ref in written)


@pytest.mark.parametrize("quantum_id", ["garbage", "", 42, b"\x00" * 16, uuid.uuid4().int])
def test_from_predicted_refuses_a_bad_quantum_id_before_opening_a_log(setup, tmp_path, quantum_id):
    path = tmp_path / "logs" / "q.jsonl"
    with pytest.raises(InvalidDefinitionError, match="Quantum id") as info:
        QuantumBackedButler.from_predicted(
            setup.datastore, setup.inputs, setup.outputs, quantum_id=quantum_id, log=path
        )
    assert isinstance(info.value, ValueError)
    assert not path.exists()
    with pytest.raises(InvalidDefinitionError):
        QuantumBackedButler.from_predicted(
            setup.datastore, setup.inputs, setup.outputs, quantum_id=quantum_id
        )


def test_from_predicted_accepts_a_quantum_id_string(setup, tmp_path):
    quantum_id = uuid.uuid4()
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.from_predicted(
        setup.datastore, setup.inputs, setup.outputs, quantum_id=str(quantum_id), log=path
    )
    assert butler.quantum_id == quantum_id
    butler.close()
    assert [e.quantum_id for e in read_log(path)] == [quantum_id] * len(butler.events)
    assert_consistent(butler)


def _open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc_fd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to count open files"
)


@needs_proc_fd
@pytest.mark.parametrize("attempt", [-1, True, "1", 1.0, None])
@pytest.mark.parametrize("constructor", ["initialize", "from_predicted"])
def test_bad_attempt_leaves_no_log_file_and_no_open_fd(setup, tmp_path, attempt, constructor):
    before = _open_fd_count()
    if constructor == "initialize":
        args = (setup.datastore, setup.quantum)
    else:
        args = (setup.datastore, setup.inputs, setup.outputs)
    make = getattr(QuantumBackedButler, constructor)
    for k in range(5):
        path = tmp_path / f"logs{k}" / "q.jsonl"
        with pytest.raises(InvalidDefinitionError, match="attempt"):
            make(*args, log=path, attempt=attempt)
        assert not path.exists()
        assert not path.parent.exists()
    assert _open_fd_count() == before


class _DiskFull:
    """Stands in for the ``os`` module of the JSON Lines log: every write fails."""

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@needs_proc_fd
def test_a_log_opened_by_a_failed_constructor_is_closed(setup, tmp_path, monkeypatch):
    path = tmp_path / "q.jsonl"
    before = _open_fd_count()
    with monkeypatch.context() as m:
        m.setattr("qbb_events.logs.jsonl._log.os", _DiskFull())
        with pytest.raises(qbb_events.LogWriteError) as info:
            QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=path)
    assert info.value.errno == errno.ENOSPC
    assert _open_fd_count() == before
    # Closed, so unlocked, and still empty: the next attempt may use the path.
    assert path.read_bytes() == b""
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=path)
    butler.close()
    assert read_log(path) == list(butler.events)


# -- regression: a put whose output_written cannot be logged -----------------------


def test_put_whose_output_written_cannot_be_logged_leaves_no_artifact(setup, tmp_path, monkeypatch):
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=path)
    out = setup.outputs[0]
    files_before = sorted(p for p in setup.datastore.root.rglob("*") if p.is_file())
    events_before = butler.events
    with monkeypatch.context() as m:
        m.setattr("qbb_events.logs.jsonl._log.os", _DiskFull())
        with pytest.raises(qbb_events.LogWriteError) as info:
            butler.put({"o": 1}, out)
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC
    # No orphan artifact nobody would transfer, and no half-recorded output.
    assert not setup.datastore.path(out).exists()
    assert not FileDatastore(setup.datastore.root).exists(out)
    assert sorted(p for p in setup.datastore.root.rglob("*") if p.is_file()) == files_before
    assert butler.events == events_before
    assert out.id not in provenance(butler).actual_outputs
    assert read_log(path) == list(butler.events)
    # Once the disk has room the output can be written, and everything agrees.
    with appends_one(butler, "output_written"):
        butler.put({"o": 2}, out)
    assert setup.datastore.get(out) == {"o": 2}
    butler.close()
    assert read_log(path) == list(butler.events)
    assert provenance(butler).actual_outputs == {out.id}
    assert_consistent(butler)


# -- regression: threads -----------------------------------------------------------


@pytest.mark.parametrize("log_kind", ["memory", "file"])
def test_concurrent_calls_keep_the_butler_equal_to_its_fold(
    make_quantum, tmp_path, monkeypatch, log_kind
):
    # While the threads run, each rule first yields the GIL, so a thread switch
    # between logging an event and applying its rule is likely instead of rare.
    threads_running = threading.Event()
    for name in ("read", "unused", "existence"):
        rule = getattr(ProvenanceReducer, name)

        def yielding(self, *args, _rule=rule):
            if threads_running.is_set():
                time.sleep(0)
            _rule(self, *args)

        monkeypatch.setattr(ProvenanceReducer, name, yielding)
    setup = make_quantum(n_inputs=4, missing=(3,))
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.initialize(
        setup.datastore, setup.quantum, log=path if log_kind == "file" else None
    )
    n_threads, n_calls = 8, 200
    mismatches: list[int] = []

    def check() -> None:
        # Run by the last thread to reach the barrier, while the others wait.
        threads_running.clear()
        if butler.extract_provenance_data() != fold(butler.events):
            mismatches.append(len(butler.events))
        threads_running.set()

    barrier = threading.Barrier(n_threads, action=check)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(n_calls):
                # In each round every thread calls on the same input.
                ref = setup.inputs[i % len(setup.inputs)]
                op = (t + i) % 3
                if op == 0:
                    try:
                        butler.get(ref)
                    except ArtifactNotFoundError:
                        assert ref == setup.inputs[3]
                elif op == 1:
                    butler.markInputUnused(ref)
                else:
                    butler.stored(ref)
                barrier.wait()
        except BaseException as err:
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    threads_running.set()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    threads_running.clear()
    assert errors == []
    assert mismatches == []
    events = butler.events
    assert len(events) == 1 + n_threads * n_calls
    assert [e.seq for e in events] == list(range(len(events)))
    check_chain(events)
    assert butler.extract_provenance_data() == fold(butler.events)
    butler.close()
    assert_consistent(butler)
    if log_kind == "file":
        assert read_log(path) == list(butler.events)


def test_an_event_and_its_rule_are_applied_together(butler, setup, monkeypatch):
    ref = setup.inputs[0]
    butler.get(ref)
    entered = threading.Event()
    unused = ProvenanceReducer.unused

    def slow_unused(self, dataset_id):
        # A thread switch between logging markInputUnused and applying its rule.
        entered.set()
        time.sleep(0.2)
        unused(self, dataset_id)

    monkeypatch.setattr(ProvenanceReducer, "unused", slow_unused)
    thread = threading.Thread(target=butler.markInputUnused, args=(ref,))
    thread.start()
    assert entered.wait(10)
    butler.get(ref)
    thread.join()
    assert [e.kind for e in butler.events] == [
        "quantum_started",
        "input_read",
        "input_marked_unused",
        "input_read",
    ]
    # Read again after being marked unused: actual, in the butler as in the log.
    assert provenance(butler).actual_inputs == {ref.id}


# -- regression: malformed read parameters and unwritable DataFrames -------------------


def test_deferred_handle_malformed_parameters_are_logged_bad_requests(butler, setup):
    ref = setup.inputs[0]
    handle = butler.getDeferred(ref)
    loads = []
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(BadReadRequestError) as info:
        handle.get(parameters=["columns"])
    assert isinstance(info.value, ValueError)
    loads += new
    with appends_one(butler, "deferred_requested"):
        deferred = butler.getDeferred(ref, parameters=["x"])
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(BadReadRequestError):
        deferred.get()
    loads += new
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(BadReadRequestError):
        deferred.get(parameters={})
    loads += new
    with appends_one(butler, "deferred_requested"):
        empty = butler.getDeferred(ref, parameters={})
    with appends_one(butler, "deferred_loaded") as new, pytest.raises(BadReadRequestError):
        empty.get(parameters="columns")
    loads += new
    for event in loads:
        assert event.ok is False
        assert event.dataset_id == ref.id
        assert event.failure.category == "bad_request"
        assert event.failure.exc_type == "BadReadRequestError"
    prov = provenance(butler)
    assert ref.id not in prov.unavailable_inputs
    assert ref.id in prov.actual_inputs
    # A proper load through the same handles still works.
    with appends_one(butler, "deferred_loaded"):
        assert handle.get() == setup.contents[ref.id]
    with appends_one(butler, "deferred_loaded"):
        assert empty.get() == setup.contents[ref.id]


@pytest.mark.parametrize(
    "frame",
    [{"c": [1, "x"]}, {"c": [object()]}, {"c": [b"x", 1.5]}],
    ids=["int-str", "object", "bytes-float"],
)
def test_put_unwritable_dataframe_is_an_invalid_object(typed_outputs, datastore, frame):
    butler, refs = typed_outputs
    ref = refs["arrow"]
    with appends_one(butler, "output_rejected") as new, pytest.raises(StorageClassError) as info:
        butler.put(pd.DataFrame(frame), ref)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, qbb_events.QbbEventsError)
    assert new[0].reason == "invalid_object"
    assert new[0].error.exc_type == "StorageClassError"
    assert not datastore.path(ref).exists()
    assert provenance(butler).actual_outputs == frozenset()
    # A well-formed frame can still be written.
    with appends_one(butler, "output_written"):
        butler.put(pd.DataFrame({"c": [1, 2]}), ref)
    assert datastore.get(ref).to_pydict() == {"c": [1, 2]}
    assert_consistent(butler)


# -- regression: stored data naming no known record type ---------------------------


@pytest.mark.parametrize("record_type", [[1], {"file": 1}, None])
def test_provenance_with_an_unhashable_record_type_is_a_validation_error(
    butler, setup, written, record_type
):
    data = json.loads(provenance(butler).model_dump_json())
    data["datastore_records"][setup.datastore.name][0]["record_type"] = record_type
    with pytest.raises(pydantic.ValidationError):
        QuantumProvenanceData.model_validate_json(json.dumps(data))
    with pytest.raises(pydantic.ValidationError):
        QuantumProvenanceData.model_validate_json(
            json.dumps({"datastore_records": {"x": [{"record_type": record_type}]}})
        )


# -- regression: enum data IDs ---------------------------------------------------------


class _Band(str, enum.Enum):  # noqa: UP042 -- not StrEnum: its str() is "_Band.G"
    G = "g"


def test_enum_data_ids_are_recorded_and_stored_as_plain_values(tmp_path):
    path = tmp_path / "q.jsonl"
    raw = DatasetType("raw", "json", ("band",))
    coadd = DatasetType("coadd", "json", ("band",))
    ref = DatasetRef(raw, {"band": _Band.G}, RUN)
    out = DatasetRef(coadd, {"band": _Band.G}, RUN)
    datastore = FileDatastore(tmp_path / "repo", create=True)
    datastore.put({"in": 1}, DatasetRef(raw, {"band": "g"}, RUN, id=ref.id))
    butler = QuantumBackedButler.initialize(
        datastore, Quantum("t", {"band": _Band.G}, [ref], [out]), log=path
    )
    assert butler.stored(ref)
    assert butler.get(ref) == {"in": 1}
    with appends_one(butler, "output_written") as new:
        butler.put({"out": 1}, out)
    assert new[0].record.path == f"{RUN}/coadd/band=g.json"
    plain = DatasetRef(coadd, {"band": "g"}, RUN, id=out.id)
    assert FileDatastore(tmp_path / "repo").get(plain) == {"out": 1}
    butler.close()
    events = read_log(path)
    assert events == list(butler.events)
    check_chain(events)
    started = events[0].quantum
    assert started.data_id == {"band": "g"}
    assert type(started.data_id["band"]) is str
    assert type(started.inputs[0].data_id["band"]) is str
    assert_consistent(butler)


# -- regression: peak memory units ---------------------------------------------------


@pytest.mark.parametrize(("platform", "factor"), [("linux", 1024), ("darwin", 1)])
def test_peak_rss_is_reported_in_bytes(butler, monkeypatch, platform, factor):
    import qbb_events.payloads as payloads_module

    # getrusage reports ru_maxrss in kibibytes on Linux and in bytes on macOS.
    usage = type("Usage", (), {"ru_maxrss": 123_456})()
    fake_resource = type(
        "Resource", (), {"RUSAGE_SELF": 0, "getrusage": staticmethod(lambda who: usage)}
    )
    monkeypatch.setattr(payloads_module, "resource", fake_resource)
    monkeypatch.setattr(payloads_module, "sys", type("Sys", (), {"platform": platform}))
    with appends_one(butler, "quantum_finished") as new:
        butler.finish("succeeded")
    assert new[0].peak_rss_bytes == 123_456 * factor


# -- remaining: a log that fails to sync when sealed ------------------------------------


class _SyncFails:
    """Stands in for the ``os`` module of the JSON Lines log: ``fsync`` and ``fdatasync`` fail."""

    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    fdatasync = fsync


def test_a_failed_sync_when_sealing_keeps_the_butler_equal_to_its_fold(
    setup, tmp_path, monkeypatch
):
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, log=path)
    butler.get(setup.inputs[0])
    with monkeypatch.context() as m:
        m.setattr("qbb_events.logs.jsonl._log.os", _SyncFails())
        with pytest.raises(OSError, match="Input/output error"):
            butler.close()
    try:
        assert butler.extract_provenance_data() == fold(butler.events)
        butler.close()  # idempotent once the disk works again
        assert read_log(path) == list(butler.events)
    finally:
        butler.log.close()


def test_mark_input_unused_never_raises_and_accepts_an_id(make_quantum):
    setup = make_quantum()
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    first = setup.inputs[0]
    butler.get(first)
    with appends_one(butler, "input_marked_unused") as new:
        butler.markInputUnused(first.id)
    assert new[0].dataset_id == first.id
    assert first.id not in butler.extract_provenance_data().actual_inputs
    with capture_logs() as logs, appends_none(butler):
        butler.markInputUnused("not a ref")  # type: ignore[arg-type]
    assert [entry["event"] for entry in logs] == ["mark_input_unused_not_recorded"]
    assert butler.extract_provenance_data() == fold(butler.events)
