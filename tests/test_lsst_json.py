"""LSST provenance JSON: QuantumProvenanceData.to_lsst_json / from_lsst_json."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from support.lineage import generate_run

from qbb_events import (
    FileRecord,
    InterchangeError,
    QuantumProvenanceData,
    RecordTypeError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "lsst"
RECORD_CLASS = "lsst.daf.butler.datastore.stored_file_info.StoredFileInfo"

try:
    from lsst.daf.butler import QuantumProvenanceData as ReferenceProvenance
    from lsst.daf.butler.datastore.record_data import DatastoreRecordData
except ImportError:  # pragma: no cover - depends on the optional reference extra
    ReferenceProvenance = None

needs_reference = pytest.mark.skipif(
    ReferenceProvenance is None,
    reason="the reference (lsst-daf-butler 30.2026.4300) is not installed: "
    "pip install -e '.[reference]' to check our LSST JSON against it",
)

ID = {c: uuid.UUID(f"0190f0a0-0000-7000-8000-00000000000{c}") for c in "abcde"}
SETS = ("predicted_inputs", "available_inputs", "actual_inputs", "predicted_outputs")


def _record(dataset: str, datastore: str, path: str, size: int) -> FileRecord:
    return FileRecord(
        dataset_id=ID[dataset],
        datastore_name=datastore,
        path=path,
        formatter="lsst.daf.butler.formatters.json.JsonFormatter",
        storage_class="StructuredDataDict",
        file_size=size,
        checksum="sha256:" + dataset * 64,
    )


GOLDEN = QuantumProvenanceData(
    predicted_inputs=frozenset({ID["a"], ID["b"]}),
    available_inputs=frozenset({ID["a"]}),
    actual_inputs=frozenset({ID["a"]}),
    predicted_outputs=frozenset({ID["c"], ID["d"]}),
    actual_outputs=frozenset({ID["c"]}),
    datastore_records={
        "FileDatastore@<butlerRoot>": [
            _record("c", "FileDatastore@<butlerRoot>", "run/calexp/c.json", 120)
        ]
    },
)


@pytest.fixture(scope="module")
def provenances(tmp_path_factory: pytest.TempPathFactory) -> list[QuantumProvenanceData]:
    """Every attempt of a generated run: written, failed, aborted, retried, pruned, no work."""
    run = generate_run(tmp_path_factory.mktemp("lsst"), groups=1)
    return list(run.provenance.values())


def _lsst_part(p: QuantumProvenanceData) -> QuantumProvenanceData:
    """What the reference's document can hold of ``p``."""
    return QuantumProvenanceData(
        **{name: getattr(p, name) for name in (*SETS, "actual_outputs", "datastore_records")}
    )


def test_golden_reference_document_reads() -> None:
    text = (FIXTURES / "reference_provenance.json").read_text()
    assert QuantumProvenanceData.from_lsst_json(text) == GOLDEN
    assert QuantumProvenanceData.from_lsst_json(text.encode()) == GOLDEN


def test_we_write_the_golden_document_byte_for_byte() -> None:
    assert GOLDEN.to_lsst_json() + "\n" == (FIXTURES / "written_provenance.json").read_text()
    # Sets sorted, so the reference's own text of the same provenance is ours.
    assert GOLDEN.to_lsst_json() + "\n" == (FIXTURES / "reference_provenance.json").read_text()


def test_written_document_has_the_reference_shape() -> None:
    document = json.loads(GOLDEN.to_lsst_json())
    assert list(document) == [*SETS, "actual_outputs", "datastore_records"]
    store = document["datastore_records"]["FileDatastore@<butlerRoot>"]
    assert store["dataset_ids"] == [str(ID["c"])]
    (row,) = store["records"][RECORD_CLASS][ID["c"].hex]["file_datastore_records"]
    assert row == {
        "formatter": "lsst.daf.butler.formatters.json.JsonFormatter",
        "path": "run/calexp/c.json",
        "storage_class": "StructuredDataDict",
        "component": "__NULL_STRING__",
        "checksum": "sha256:" + "c" * 64,
        "file_size": 120,
    }


def test_two_datastores_and_ids_without_records() -> None:
    p = QuantumProvenanceData.from_lsst_json(
        (FIXTURES / "reference_two_datastores.json").read_text()
    )
    assert p.actual_outputs == {ID["c"], ID["d"]}
    assert p.actual_inputs == frozenset()
    assert {name: [r.dataset_id for r in rs] for name, rs in p.datastore_records.items()} == {
        "primary": [ID["c"]],
        "secondary": [ID["d"]],
    }
    assert p.datastore_records["secondary"][0] == _record("d", "secondary", "run/src/d.json", 7)


def test_legacy_record_class_name_maps_through_the_registry() -> None:
    text = (FIXTURES / "reference_legacy_class.json").read_text()
    assert "lsst.daf.butler.core.storedFileInfo.StoredFileInfo" in text
    assert QuantumProvenanceData.from_lsst_json(text) == GOLDEN


def test_unknown_record_class_is_refused_and_never_imported() -> None:
    text = (FIXTURES / "reference_provenance.json").read_text()
    hostile = text.replace(RECORD_CLASS, "qbb_test_hostile_module.Payload")
    with pytest.raises(RecordTypeError, match=r"qbb_test_hostile_module\.Payload"):
        QuantumProvenanceData.from_lsst_json(hostile)
    assert "qbb_test_hostile_module" not in sys.modules
    with pytest.raises(RecordTypeError, match=r"os\.system"):
        QuantumProvenanceData.from_lsst_json(text.replace(RECORD_CLASS, "os.system"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"component":"__NULL_STRING__"', '"component":"wcs"', "component 'wcs'"),
        ('"checksum":"sha256:' + "c" * 64 + '"', '"checksum":null', "checksum None"),
        ('"checksum":"sha256:' + "c" * 64 + '"', '"checksum":"abc"', "checksum 'abc'"),
        ('"file_size":120', '"file_size":-1', "does not validate"),
        ('"actual_inputs"', '"actual_input"', "Not an LSST provenance document"),
        ('"0190f0a000007000800000000000000c":{', '"zz":{', "does not validate"),
    ],
)
def test_unrepresentable_documents_are_refused(old: str, new: str, message: str) -> None:
    text = (FIXTURES / "reference_provenance.json").read_text()
    assert old in text
    with pytest.raises(InterchangeError, match=message):
        QuantumProvenanceData.from_lsst_json(text.replace(old, new))


def test_two_rows_for_one_artifact_are_refused() -> None:
    document = json.loads((FIXTURES / "reference_provenance.json").read_text())
    rows = next(iter(document["datastore_records"].values()))["records"][RECORD_CLASS]
    table = rows[ID["c"].hex]["file_datastore_records"]
    table.append(dict(table[0], component="wcs"))
    with pytest.raises(InterchangeError, match="2 records"):
        QuantumProvenanceData.from_lsst_json(json.dumps(document))


def test_round_trip_keeps_what_the_format_holds(provenances: list[QuantumProvenanceData]) -> None:
    assert any(p.datastore_records for p in provenances)
    for p in provenances:
        back = QuantumProvenanceData.from_lsst_json(p.to_lsst_json())
        assert back == _lsst_part(p)
        # Our own JSON is unchanged and still keeps everything.
        assert QuantumProvenanceData.model_validate_json(p.model_dump_json()) == p


@needs_reference
def test_reference_reads_our_documents(provenances: list[QuantumProvenanceData]) -> None:
    assert ReferenceProvenance is not None
    for p in provenances:
        text = p.to_lsst_json()
        validated = ReferenceProvenance.model_validate_json(text)
        direct = ReferenceProvenance.direct(**json.loads(text))
        assert validated == direct
        for name in (*SETS, "actual_outputs"):
            assert getattr(validated, name) == set(getattr(p, name)), name
        assert set(validated.datastore_records) == set(p.datastore_records)
        for datastore, records in p.datastore_records.items():
            serialized = validated.datastore_records[datastore]
            assert set(serialized.dataset_ids) == {r.dataset_id for r in records}
            rebuilt = DatastoreRecordData.from_simple(serialized)
            for record in records:
                (row,) = serialized.records[RECORD_CLASS][record.dataset_id.hex][
                    "file_datastore_records"
                ]
                assert row["path"] == record.path
                assert row["formatter"] == record.formatter
                assert row["storage_class"] == record.storage_class
                assert row["file_size"] == record.file_size
                assert row["checksum"] == record.checksum
                # The reference turns the rows into its own record objects.
                (info,) = rebuilt.records[record.dataset_id]["file_datastore_records"]
                assert (info.path, info.checksum, info.file_size) == (
                    record.path,
                    record.checksum,
                    record.file_size,
                )


@needs_reference
def test_we_read_what_the_reference_writes(provenances: list[QuantumProvenanceData]) -> None:
    assert ReferenceProvenance is not None
    for p in provenances:
        reference_text = ReferenceProvenance.model_validate_json(p.to_lsst_json()).model_dump_json()
        assert QuantumProvenanceData.from_lsst_json(reference_text) == _lsst_part(p)


@needs_reference
def test_golden_documents_are_the_references_own() -> None:
    assert ReferenceProvenance is not None
    for name in ("reference_provenance.json", "reference_two_datastores.json"):
        text = (FIXTURES / name).read_text()
        assert ReferenceProvenance.model_validate_json(text).model_dump_json() + "\n" == text
    written = (FIXTURES / "written_provenance.json").read_text()
    assert ReferenceProvenance.model_validate_json(written) == ReferenceProvenance.direct(
        **json.loads(written)
    )
