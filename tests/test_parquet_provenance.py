"""The vectorized fold of an export against the scalar fold, log by log."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scenarios import run_scenario
from support.strategies import scenarios
from support.workflows import run_workflow

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    Quantum,
    QuantumBackedButler,
    fold,
    read_log,
)
from qbb_events.events import event_body
from qbb_events.parquet import export_parquet
from qbb_events.parquet.provenance import (
    PROVENANCE_ROLES,
    PROVENANCE_SCHEMA,
    fold_export,
    provenance_rows_scalar,
    vectorized_provenance,
    write_provenance,
)
from qbb_events.parquet.rows import ENVELOPE

FIXTURE = Path(__file__).parent / "fixtures" / "v1" / "workflow.jsonl"
RUN = "prov/run"


# -- helpers -------------------------------------------------------------------------


def _key(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples (quantum, attempt, role, dataset, seq)."""
    rows = zip(
        table["quantum_id"].to_pylist(),
        table["attempt"].to_pylist(),
        table["role"].cast(pa.string()).to_pylist(),
        table["dataset_id"].to_pylist(),
        table["seq"].to_pylist(),
        strict=True,
    )
    return sorted(rows)


def _scalar(logs: list[Any]) -> pa.Table:
    tables = [provenance_rows_scalar(events) for events in logs]
    return pa.concat_tables(tables) if tables else PROVENANCE_SCHEMA.empty_table()


def _check_sets(events: Any) -> None:
    """The scalar table holds exactly the sets of `fold`."""
    table = provenance_rows_scalar(events)
    result = fold(events)
    roles = table["role"].cast(pa.string()).to_pylist()
    ids = [uuid.UUID(bytes=b) for b in table["dataset_id"].to_pylist()]
    for role in PROVENANCE_ROLES:
        got = {d for d, r in zip(ids, roles, strict=True) if r == role}
        assert got == getattr(result, role + "s"), role
    assert table.schema == PROVENANCE_SCHEMA


def _export_and_compare(logs: list[Any], dest: Path) -> pa.Table:
    """Export live logs, fold the export both ways, and compare."""
    export_parquet(logs, dest)
    folded = fold_export(dest)
    assert folded.schema == PROVENANCE_SCHEMA.append(pa.field("run", pa.string()))
    table = folded.drop_columns(["run"])
    expected = _scalar([log.events for log in logs])
    assert _key(table) == _key(expected)
    for log in logs:
        _check_sets(log.events)
    return folded


def _read(dest: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    return ds.dataset(dest / table, format="parquet", partitioning="hive").to_table(columns=columns)


# -- random butler histories ---------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(scenarios(max_calls=30), min_size=1, max_size=4, unique_by=lambda s: s.quantum_id))
def test_vectorized_equals_scalar_on_random_histories(batch: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [run_scenario(root / f"repo{i}", sc) for i, sc in enumerate(batch)]
        logs = [run.butler.log for run in runs]
        folded = _export_and_compare(logs, root / "export")
        # The tables given directly (not through fold_export) fold the same way.
        direct = vectorized_provenance(
            _read(root / "export", "events"), _read(root / "export", "predicted")
        )
        assert direct.equals(folded.drop_columns(["run"]))


# -- conformance logs ----------------------------------------------------------------


def test_workflow_log(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    folded = _export_and_compare([butler.log], tmp_path / "export")
    assert set(folded["run"].to_pylist()) == {"events/run"}
    actual_outputs = folded.filter(pc.equal(folded["role"].cast(pa.string()), "actual_output"))
    assert actual_outputs.num_rows == 1
    assert actual_outputs["seq"].to_pylist() == [
        next(e.seq for e in butler.events if e.kind == "output_written")
    ]


def test_v1_fixture_log(tmp_path: Path) -> None:
    export_parquet(FIXTURE, tmp_path / "export")
    table = fold_export(tmp_path / "export").drop_columns(["run"])
    events = list(read_log(FIXTURE))
    assert _key(table) == _key(provenance_rows_scalar(events))
    _check_sets(events)


def test_write_provenance(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    export_parquet([butler.log], tmp_path / "export")
    files = write_provenance(tmp_path / "export")
    assert [f.relative_to(tmp_path / "export").parts[:2] for f in files] == [
        ("provenance", "run=events%2Frun")
    ]
    assert pq.read_metadata(files[0]).row_group(0).column(0).compression == "ZSTD"
    back = _read(tmp_path / "export", "provenance")
    assert _key(back) == _key(provenance_rows_scalar(butler.events))
    assert set(back["run"].to_pylist()) == {"events/run"}
    # Incremental, like the export: a part is folded once; a new export adds one part.
    assert write_provenance(tmp_path / "export") == []
    other = run_workflow(tmp_path / "repo2")
    export_parquet([other.log], tmp_path / "export")
    (added,) = write_provenance(tmp_path / "export")
    assert added not in files
    back = _read(tmp_path / "export", "provenance")
    expected = provenance_rows_scalar(butler.events).num_rows
    assert back.num_rows == expected + provenance_rows_scalar(other.events).num_rows


def test_export_without_predicted_table_is_refused(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    report = export_parquet([butler.log], tmp_path / "export")
    predicted = [f for f in report.files if f.parts[-3] == "predicted"]
    assert len(predicted) == 1
    predicted[0].unlink()
    with pytest.raises(FileNotFoundError, match="predicted"):
        fold_export(tmp_path / "export")


def test_predicted_table(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    export_parquet([butler.log], tmp_path / "export")
    table = _read(tmp_path / "export", "predicted")
    quantum = butler.events[0].quantum
    expected = sorted(
        [(ref.id.bytes, "input", ref.dataset_type) for ref in quantum.inputs]
        + [(ref.id.bytes, "output", ref.dataset_type) for ref in quantum.outputs]
    )
    got = sorted(
        zip(
            table["dataset_id"].to_pylist(),
            table["role"].cast(pa.string()).to_pylist(),
            table["dataset_type"].cast(pa.string()).to_pylist(),
            strict=True,
        )
    )
    assert got == expected
    assert set(table["quantum_id"].to_pylist()) == {butler.quantum_id.bytes}


# -- edge cases ----------------------------------------------------------------------


@pytest.fixture
def refs(tmp_path: Path) -> dict[str, Any]:
    raw = DatasetType("raw", "json", ("visit",))
    out = DatasetType("calexp", "json", ("visit",))
    made = {f"in{i}": DatasetRef(raw, {"visit": i}, RUN) for i in range(4)}
    made |= {f"out{i}": DatasetRef(out, {"visit": i}, RUN) for i in range(3)}
    made["outside"] = DatasetRef(raw, {"visit": 99}, RUN)
    store = FileDatastore(tmp_path / "repo")
    for name in ("in0", "in1", "in2", "outside"):
        store.put({"v": name}, made[name])
    made["store"] = store
    return made


def _butler(refs: dict[str, Any], **kw: Any) -> QuantumBackedButler:
    quantum = Quantum(
        "task",
        {"visit": 0},
        inputs=[refs["in0"], refs["in1"], refs["in2"]],
        init_inputs=[refs["in3"]],
        outputs=[refs["out0"], refs["out1"], refs["out2"]],
    )
    return QuantumBackedButler.initialize(refs["store"], quantum, **kw)


def test_only_quantum_started(tmp_path: Path, refs: dict[str, Any]) -> None:
    butler = _butler(refs)
    assert len(butler.events) == 1
    folded = _export_and_compare([butler.log], tmp_path / "export")
    roles = folded["role"].cast(pa.string()).to_pylist()
    assert sorted(set(roles)) == ["predicted_input", "predicted_output"]
    assert roles.count("predicted_input") == 4


def test_unsealed_log_and_ordering_rules(tmp_path: Path, refs: dict[str, Any]) -> None:
    butler = _butler(refs)
    store: FileDatastore = refs["store"]
    # in0: deferred (actual), found missing, then read once restored: actual from the read.
    butler.getDeferred(refs["in0"])
    store.path(refs["in0"]).unlink()
    assert not butler.stored(refs["in0"])
    store.put({"v": "again"}, refs["in0"])
    butler.get(refs["in0"])
    read_seq = butler.events[-1].seq
    # in1: read, unused, read again after a failed (missing) read: actual from the last read.
    butler.get(refs["in1"])
    butler.markInputUnused(refs["in1"])
    store.path(refs["in1"]).unlink()
    with pytest.raises(LookupError):
        butler.get(refs["in1"])
    store.put({"v": "again"}, refs["in1"])
    butler.get(refs["in1"])
    reread_seq = butler.events[-1].seq
    # in2: deferred, then unused: not actual. in3 (init input, absent): deferred and
    # found missing, never read: dropped.
    butler.getDeferred(refs["in2"])
    butler.markInputUnused(refs["in2"])
    butler.getDeferred(refs["in3"])
    butler.stored_many([refs["in3"], refs["outside"]])
    # Reads and checks of a dataset outside the quantum change nothing.
    butler.get(refs["outside"])
    butler.getDeferred(refs["outside"])
    butler.markInputUnused(refs["outside"])
    assert butler.events[-1].kind != "quantum_finished"  # unsealed
    folded = _export_and_compare([butler.log], tmp_path / "export")
    seqs = {
        (role, dataset): seq
        for role, dataset, seq in zip(
            folded["role"].cast(pa.string()).to_pylist(),
            folded["dataset_id"].to_pylist(),
            folded["seq"].to_pylist(),
            strict=True,
        )
    }
    assert seqs[("actual_input", refs["in0"].id.bytes)] == read_seq
    assert seqs[("actual_input", refs["in1"].id.bytes)] == reread_seq
    assert ("actual_input", refs["in2"].id.bytes) not in seqs
    assert ("actual_input", refs["in3"].id.bytes) not in seqs
    assert ("unavailable_input", refs["in3"].id.bytes) in seqs
    assert refs["outside"].id.bytes not in {d for _, d in seqs}


def test_outputs_pruned_and_rewritten(tmp_path: Path, refs: dict[str, Any]) -> None:
    butler = _butler(refs)
    out0, out1, out2 = refs["out0"], refs["out1"], refs["out2"]
    butler.put({"n": 1}, out0)
    butler.pruneDatasets([out0], disassociate=False, unstore=True)  # unstored, still actual
    butler.put({"n": 2}, out0)
    butler.pruneDatasets([out0], disassociate=True, unstore=True, purge=True)
    butler.put({"n": 3}, out0)
    last_write = butler.events[-1].seq
    butler.put({"n": 1}, out1)
    butler.pruneDatasets([out1], disassociate=True, unstore=True, purge=True)  # gone
    butler.put({"n": 1}, out2)
    unstored_write = butler.events[-1].seq
    butler.pruneDatasets([out2], disassociate=False, unstore=True)
    with pytest.raises(TypeError):  # refused purge: an error, nothing changes
        butler.pruneDatasets([out2], disassociate=False, unstore=True, purge=True)
    butler.close()
    folded = _export_and_compare([butler.log], tmp_path / "export")
    actual = folded.filter(pc.equal(folded["role"].cast(pa.string()), "actual_output"))
    assert dict(zip(actual["dataset_id"].to_pylist(), actual["seq"].to_pylist(), strict=True)) == {
        out0.id.bytes: last_write,
        out2.id.bytes: unstored_write,
    }


def test_many_quanta_and_attempts(tmp_path: Path, refs: dict[str, Any]) -> None:
    logs = []
    for attempt in range(3):
        butler = _butler(refs, attempt=attempt)
        butler.get(refs["in0"])
        if attempt:
            butler.markInputUnused(refs["in0"])
        if attempt == 0:
            butler.put({"n": attempt}, refs["out0"])
        logs.append(butler.log)
    logs.append(run_workflow(tmp_path / "other").log)
    _export_and_compare(logs, tmp_path / "export")


def test_columns_that_cannot_hold_a_payload_fall_back_to_the_scalar_fold(
    tmp_path: Path, refs: dict[str, Any]
) -> None:
    butler = _butler(refs)
    butler.get(refs["in0"])
    butler.getDeferred(refs["in1"])
    butler.put({"n": 1}, refs["out0"])
    other = run_workflow(tmp_path / "other")
    export_parquet([butler.log, other.log], tmp_path / "export")
    events = _read(tmp_path / "export", "events")
    predicted = _read(tmp_path / "export", "predicted")
    # Rewrite the input_read row as a payload the columns could not hold (item -2).
    read = next(e for e in butler.events if e.kind == "input_read")
    payload = {k: v for k, v in event_body(read).items() if k not in ENVELOPE}
    rows = events.to_pylist()
    for row in rows:
        if row["quantum_id"] == butler.quantum_id.bytes and row["seq"] == read.seq:
            for name in ("dataset_id", "ok", "bytes_read", "duration_ns", "role"):
                row[name] = None
            row["item"] = -2
            row["extra"] = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    spoiled = pa.Table.from_pylist(rows, schema=events.schema)
    table = vectorized_provenance(spoiled, predicted)
    assert _key(table) == _key(_scalar([butler.events, other.events]))
    with pytest.raises(ValueError, match="scalar fold"):
        vectorized_provenance(spoiled.drop_columns(["path"]), predicted)


@pytest.mark.parametrize("chunk", [1, 7, 50, 10_000])
def test_write_provenance_in_chunks_equals_the_whole_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Folding a part in chunks of whole quanta gives the fold of the whole export."""
    import qbb_events.parquet.provenance as provenance_module

    logs = [run_workflow(tmp_path / f"repo{i}").log for i in range(4)]
    export_parquet(logs, tmp_path / "export")
    whole = fold_export(tmp_path / "export")
    monkeypatch.setattr(provenance_module, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", _small_batches(pq.ParquetFile.iter_batches))
    write_provenance(tmp_path / "export")
    back = _read(tmp_path / "export", "provenance")
    assert _key(back) == _key(whole.drop_columns(["run"]))


def _small_batches(real):  # type: ignore[no-untyped-def]
    def iter_batches(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["batch_size"] = 5
        return real(self, *args, **kwargs)

    return iter_batches
