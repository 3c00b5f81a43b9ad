"""The Arrow schemas of the Parquet export: the events, predicted and quanta tables.

Both are written explicitly, never inferred, so every file of a dataset has
the same columns and types whatever its events. ``docs/parquet.md`` describes
every column.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

__all__ = [
    "EVENTS_SCHEMA",
    "EXPORT_FORMAT",
    "PREDICTED_SCHEMA",
    "QUANTA_SCHEMA",
    "UUID_TYPE",
]

EXPORT_FORMAT: Final = "1"
"""Version of the export's table layout, kept in every file's metadata."""

UUID_TYPE: Final = pa.binary(16)
"""UUIDs are stored as their 16 bytes: a third of their text, and incompressible anyway."""

_DICT_STRING = pa.dictionary(pa.int32(), pa.string())

EVENTS_SCHEMA: Final = pa.schema(
    [
        pa.field("task_label", _DICT_STRING),
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("item", pa.int32()),
        pa.field("timestamp", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("kind", _DICT_STRING, nullable=False),
        pa.field("dataset_id", UUID_TYPE),
        pa.field("role", _DICT_STRING),
        pa.field("dataset_type", _DICT_STRING),
        pa.field("data_id", pa.map_(pa.string(), pa.string())),
        pa.field("found", pa.bool_()),
        pa.field("ok", pa.bool_()),
        pa.field("failure_category", _DICT_STRING),
        pa.field("error_type", _DICT_STRING),
        pa.field("error_message", pa.string()),
        pa.field("reject_reason", _DICT_STRING),
        pa.field("bytes_read", pa.int64()),
        pa.field("duration_ns", pa.int64()),
        pa.field("record_type", _DICT_STRING),
        pa.field("datastore_name", _DICT_STRING),
        pa.field("path", pa.string()),
        pa.field("formatter", _DICT_STRING),
        pa.field("storage_class", _DICT_STRING),
        pa.field("file_size", pa.int64()),
        pa.field("checksum", pa.string()),
        pa.field("status", _DICT_STRING),
        pa.field("extra", pa.string()),
    ]
)
"""One row per event and dataset it names (``item`` is the dataset's place in
the event's list, null for an event naming none or one)."""

PREDICTED_SCHEMA: Final = pa.schema(
    [
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("dataset_id", UUID_TYPE, nullable=False),
        pa.field("role", _DICT_STRING, nullable=False),
        pa.field("dataset_type", _DICT_STRING),
        pa.field("data_id", pa.map_(pa.string(), pa.string())),
    ]
)
"""One row per dataset a quantum predicted and role it has (``input``,
``init_input`` or ``output``), from its ``quantum_started``: with it, a
dataset no event names still counts in the quantum's predicted sets."""

QUANTA_SCHEMA: Final = pa.schema(
    [
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("task_label", _DICT_STRING),
        pa.field("data_id", pa.map_(pa.string(), pa.string())),
        pa.field("status", _DICT_STRING),
        pa.field("started", pa.timestamp("ns", tz="UTC")),
        pa.field("finished", pa.timestamp("ns", tz="UTC")),
        pa.field("wall_ns", pa.int64()),
        pa.field("cpu_ns", pa.int64()),
        pa.field("peak_rss_bytes", pa.int64()),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("final_hash", pa.string()),
        pa.field("verified", pa.bool_(), nullable=False),
        pa.field("problems", pa.list_(pa.string())),
        pa.field("source", pa.string(), nullable=False),
    ]
)
"""One row per exported log (quantum attempt)."""
