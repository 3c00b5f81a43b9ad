"""The files of an export: partition folders, writers, metadata and format of each part.

Every table of a dataset (events, predicted, quanta, provenance) is written
through `open_writer`, so each has the same compression, statistics, row-group
size and encodings, and each part carries the same ``qbb_events.*`` metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ExportFormatError
from .schema import DICTIONARY_COLUMNS, EXPORT_FORMAT, ROW_GROUP_ROWS

__all__ = [
    "FORMAT_KEY",
    "check_format",
    "format_of",
    "open_writer",
    "partition_folder",
    "qbb_metadata",
    "with_times",
    "write_rows",
]

FORMAT_KEY: Final = "qbb_events.export_format"

# The characters Hive (and Spark, which follows it) escapes in a partition
# value: ASCII controls (NUL too, which no file name can hold), DEL and a few
# punctuation marks. Everything else, UTF-8 included, is kept as is: Spark
# decodes an escape as one Latin-1 character, so a percent-encoded UTF-8 byte
# sequence would come back garbled.
_HIVE_SPECIAL: Final = frozenset([*map(chr, range(0x20)), *"\"#%'*/:=?\\\x7f{[]^"])


def partition_folder(run: str) -> str:
    """Return the Hive folder name of a run: ``run=<value>``, escaped only where Hive must.

    Parameters
    ----------
    run : `str`
        The run name.

    Returns
    -------
    folder : `str`
        ``run=`` and the run with each Hive special character as ``%XX``
        (upper-case hex), so ``u/me/run é 100%`` is ``run=u%2Fme%2Frun é 100%25``;
        pyarrow, pandas, DuckDB, Polars, Dask and Spark decode it back.
    """
    return "run=" + "".join(f"%{ord(c):02X}" if c in _HIVE_SPECIAL else c for c in run)


def open_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """Open a writer for one part, with the export's encodings.

    Parameters
    ----------
    path : `pathlib.Path`
        The file to write (a hidden temporary name, renamed when done).
    schema : `pyarrow.Schema`
        The table's schema.

    Returns
    -------
    writer : `pyarrow.parquet.ParquetWriter`
        zstd, statistics on every column, dictionary encoding only for the
        `DICTIONARY_COLUMNS` the schema has. Write with ``row_group_size=ROW_GROUP_ROWS``.
    """
    dictionary = sorted(DICTIONARY_COLUMNS & set(schema.names))
    return pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=True,
    )


def write_rows(writer: pq.ParquetWriter, table: pa.Table) -> None:
    """Write a table in row groups of `ROW_GROUP_ROWS` rows."""
    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def qbb_metadata(run: str, run_digest: str, schema_version: int) -> dict[str, str]:
    """Return the ``qbb_events.*`` key-value metadata of a part.

    Parameters
    ----------
    run : `str`
        The part's run.
    run_digest : `str`
        The run digest of the logs it holds.
    schema_version : `int`
        The event schema version of this library.

    Returns
    -------
    metadata : `dict` [`str`, `str`]
        Export format, schema version, run and run digest.
    """
    return {
        FORMAT_KEY: EXPORT_FORMAT,
        "qbb_events.schema_version": str(schema_version),
        "qbb_events.run": run,
        "qbb_events.run_digest": run_digest,
    }


def format_of(part: Path) -> str:
    """Return the export format of a part, from its metadata.

    Parameters
    ----------
    part : `pathlib.Path`
        A Parquet file of an export.

    Returns
    -------
    format : `str`
        ``qbb_events.export_format`` (``"1"`` for a part without it: format 1
        provenance parts had no metadata).
    """
    metadata = pq.read_metadata(part).metadata or {}
    return str(metadata.get(FORMAT_KEY.encode(), b"1").decode())


def check_format(dest: Path) -> None:
    """Refuse to add format-`EXPORT_FORMAT` parts to a dataset written in another format.

    Parameters
    ----------
    dest : `pathlib.Path`
        The dataset's directory.

    Raises
    ------
    ExportFormatError
        If a published part of the dataset has another export format.
    """
    for part in sorted((dest / "quanta").glob("run=*/part-*.parquet")):
        found = format_of(part)
        if found != EXPORT_FORMAT:
            raise ExportFormatError(
                f"{dest} holds export format {found} ({part}); this library writes format "
                f"{EXPORT_FORMAT}, and engines cannot read a mix: export into a new directory "
                "(the old dataset stays readable)"
            )


def with_times(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Add each timestamp column of ``schema`` from its exact ``<name>_ns`` column.

    Parameters
    ----------
    table : `pyarrow.Table`
        The table's columns but its timestamps.
    schema : `pyarrow.Schema`
        The full schema.

    Returns
    -------
    table : `pyarrow.Table`
        In ``schema``'s order, each timestamp the microsecond its nanoseconds fall in.
    """
    columns = []
    for field in schema:
        if pa.types.is_timestamp(field.type):
            nanoseconds = table[f"{field.name}_ns"].cast(pa.timestamp("ns", tz="UTC"))
            # Truncated, not rounded: a time never moves into the next microsecond.
            columns.append(pc.cast(nanoseconds, field.type, safe=False))
        else:
            columns.append(table[field.name])
    return pa.table(columns, schema=schema)
