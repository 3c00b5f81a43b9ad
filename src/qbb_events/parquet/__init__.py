"""The Parquet export: events and quanta tables, read back losslessly."""

from .export import ROW_GROUP_ROWS, ExportReport, export_parquet
from .reading import exported_logs, verify_export
from .schema import EVENTS_SCHEMA, EXPORT_FORMAT, QUANTA_SCHEMA

__all__ = [
    "EVENTS_SCHEMA",
    "EXPORT_FORMAT",
    "QUANTA_SCHEMA",
    "ROW_GROUP_ROWS",
    "ExportReport",
    "export_parquet",
    "exported_logs",
    "verify_export",
]
