"""The main job end to end (``qbb-events run``), and ``run-quantum`` exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qbb_events import (
    FileDatastore,
    QuantumGraph,
    Registry,
    fold,
    load_pipeline,
    read_log,
    verify_logs,
)
from qbb_events.cli import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_run_with_failure_injection_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = _run(
        "run", "--out", str(out), "--quanta", "60", "--workers", "2",
        "--fail-rate", "0.15", "--kill-rate", "0.15", "--missing-rate", "0.1",
        "--retries", "2", "--seed", "3", "--json",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(output)
    graph = QuantumGraph.load(out / "graph")
    outcomes = {o["quantum_id"]: o for o in report["quanta"]}
    # Every quantum is accounted for, once.
    assert sorted(outcomes) == sorted(str(q.id) for q in graph)
    killed = sum(len(o["aborted"]) for o in outcomes.values())
    assert killed > 0
    assert sum(o["attempts"] for o in outcomes.values()) > len(graph) + killed
    assert {o["status"] for o in outcomes.values()} >= {"succeeded", "blocked"}

    # Every log verifies whole, except the killed attempts: unsealed, nothing else.
    verified = verify_logs([out / "logs"])
    unsealed = [log for log in verified.logs if log.problems]
    assert all({p.kind for p in log.problems} == {"unsealed"} for log in unsealed)
    assert len(unsealed) == killed == report["logs_aborted"]
    assert report["logs_verified"] == len(verified.logs) - killed
    assert report["log_problems"] == report["export_problems"] == []

    # The registry holds exactly what the final attempts wrote, as it is on disk.
    datastore = FileDatastore(out / "repo")
    with Registry.open(out / "registry.sqlite3") as registry:
        registered = {(q.id, q.attempt): q.status for q in registry.quanta()}
        for quantum in graph:
            outcome = outcomes[str(quantum.id)]
            last = outcome["attempts"] - 1
            assert registered[(quantum.id, last)] == outcome["status"]
            for attempt in outcome["aborted"]:
                assert registered[(quantum.id, attempt)] == "aborted"
            written = set()
            if outcome["status"] != "aborted":
                written = fold(read_log(out / "logs" / f"{quantum.id}.{last}.jsonl")).actual_outputs
            assert len(written) == outcome["written"]
            assert outcome["n_put"] == (0 if outcome["status"] == "aborted" else len(written))
            for ref in quantum.outputs:
                in_registry = registry.get_dataset(ref.id) is not None
                assert in_registry == (ref.id in written), ref
                if in_registry:
                    (record,) = registry.datastore_records([ref.id])[datastore.name]
                    digest = hashlib.sha256(datastore.path(ref).read_bytes()).hexdigest()
                    assert record.checksum == f"sha256:{digest}"
    assert report["transfer"]["ok"] is True
    assert report["ok"] is True
    assert set(report["phases"]) == {"plan", "execute", "export", "transfer", "verify"}


def test_run_prints_a_summary_and_where_to_look(tmp_path: Path) -> None:
    code, output = _run("run", "--out", str(tmp_path / "run"), "--quanta", "15", "--workers", "1")
    assert code == 0, output
    for text in (
        "measure",
        "datasets written",
        "registry",
        "parquet",
        "qbb-events rerun",
        "(measure)",
    ):
        assert text in output


def test_run_with_a_named_pipeline(tmp_path: Path) -> None:
    code, output = _run(
        "run", "--out", str(tmp_path / "run"), "--quanta", "8", "--workers", "2",
        "--pipeline", "support.executor_tasks:doubling", "--json",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(output)
    assert report["pipeline"] == "doubling"
    assert {o["status"] for o in report["quanta"]} == {"succeeded"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pipeline", "nowhere:f"], "cannot import"),
        (["--fail-rate", "2"], "probability"),
    ],
)
def test_run_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _run("run", "--out", str(tmp_path / "run"), *args)
    assert code == 2
    assert message in output
    assert "Traceback" not in output


def test_run_refuses_a_directory_that_holds_a_run(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    assert _run("run", "--out", out, "--quanta", "5", "--workers", "1")[0] == 0
    code, output = _run("run", "--out", out, "--quanta", "5")
    assert code == 2
    assert "already holds a run" in output


def _planned(tmp_path: Path, spec: str) -> tuple[Path, Path, Path, QuantumGraph]:
    pipeline = load_pipeline(spec)
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(2), run="r"), run="r", pipeline=spec)
    graph.save(tmp_path / "graph")
    FileDatastore(tmp_path / "repo", create=True)
    return tmp_path / "graph", tmp_path / "repo", tmp_path / "logs", graph


@pytest.mark.parametrize(
    ("spec", "code"),
    [("support.executor_tasks:repeatable", 20), ("support.executor_tasks:invalid", 21)],
)
def test_run_quantum_exit_codes(tmp_path: Path, spec: str, code: int) -> None:
    graph_dir, root, logs, graph = _planned(tmp_path, spec)
    first, second = list(graph)
    common = ["--root", str(root), "--logs", str(logs), "--pipeline", spec]
    blocked = _run("run-quantum", str(graph_dir), str(second.id), *common)
    assert blocked[0] == 1
    assert "blocked" in blocked[1]
    assert _run("run-quantum", str(graph_dir), str(first.id), *common)[0] == 0
    assert _run("run-quantum", str(graph_dir), str(first.id), *common)[0] == 0  # skipped
    assert _run("run-quantum", str(graph_dir), str(second.id), *common)[0] == code
    unknown = _run("run-quantum", str(graph_dir), "00000000-0000-0000-0000-000000000000", *common)
    assert unknown[0] == 21
    assert "holds no quantum" in unknown[1]


def test_run_quantum_in_its_own_process(tmp_path: Path) -> None:
    spec = "support.executor_tasks:doubling"
    graph_dir, root, logs, graph = _planned(tmp_path, spec)
    first = next(iter(graph))
    env_path = str(Path(__file__).parent)
    done = subprocess.run(
        [
            sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from qbb_events.cli import main; main()", env_path,
            "run-quantum", str(graph_dir), str(first.id), "--root", str(root),
            "--logs", str(logs), "--pipeline", spec, "--json",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"


def test_the_tutorial_pipeline_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = Path(__file__).parents[1] / "docs" / "executor.md"
    text = docs.read_text()
    code = text.split("<!-- tutorial -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "tutorial_pipeline.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exit_code, output = _run(
        "run", "--out", "tutorial-run", "--quanta", "20", "--workers", "2",
        "--pipeline", "tutorial_pipeline:pipeline", "--fail-rate", "0.2", "--json",
    )  # fmt: skip
    assert exit_code == 0, output
    report = json.loads(output)
    assert len(report["quanta"]) == 20
    assert {o["status"] for o in report["quanta"]} == {"succeeded"}
    assert report["transfer"]["datasets_new"] == 20


def test_quanta_downstream_of_a_failure_are_blocked(tmp_path: Path) -> None:
    code, output = _run(
        "run", "--out", str(tmp_path / "run"), "--quanta", "6", "--workers", "2",
        "--pipeline", "support.executor_tasks:doubling", "--fail-rate", "1", "--retries", "1",
        "--json",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(output)
    by_task = {(o["task_label"], o["status"], o["attempts"]) for o in report["quanta"]}
    assert by_task == {("source", "failed", 2), ("second", "blocked", 1)}
    with Registry.open(tmp_path / "run" / "registry.sqlite3") as registry:
        assert len(registry.quanta(status="blocked")) == 3
        assert len(registry.quanta(status="failed")) == 3
