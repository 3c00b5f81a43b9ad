"""Pipelines planned into quantum graphs; graphs saved to Parquet and read back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from qbb_events import (
    DatasetType,
    InvalidDefinitionError,
    Pipeline,
    QuantumGraph,
    QuantumNotInGraphError,
    TaskDef,
    demo_pipeline,
    load_pipeline,
)
from qbb_events.executor import trivial_pipeline


def _graph(quanta: int = 40) -> QuantumGraph:
    pipeline = demo_pipeline()
    return QuantumGraph(pipeline.plan(pipeline.data_ids(quanta), run="r"), run="r", pipeline="demo")


def test_the_demo_pipeline_plans_a_connected_graph() -> None:
    graph = _graph(40)
    labels = [q.task_label for q in graph]
    assert labels.index("summary") == len(labels) - 1
    assert set(labels) == {"ingest", "calibrate", "measure", "coadd", "summary"}
    upstream = graph.upstream()
    position = {q.id: i for i, q in enumerate(graph)}
    for quantum in graph:
        producers = upstream[quantum.id]
        assert all(position[p] < position[quantum.id] for p in producers)
        if quantum.task_label == "ingest":
            assert not producers
    summary = next(q for q in graph if q.task_label == "summary")
    assert {graph.quantum(p).task_label for p in upstream[summary.id]} == {"coadd"}


def test_planning_is_deterministic() -> None:
    assert list(_graph(30)) == list(_graph(30))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    graph = _graph(60)
    graph.save(tmp_path / "graph")
    loaded = QuantumGraph.load(tmp_path / "graph")
    assert list(loaded) == list(graph)
    assert (loaded.run, loaded.pipeline, len(loaded)) == ("r", "demo", len(graph))
    assert QuantumGraph.load(tmp_path / "graph").upstream() == graph.upstream()
    assert all(q.id in loaded for q in graph)
    for quantum in graph:
        assert QuantumGraph.load_quantum(tmp_path / "graph", quantum.id) == quantum


def test_data_id_types_survive(tmp_path: Path) -> None:
    text = DatasetType("t", "json", ("name",))
    pipeline = Pipeline(
        [TaskDef("a", None, ("name",), (), (text,))],
        data_ids=lambda n: [{"name": "1"}, {"name": 1}],
    )
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(2), run="r"), run="r", pipeline="x")
    graph.save(tmp_path / "g")
    values = sorted(repr(q.data_id["name"]) for q in QuantumGraph.load(tmp_path / "g"))
    assert values == ["'1'", "1"]


def test_one_quantum_is_read_without_the_rest(tmp_path: Path) -> None:
    pipeline = trivial_pipeline()
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(4_000), run="r"), run="r", pipeline="t")
    graph.save(tmp_path / "graph", row_group_size=500)
    predicted = pq.ParquetFile(tmp_path / "graph" / "predicted.parquet")
    assert predicted.metadata.num_row_groups == 12
    wanted = list(graph)[1_234]
    assert QuantumGraph.load_quantum(tmp_path / "graph", wanted.id) == wanted


def test_unknown_quantum_and_overwrite_are_refused(tmp_path: Path) -> None:
    graph = _graph(20)
    graph.save(tmp_path / "graph")
    with pytest.raises(QuantumNotInGraphError, match="holds no quantum"):
        QuantumGraph.load_quantum(tmp_path / "graph", uuid.uuid4())
    with pytest.raises(KeyError):
        graph.quantum(uuid.uuid4())
    with pytest.raises(FileExistsError):
        graph.save(tmp_path / "graph")
    with pytest.raises(InvalidDefinitionError, match="does not hold a quantum graph"):
        QuantumGraph.load(tmp_path)


def test_pipeline_definitions_are_checked() -> None:
    a = DatasetType("a", "json", ("i",))
    b = DatasetType("b", "json", ("i",))
    with pytest.raises(InvalidDefinitionError, match="repeats a task label"):
        Pipeline([TaskDef("x", None, ("i",)), TaskDef("x", None, ("i",))])
    with pytest.raises(InvalidDefinitionError, match="written by both"):
        Pipeline([TaskDef("x", None, ("i",), (), (a,)), TaskDef("y", None, ("i",), (), (a,))])
    with pytest.raises(InvalidDefinitionError, match="outside the task"):
        Pipeline([TaskDef("x", None, (), (), (a,))])
    with pytest.raises(InvalidDefinitionError, match="cycle"):
        Pipeline([TaskDef("x", None, ("i",), (b,), (a,)), TaskDef("y", None, ("i",), (a,), (b,))])


def test_load_pipeline_names_only_what_the_operator_gives() -> None:
    assert load_pipeline(None).name == "demo"
    assert load_pipeline("support.executor_tasks:doubling").name == "doubling"
    for spec, message in (
        ("no_colon", "package.module:function"),
        ("no.such.module:f", "cannot import"),
        ("support.executor_tasks:missing", "has no function"),
        ("support.executor_tasks:not_a_pipeline", "not a qbb_events Pipeline"),
    ):
        with pytest.raises(InvalidDefinitionError, match=message):
            load_pipeline(spec)
