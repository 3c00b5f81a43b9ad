"""Fixtures for the replay tests: generated runs (made once, copied per test) and the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from replay_support.runs import Run, generate_run


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
