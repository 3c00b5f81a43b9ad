"""Analytics over a Parquet export of a generated run, in pandas, DuckDB and Polars."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbb_events import analytics as qa
from qbb_events import export_parquet, read_log, write_provenance
from qbb_events.demo import DemoQuantum, run_demo


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DemoQuantum]]:
    """The demo run (three tasks, a missing input, an unused one), exported."""
    root = tmp_path_factory.mktemp("analytics")
    quanta = run_demo(root / "demo")
    report = export_parquet(root / "demo" / "logs", root / "dataset")
    assert report.logs == len(quanta)
    return root / "dataset", quanta


def test_load_quanta(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = run
    frame = qa.load_quanta(dest)
    assert sorted(frame["quantum_id"]) == sorted(str(q.quantum.id) for q in quanta)
    assert set(frame["task_label"]) == {"isr", "coadd", "summary"}
    assert frame["verified"].all()
    statuses = dict(zip(frame["quantum_id"], frame["status"], strict=True))
    for q in quanta:
        assert statuses[str(q.quantum.id)] == q.provenance.status
    assert (frame["events"] == [len(read_log(q.log_path)) for q in _by_id(quanta, frame)]).all()


def _by_id(quanta: list[DemoQuantum], frame: pd.DataFrame) -> list[DemoQuantum]:
    index = {str(q.quantum.id): q for q in quanta}
    return [index[i] for i in frame["quantum_id"]]


def test_load_events_filters_by_task_run_and_time(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = run
    everything = qa.load_events(dest)
    assert len(everything) >= sum(len(read_log(q.log_path)) for q in quanta)
    isr = qa.load_events(dest, task_label="isr")
    assert set(isr["task_label"]) == {"isr"}
    assert len(isr) == (everything["task_label"] == "isr").sum()
    the_run = everything["run"].iloc[0]
    assert len(qa.load_events(dest, run=the_run)) == len(everything)
    assert qa.load_events(dest, run="no/such/run").empty
    times = everything["timestamp"].sort_values()
    middle = times.iloc[len(times) // 2]
    late = qa.load_events(dest, since=middle)
    early = qa.load_events(dest, until=middle)
    assert len(late) + len(early) == len(everything)
    assert (late["timestamp"] >= middle).all()
    assert (early["timestamp"] < middle).all()
    assert qa.load_events(dest, since=middle.tz_convert(None).isoformat()).shape == late.shape


def test_ids_are_strings_and_data_ids_dicts(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = run
    events = qa.load_events(dest, columns=["quantum_id", "dataset_id", "data_id", "role"])
    predicted = events[events["role"].notna()]
    assert not predicted.empty
    ids = {
        str(i) for q in quanta for i in (*q.quantum.predicted_inputs, *q.quantum.predicted_outputs)
    }
    assert set(predicted["dataset_id"]) <= ids
    assert all(isinstance(d, dict) for d in predicted["data_id"])


def test_time_per_task(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, _ = run
    quanta = qa.load_quanta(dest)
    table = qa.time_per_task(dest)
    assert list(table["wall_s"]) == sorted(table["wall_s"], reverse=True)
    for row in table.itertuples():
        mine = quanta[quanta["task_label"] == row.task_label]
        assert row.quanta == len(mine)
        assert row.wall_s == pytest.approx(mine["wall_ns"].sum() / 1e9)
        assert row.cpu_s == pytest.approx(mine["cpu_ns"].sum() / 1e9)


def test_unverified_quanta(run: tuple[Path, list[DemoQuantum]], tmp_path: Path) -> None:
    _, quanta = run
    logs = tmp_path / "logs"
    logs.mkdir()
    for q in quanta:
        shutil.copy(q.log_path, logs / q.log_path.name)
    bad = logs / quanta[0].log_path.name
    data = bytearray(bad.read_bytes())
    data[40] ^= 1
    bad.write_bytes(bytes(data))
    export_parquet(logs, tmp_path / "dataset")
    assert qa.unverified_quanta(tmp_path / "dataset").empty is False
    table = qa.unverified_quanta(tmp_path / "dataset")
    assert list(table["source"]) == [str(bad.resolve())]
    assert any("tampered" in p for p in table["problems"].iloc[0])


def test_missing_tables_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="export logs first"):
        qa.load_events(tmp_path)


def test_duckdb_reads_the_dataset(run: tuple[Path, list[DemoQuantum]]) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is part of the test extra")
    dest, quanta = run
    con = duckdb.connect()
    events = f"read_parquet('{dest}/events/*/*.parquet', hive_partitioning = true)"
    (count,) = con.execute(f"SELECT count(*) FROM {events}").fetchone()
    assert count == len(qa.load_events(dest))
    rows = con.execute(
        f"SELECT data_id['detector'], kind FROM {events} "
        "WHERE task_label = 'isr' AND data_id['detector'] IS NOT NULL"
    ).fetchall()
    assert rows
    assert all(isinstance(detector, str) for detector, _ in rows)
    (runs,) = con.execute(f"SELECT count(DISTINCT run) FROM {events}").fetchone()
    assert runs == 1
    quanta_table = f"read_parquet('{dest}/quanta/*/*.parquet', hive_partitioning = true)"
    by_task = dict(
        con.execute(f"SELECT task_label, count(*) FROM {quanta_table} GROUP BY 1").fetchall()
    )
    assert by_task == {"isr": 3, "coadd": 1, "summary": 1}
    assert sum(by_task.values()) == len(quanta)


def test_polars_reads_the_dataset(run: tuple[Path, list[DemoQuantum]]) -> None:
    pl = pytest.importorskip("polars", reason="polars is part of the test extra")
    dest, quanta = run
    frame = pl.read_parquet(dest / "quanta", hive_partitioning=True)
    assert frame.height == len(quanta)
    assert set(frame["task_label"].cast(pl.Utf8).to_list()) == {"isr", "coadd", "summary"}
    events = pl.scan_parquet(dest / "events" / "**" / "*.parquet", hive_partitioning=True)
    isr = events.filter(pl.col("task_label").cast(pl.Utf8) == "isr").collect()
    assert isr.height == len(qa.load_events(dest, task_label="isr"))


@pytest.fixture(scope="module")
def folded(run: tuple[Path, list[DemoQuantum]]) -> tuple[Path, list[DemoQuantum]]:
    """The exported demo run with its provenance tables."""
    dest, quanta = run
    write_provenance(dest)
    return dest, quanta


def test_unused_inputs_per_task(folded: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = folded
    table = qa.unused_inputs(dest).set_index("task_label")
    for task in {q.quantum.task_label for q in quanta}:
        mine = [q.provenance for q in quanta if q.quantum.task_label == task]
        unused = sum(len(p.predicted_inputs - p.actual_inputs) for p in mine)
        predicted = sum(len(p.predicted_inputs) for p in mine)
        assert table.loc[task, "unused"] == unused
        assert table.loc[task, "predicted"] == predicted
        assert table.loc[task, "fraction"] == pytest.approx(unused / predicted)


def test_quanta_with_missing_inputs(folded: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = folded
    table = qa.quanta_with_missing_inputs(dest)
    expected = {
        str(q.quantum.id): len(q.provenance.unavailable_inputs)
        for q in quanta
        if q.provenance.unavailable_inputs
    }
    assert expected
    assert dict(zip(table["quantum_id"], table["missing"], strict=True)) == expected


def test_unwritten_outputs(folded: tuple[Path, list[DemoQuantum]]) -> None:
    dest, quanta = folded
    table = qa.unwritten_outputs(dest)
    expected = {
        (str(q.quantum.id), str(i))
        for q in quanta
        for i in q.provenance.predicted_outputs - q.provenance.actual_outputs
    }
    assert expected
    assert set(zip(table["quantum_id"], table["dataset_id"], strict=True)) == expected


def test_provenance_filters(folded: tuple[Path, list[DemoQuantum]]) -> None:
    dest, _ = folded
    everything = qa.load_provenance(dest)
    isr = qa.load_provenance(dest, task_label="isr")
    assert set(isr["task_label"]) == {"isr"}
    assert len(isr) == (everything["task_label"] == "isr").sum()
    assert qa.load_provenance(dest, run="no/such/run").empty


def test_cli_export(run: tuple[Path, list[DemoQuantum]], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qbb_events.cli import main

    _, quanta = run
    logs = tmp_path / "logs"
    logs.mkdir()
    for q in quanta:
        shutil.copy(q.log_path, logs / q.log_path.name)
    dest = tmp_path / "dataset"
    first = CliRunner().invoke(main, ["export", str(logs), str(dest)])
    assert first.exit_code == 0, first.output
    assert f"exported {len(quanta)} logs" in first.output
    assert (dest / "provenance").is_dir()
    assert not qa.unused_inputs(dest).empty
    again = CliRunner().invoke(main, ["export", str(logs), str(dest), "--no-progress"])
    assert again.exit_code == 0, again.output
    assert f"exported 0 logs (0 events) to {dest}; {len(quanta)} already there" in again.output
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray(quanta[0].log_path.read_bytes())
    data[40] ^= 1
    (bad / "q.jsonl").write_bytes(bytes(data))
    flagged = CliRunner().invoke(main, ["export", str(bad), str(tmp_path / "other")])
    assert flagged.exit_code == 1
    assert "did not verify" in flagged.output
    missing = CliRunner().invoke(main, ["export", str(tmp_path / "nope"), str(dest)])
    assert missing.exit_code == 2


@given(
    st.lists(st.one_of(st.none(), st.binary(min_size=16, max_size=16)), max_size=40),
    st.integers(min_value=0, max_value=5),
)
def test_uuid_text_converts_whole_columns_as_uuid_does(
    values: list[bytes | None], offset: int
) -> None:
    array = pa.array(values, pa.binary(16)).slice(min(offset, len(values)))
    expected = [None if v is None else str(uuid.UUID(bytes=v)) for v in array.to_pylist()]
    assert qa.uuid_text(array).to_pylist() == expected
    assert qa.uuid_text(pa.chunked_array([array, array])).to_pylist() == expected * 2


def test_frames_use_nullable_dtypes(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, _ = run
    events = qa.load_events(dest)
    assert events["bytes_read"].dtype == "Int64"  # not float64 with NaN
    assert events["ok"].dtype == "boolean"  # not object
    assert events["item"].dtype == "Int32"
    assert isinstance(events["kind"].dtype, pd.StringDtype)
    assert isinstance(events["dataset_id"].dtype, pd.StringDtype)
    assert events["bytes_read"].isna().any()
    quanta = qa.load_quanta(dest)
    assert quanta["wall_ns"].dtype == "Int64"
    assert quanta["verified"].dtype == "boolean"


def test_data_id_keys_become_columns(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, _ = run
    events = qa.load_events(
        dest, columns=["kind", "data_id"], data_id_keys=["exposure", "detector"]
    )
    for key in ("exposure", "detector"):
        expected = [None if d is None else d.get(key) for d in events["data_id"]]
        got = [None if pd.isna(v) else v for v in events[f"data_id.{key}"]]
        assert got == expected
    assert events["data_id.exposure"].notna().any()
    assert events["data_id.exposure"].isna().any()
    quanta = qa.load_quanta(dest, data_id_keys=["detector"])
    assert set(quanta["data_id.detector"]) == {"1"}


def test_time_bounds_are_exact_to_the_nanosecond(run: tuple[Path, list[DemoQuantum]]) -> None:
    dest, _ = run
    events = qa.load_events(dest, columns=["timestamp_ns"])
    stamp = int(events["timestamp_ns"].iloc[len(events) // 2])
    at = pd.Timestamp(stamp, tz="UTC")
    late = qa.load_events(dest, since=at, columns=["timestamp_ns"])
    assert len(late) == (events["timestamp_ns"] >= stamp).sum()
    early = qa.load_events(dest, until=at, columns=["timestamp_ns"])
    assert len(early) == (events["timestamp_ns"] < stamp).sum()


def test_without_pandas_the_error_names_the_extra_to_install() -> None:
    # A finder that says pandas is not installed, as an environment without it would.
    code = (
        "import sys\n"
        "class NoPandas:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "try:\n    import qbb_events.analytics\n"
        "except ModuleNotFoundError as err:\n    print(err.name, '|', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pandas |")
    assert "pip install 'qbb-events[analytics]'" in out.stdout
