"""Small shared fixtures: dataset types, a datastore and a quantum factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qbb_events import DatasetRef, DatasetType, FileDatastore, Quantum

# The fresh-database fixture of the PostgreSQL tests (``postgres_url``).
pytest_plugins = ("support.postgres",)

RUN = "test/run"
DIMENSIONS = ("visit", "detector")


@pytest.fixture
def json_type() -> DatasetType:
    return DatasetType("catalog", "json", DIMENSIONS)


@pytest.fixture
def arrow_type() -> DatasetType:
    return DatasetType("table", "arrow", DIMENSIONS)


@pytest.fixture
def bytes_type() -> DatasetType:
    return DatasetType("blob", "bytes", DIMENSIONS)


@pytest.fixture
def datastore_root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def datastore(datastore_root: Path) -> FileDatastore:
    return FileDatastore(datastore_root, create=True)


@dataclass
class QuantumSetup:
    """A quantum whose stored inputs were written to ``datastore``."""

    quantum: Quantum
    datastore: FileDatastore
    inputs: list[DatasetRef]
    init_inputs: list[DatasetRef]
    outputs: list[DatasetRef]
    contents: dict[Any, Any] = field(default_factory=dict)


QuantumFactory = Callable[..., QuantumSetup]


@pytest.fixture
def make_quantum(datastore: FileDatastore) -> QuantumFactory:
    """Return ``make(n_inputs=2, n_outputs=2, n_init_inputs=0, store_inputs=True, ...)``.

    Inputs and init-inputs are ``json`` datasets holding ``{"value": k}``;
    outputs are ``json`` datasets (visit 2), all in a RUN of their own
    (``test/run/q0``, ``test/run/q1``, ...) unless ``run`` is given. With ``store_inputs`` the
    inputs are written to the datastore first (``missing`` names input
    indices to leave unwritten).
    """
    input_type = DatasetType("raw", "json", DIMENSIONS)
    calls = iter(range(1_000_000))
    output_type = DatasetType("calexp", "json", DIMENSIONS)

    def make(
        n_inputs: int = 2,
        n_outputs: int = 2,
        n_init_inputs: int = 0,
        *,
        store_inputs: bool = True,
        missing: tuple[int, ...] = (),
        run: str | None = None,
    ) -> QuantumSetup:
        if run is None:
            # Each quantum of a test gets its own run, so their datasets never collide.
            run = f"{RUN}/q{next(calls)}"
        inputs = [DatasetRef(input_type, {"visit": 1, "detector": k}, run) for k in range(n_inputs)]
        init_inputs = [
            DatasetRef(DatasetType(f"config{k}", "json", ()), {}, run) for k in range(n_init_inputs)
        ]
        outputs = [
            DatasetRef(output_type, {"visit": 2, "detector": k}, run) for k in range(n_outputs)
        ]
        contents: dict[Any, Any] = {}
        if store_inputs:
            for k, ref in enumerate([*inputs, *init_inputs]):
                if k in missing:
                    continue
                contents[ref.id] = {"value": k}
                datastore.put(contents[ref.id], ref)
        quantum = Quantum(
            "isr",
            {"visit": 1},
            inputs=inputs,
            outputs=outputs,
            init_inputs=init_inputs,
        )
        return QuantumSetup(quantum, datastore, inputs, init_inputs, outputs, contents)

    return make


def _register_hypothesis_profiles() -> None:
    """Register hypothesis profiles; ``ci`` is loaded unless HYPOTHESIS_PROFILE names another."""
    import os

    from hypothesis import settings

    # Butler calls do real file I/O, so per-example timing varies: no deadline.
    # "ci" runs the same examples every time, so CI is stable; "dev" and
    # "thorough" explore new ones (a failure prints a blob to reproduce it).
    settings.register_profile(
        "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True
    )
    settings.register_profile("dev", max_examples=20, deadline=None, print_blob=True)
    settings.register_profile("thorough", max_examples=2000, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_register_hypothesis_profiles()
