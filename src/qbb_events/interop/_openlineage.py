"""OpenLineage: one ``START`` and one terminal ``RunEvent`` per quantum attempt.

The mapping (``docs/interop.md``): run id = quantum id (a retry's is derived
from it and its attempt number), job = task label in
the namespace of the run collection, parent run = the run collection,
inputs = actual inputs, outputs = actual outputs; every dataset carries its
UUID as its version and a ``qbb_provenance`` facet with its role and record.
Events are plain JSON-compatible dictionaries, so writing them needs no
OpenLineage client.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from ..records import FileRecord
from ._attempts import QuantumAttempt, ref_label

__all__ = [
    "OPENLINEAGE_SCHEMA_URL",
    "QBB_FACET_SCHEMA_URL",
    "attempt_events",
    "producer_uri",
    "run_id",
]

OPENLINEAGE_SCHEMA_URL: Final = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
"""``schemaURL`` of every event: the pinned spec version (2-0-2)."""
_FACETS: Final = "https://openlineage.io/spec/facets"
_PARENT_URL: Final = f"{_FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
_ERROR_URL: Final = f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
_VERSION_URL: Final = (
    f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
)
QBB_FACET_SCHEMA_URL: Final = "https://qbb-events.invalid/schemas/openlineage-facets.schema.json"
"""Base of the ``_schemaURL`` of our custom facets (``docs/schemas/``)."""

# Parent run ids are derived from the run collection's name, so every quantum
# of a run, exported by any process, names the same parent.
_RUN_NAMESPACE: Final = uuid.UUID("6f1d3c62-8b0e-5d0c-9a55-3e5f0c1b2a77")


def producer_uri(version: str) -> str:
    """Return the ``producer`` URI of our events.

    Parameters
    ----------
    version : `str`
        The library version.

    Returns
    -------
    uri : `str`
        The package's page for that version.
    """
    return f"https://pypi.org/project/qbb-events/{version}/"


def run_id(quantum_id: uuid.UUID, attempt: int) -> uuid.UUID:
    """Return the OpenLineage run id of one quantum attempt.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    attempt : `int`
        The attempt number.

    Returns
    -------
    run_id : `uuid.UUID`
        The quantum id for the first attempt; for a retry, a UUID derived
        from the quantum id and the attempt number, because the spec asks for
        exactly one ``START`` and one terminal event per run id.
    """
    return quantum_id if attempt == 0 else uuid.uuid5(quantum_id, f"attempt/{attempt}")


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


def _facet(producer: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": url, **fields}


def _record(record: FileRecord) -> dict[str, Any]:
    return {
        "datastore": record.datastore_name,
        "path": record.path,
        "formatter": record.formatter,
        "storage_class": record.storage_class,
        "size": record.file_size,
        "checksum": record.checksum,
    }


def _dataset(
    attempt: QuantumAttempt, dataset_id: uuid.UUID, producer: str, record: FileRecord | None
) -> dict[str, Any]:
    p = attempt.provenance
    ref = attempt.refs[dataset_id]
    status: dict[str, Any] = {
        "dataset_id": str(dataset_id),
        "dataset_type": ref.dataset_type,
        "data_id": dict(ref.data_id or {}),
        "predicted": dataset_id in p.predicted_inputs or dataset_id in p.predicted_outputs,
        "available": dataset_id in p.available_inputs,
        "actual": dataset_id in p.actual_inputs or dataset_id in p.actual_outputs,
    }
    if record is not None:
        status["record"] = _record(record)
    return {
        "namespace": ref.run or attempt.run,
        "name": ref_label(ref),
        "facets": {
            "version": _facet(producer, _VERSION_URL, datasetVersion=str(dataset_id)),
            "qbb_provenance": _facet(
                producer, f"{QBB_FACET_SCHEMA_URL}#/$defs/QbbDatasetFacet", **status
            ),
        },
    }


def attempt_events(attempt: QuantumAttempt, producer: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the ``START`` and terminal ``RunEvent`` of one quantum attempt.

    Parameters
    ----------
    attempt : `QuantumAttempt`
        A verified, folded attempt.
    producer : `str`
        The ``producer`` URI.

    Returns
    -------
    start, end : `dict`
        ``START`` at ``quantum_started``; ``COMPLETE`` (succeeded, no work),
        ``FAIL`` (failed, with an ``errorMessage`` facet) or ``ABORT`` (no
        ``quantum_finished``: the attempt was cut) at its last event.
    """
    run_name = attempt.run
    job = {"namespace": run_name, "name": attempt.started.quantum.task_label or "unknown"}
    parent = _facet(
        producer,
        _PARENT_URL,
        run={"runId": str(uuid.uuid5(_RUN_NAMESPACE, run_name))},
        job={"namespace": run_name, "name": run_name},
    )
    qbb_run = _facet(
        producer,
        f"{QBB_FACET_SCHEMA_URL}#/$defs/QbbRunFacet",
        quantum_id=str(attempt.quantum_id),
        attempt=attempt.attempt,
        data_id=dict(attempt.started.quantum.data_id),
        status=attempt.finished.status if attempt.finished else None,
    )
    this_run = str(run_id(attempt.quantum_id, attempt.attempt))
    common = {"producer": producer, "schemaURL": OPENLINEAGE_SCHEMA_URL, "job": job}
    start = {
        **common,
        "eventType": "START",
        "eventTime": _time(attempt.started.timestamp_ns),
        "run": {"runId": this_run, "facets": {"parent": parent, "qbb": qbb_run}},
    }
    run_facets: dict[str, Any] = {"parent": parent, "qbb": qbb_run}
    finished = attempt.finished
    if finished is None:
        event_type = "ABORT"
    elif finished.status == "failed":
        event_type = "FAIL"
        error = finished.exception
        message = f"{error.exc_type}: {error.message}" if error else "failed"
        run_facets["errorMessage"] = _facet(
            producer, _ERROR_URL, message=message, programmingLanguage="python"
        )
    else:
        event_type = "COMPLETE"
    p = attempt.provenance
    records = {r.dataset_id: r for rs in p.datastore_records.values() for r in rs}
    end = {
        **common,
        "eventType": event_type,
        "eventTime": _time(attempt.last_ns),
        "run": {"runId": this_run, "facets": run_facets},
        "inputs": [_dataset(attempt, i, producer, None) for i in sorted(p.actual_inputs)],
        "outputs": [
            _dataset(attempt, i, producer, records.get(i)) for i in sorted(p.actual_outputs)
        ],
    }
    return start, end
