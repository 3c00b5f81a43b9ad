"""Export formats: a format-1 dataset stays readable, and formats never mix in one dataset.

``tests/fixtures/format1`` holds the demo run's logs and the dataset the
format-1 exporter wrote from them (its run named ``u/me/run é 100%``,
percent-encoded in full as format 1 did).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qbb_events import (
    ExportFormatError,
    export_parquet,
    exported_logs,
    read_log,
    verify_export,
    write_provenance,
)
from qbb_events import analytics as qa
from qbb_events.parquet import EXPORT_FORMAT, fold_export

FIXTURE = Path(__file__).parent / "fixtures" / "format1"
RUN = "u/me/run é 100%"


@pytest.fixture
def format1(tmp_path: Path) -> Path:
    dest = tmp_path / "dataset"
    shutil.copytree(FIXTURE / "dataset", dest)
    return dest


def _records(log: object) -> list[bytes]:
    return [record for _, record, _ in log]  # type: ignore[attr-defined]


def _parts(dest: Path) -> list[Path]:
    return sorted(dest.glob("*/run=*/part-*.parquet"))


def test_the_fixture_is_format_1() -> None:
    for part in _parts(FIXTURE / "dataset"):
        schema = pq.read_schema(part)
        if part.parts[-3] != "provenance":
            assert pq.read_metadata(part).metadata[b"qbb_events.export_format"] == b"1"
        assert any(pa.types.is_dictionary(f.type) for f in schema)
    assert EXPORT_FORMAT == "2"


def test_format_1_logs_rebuild_byte_for_byte(format1: Path) -> None:
    originals = {path.read_bytes() for path in sorted((FIXTURE / "logs").glob("*.jsonl"))}
    rebuilt = {b"".join(r + b"\n" for r in _records(log)) for log in exported_logs(format1)}
    assert rebuilt == originals
    assert verify_export(format1).ok


def test_format_1_analytics(format1: Path) -> None:
    quanta = qa.load_quanta(format1)
    assert set(quanta["run"]) == {RUN}
    assert set(quanta["task_label"]) == {"isr", "coadd", "summary"}
    events = qa.load_events(format1, data_id_keys=["exposure"])
    assert events["ok"].dtype == "boolean"
    assert len(events) == pq.ParquetDataset(format1 / "events").read().num_rows
    assert qa.load_events(format1, since=events["timestamp"].max()).shape[0] >= 1
    assert len(qa.unwritten_outputs(format1)) == 1  # the demo's unreadable exposure
    assert qa.unverified_quanta(format1).empty


def test_provenance_of_a_format_1_part_is_written_in_format_1(format1: Path) -> None:
    expected = fold_export(format1)
    shutil.rmtree(format1 / "provenance")
    (written,) = write_provenance(format1)
    assert pq.read_metadata(written).metadata[b"qbb_events.export_format"] == b"1"
    assert pa.types.is_dictionary(pq.read_schema(written).field("role").type)
    assert pq.read_table(written).num_rows == expected.num_rows


def test_new_logs_are_refused_by_a_format_1_dataset(format1: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURE / "logs", logs)
    before = {p: p.read_bytes() for p in format1.rglob("*") if p.is_file()}
    with pytest.raises(ExportFormatError, match="export format 1") as raised:
        export_parquet(logs, format1, run="another run")
    assert isinstance(raised.value, ValueError)
    after = {p: p.read_bytes() for p in format1.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing changed


def test_a_new_dataset_is_format_2_in_every_table(tmp_path: Path) -> None:
    dest = tmp_path / "dataset"
    export_parquet(FIXTURE / "logs", dest, run=RUN)
    write_provenance(dest)
    parts = _parts(dest)
    assert {p.parts[-3] for p in parts} == {"events", "predicted", "quanta", "provenance"}
    for part in parts:
        metadata = pq.read_metadata(part).metadata
        assert metadata[b"qbb_events.export_format"] == b"2"
        assert metadata[b"qbb_events.run"].decode() == RUN
        assert not any(pa.types.is_dictionary(f.type) for f in pq.read_schema(part))
    assert verify_export(dest).ok
    assert sum(r.events for r in verify_export(dest).logs) == sum(
        len(read_log(p)) for p in (FIXTURE / "logs").glob("*.jsonl")
    )
