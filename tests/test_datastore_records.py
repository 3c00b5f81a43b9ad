"""Datastore identity and records: a root that must exist, names, roots, exported, predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qbb_events import (
    DEFAULT_DATASTORE_NAME,
    DatasetNotPredictedError,
    DatasetRef,
    DatasetType,
    DatastoreRootNotFoundError,
    FileDatastore,
    FileRecord,
    Quantum,
    QuantumBackedButler,
)

RAW = DatasetType("raw", "json", ("visit",))


def test_a_nonexistent_root_is_refused_naming_it(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "root"
    ref = DatasetRef(RAW, {"visit": 1}, "run")
    quantum = Quantum("t", {}, [ref], [])
    log = tmp_path / "q.jsonl"
    for make in (
        lambda: FileDatastore(typo),
        lambda: QuantumBackedButler.initialize(typo, quantum, log=log),
        lambda: QuantumBackedButler.from_predicted(str(typo), [ref], [], log=log),
    ):
        with pytest.raises(DatastoreRootNotFoundError, match="create=True") as info:
            make()
        assert isinstance(info.value, FileNotFoundError)
        assert info.value.filename == str(typo)
        assert str(typo) in str(info.value)
    assert not typo.exists()
    assert not log.exists()  # refused before the log was opened


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a datastore")
    with pytest.raises(DatastoreRootNotFoundError, match="not a directory"):
        FileDatastore(blocker)


def test_create_true_makes_the_root(tmp_path: Path) -> None:
    root = tmp_path / "new" / "repo"
    store = FileDatastore(root, create=True)
    assert root.is_dir()
    assert store.root == root
    assert FileDatastore(root).root == root  # exists now
    assert FileDatastore(root, create=True).root == root  # and may be "created" again


def test_names_roots_and_writeable(tmp_path: Path) -> None:
    default = FileDatastore(tmp_path)
    assert default.name == DEFAULT_DATASTORE_NAME == "FileDatastore"
    store = FileDatastore(tmp_path, name="main")
    butler = QuantumBackedButler.from_predicted(store, [], [])
    assert butler.isWriteable() is True
    assert butler.get_datastore_names() == ("main",)
    assert butler.get_datastore_roots() == {"main": tmp_path}


def test_export_records_describes_existing_artifacts(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path, name="raw_store")
    refs = [DatasetRef(RAW, {"visit": v}, "run") for v in range(3)]
    written = [store.put({"v": v}, ref) for v, ref in enumerate(refs[:2])]
    # A file written by something else is described just as well.
    store.path(refs[2]).write_bytes(b'{"v":2}')
    records = store.export_records([*refs, refs[0]])
    assert list(records) == ["raw_store"]
    (exported,) = records.values()
    assert exported[:2] == written
    assert exported[2].file_size == 7
    assert exported[2].checksum == store.record(refs[2]).checksum
    assert not any(r.predicted for r in exported)
    missing = DatasetRef(RAW, {"visit": 9}, "run")
    assert store.export_records([missing]) == {}
    assert store.export_records([missing, refs[0]]) == {"raw_store": [written[0]]}


def test_export_records_of_a_big_artifact_reads_in_chunks(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path)
    blob = DatasetRef(DatasetType("blob", "bytes", ()), {}, "run")
    data = bytes(range(256)) * (40 * 1024 * 4)  # 40 MiB, several chunks
    record = store.put(data, blob)
    assert store.export_records([blob]) == {store.name: [record]}


def test_from_predicted_takes_input_records(tmp_path: Path) -> None:
    store = FileDatastore(tmp_path)
    inputs = [DatasetRef(RAW, {"visit": v}, "run") for v in range(2)]
    for ref in inputs:
        store.put({"v": 1}, ref)
    records = store.export_records(inputs)
    butler = QuantumBackedButler.from_predicted(
        store,
        inputs,
        [],
        datastore_records={k: [r.model_dump() for r in v] for k, v in records.items()},
    )
    started = butler.events[0]
    assert dict(started.quantum.input_records) == {  # type: ignore[union-attr]
        name: tuple(group) for name, group in records.items()
    }


def test_export_predicted_datastore_records(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=2, n_outputs=2, missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    before = len(butler.events)
    refs = [*setup.inputs, *setup.outputs]
    records = butler.export_predicted_datastore_records(refs)
    assert list(records) == [setup.datastore.name]
    (predicted,) = records.values()
    assert [r.dataset_id for r in predicted] == [r.id for r in refs]
    for record, ref in zip(predicted, refs, strict=True):
        assert isinstance(record, FileRecord)
        assert record.predicted
        assert record.file_size is None
        assert record.checksum is None
        assert record.path == setup.datastore.relative_path(ref)
        assert record.formatter == "json"
        assert record.storage_class == "json"
    assert len(butler.events) == before  # nothing was read or checked
    # A written output's record has what the prediction left out.
    written = setup.datastore.put({"x": 1}, setup.outputs[0])
    assert written.model_copy(update={"file_size": None, "checksum": None}) == predicted[2]
    assert butler.export_predicted_datastore_records([]) == {}


def test_export_predicted_records_refuses_a_dataset_outside_the_quantum(
    make_quantum: Any,
) -> None:
    setup = make_quantum(n_inputs=1, n_outputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    stranger = DatasetRef(setup.inputs[0].dataset_type, {"visit": 7, "detector": 7}, "run")
    with pytest.raises(DatasetNotPredictedError, match=str(stranger.id)) as info:
        butler.export_predicted_datastore_records([setup.inputs[0], stranger])
    assert isinstance(info.value, ValueError)


def test_predicted_records_round_trip_through_json(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1, n_outputs=0)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ((record,),) = butler.export_predicted_datastore_records(setup.inputs).values()
    assert FileRecord.model_validate_json(record.model_dump_json()) == record
    quantum = Quantum("t", {}, setup.inputs, [], datastore_records={"FileDatastore": [record]})
    again = QuantumBackedButler.initialize(setup.datastore, quantum)
    assert again.events[0].quantum.input_records["FileDatastore"] == (record,)  # type: ignore[union-attr]
