"""getURI, getURIs and get_many_uris: file URIs that are also local paths, logged, never folded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from qbb_events import (
    ArtifactNotFoundError,
    ArtifactURI,
    ButlerClosedError,
    DatasetRefURIs,
    QuantumBackedButler,
    fold,
)


def test_geturi_of_a_stored_dataset_is_a_file_uri_and_a_path(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref = setup.inputs[0]
    uri = butler.getURI(ref)
    assert isinstance(uri, ArtifactURI)
    assert isinstance(uri, os.PathLike)
    assert uri.scheme == "file"
    assert not uri.predicted
    assert str(uri) == uri.geturl() == setup.datastore.path(ref).as_uri()
    assert Path(uri) == setup.datastore.path(ref)
    assert uri.ospath == str(setup.datastore.path(ref))
    assert uri.exists()
    with open(uri, "rb") as stream:
        assert stream.read() == setup.datastore.path(ref).read_bytes()
    assert uri.basename() == setup.datastore.path(ref).name
    assert uri == butler.getURI(ref)
    assert len({uri, butler.getURI(ref)}) == 1
    event = butler.events[-1]
    assert event.kind == "uri_requested"
    assert event.dataset_ids == (ref.id,)  # type: ignore[union-attr]
    assert event.predict is False  # type: ignore[union-attr]


def test_geturi_of_a_missing_dataset_raises_unless_predicted(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1, missing=(0,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    ref = setup.inputs[0]
    with pytest.raises(ArtifactNotFoundError, match=str(ref.id)) as info:
        butler.getURI(ref)
    assert isinstance(info.value, FileNotFoundError)
    failed = butler.events[-1]
    assert failed.kind == "uri_requested"
    assert failed.missing == (ref.id,)  # type: ignore[union-attr]
    assert failed.error.exc_type == "ArtifactNotFoundError"  # type: ignore[union-attr]
    predicted = butler.getURI(ref, predict=True)
    assert predicted.predicted
    assert predicted.fragment == "predicted"
    assert str(predicted).endswith("#predicted")
    assert Path(predicted) == setup.datastore.path(ref)
    assert not predicted.exists()
    # A predicted output's URI is where put will write it.
    out = setup.outputs[0]
    where = butler.getURI(out, predict=True)
    butler.put({"x": 1}, out)
    assert Path(butler.getURI(out)) == Path(where)
    assert not butler.getURI(out).predicted


def test_uri_lookups_change_no_provenance_set(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=2, missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    before = butler.extract_provenance_data()
    butler.getURI(setup.inputs[0])
    butler.get_many_uris(setup.inputs, predict=True)
    after = butler.extract_provenance_data()
    assert after == before
    assert fold(butler.events) == after
    assert after.available_inputs == frozenset()
    assert after.actual_inputs == frozenset()


def test_geturis_gives_the_primary_and_no_components(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    uris = butler.getURIs(setup.inputs[0])
    assert isinstance(uris, DatasetRefURIs)
    primary, components = uris
    assert primary == butler.getURI(setup.inputs[0])
    assert components == {}


def test_get_many_uris_predicts_skips_or_raises_in_one_event(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=3, missing=(1,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    in0, in1, in2 = setup.inputs
    before = len(butler.events)
    with pytest.raises(ArtifactNotFoundError):
        butler.get_many_uris(setup.inputs)
    skipped = butler.get_many_uris(setup.inputs, allow_missing=True)
    assert list(skipped) == [in0, in2]
    predicted = butler.get_many_uris(setup.inputs, predict=True, allow_missing=True)
    assert list(predicted) == [in0, in1, in2]
    assert [predicted[r].primaryURI.predicted for r in setup.inputs] == [False, True, False]
    events = butler.events[before:]
    assert [e.kind for e in events] == ["uri_requested"] * 3
    assert all(e.missing == (in1.id,) for e in events)  # type: ignore[union-attr]
    assert [e.dataset_ids for e in events] == [(in0.id, in1.id, in2.id)] * 3  # type: ignore[union-attr]


def test_uris_need_an_open_butler(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    butler.close()
    with pytest.raises(ButlerClosedError):
        butler.getURI(setup.inputs[0])
