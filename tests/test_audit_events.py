"""The audit-only kinds, ``uri_requested`` and ``artifacts_retrieved``: logged, never folded.

They go through everything a log goes through: the fold (where they change no
set), verification, copying and the Parquet export (losslessly, one row per
dataset they name).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from support.workflows import run_workflow

from qbb_events import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    ArtifactsRetrieved,
    DatasetRef,
    DatasetType,
    FileDatastore,
    LogCorruptedError,
    Quantum,
    QuantumBackedButler,
    UriRequested,
    copy_logs,
    exported_logs,
    fold,
    parse_event,
    read_log,
    stored_logs,
    verify_export,
    verify_logs,
)
from qbb_events.parquet import export_parquet
from qbb_events.parquet.provenance import PROVENANCE_ROLES, fold_export

RAW = DatasetType("raw", "json", ("visit",))
OUT = DatasetType("out", "json", ("visit",))
RUN = "audit/run"


def audited_log(tmp_path: Path) -> tuple[QuantumBackedButler, Path]:
    """A closed butler whose log mixes every audit call, failing or not, with reads and writes."""
    store = FileDatastore(tmp_path / "repo", create=True)
    present = DatasetRef(RAW, {"visit": 1}, RUN)
    absent = DatasetRef(RAW, {"visit": 2}, RUN)
    out = DatasetRef(OUT, {"visit": 1}, RUN)
    store.put({"v": 1}, present)
    path = tmp_path / "audit.jsonl"
    butler = QuantumBackedButler.initialize(
        store, Quantum("t", {"visit": 1}, [present, absent], [out]), log=path
    )
    butler.getURI(present)
    with pytest.raises(ArtifactNotFoundError):
        butler.getURI(absent)
    butler.get_many_uris([present, absent], predict=True)
    butler.get_many_uris([present, absent], allow_missing=True)
    butler.get(present)
    butler.put({"r": 1}, out)
    butler.retrieve_artifacts([present, out], tmp_path / "copied")
    with pytest.raises(ArtifactExistsError):
        butler.retrieve_artifacts([present], tmp_path / "copied")
    butler.retrieve_artifacts_zip([present, out], tmp_path / "zips")
    with pytest.raises(ArtifactNotFoundError):
        butler.retrieve_artifacts([absent], tmp_path / "other")
    butler.close()
    return butler, path


AUDIT_KINDS = ("uri_requested", "artifacts_retrieved")


def test_audit_events_carry_the_call(tmp_path: Path) -> None:
    butler, _ = audited_log(tmp_path)
    present, absent = (ref.id for ref in butler.events[0].quantum.inputs)  # type: ignore[union-attr]
    uris = [e for e in butler.events if isinstance(e, UriRequested)]
    assert [(e.dataset_ids, e.predict, e.missing, e.error is None) for e in uris] == [
        ((present,), False, (), True),
        ((absent,), False, (absent,), False),
        ((present, absent), True, (absent,), True),
        ((present, absent), False, (absent,), True),
    ]
    assert uris[1].error is not None
    assert uris[1].error.exc_type == "ArtifactNotFoundError"
    retrievals = [e for e in butler.events if isinstance(e, ArtifactsRetrieved)]
    assert [(e.transfer, e.error is None) for e in retrievals] == [
        ("copy", True),
        ("copy", False),
        ("zip", True),
        ("copy", False),
    ]
    first = retrievals[0]
    assert first.destination == str((tmp_path / "copied").absolute())
    assert first.paths[-1] == "_index.json"
    assert len(first.paths) == 3
    assert all((tmp_path / "copied" / p).is_file() for p in first.paths)
    assert retrievals[1].paths == ()
    assert retrievals[2].paths[0].endswith(".zip")


def test_audit_events_change_no_provenance_set(tmp_path: Path) -> None:
    butler, _ = audited_log(tmp_path)
    events = butler.events
    audits = [i for i, e in enumerate(events) if e.kind in AUDIT_KINDS]
    assert len(audits) == 8
    for index in audits:
        assert fold(events[: index + 1]) == fold(events[:index]), events[index].kind
    # The URI lookup of the missing input did not make it unavailable: only the
    # read of the present one counts, so the absent one stays unchecked.
    provenance = butler.extract_provenance_data()
    assert provenance.unavailable_inputs == frozenset()
    assert [w.tag for w in provenance.warnings] == ["unchecked_predicted_inputs"]


def test_audit_events_verify_and_copy(tmp_path: Path) -> None:
    _, path = audited_log(tmp_path)
    report = verify_logs(path, validate=True)
    assert report.ok, list(report.problems())
    copied = copy_logs(path, tmp_path / "copy.sqlite")
    assert copied.ok
    back = copy_logs(tmp_path / "copy.sqlite", tmp_path / "back")
    assert back.ok
    (again,) = sorted((tmp_path / "back").iterdir())
    assert again.read_bytes() == path.read_bytes()


def test_audit_events_round_trip_through_parquet(tmp_path: Path) -> None:
    butler, path = audited_log(tmp_path)
    dest = tmp_path / "export"
    export_parquet(path, dest)
    (original,) = stored_logs(path)
    (exported,) = exported_logs(dest)
    assert [r for _, r, _ in exported] == [r for _, r, _ in original]
    assert verify_export(dest).digest == verify_logs(path).digest
    # One row per dataset the audit events name, in typed columns.
    events = ds.dataset(dest / "events", format="parquet", partitioning="hive").to_table()
    kinds = events["kind"].cast(pa.string()).to_pylist()
    rows = [
        (seq, item, uuid.UUID(bytes=d))
        for kind, seq, item, d in zip(
            kinds,
            events["seq"].to_pylist(),
            events["item"].to_pylist(),
            events["dataset_id"].to_pylist(),
            strict=True,
        )
        if kind in AUDIT_KINDS
    ]
    expected = [
        (e.seq, item, d)
        for e in butler.events
        if isinstance(e, UriRequested | ArtifactsRetrieved)
        for item, d in enumerate(e.dataset_ids)
    ]
    assert sorted(rows) == sorted(expected)
    # The vectorized fold skips them as the scalar fold does.
    table = fold_export(dest)
    roles = table["role"].cast(pa.string()).to_pylist()
    ids = [uuid.UUID(bytes=b) for b in table["dataset_id"].to_pylist()]
    result = fold(read_log(path))
    for role in PROVENANCE_ROLES:
        assert {d for d, r in zip(ids, roles, strict=True) if r == role} == getattr(
            result, role + "s"
        )


def test_the_shared_workflow_logs_every_kind_and_exports_losslessly(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    run_workflow(tmp_path / "repo", path, retrieve_to=tmp_path / "retrieved")
    export_parquet(path, tmp_path / "export")
    (exported,) = exported_logs(tmp_path / "export")
    assert [r for _, r, _ in exported] == [r for _, r, _ in next(iter(stored_logs(path)))]
    assert verify_export(tmp_path / "export").ok


def test_malformed_audit_events_are_refused(tmp_path: Path) -> None:
    butler, _ = audited_log(tmp_path)
    uri = next(e for e in butler.events if isinstance(e, UriRequested))
    data = uri.model_dump(mode="json")
    data["predict"] = "maybe"
    with pytest.raises(LogCorruptedError, match="uri_requested"):
        parse_event(data)
    retrieved = next(e for e in butler.events if isinstance(e, ArtifactsRetrieved))
    data = retrieved.model_dump(mode="json")
    data["transfer"] = "teleport"
    with pytest.raises(LogCorruptedError, match="artifacts_retrieved"):
        parse_event(data)
    assert orjson.loads(retrieved.model_dump_json())["kind"] == "artifacts_retrieved"
