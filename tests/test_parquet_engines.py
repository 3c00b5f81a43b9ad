"""The export read natively by every engine: the cookbook of docs/parquet.md, run as written.

Each engine's block of the cookbook is executed on the same dataset: two runs
(one named with a non-ASCII letter, a space and a ``%``), two parts per run
whose task labels differ, and several row groups per part. The answers must be
the same in every engine, and equal to what the logs themselves say.
"""

from __future__ import annotations

import math
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import qbb_events.parquet._files as files_module
import qbb_events.parquet.export as export_module
from qbb_events import export_parquet, read_log, write_provenance
from qbb_events.demo import run_demo
from qbb_events.parquet import fold_export

COOKBOOK = Path(__file__).parents[1] / "docs" / "parquet.md"
RUNS = ("u/me/run é 100%", "plain/run")
ENGINES = ("pandas", "pyarrow", "duckdb", "polars", "dask", "spark")
ANSWERS = ("reads", "written", "ok_rows", "lineage")


def cookbook() -> dict[str, str]:
    blocks = re.findall(r"```python\n# cookbook: (\w+)\n(.*?)```", COOKBOOK.read_text(), re.DOTALL)
    return dict(blocks)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two demo runs, each exported in two parts (isr, then the rest), row groups of 4 rows."""
    root = tmp_path_factory.mktemp("engines")
    dest = root / "dataset"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "ROW_GROUP_ROWS", 4)
        patch.setattr(files_module, "ROW_GROUP_ROWS", 4)
        for index, run in enumerate(RUNS):
            run_demo(root / f"demo{index}")
            logs = sorted((root / f"demo{index}" / "logs").glob("*.jsonl"))
            for group, selected in enumerate(
                (
                    [p for p in logs if p.name.startswith("isr")],
                    [p for p in logs if not p.name.startswith("isr")],
                )
            ):
                folder = root / f"logs{index}-{group}"
                folder.mkdir()
                for path in selected:
                    shutil.copy(path, folder / path.name)
                export_parquet(folder, dest, run=run)
        write_provenance(dest)
    return dest


def test_the_dataset_has_what_the_cookbook_must_survive(dataset: Path) -> None:
    for table in ("events", "predicted", "quanta", "provenance"):
        folders = sorted(p.name for p in (dataset / table).iterdir())
        assert folders == sorted(["run=u%2Fme%2Frun é 100%25", "run=plain%2Frun"])
        for folder in folders:
            parts = sorted((dataset / table / folder).glob("part-*.parquet"))
            assert len(parts) == 2
            if table == "events":
                labels = [
                    set(pq.read_table(p, columns=["task_label"])["task_label"].to_pylist())
                    for p in parts
                ]
                assert labels[0] != labels[1]
            for part in parts:
                metadata = pq.read_metadata(part)
                if table != "quanta":  # a part of two quanta is one row group of 2 rows
                    assert metadata.num_row_groups >= 2, part
                assert (
                    max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= 4
                )
                assert metadata.metadata[b"qbb_events.export_format"] == b"2"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for the whole test session (starting one takes seconds)."""
    sql = pytest.importorskip("pyspark.sql")
    session = (
        sql.SparkSession.builder.master("local[2]")
        .appName("qbb-events-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """One distributed LocalCluster (two worker processes) for the whole test session.

    Its dashboard takes a free port: the default 8787 may be taken on a shared machine.
    """
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", processes=True
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    return value


def _normal(rows: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)


def run_block(engine: str, dataset: Path, **names: Any) -> dict[str, list[tuple[Any, ...]]]:
    namespace: dict[str, Any] = {"dataset": str(dataset), **names}
    exec(compile(cookbook()[engine], f"docs/parquet.md#{engine}", "exec"), namespace)
    return {answer: _normal(namespace[answer]) for answer in ANSWERS}


def expected(dataset: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The answers from the logs themselves (and the fold), not from any engine."""
    reads: dict[str, list[int]] = {}
    written: dict[tuple[str, str | None], int] = {}
    ok_rows: dict[str, int] = {}
    for part in sorted((dataset / "quanta").glob("run=*/part-*.parquet")):
        quanta = pq.read_table(part, columns=["source", "task_label"]).to_pylist()
        run = RUNS[0] if "%25" in part.parent.name else RUNS[1]
        for row in quanta:
            events = read_log(row["source"])
            outputs = {ref.id: ref for ref in events[0].quantum.outputs}
            for event in events:
                if event.kind in ("input_read", "deferred_loaded") and event.ok:
                    ok_rows[run] = ok_rows.get(run, 0) + 1
                    if run == RUNS[0] and event.kind == "input_read":
                        entry = reads.setdefault(row["task_label"], [0, 0])
                        entry[0] += 1
                        entry[1] += event.bytes_read
                if event.kind == "output_written":
                    exposure = outputs[event.dataset_id].data_id.get("exposure")
                    key = (run, None if exposure is None else str(exposure))
                    written[key] = written.get(key, 0) + 1
    provenance = fold_export(dataset).to_pylist()
    actual = [r for r in provenance if r["role"] == "actual_input"]
    lineage = [
        (o["run"], str(uuid.UUID(bytes=o["dataset_id"])), str(uuid.UUID(bytes=i["dataset_id"])))
        for o in provenance
        if o["role"] == "actual_output"
        for i in actual
        if (i["quantum_id"], i["attempt"]) == (o["quantum_id"], o["attempt"])
        and i["seq"] < o["seq"]
    ]
    return {
        "reads": _normal((task, n, total) for task, (n, total) in reads.items()),
        "written": _normal((run, exposure, n) for (run, exposure), n in written.items()),
        "ok_rows": _normal(ok_rows.items()),
        "lineage": _normal(lineage),
    }


def test_the_cookbook_has_a_block_per_engine() -> None:
    assert sorted(cookbook()) == sorted(ENGINES)


def test_the_expected_answers_are_not_empty(dataset: Path) -> None:
    answers = expected(dataset)
    for answer in ANSWERS:
        assert answers[answer], answer
    assert {run for run, *_ in answers["lineage"]} == set(RUNS)


@pytest.mark.parametrize("engine", ["pandas", "pyarrow", "duckdb", "polars"])
def test_every_engine_answers_the_cookbook_alike(dataset: Path, engine: str) -> None:
    assert run_block(engine, dataset) == expected(dataset)


def test_dask_on_a_distributed_cluster_answers_alike(dataset: Path, dask_client: Any) -> None:
    assert run_block("dask", dataset) == expected(dataset)


def test_spark_answers_alike(dataset: Path, spark: Any) -> None:
    assert run_block("spark", dataset, spark=spark) == expected(dataset)
