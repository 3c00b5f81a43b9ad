"""``rerun``: a finished quantum re-executed on its actual inputs alone."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from qbb_events import FileDatastore, QuantumGraph, execute_quantum, load_pipeline, rerun_quantum
from qbb_events.cli import main


def _finished(tmp_path: Path, spec: str) -> tuple[Path, Path, Path, QuantumGraph]:
    """Plan a pipeline and run every quantum with the harness."""
    pipeline = load_pipeline(spec)
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(20), run="r"), run="r", pipeline=spec)
    graph.save(tmp_path / "graph")
    root, logs = tmp_path / "repo", tmp_path / "logs"
    FileDatastore(root, create=True)
    for quantum in graph:
        report = execute_quantum(pipeline.task(quantum.task_label), quantum, root, log=logs)
        assert report.status == "succeeded"
    return tmp_path / "graph", root, logs, graph


def _rerun(graph: Path, quantum: str, root: Path, logs: Path, spec: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        main,
        [
            "rerun",
            str(graph),
            quantum,
            "--root",
            str(root),
            "--logs",
            str(logs),
            "--pipeline",
            spec,
            "--json",
        ],
        catch_exceptions=False,
    )
    return result.exit_code, json.loads(result.output)


def test_an_honest_task_reruns_identically(tmp_path: Path) -> None:
    # measure is given raw, marks it unused and never reads it: without raw it
    # still writes byte-identical outputs.
    graph_dir, root, logs, graph = _finished(tmp_path, "demo")
    measure = next(q for q in graph if q.task_label == "measure")
    code, report = _rerun(graph_dir, str(measure.id), root, logs, "demo")
    assert code == 0
    assert report["verdict"] == "identical"
    assert report["actual_inputs"] == 1 < len(measure.predicted_inputs)
    assert report["differing"] == report["missing_reads"] == []
    # The scratch datastore held the calibrated table alone; the catalog was rewritten.
    scratch = Path(report["scratch"]) / "repo"
    files = sorted(p.relative_to(scratch).parts[1] for p in scratch.rglob("*") if p.is_file())
    assert files == ["calexp", "catalog"]


def test_every_demo_task_is_honest(tmp_path: Path) -> None:
    _, root, logs, graph = _finished(tmp_path, "demo")
    pipeline = load_pipeline("demo")
    for quantum in graph:
        task = pipeline.task(quantum.task_label)
        assert (
            rerun_quantum(task, quantum, root, logs, scratch=tmp_path / str(quantum.id)).verdict
            == "identical"
        )


def test_reading_an_input_after_marking_it_unused_fails_the_rerun(tmp_path: Path) -> None:
    spec = "support.executor_tasks:dishonest"
    graph_dir, root, logs, graph = _finished(tmp_path, spec)
    second = next(q for q in graph if q.task_label == "second")
    code, report = _rerun(graph_dir, str(second.id), root, logs, spec)
    assert code == 1
    assert report["verdict"] == "failed"
    assert report["missing_reads"] == ["source(index=0)"]
    assert "ArtifactNotFoundError" in report["message"]


def test_an_output_that_depends_on_an_unused_input_differs(tmp_path: Path) -> None:
    spec = "support.executor_tasks:presence"
    graph_dir, root, logs, graph = _finished(tmp_path, spec)
    second = next(q for q in graph if q.task_label == "second")
    code, report = _rerun(graph_dir, str(second.id), root, logs, spec)
    assert code == 1
    assert report["verdict"] == "differing"
    assert report["differing"] == ["result(index=0)"]


def test_rerun_needs_a_finished_attempt(tmp_path: Path) -> None:
    pipeline = load_pipeline("demo")
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(5), run="r"), run="r", pipeline="demo")
    graph.save(tmp_path / "graph")
    FileDatastore(tmp_path / "repo", create=True)
    quantum = next(iter(graph))
    result = CliRunner().invoke(
        main,
        [
            "rerun",
            str(tmp_path / "graph"),
            str(quantum.id),
            "--root",
            str(tmp_path / "repo"),
            "--logs",
            str(tmp_path / "logs"),
        ],
    )
    assert result.exit_code == 2
    assert "no succeeded attempt" in result.output
