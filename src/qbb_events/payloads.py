"""What the butler writes into events: the quantum, errors and process facts.

These build the plain, JSON-compatible payloads the butler hands its log; the
event models in `events` validate them when the events are read.
"""

from __future__ import annotations

import resource
import socket
import sys
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from .errors import (
    InvalidDefinitionError,
    OutputAlreadyStoredError,
    OutputNotPredictedError,
    PathEscapeError,
    StorageClassError,
)
from .ids import as_uuid
from .model import DataIdValue, DatasetRef
from .records import FileRecord

__all__ = [
    "HOST",
    "LIBRARY_VERSION",
    "error_info",
    "peak_rss_bytes",
    "predicted_map",
    "quantum_info",
    "rejection_reason",
]

try:
    LIBRARY_VERSION = metadata.version("qbb-events")
except metadata.PackageNotFoundError:  # running from a source tree
    LIBRARY_VERSION = "0+unknown"
"""Version of qbb_events recorded in ``quantum_started``."""

HOST = socket.gethostname()
"""Host name recorded in ``quantum_started``."""


def error_info(err: BaseException) -> dict[str, str]:
    """Return an exception as events record it: its class name and message."""
    # Events are UTF-8 JSON: escape lone surrogates (e.g. undecodable file names).
    message = str(err).encode("utf-8", "backslashreplace").decode("utf-8")
    return {"exc_type": type(err).__name__, "message": message}


def peak_rss_bytes() -> int:
    """Return the peak resident memory of this process, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


def rejection_reason(err: Exception) -> str:
    """Return the ``output_rejected`` reason for the error that refused a ``put``."""
    if isinstance(err, OutputNotPredictedError):
        return "not_predicted"
    if isinstance(err, OutputAlreadyStoredError):
        return "already_written"
    if isinstance(err, StorageClassError):
        return "invalid_object"
    if isinstance(err, PathEscapeError | InvalidDefinitionError):
        return "bad_path"
    return "write_error"


def _ref_info(dataset_id: uuid.UUID, ref: DatasetRef | None) -> dict[str, Any]:
    if ref is None:  # a bare id given to from_predicted
        return {"id": dataset_id, "dataset_type": None, "run": None, "data_id": None}
    return {
        "id": ref.id,
        "dataset_type": ref.dataset_type.name,
        "run": ref.run,
        "data_id": ref.data_id.to_dict(),
    }


def quantum_info(
    quantum_id: uuid.UUID,
    task_label: str | None,
    data_id: Mapping[str, DataIdValue],
    inputs: Mapping[uuid.UUID, DatasetRef | None],
    init_inputs: Mapping[uuid.UUID, DatasetRef | None],
    outputs: Mapping[uuid.UUID, DatasetRef | None],
    input_records: Mapping[str, Iterable[FileRecord]],
) -> dict[str, Any]:
    """Return the ``quantum`` field of ``quantum_started``: the whole quantum.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    task_label : `str` or `None`
        Its task label, `None` when unknown (``from_predicted``).
    data_id : `~collections.abc.Mapping`
        Its data ID.
    inputs, init_inputs, outputs : `~collections.abc.Mapping`
        Predicted datasets by id, in order; `None` for a bare id.
    input_records : `~collections.abc.Mapping`
        Datastore records of the inputs, by datastore name.

    Returns
    -------
    info : `dict`
        A JSON-compatible payload; dataset types are listed once, by name.
    """
    refs = [ref for group in (inputs, init_inputs, outputs) for ref in group.values() if ref]
    types = {ref.dataset_type.name: ref.dataset_type for ref in refs}
    return {
        "id": quantum_id,
        "task_label": task_label,
        "data_id": dict(data_id),
        "dataset_types": [
            {"name": t.name, "storage_class": t.storage_class, "dimensions": list(t.dimensions)}
            for t in sorted(types.values(), key=lambda t: t.name)
        ],
        "inputs": [_ref_info(i, r) for i, r in inputs.items()],
        "init_inputs": [_ref_info(i, r) for i, r in init_inputs.items()],
        "outputs": [_ref_info(i, r) for i, r in outputs.items()],
        "input_records": {name: list(records) for name, records in sorted(input_records.items())},
    }


def predicted_map(
    items: Iterable[DatasetRef | uuid.UUID | str], what: str
) -> dict[uuid.UUID, DatasetRef | None]:
    """Return predicted datasets given as refs or bare ids, by id.

    Parameters
    ----------
    items : `~collections.abc.Iterable`
        Refs, UUIDs or UUID strings.
    what : `str`
        What they are, for error messages.

    Returns
    -------
    predicted : `dict` [`uuid.UUID`, `DatasetRef` or `None`]
        Each id with its ref, or `None` when only the id was given.

    Raises
    ------
    InvalidDefinitionError
        If an id is malformed, or one id comes with two definitions.
    """
    result: dict[uuid.UUID, DatasetRef | None] = {}
    for item in items:
        if isinstance(item, DatasetRef):
            prior = result.get(item.id)
            if prior is not None and prior != item:
                raise InvalidDefinitionError(
                    f"{what} id {item.id} is given twice with different definitions."
                )
            result[item.id] = item
        else:
            result.setdefault(as_uuid(item, f"{what} id"), None)
    return result
