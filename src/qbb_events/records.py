"""Datastore records: what a datastore says about each artifact it wrote.

Records are read back from JSON through an explicit registry keyed by the
``record_type`` field, so reading provenance never imports a class named in
the data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .errors import RecordTypeError

__all__ = ["AnyRecord", "FileRecord", "foreign_record_type", "record_from_data"]

_CHECKSUM_PATTERN = r"^sha256:[0-9a-f]{64}$"


class FileRecord(BaseModel):
    """The record of one file artifact written by a `FileDatastore`.

    Parameters
    ----------
    dataset_id : `uuid.UUID`
        The dataset the artifact holds.
    datastore_name : `str`
        Name of the datastore that wrote it.
    path : `str`
        Path of the artifact relative to the datastore root, with ``/`` separators.
    formatter : `str`
        Name of the formatter that wrote it (``json``, ``parquet``, ``bytes``).
    storage_class : `str`
        Storage class of the dataset type.
    file_size : `int` or `None`
        Size of the artifact in bytes; `None` in a *predicted* record (one
        describing an artifact that may not exist yet, see
        ``QuantumBackedButler.export_predicted_datastore_records``).
    checksum : `str` or `None`
        ``sha256:`` followed by the hex digest of the artifact's bytes; `None`
        in a predicted record.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_type: Literal["file"] = "file"
    dataset_id: uuid.UUID
    datastore_name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    formatter: str = Field(min_length=1)
    storage_class: str = Field(min_length=1)
    file_size: int | None = Field(default=None, ge=0)
    checksum: str | None = Field(default=None, pattern=_CHECKSUM_PATTERN)

    @property
    def predicted(self) -> bool:
        """Whether this record only predicts its artifact (no size or checksum) (`bool`)."""
        return self.file_size is None or self.checksum is None


# The explicit registry of record kinds: adding a datastore kind means adding
# its record class here, never resolving a class from a name found in data.
_RECORD_TYPES: Mapping[str, type[FileRecord]] = {"file": FileRecord}

# Record class names other systems write (LSST provenance JSON names the
# Python class of each record), mapped to our kinds. A name not listed here is
# refused: it is never imported. The second name is the one the reference
# wrote before its record module moved.
_FOREIGN_RECORD_CLASSES: Mapping[str, str] = {
    "lsst.daf.butler.datastore.stored_file_info.StoredFileInfo": "file",
    "lsst.daf.butler.core.storedFileInfo.StoredFileInfo": "file",
}


def foreign_record_type(class_name: str) -> type[FileRecord]:
    """Return our record class for a record class name another system wrote.

    Parameters
    ----------
    class_name : `str`
        A fully qualified class name found in a document, such as
        ``lsst.daf.butler.datastore.stored_file_info.StoredFileInfo``.

    Returns
    -------
    record_type : `type` [`FileRecord`]
        The registered record class it maps to.

    Raises
    ------
    RecordTypeError
        If the name is not in the explicit registry (it is never imported).
    """
    kind = _FOREIGN_RECORD_CLASSES.get(class_name)
    if kind is None:
        raise RecordTypeError(
            f"Unknown datastore record class {class_name!r}; known: "
            f"{sorted(_FOREIGN_RECORD_CLASSES)} (record classes are never imported by name)."
        )
    return _RECORD_TYPES[kind]


def record_from_data(data: Any) -> FileRecord:
    """Build a record from a model or a JSON-compatible mapping.

    Parameters
    ----------
    data : `FileRecord` or `~collections.abc.Mapping`
        A record, or its ``model_dump()``.

    Returns
    -------
    record : `FileRecord`
        The validated record.

    Raises
    ------
    RecordTypeError
        If ``record_type`` is not a registered record kind.
    pydantic.ValidationError
        If the fields do not validate.
    """
    if isinstance(data, FileRecord):
        return data
    if not isinstance(data, Mapping):
        raise RecordTypeError(f"A datastore record must be a mapping, not {type(data).__name__}.")
    kind = data.get("record_type", "file")
    cls = _RECORD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RecordTypeError(
            f"Unknown datastore record type {kind!r}; known: {sorted(_RECORD_TYPES)}."
        )
    return cls.model_validate(data)


AnyRecord = Annotated[FileRecord, BeforeValidator(record_from_data)]
"""Type of a record field that dispatches through the registry."""
