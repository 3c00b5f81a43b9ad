"""``qbb-events registry create | transfer | query | orphans``, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.registry_runs import GeneratedRun, three_task_run

from qbb_events.cli import main

pytest_plugins = ("support.registry_fixtures",)


@pytest.fixture
def run(tmp_path: Path) -> GeneratedRun:
    return three_task_run(tmp_path / "run", exposures=4)


def _invoke(*args: str, url: str | None = None) -> tuple[int, str, str]:
    if url is not None:
        args = (*args, "--registry", url)
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_transfer_query(registry_url: str, run: GeneratedRun) -> None:
    code, out, _ = _invoke("registry", "create", registry_url, "--json")
    assert code == 0
    assert json.loads(out)["created"] == registry_url
    code, _, err = _invoke("registry", "create", registry_url)
    assert code == 2
    assert "already holds registry tables" in err
    assert "Traceback" not in err
    code, out, _ = _invoke("transfer", str(run.log_dir), "--registry", registry_url, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["quanta_new"] == len(run.logs)
    assert report["ok"] is True
    code, out, _ = _invoke("transfer", str(run.log_dir), "--registry", registry_url)
    assert code == 0
    assert "0 quanta" in out
    coadd = run.quanta[-1].outputs[0]
    code, out, _ = _invoke("query", "dataset", str(coadd.id), "--registry", registry_url, "--json")
    assert code == 0
    found = json.loads(out)
    assert found["data_id"] == {"patch": 0}
    assert found["producer"] == f"{run.quanta[-1].id}/0"
    code, out, _ = _invoke(
        "query", "dataset", "--type", "coadd", "--data-id", '{"patch": 0}', "--run", "gen/run",
        "--registry", registry_url, "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["id"] == str(coadd.id)
    code, out, _ = _invoke(
        "query", "dataset", str(run.quanta[0].inputs[0].id), "--registry", registry_url
    )
    assert code == 1  # the raws were never registered
    code, out, _ = _invoke("query", "upstream", str(coadd.id), "--registry", registry_url, "--json")
    assert code == 0
    assert max(step["depth"] for step in json.loads(out)) == 3
    first_calib = run.quanta[0].outputs[0]
    code, out, _ = _invoke(
        "query",
        "downstream",
        str(first_calib.id),
        "--depth",
        "1",
        "--registry",
        registry_url,
        "--json",
    )
    assert code == 0
    assert {step["depth"] for step in json.loads(out)} == {1}
    code, out, _ = _invoke(
        "query", "quanta", "--task", "warp", "--registry", registry_url, "--json"
    )
    assert code == 0
    assert {q["task_label"] for q in json.loads(out)} == {"warp"}


def test_transfer_problems_exit_1_and_bad_input_exits_2(
    registry_url: str, run: GeneratedRun, tmp_path: Path
) -> None:
    assert _invoke("registry", "create", registry_url)[0] == 0
    calib = run.quanta[0].outputs[0]
    run.datastore.path(calib).unlink()
    code, _, err = _invoke(
        "transfer", str(run.log_dir), "--registry", registry_url,
        "--check-artifacts", "--datastore-root", str(run.root / "repo"),
    )  # fmt: skip
    assert code == 1
    assert "the artifact is missing" in err
    code, _, err = _invoke("transfer", str(run.log_dir), "--registry", str(tmp_path / "none.db"))
    assert code == 2
    assert "No registry" in err
    code, _, err = _invoke(
        "transfer", str(run.log_dir), "--registry", registry_url, "--check-artifacts"
    )
    assert code == 2
    code, _, err = _invoke("query", "dataset", "not-a-uuid", "--registry", registry_url)
    assert code == 2
    assert "Traceback" not in err


def test_orphans_dry_run_then_delete(registry_url: str, run: GeneratedRun) -> None:
    assert _invoke("registry", "create", registry_url)[0] == 0
    assert _invoke("transfer", str(run.log_dir), "--registry", registry_url)[0] == 0
    repo = run.root / "repo"
    stray = repo / "stray.bin"
    stray.write_bytes(b"x")
    code, out, _ = _invoke("orphans", str(repo), "--registry", registry_url, "--json")
    assert code == 1
    listed = json.loads(out)["orphans"]
    assert "stray.bin" in listed
    assert stray.exists()
    code, out, _ = _invoke("orphans", str(repo), "--registry", registry_url, "--delete")
    assert code == 0
    assert "stray.bin" in out
    assert not stray.exists()
    code, out, _ = _invoke("orphans", str(repo), "--registry", registry_url, "--json")
    assert json.loads(out)["orphans"] == []
    assert code == 0
