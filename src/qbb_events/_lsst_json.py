"""LSST provenance JSON: the document the reference's ``QuantumProvenanceData`` reads and writes.

The reference writes the five id sets as lists and the datastore records of
each datastore as ``{"dataset_ids": [...], "records": {record class name:
{dataset id hex: {table name: [row, ...]}}}}``, one row per artifact with the
columns of its ``file_datastore_records`` table. This module converts between
that shape and our sets and `FileRecord` lists; it knows nothing of
`QuantumProvenanceData` so that the provenance module can use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InterchangeError
from .records import FileRecord, foreign_record_type

__all__ = [
    "LSST_ID_SETS",
    "LSST_RECORD_CLASS",
    "LSST_RECORD_TABLE",
    "lsst_document",
    "parse_lsst_document",
]

LSST_RECORD_CLASS: Final = "lsst.daf.butler.datastore.stored_file_info.StoredFileInfo"
"""Record class name written for our file records."""
LSST_RECORD_TABLE: Final = "file_datastore_records"
"""Table name written for our file records (the reference's default)."""
LSST_ID_SETS: Final = (
    "predicted_inputs",
    "available_inputs",
    "actual_inputs",
    "predicted_outputs",
    "actual_outputs",
)
"""The id sets the reference's document holds, in its field order."""

# The reference stores "no component" as this string, since the column is in
# a primary key and may not be NULL.
_NULL_STRING: Final = "__NULL_STRING__"

_Row = dict[str, int | str | None]


class _Records(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_ids: list[uuid.UUID]
    records: dict[str, dict[str, dict[str, list[_Row]]]]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    predicted_inputs: list[uuid.UUID]
    available_inputs: list[uuid.UUID]
    actual_inputs: list[uuid.UUID]
    predicted_outputs: list[uuid.UUID]
    actual_outputs: list[uuid.UUID]
    datastore_records: dict[str, _Records]


def _row(record: FileRecord) -> _Row:
    return {
        "formatter": record.formatter,
        "path": record.path,
        "storage_class": record.storage_class,
        "component": _NULL_STRING,
        "checksum": record.checksum,
        "file_size": record.file_size,
    }


def lsst_document(
    id_sets: Mapping[str, Iterable[uuid.UUID]], records: Mapping[str, Iterable[FileRecord]]
) -> str:
    """Write the reference's provenance JSON.

    Parameters
    ----------
    id_sets : `~collections.abc.Mapping` [`str`, `~collections.abc.Iterable` [`uuid.UUID`]]
        The five sets named in `LSST_ID_SETS`.
    records : `~collections.abc.Mapping` [`str`, `~collections.abc.Iterable` [`FileRecord`]]
        Records by datastore name.

    Returns
    -------
    text : `str`
        The document; ids sorted, so equal provenance gives equal text.
    """
    document: dict[str, Any] = {
        name: sorted(str(i) for i in id_sets[name]) for name in LSST_ID_SETS
    }
    stores: dict[str, Any] = {}
    for datastore, store_records in records.items():
        ordered = sorted(store_records, key=lambda r: r.dataset_id)
        stores[datastore] = {
            "dataset_ids": [str(r.dataset_id) for r in ordered],
            "records": {
                LSST_RECORD_CLASS: {
                    r.dataset_id.hex: {LSST_RECORD_TABLE: [_row(r)]} for r in ordered
                }
            },
        }
    document["datastore_records"] = stores
    return orjson.dumps(document).decode()


def _file_record(class_name: str, datastore: str, dataset_hex: str, row: _Row) -> FileRecord:
    where = f"datastore {datastore!r}, dataset {dataset_hex}"
    record_type = foreign_record_type(class_name)
    component = row.get("component")
    if component not in (None, _NULL_STRING):
        raise InterchangeError(
            f"{where}: component {component!r} (a disassembled composite) has no equivalent "
            "in qbb_events records."
        )
    checksum = row.get("checksum")
    if not (isinstance(checksum, str) and checksum.startswith("sha256:")):
        raise InterchangeError(
            f"{where}: checksum {checksum!r} is not 'sha256:<hex>'; qbb_events records need one."
        )
    try:
        return record_type(
            dataset_id=uuid.UUID(hex=dataset_hex),
            datastore_name=datastore,
            path=row.get("path"),
            formatter=row.get("formatter"),
            storage_class=row.get("storage_class"),
            file_size=row.get("file_size"),
            checksum=checksum,
        )
    except (ValidationError, ValueError) as err:
        raise InterchangeError(f"{where}: the record does not validate: {err}") from err


def parse_lsst_document(text: str | bytes) -> dict[str, Any]:
    """Read the reference's provenance JSON.

    Parameters
    ----------
    text : `str` or `bytes`
        A document the reference's ``QuantumProvenanceData.model_dump_json()``
        wrote, or `lsst_document` did.

    Returns
    -------
    fields : `dict` [`str`, `typing.Any`]
        The five sets (`frozenset` of `uuid.UUID`) and ``datastore_records``
        (`FileRecord` lists by datastore name, sorted by dataset id).

    Raises
    ------
    RecordTypeError
        If a record class name is not in the explicit registry; nothing named in
        the document is imported.
    InterchangeError
        If the document is not in the reference's shape, or holds a record we
        cannot represent (a component, no SHA-256 checksum, several rows for
        one artifact).
    """
    try:
        document = _Document.model_validate_json(text)
    except ValidationError as err:
        raise InterchangeError(f"Not an LSST provenance document: {err}") from err
    fields: dict[str, Any] = {name: frozenset(getattr(document, name)) for name in LSST_ID_SETS}
    stores: dict[str, list[FileRecord]] = {}
    for datastore, data in document.datastore_records.items():
        found: list[FileRecord] = []
        for class_name, by_dataset in data.records.items():
            for dataset_hex, tables in by_dataset.items():
                rows = [row for table in tables.values() for row in table]
                if len(rows) != 1:
                    raise InterchangeError(
                        f"datastore {datastore!r}, dataset {dataset_hex}: {len(rows)} records; "
                        "qbb_events keeps exactly one artifact per dataset."
                    )
                found.append(_file_record(class_name, datastore, dataset_hex, rows[0]))
        if found:
            stores[datastore] = sorted(found, key=lambda r: r.dataset_id)
    fields["datastore_records"] = stores
    return fields
