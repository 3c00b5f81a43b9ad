"""A butler workflow that appends one event of every kind, shared by the log tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from qbb_events import (
    ArtifactNotFoundError,
    DatasetRef,
    DatasetType,
    FileDatastore,
    OutputAlreadyStoredError,
    OutputNotPredictedError,
    Quantum,
    QuantumBackedButler,
    canonical_json,
    chain_hash,
)

RUN = "events/run"
DIMS = ("visit", "detector")
PRESENT_VALUE = {"value": "ü", "n": 3}


def run_workflow(
    root: Path,
    log: Any = None,
    *,
    attempt: int = 0,
    quantum_id: uuid.UUID | None = None,
    retrieve_to: Path | None = None,
) -> QuantumBackedButler:
    """Run a butler through one call of every event kind, logging to ``log``, and close it.

    The audit-only kinds (``uri_requested``, ``artifacts_retrieved``) are
    appended only when ``retrieve_to`` names a directory to retrieve into, so
    the logs of the other tests keep their thirteen events.

    The quantum carries non-ASCII text (task label, data ID) so logs hold UTF-8.
    """
    raw = DatasetType("raw", "json", DIMS)
    calexp = DatasetType("calexp", "json", DIMS)
    present = DatasetRef(raw, {"visit": 1, "detector": 0}, RUN)
    missing = DatasetRef(raw, {"visit": 1, "detector": 1}, RUN)
    out_a = DatasetRef(calexp, {"visit": 1, "detector": 0}, RUN)
    out_b = DatasetRef(calexp, {"visit": 1, "detector": 1}, RUN)
    stray = DatasetRef(calexp, {"visit": 9, "detector": 9}, RUN)
    datastore = FileDatastore(root, create=True)
    if not datastore.exists(present):
        datastore.put(PRESENT_VALUE, present)
    quantum = Quantum(
        "calibrate_tâche",
        {"visit": 1, "band": "Zürich ✓"},
        inputs=[present, missing],
        outputs=[out_a, out_b],
        id=quantum_id,
    )
    butler = QuantumBackedButler.initialize(datastore, quantum, log=log, attempt=attempt)
    assert butler.stored(present)
    butler.stored_many([present, missing])
    assert butler.get(present) == PRESENT_VALUE
    with pytest.raises(ArtifactNotFoundError):
        butler.get(missing)
    assert butler.getDeferred(present).get() == PRESENT_VALUE
    butler.markInputUnused(missing)
    butler.put({"result": [1, 2, 3]}, out_a)
    with pytest.raises(OutputAlreadyStoredError):
        butler.put({"result": []}, out_a)
    with pytest.raises(OutputNotPredictedError):
        butler.put({"result": []}, stray)
    butler.pruneDatasets([out_b], disassociate=False, unstore=True)
    if retrieve_to is not None:
        assert butler.getURI(missing, predict=True).predicted
        butler.retrieve_artifacts([present, out_a], retrieve_to, overwrite=True)
    butler.close()
    return butler


def body_of(event: Any) -> dict[str, Any]:
    """The event without its ``hash``: what the chain hashes."""
    data: dict[str, Any] = event.model_dump(mode="json")
    del data["hash"]
    return data


def stored_line(event: Any) -> bytes:
    """The JSON Lines form of an event: its canonical body with ``hash`` appended last."""
    return canonical_json(body_of(event))[:-1] + b',"hash":"%s"}' % event.hash.encode()


def lines_of(path: Path) -> list[bytes]:
    """The records of a log file, without their newlines."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> Path:
    """Write records as a log file, one per line."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def rehash(data: dict[str, Any]) -> bytes:
    """Return the record of an event dict whose ``hash`` was recomputed for its content.

    Laid out as the writer lays records out (``hash`` last), as a careful forger would.
    """
    body = {k: v for k, v in data.items() if k != "hash"}
    canonical = canonical_json(body)
    return canonical[:-1] + b',"hash":"%s"}' % chain_hash(body["prev_hash"], canonical).encode()
