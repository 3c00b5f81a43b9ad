"""retrieve_artifacts and retrieve_artifacts_zip: checked copies, an index, nothing replaced."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest

from qbb_events import (
    ArtifactChecksumError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    DatasetRef,
    DatasetType,
    FileDatastore,
    InvalidDefinitionError,
    Quantum,
    QuantumBackedButler,
)

MODES = ["auto", "copy", "hardlink", "symlink", "relsymlink"]


def _butler(make_quantum: Any, **kw: Any) -> tuple[QuantumBackedButler, Any]:
    setup = make_quantum(**kw)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    for k, ref in enumerate(setup.outputs):
        butler.put({"out": k}, ref)
    return butler, setup


def _index(path: Path) -> list[dict[str, Any]]:
    document = orjson.loads(path.read_bytes())
    assert document["format"] == "qbb_events.artifact_index"
    artifacts: list[dict[str, Any]] = document["artifacts"]
    return artifacts


def _check_index(entries: list[dict[str, Any]], refs: list[DatasetRef], store: FileDatastore):
    assert [e["id"] for e in entries] == [str(r.id) for r in refs]
    for entry, ref in zip(entries, refs, strict=True):
        assert entry["dataset_type"]["name"] == ref.dataset_type.name
        assert entry["dataset_type"]["storage_class"] == ref.dataset_type.storage_class
        assert entry["data_id"] == ref.data_id.to_dict()
        assert entry["run"] == ref.run
        record = store.record(ref)
        assert entry["file_size"] == record.file_size
        assert entry["checksum"] == record.checksum
        assert entry["record"]["path"] == record.path


@pytest.mark.parametrize("transfer", MODES)
@pytest.mark.parametrize("preserve_path", [True, False])
def test_every_transfer_mode(
    make_quantum: Any, tmp_path: Path, transfer: str, preserve_path: bool
) -> None:
    butler, setup = _butler(make_quantum, n_inputs=2, n_outputs=3)
    # Detectors 0, 1 (inputs) and 2 (an output): file names differ, so both
    # values of preserve_path apply.
    refs = [*setup.inputs, setup.outputs[2]]
    dest = tmp_path / "dest"
    paths = butler.retrieve_artifacts(refs, dest, transfer=transfer, preserve_path=preserve_path)
    store = setup.datastore
    assert len(paths) == 3
    for path, ref in zip(paths, refs, strict=True):
        rel = store.relative_path(ref)
        expected = dest / (rel if preserve_path else PurePosixPath(rel).name)
        assert path == expected
        assert path.read_bytes() == store.path(ref).read_bytes()
        if transfer in ("auto", "copy"):
            assert not path.is_symlink()
            assert not os.path.samefile(path, store.path(ref))
        elif transfer == "hardlink":
            assert not path.is_symlink()
            assert os.path.samefile(path, store.path(ref))
        else:
            assert path.is_symlink()
            assert os.path.isabs(os.readlink(path)) == (transfer == "symlink")
            assert os.path.samefile(path, store.path(ref))
    entries = _index(dest / "_index.json")
    _check_index(entries, refs, store)
    assert [dest / e["path"] for e in entries] == paths
    event = butler.events[-1]
    assert event.kind == "artifacts_retrieved"
    assert event.transfer == ("copy" if transfer == "auto" else transfer)  # type: ignore[union-attr]
    assert event.preserve_path is preserve_path  # type: ignore[union-attr]
    assert event.dataset_ids == tuple(r.id for r in refs)  # type: ignore[union-attr]
    assert sorted(os.listdir(dest)) == sorted(
        {p.relative_to(dest).parts[0] for p in paths} | {"_index.json"}
    )


def test_overwrite_false_never_replaces_a_file(make_quantum: Any, tmp_path: Path) -> None:
    butler, setup = _butler(make_quantum, n_inputs=2, n_outputs=0)
    dest = tmp_path / "dest"
    (first,) = butler.retrieve_artifacts([setup.inputs[0]], dest, preserve_path=False)
    first.write_bytes(b"edited by hand")
    index = (dest / "_index.json").read_bytes()
    with pytest.raises(ArtifactExistsError, match="overwrite=False") as info:
        butler.retrieve_artifacts(setup.inputs, dest, preserve_path=False)
    assert isinstance(info.value, FileExistsError)
    assert first.read_bytes() == b"edited by hand"
    assert (dest / "_index.json").read_bytes() == index
    # Nothing at all was written: not even the dataset without a file there.
    assert sorted(os.listdir(dest)) == sorted([first.name, "_index.json"])
    assert butler.events[-1].error.exc_type == "ArtifactExistsError"  # type: ignore[union-attr]
    assert butler.events[-1].paths == ()  # type: ignore[union-attr]
    butler.retrieve_artifacts(setup.inputs, dest, preserve_path=False, overwrite=True)
    assert first.read_bytes() == setup.datastore.path(setup.inputs[0]).read_bytes()


def test_two_datasets_with_one_file_name_are_refused(make_quantum: Any, tmp_path: Path) -> None:
    butler, setup = _butler(make_quantum, n_inputs=0, n_outputs=0)
    kind = DatasetType("raw", "json", ("visit", "detector"))
    a = DatasetRef(kind, {"visit": 1, "detector": 0}, "run/a")
    b = DatasetRef(kind, {"visit": 1, "detector": 0}, "run/b")
    setup.datastore.put([1], a)
    setup.datastore.put([2], b)
    with pytest.raises(ArtifactExistsError, match="preserve_path"):
        butler.retrieve_artifacts([a, b], tmp_path / "dest", preserve_path=False)
    assert not (tmp_path / "dest").exists()
    assert len(butler.retrieve_artifacts([a, b], tmp_path / "dest")) == 2


def test_a_corrupted_artifact_is_refused(make_quantum: Any, tmp_path: Path) -> None:
    butler, setup = _butler(make_quantum, n_inputs=1, n_outputs=2)
    bad = setup.outputs[1]
    path = setup.datastore.path(bad)
    path.write_bytes(path.read_bytes().replace(b"1", b"7"))
    for transfer in ("copy", "hardlink", "symlink"):
        dest = tmp_path / transfer
        with pytest.raises(ArtifactChecksumError, match=str(bad.id)) as info:
            butler.retrieve_artifacts(
                [setup.inputs[0], setup.outputs[0], bad], dest, transfer=transfer
            )
        assert isinstance(info.value, OSError)
        assert [p for p in dest.rglob("*") if p.is_file() or p.is_symlink()] == []
    with pytest.raises(ArtifactChecksumError, match=str(bad.id)):
        butler.retrieve_artifacts_zip([bad], tmp_path / "zips")
    assert list((tmp_path / "zips").iterdir()) == []


def test_input_records_of_the_quantum_check_retrieved_inputs(
    make_quantum: Any, tmp_path: Path
) -> None:
    setup = make_quantum(n_inputs=1, n_outputs=0)
    ref = setup.inputs[0]
    records = setup.datastore.export_records([ref])
    quantum = Quantum("t", {}, [ref], [], datastore_records=records)
    butler = QuantumBackedButler.initialize(setup.datastore, quantum)
    setup.datastore.path(ref).write_bytes(b'{"value": 99}')
    with pytest.raises(ArtifactChecksumError):
        butler.retrieve_artifacts([ref], tmp_path / "dest")
    # Without records (trust mode) the index carries what was read.
    trusting = QuantumBackedButler.initialize(setup.datastore, Quantum("t", {}, [ref], []))
    (path,) = trusting.retrieve_artifacts([ref], tmp_path / "dest")
    (entry,) = _index(tmp_path / "dest" / "_index.json")
    assert entry["checksum"] == setup.datastore.record(ref).checksum
    assert path.read_bytes() == b'{"value": 99}'


def test_a_missing_artifact_is_refused_before_anything_is_written(
    make_quantum: Any, tmp_path: Path
) -> None:
    butler, setup = _butler(make_quantum, n_inputs=2, n_outputs=0, missing=(1,))
    with pytest.raises(ArtifactNotFoundError, match=str(setup.inputs[1].id)):
        butler.retrieve_artifacts(setup.inputs, tmp_path / "dest")
    assert [p for p in (tmp_path / "dest").rglob("*") if p.is_file()] == []


def test_an_unknown_transfer_mode_is_refused(make_quantum: Any, tmp_path: Path) -> None:
    butler, setup = _butler(make_quantum, n_inputs=1, n_outputs=0)
    before = len(butler.events)
    with pytest.raises(InvalidDefinitionError, match="move"):
        butler.retrieve_artifacts(setup.inputs, tmp_path / "dest", transfer="move")
    assert len(butler.events) == before


def test_zip_holds_every_artifact_and_an_index_with_names_inside(
    make_quantum: Any, tmp_path: Path
) -> None:
    butler, setup = _butler(make_quantum, n_inputs=2, n_outputs=2)
    refs = [*setup.inputs, *setup.outputs]
    path = butler.retrieve_artifacts_zip(refs, tmp_path / "zips")
    assert path.parent == tmp_path / "zips"
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        for name in names:
            member = PurePosixPath(name)
            assert not member.is_absolute()
            assert ".." not in member.parts
        assert sorted(names) == sorted(
            [*(setup.datastore.relative_path(r) for r in refs), "_index.json"]
        )
        entries = orjson.loads(zf.read("_index.json"))["artifacts"]
        _check_index(entries, refs, setup.datastore)
        for entry, ref in zip(entries, refs, strict=True):
            assert zf.read(entry["path"]) == setup.datastore.path(ref).read_bytes()
    event = butler.events[-1]
    assert event.transfer == "zip"  # type: ignore[union-attr]
    assert event.paths == (path.name,)  # type: ignore[union-attr]
    # The same datasets give the same name; overwrite=True (the default) replaces it.
    assert butler.retrieve_artifacts_zip(list(reversed(refs)), tmp_path / "zips") == path
    with pytest.raises(ArtifactExistsError):
        butler.retrieve_artifacts_zip(refs, tmp_path / "zips", overwrite=False)
    assert sorted(p.name for p in (tmp_path / "zips").iterdir()) == [path.name]


def test_retrieval_changes_no_provenance_set(make_quantum: Any, tmp_path: Path) -> None:
    butler, setup = _butler(make_quantum, n_inputs=2, n_outputs=1)
    before = butler.extract_provenance_data()
    butler.retrieve_artifacts(setup.inputs, tmp_path / "dest")
    butler.retrieve_artifacts_zip(setup.inputs, tmp_path / "zips")
    assert butler.extract_provenance_data() == before
    assert before.actual_inputs == frozenset()


@pytest.mark.parametrize("transfer", MODES)
def test_retrieving_into_the_datastore_is_refused(make_quantum: Any, transfer: str) -> None:
    butler, setup = _butler(make_quantum, n_inputs=1, n_outputs=1)
    refs = [*setup.inputs, *setup.outputs]
    before = {ref: setup.datastore.path(ref).read_bytes() for ref in refs}
    root = setup.datastore.root
    for dest in (root, root / "inner"):
        with pytest.raises(InvalidDefinitionError, match="inside the datastore root"):
            butler.retrieve_artifacts(refs, dest, transfer=transfer, overwrite=True)
        with pytest.raises(InvalidDefinitionError, match="inside the datastore root"):
            butler.retrieve_artifacts_zip(refs, dest)
    for ref, data in before.items():
        path = setup.datastore.path(ref)
        assert not path.is_symlink()
        assert path.read_bytes() == data
    assert not (root / "inner").exists()
    assert butler.events[-1].error.exc_type == "InvalidDefinitionError"  # type: ignore[union-attr]
