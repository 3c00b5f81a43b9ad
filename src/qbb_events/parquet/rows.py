"""Events to rows and back: each kind's fields in typed columns, losslessly.

An event becomes one row per dataset it names (one row if it names one or
none). Fields with a column go there; whatever else the event holds goes to
``extra`` as canonical JSON. `rows_to_body` rebuilds the event's body
exactly, so its canonical JSON, and hence its hash chain, can be checked
against the quanta table's final hash. `event_to_rows` proves that for every
event it encodes: if the rebuilt body differs, the whole payload goes to
``extra`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["ENVELOPE", "Row", "event_to_rows", "rows_to_body"]

Row = dict[str, Any]

ENVELOPE = frozenset(
    {"schema_version", "quantum_id", "attempt", "seq", "timestamp_ns", "kind", "prev_hash", "hash"}
)
"""Fields every event has; ``prev_hash`` and ``hash`` are rebuilt, not stored."""

_READ = ("input_read", "deferred_loaded")
# Kinds naming a list of datasets: one row per dataset, in ``item`` order.
_MANY = ("existence_checked", "datasets_pruned", "uri_requested", "artifacts_retrieved")
_ONE_DATASET = (*_READ, "deferred_requested", "input_marked_unused", "output_written")
_RECORD_FIELDS = ("record_type", "datastore_name", "path", "formatter", "storage_class")
_NULL_ROW: Row = {
    "item": None,
    "dataset_id": None,
    "found": None,
    "ok": None,
    "failure_category": None,
    "error_type": None,
    "error_message": None,
    "reject_reason": None,
    "bytes_read": None,
    "duration_ns": None,
    "record_type": None,
    "datastore_name": None,
    "path": None,
    "formatter": None,
    "storage_class": None,
    "file_size": None,
    "checksum": None,
    "status": None,
    "extra": None,
}


def _extra(fields: Mapping[str, Any]) -> str | None:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode() if fields else None


def _columns(kind: str, payload: dict[str, Any]) -> list[Row]:
    """Spread a payload over columns; what has no column stays in ``extra``."""
    rest = dict(payload)
    row: Row = dict(_NULL_ROW)
    rows = [row]
    if kind in _MANY:
        ids = rest.pop("dataset_ids")
        results = rest.pop("results") if kind == "existence_checked" else None
        rows = []
        for index, dataset_id in enumerate(ids):
            item = dict(_NULL_ROW, item=index, dataset_id=dataset_id)
            if results is not None:
                item["found"] = results[index]
            rows.append(item)
        if not rows:
            rows = [dict(_NULL_ROW, item=-1)]
        row = rows[0]
    elif kind in _ONE_DATASET or kind == "output_rejected":
        row["dataset_id"] = rest.pop("dataset_id")
    if kind in _READ:
        row["ok"] = rest.pop("ok")
        row["bytes_read"] = rest.pop("bytes_read")
        row["duration_ns"] = rest.pop("duration_ns")
        failure = rest.pop("failure")
        if failure is not None:
            row["failure_category"] = failure.pop("category")
            row["error_type"] = failure.pop("exc_type")
            row["error_message"] = failure.pop("message")
            if failure:
                raise ValueError("unexpected failure fields")
    elif kind == "output_written":
        record = dict(rest.pop("record"))
        row["duration_ns"] = rest.pop("duration_ns")
        if record.pop("dataset_id") != row["dataset_id"]:
            raise ValueError("a record of another dataset")
        for name in _RECORD_FIELDS:
            row[name] = record.pop(name)
        row["file_size"] = record.pop("file_size")
        row["checksum"] = record.pop("checksum")
        if record:
            raise ValueError("unexpected record fields")
    elif kind == "output_rejected":
        row["reject_reason"] = rest.pop("reason")
        error = dict(rest.pop("error"))
        row["error_type"] = error.pop("exc_type")
        row["error_message"] = error.pop("message")
        if error:
            raise ValueError("unexpected error fields")
    elif kind == "quantum_finished":
        row["status"] = rest.pop("status")
        exception = rest.pop("exception")
        if exception is not None:
            exception = dict(exception)
            row["error_type"] = exception.pop("exc_type")
            row["error_message"] = exception.pop("message")
            if exception:
                raise ValueError("unexpected exception fields")
    rows[0]["extra"] = _extra(rest)
    return rows


def event_to_rows(raw: Mapping[str, Any]) -> list[Row]:
    """Return the rows of one stored event.

    Parameters
    ----------
    raw : `~collections.abc.Mapping`
        The event as stored (its decoded record), of any schema version.

    Returns
    -------
    rows : `list` [`Row`]
        Its payload columns, with ``item`` and ``extra``; the caller adds the
        envelope and the dataset's description. Rebuilding them with
        `rows_to_body` gives back exactly the event's payload.
    """
    kind = raw["kind"]
    payload = {k: v for k, v in raw.items() if k not in ENVELOPE}
    try:
        rows = _columns(kind, orjson.loads(orjson.dumps(payload)))
        # Compared as canonical JSON, where 1, 1.0 and true differ, and every
        # value checked against its column's type: nothing is coerced later.
        if _canonical(_payload(kind, rows)) == _canonical(payload) and all(map(_fits, rows)):
            return rows
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        pass
    # A shape the columns cannot hold exactly (another schema version, a
    # future field): the payload travels whole, so nothing is ever lost.
    return [dict(_NULL_ROW, extra=_extra(payload) or "{}", item=-2)]


_BOOLS = ("found", "ok")
_INTS = ("item", "bytes_read", "duration_ns", "file_size")
_INT64 = range(-(2**63), 2**63)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _fits(row: Row) -> bool:
    """Tell whether every value of a row has its column's type."""
    for name, value in row.items():
        if value is None:
            continue
        if name in _BOOLS:
            if type(value) is not bool:
                return False
        elif name in _INTS:
            if type(value) is not int or value not in _INT64:
                return False
        elif name == "dataset_id":
            if type(value) is not str or len(value) != 36:
                return False
        elif type(value) is not str:
            return False
    return True


def _payload(kind: str, rows: Sequence[Row]) -> dict[str, Any]:
    first = rows[0]
    extra = first["extra"]
    payload: dict[str, Any] = orjson.loads(extra) if extra else {}
    if first["item"] == -2:
        return payload
    if kind in _MANY:
        real = [] if first["item"] == -1 else list(rows)
        payload["dataset_ids"] = [row["dataset_id"] for row in real]
        if kind == "existence_checked":
            payload["results"] = [row["found"] for row in real]
    elif kind in _ONE_DATASET or kind == "output_rejected":
        payload["dataset_id"] = first["dataset_id"]
    if kind in _READ:
        payload["ok"] = first["ok"]
        payload["bytes_read"] = first["bytes_read"]
        payload["duration_ns"] = first["duration_ns"]
        payload["failure"] = (
            None
            if first["failure_category"] is None
            else {
                "category": first["failure_category"],
                "exc_type": first["error_type"],
                "message": first["error_message"],
            }
        )
    elif kind == "output_written":
        payload["duration_ns"] = first["duration_ns"]
        record = {name: first[name] for name in _RECORD_FIELDS}
        record["dataset_id"] = first["dataset_id"]
        record["file_size"] = first["file_size"]
        record["checksum"] = first["checksum"]
        payload["record"] = record
    elif kind == "output_rejected":
        payload["reason"] = first["reject_reason"]
        payload["error"] = {"exc_type": first["error_type"], "message": first["error_message"]}
    elif kind == "quantum_finished":
        payload["status"] = first["status"]
        payload["exception"] = (
            None
            if first["error_type"] is None
            else {"exc_type": first["error_type"], "message": first["error_message"]}
        )
    return payload


def rows_to_body(envelope: Mapping[str, Any], rows: Sequence[Row]) -> dict[str, Any]:
    """Rebuild an event's body (all but ``hash``) from its rows.

    Parameters
    ----------
    envelope : `~collections.abc.Mapping`
        ``schema_version``, ``quantum_id`` (hyphenated string), ``attempt``,
        ``seq``, ``timestamp_ns``, ``kind`` and ``prev_hash``.
    rows : `~collections.abc.Sequence` [`Row`]
        The event's rows, in ``item`` order, with dataset ids as strings.

    Returns
    -------
    body : `dict`
        What the event's hash covers.
    """
    return {**envelope, **_payload(envelope["kind"], rows)}


def uuid_bytes(value: str | None) -> bytes | None:
    """Return the 16 bytes of a canonical (hyphenated, lower-case) UUID string, or `None`."""
    if value is None:
        return None
    raw = bytes.fromhex(value.replace("-", ""))
    if len(raw) != 16:
        raise ValueError(f"not a UUID: {value!r}")
    return raw
