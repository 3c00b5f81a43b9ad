"""Fixtures for the replay tests: generated runs (made once, copied per test) and the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from qbb_replay.cli import main
from runs import Run, generate_run

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.fixture(scope="session")
def pristine_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A run with failures, a killed quantum, retries, missing and unused inputs."""
    return generate_run(tmp_path_factory.mktemp("run") / "run", extra_reads=3)


@pytest.fixture(scope="session")
def pristine_clean_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A run every log of which is sealed and sound."""
    return generate_run(tmp_path_factory.mktemp("clean") / "run", kill=None, extra_reads=3)


def _copy(run: Run, target: Path) -> Run:
    shutil.copytree(run.root, target)
    moved = {key: target / path.relative_to(run.root) for key, path in run.log_paths.items()}
    return Run(
        root=target,
        logs=target / "logs",
        repo=target / "repo",
        quanta=run.quanta,
        failed=run.failed,
        killed=run.killed,
        log_paths=moved,
    )


@pytest.fixture
def run(pristine_run: Run, tmp_path: Path) -> Run:
    """A private copy of the generated run, free to damage."""
    return _copy(pristine_run, tmp_path / "run")


@pytest.fixture
def clean_run(pristine_clean_run: Run, tmp_path: Path) -> Run:
    """A private copy of the sound run."""
    return _copy(pristine_clean_run, tmp_path / "clean")


def invoke(*args: object) -> Result:
    """Run qbb-replay in-process; output on stdout and stderr kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args])


def shaped(result: Result, command: str) -> dict[str, Any]:
    """Parse a --json output and validate it against its documented schema."""
    document = json.loads(result.stdout)
    schema = json.loads((SCHEMAS / f"qbb-replay-{command}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert document["tool"] == "qbb-replay"
    assert document["command"] == command
    return document


def one_line_error(result: Result) -> str:
    """Assert exit 2 with a single-line message and no traceback; return it."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


Invoke = Callable[..., Result]
