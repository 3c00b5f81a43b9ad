"""The Parquet export: events, predicted, quanta and provenance tables, read back losslessly."""

from .export import ExportReport, export_parquet
from .provenance import (
    PROVENANCE_ROLES,
    PROVENANCE_SCHEMA,
    fold_export,
    provenance_rows_scalar,
    vectorized_provenance,
    write_provenance,
)
from .reading import exported_logs, verify_export
from .schema import (
    DICTIONARY_COLUMNS,
    EVENTS_SCHEMA,
    EXPORT_FORMAT,
    PREDICTED_SCHEMA,
    QUANTA_SCHEMA,
    ROW_GROUP_ROWS,
)

__all__ = [
    "DICTIONARY_COLUMNS",
    "EVENTS_SCHEMA",
    "EXPORT_FORMAT",
    "PREDICTED_SCHEMA",
    "PROVENANCE_ROLES",
    "PROVENANCE_SCHEMA",
    "QUANTA_SCHEMA",
    "ROW_GROUP_ROWS",
    "ExportReport",
    "export_parquet",
    "exported_logs",
    "fold_export",
    "provenance_rows_scalar",
    "vectorized_provenance",
    "verify_export",
    "write_provenance",
]
