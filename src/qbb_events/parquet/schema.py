"""The Arrow schemas of the Parquet export: the events, predicted and quanta tables.

They are written explicitly, never inferred, so every file of a dataset has
the same columns and types whatever its events. ``docs/parquet.md`` describes
every column, and why the layout (export format 2) is what every engine
reads natively:

- times are ``timestamp[us, UTC]`` (Spark refuses nanosecond timestamps),
  each beside an ``int64`` column of its exact nanoseconds (``*_ns``), from
  which the records are rebuilt;
- nested columns (``data_id``, ``problems``) come after every scalar column
  (Dask misreads the statistics of columns stored after a nested one);
- strings are plain strings in the Arrow schema, and the low-cardinality ones
  (`DICTIONARY_COLUMNS`) are dictionary-encoded by Parquet only: no part
  carries an Arrow dictionary another part's could conflict with;
- UUIDs are 16-byte fixed-size binaries without the Parquet UUID logical type,
  which Spark cannot read.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

__all__ = [
    "DICTIONARY_COLUMNS",
    "EVENTS_SCHEMA",
    "EXPORT_FORMAT",
    "PREDICTED_SCHEMA",
    "QUANTA_SCHEMA",
    "ROW_GROUP_ROWS",
    "UUID_TYPE",
]

EXPORT_FORMAT: Final = "2"
"""Version of the export's table layout, kept in every file's metadata
(``qbb_events.export_format``). Format 1 (nanosecond timestamps, Arrow
dictionaries, nested columns in the middle) is still read."""

ROW_GROUP_ROWS: Final = 131_072
"""Rows per row group of every table: within the 10^5 to 10^6 that scans and statistics like."""

UUID_TYPE: Final = pa.binary(16)
"""UUIDs are stored as their 16 bytes: a third of their text, and incompressible anyway."""

_TIME = pa.timestamp("us", tz="UTC")
_DATA_ID = pa.map_(pa.string(), pa.string())

EVENTS_SCHEMA: Final = pa.schema(
    [
        pa.field("task_label", pa.string()),
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("item", pa.int32()),
        pa.field("timestamp", _TIME, nullable=False),
        pa.field("timestamp_ns", pa.int64(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("dataset_id", UUID_TYPE),
        pa.field("role", pa.string()),
        pa.field("dataset_type", pa.string()),
        pa.field("found", pa.bool_()),
        pa.field("ok", pa.bool_()),
        pa.field("failure_category", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("reject_reason", pa.string()),
        pa.field("bytes_read", pa.int64()),
        pa.field("duration_ns", pa.int64()),
        pa.field("record_type", pa.string()),
        pa.field("datastore_name", pa.string()),
        pa.field("path", pa.string()),
        pa.field("formatter", pa.string()),
        pa.field("storage_class", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("checksum", pa.string()),
        pa.field("status", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("data_id", _DATA_ID),
    ]
)
"""One row per event and dataset it names (``item`` is the dataset's place in
the event's list, null for an event naming none or one)."""

PREDICTED_SCHEMA: Final = pa.schema(
    [
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("dataset_id", UUID_TYPE, nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("dataset_type", pa.string()),
        pa.field("data_id", _DATA_ID),
    ]
)
"""One row per dataset a quantum predicted and role it has (``input``,
``init_input`` or ``output``), from its ``quantum_started``: with it, a
dataset no event names still counts in the quantum's predicted sets."""

QUANTA_SCHEMA: Final = pa.schema(
    [
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("task_label", pa.string()),
        pa.field("status", pa.string()),
        pa.field("started", _TIME),
        pa.field("started_ns", pa.int64()),
        pa.field("finished", _TIME),
        pa.field("finished_ns", pa.int64()),
        pa.field("wall_ns", pa.int64()),
        pa.field("cpu_ns", pa.int64()),
        pa.field("peak_rss_bytes", pa.int64()),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("final_hash", pa.string()),
        pa.field("verified", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("data_id", _DATA_ID),
        pa.field("problems", pa.list_(pa.string())),
    ]
)
"""One row per exported log (quantum attempt)."""

DICTIONARY_COLUMNS: Final = frozenset(
    {
        "task_label",
        "kind",
        "role",
        "dataset_type",
        "failure_category",
        "error_type",
        "reject_reason",
        "record_type",
        "datastore_name",
        "formatter",
        "storage_class",
        "status",
    }
)
"""String columns Parquet dictionary-encodes (few distinct values); the
others (paths, messages, checksums, ``extra``) are plain-encoded."""
