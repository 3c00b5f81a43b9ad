"""Formatters: how each storage class turns objects into bytes and back.

The registry is explicit: a storage class name maps to one formatter object
defined here, and nothing named in stored data is ever imported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from typing import Any, Final, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BadReadRequestError, StorageClassError, UnreadableArtifactError

__all__ = ["FORMATTERS", "Formatter"]


class Formatter(Protocol):
    """What the `FileDatastore` needs of a formatter.

    Attributes
    ----------
    name : `str`
        Name written in datastore records.
    storage_class : `str`
        The storage class it serves.
    extension : `str`
        File name extension, with its dot.
    parameters : `~collections.abc.Set` [`str`]
        Read parameters it accepts.
    """

    name: str
    storage_class: str
    extension: str
    parameters: Set[str]

    def to_bytes(self, obj: Any) -> bytes | memoryview:
        """Serialize ``obj``; raise `StorageClassError` if it does not fit."""
        ...

    def from_bytes(self, data: bytes, parameters: Mapping[str, Any]) -> Any:
        """Decode an artifact; raise `UnreadableArtifactError` if it cannot be decoded."""
        ...


def check_parameters(formatter: Formatter, parameters: Mapping[str, Any] | None) -> None:
    """Refuse read parameters the formatter does not know.

    Parameters
    ----------
    formatter : `Formatter`
        The formatter that will read.
    parameters : `~collections.abc.Mapping` or `None`
        The caller's parameters.

    Raises
    ------
    BadReadRequestError
        If a parameter is unknown.
    """
    if parameters:
        if not isinstance(parameters, Mapping):
            raise BadReadRequestError(f"Read parameters must be a mapping, got {parameters!r}.")
        unknown = set(parameters) - formatter.parameters
        if unknown:
            raise BadReadRequestError(
                f"Unknown read parameter(s) {sorted(unknown)} for storage class "
                f"{formatter.storage_class!r}; accepted: {sorted(formatter.parameters)}."
            )


_JSON_INTS = range(-(1 << 63), 1 << 64)
"""Integers that read back as integers (beyond them the decoder makes floats)."""


def _json_mismatch(obj: Any) -> str | None:
    """Say why an object `json.dumps` accepted would not read back equal, or `None`."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    return f"dict key {key!r} is not a str"
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, int) and value not in _JSON_INTS:
            return f"integer {value} does not fit in 64 bits"
    return None


class _JsonFormatter:
    name = "json"
    storage_class = "json"
    extension = ".json"
    parameters: Set[str] = frozenset()

    def to_bytes(self, obj: Any) -> bytes:
        # The standard library encoder is strict about types (no sets, UUIDs,
        # dataclasses or NaN), so what is stored reads back equal to what was
        # given, tuples coming back as lists.
        # It is lax about three things that would not read back: non-str keys
        # (silently made strings), integers beyond 64 bits (read as floats) and
        # lone surrogates (unreadable); encoding without ``ensure_ascii`` makes
        # ``.encode()`` refuse the last, `_json_mismatch` finds the others.
        try:
            data = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
            problem = _json_mismatch(obj)
            if problem is None:
                return data.encode()
        except (TypeError, ValueError, RecursionError) as err:
            problem = str(err)
        raise StorageClassError(
            f"A {type(obj).__name__} does not fit the 'json' storage class: {problem}"
        )

    def from_bytes(self, data: bytes, parameters: Mapping[str, Any]) -> Any:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise UnreadableArtifactError(f"Artifact is not valid JSON: {err}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise UnreadableArtifactError("Artifact holds a non-finite number.")
        return value


class _BytesFormatter:
    name = "bytes"
    storage_class = "bytes"
    extension = ".bin"
    parameters: Set[str] = frozenset()

    def to_bytes(self, obj: Any) -> bytes | memoryview:
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, bytearray | memoryview):
            return memoryview(obj).cast("B")
        raise StorageClassError(
            f"A {type(obj).__name__} does not fit the 'bytes' storage class "
            "(bytes, bytearray or memoryview)."
        )

    def from_bytes(self, data: bytes, parameters: Mapping[str, Any]) -> Any:
        return data


class _ParquetFormatter:
    name = "parquet"
    storage_class = "arrow"
    extension = ".parquet"
    parameters: Set[str] = frozenset({"columns"})

    def to_bytes(self, obj: Any) -> memoryview:
        if isinstance(obj, pa.RecordBatch):
            obj = pa.Table.from_batches([obj])
        elif type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame":
            try:
                obj = pa.Table.from_pandas(obj)
            except (pa.ArrowException, TypeError, ValueError) as err:
                raise StorageClassError(
                    f"The DataFrame does not fit the 'arrow' storage class: {err}"
                ) from None
        if not isinstance(obj, pa.Table):
            raise StorageClassError(
                f"A {type(obj).__name__} does not fit the 'arrow' storage class "
                "(pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame)."
            )
        sink = pa.BufferOutputStream()
        try:
            pq.write_table(obj, sink, compression="zstd")
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise StorageClassError(f"The table cannot be written as Parquet: {err}") from None
        return memoryview(sink.getvalue())

    def from_bytes(self, data: bytes, parameters: Mapping[str, Any]) -> Any:
        columns = parameters.get("columns")
        if columns is not None and (
            isinstance(columns, str)
            or not isinstance(columns, list | tuple)
            or not all(isinstance(c, str) for c in columns)
        ):
            raise BadReadRequestError(f"'columns' must be a list of column names, got {columns!r}.")
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            schema_names = set(parquet.schema_arrow.names)
        except (pa.ArrowException, OSError) as err:
            raise UnreadableArtifactError(
                f"Artifact is not a readable Parquet file: {err}"
            ) from None
        if columns is not None:
            missing = [c for c in columns if c not in schema_names]
            if missing:
                raise BadReadRequestError(
                    f"Unknown column(s) {missing}; the table has {sorted(schema_names)}."
                )
        try:
            return parquet.read(columns=None if columns is None else list(columns))
        except (pa.ArrowException, OSError) as err:
            raise UnreadableArtifactError(
                f"Artifact is not a readable Parquet file: {err}"
            ) from None


FORMATTERS: Final[Mapping[str, Formatter]] = {
    f.storage_class: f for f in (_JsonFormatter(), _BytesFormatter(), _ParquetFormatter())
}
"""The formatter of each storage class."""
