"""pandas helpers over a Parquet export: load tables with filters pushed down, and ready answers.

Needs pandas (``pip install 'qbb-events[analytics]'``). Every loader reads
only the row groups and partitions its filters allow (run, task label, time
range), and gives ids as hyphenated strings and data IDs as dicts, so the
frames are ready for ``groupby``. The same files read directly in DuckDB,
Polars or Spark (see ``docs/parquet.md``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import pandas as pd
except ModuleNotFoundError as _missing:  # pragma: no cover - exercised in a subprocess
    if _missing.name != "pandas":
        raise
    # A bare "No module named 'pandas'" does not say it is an optional extra.
    raise ModuleNotFoundError(
        "qbb_events.analytics needs pandas, an optional dependency: "
        "pip install 'qbb-events[analytics]'",
        name="pandas",
    ) from None
import numpy as np  # after pandas, which needs it: a missing extra is named as pandas
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

__all__ = [
    "load_events",
    "load_provenance",
    "load_quanta",
    "quanta_with_missing_inputs",
    "time_per_task",
    "unused_inputs",
    "unverified_quanta",
    "unwritten_outputs",
    "uuid_text",
]

Time = dt.datetime | pd.Timestamp | str | None
"""A time bound: a datetime, a pandas timestamp or an ISO string; naive means UTC."""


def _dataset(dest: str | os.PathLike[str], table: str) -> ds.Dataset:
    folder = Path(dest) / table
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: export logs first (qbb-events export)"
            + (" and write the provenance tables" if table == "provenance" else "")
        )
    return ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)


def _bound(names: set[str], column: str, value: dt.datetime | pd.Timestamp | str) -> Any:
    """Return the field and scalar a time bound compares, exactly to the nanosecond."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    if f"{column}_ns" in names:  # export format 2: the exact nanoseconds beside the time
        return pc.field(f"{column}_ns"), pa.scalar(stamp.value, pa.int64())
    return pc.field(column), pa.scalar(stamp.value, pa.timestamp("ns", tz="UTC"))


def _filter(
    dataset: ds.Dataset,
    run: str | None,
    task_label: str | None,
    since: Time,
    until: Time,
    time_column: str | None,
) -> ds.Expression | None:
    names = set(dataset.schema.names)
    parts: list[ds.Expression] = []
    if run is not None:
        parts.append(pc.field("run") == run)
    if task_label is not None and "task_label" in names:
        parts.append(pc.field("task_label") == task_label)
    if time_column is not None and since is not None:
        field, scalar = _bound(names, time_column, since)
        parts.append(field >= scalar)
    if time_column is not None and until is not None:
        field, scalar = _bound(names, time_column, until)
        parts.append(field < scalar)
    if not parts:
        return None
    expression = parts[0]
    for part in parts[1:]:
        expression = expression & part
    return expression


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where each of the 32 hex digits of a UUID goes in its 36-character text.
_DIGIT_AT = np.array([i + (i >= 8) + (i >= 12) + (i >= 16) + (i >= 20) for i in range(32)])


def uuid_text(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Convert 16-byte ids to their hyphenated text, a whole column at once.

    Parameters
    ----------
    ids : `pyarrow.Array` or `pyarrow.ChunkedArray`
        ``binary(16)`` ids, as the export stores them (nulls allowed).

    Returns
    -------
    text : `pyarrow.Array`
        ``string`` ids, ``str(uuid.UUID(bytes=value))`` of each, nulls kept.

    Notes
    -----
    The hex digits are looked up and placed with numpy over the column's
    buffer: no Python object per id (converting them one by one took seconds
    for a million ids).
    """
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    array = array.cast(pa.binary(16))
    n = len(array)
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    raw = data[array.offset * 16 : (array.offset + n) * 16].reshape(n, 16)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _DIGIT_AT] = digits
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    result = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    if array.null_count:
        result = pc.if_else(pc.is_valid(array), result, pa.scalar(None, pa.string()))
    return result


_NULLABLE: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}


def _frame(table: pa.Table, data_id_keys: Sequence[str] = ()) -> pd.DataFrame:
    for name in ("quantum_id", "dataset_id"):
        if name in table.column_names:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, uuid_text(table[name]))
    if "data_id" in table.column_names:
        for key in data_id_keys:
            value = pc.map_lookup(table["data_id"], pa.scalar(key, pa.string()), "first")
            table = table.append_column(f"data_id.{key}", value)
    # Format-1 parts hold Arrow dictionaries: plain strings, like format 2.
    table = table.cast(
        pa.schema(
            [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
        )
    )
    frame: pd.DataFrame = table.to_pandas(types_mapper=_NULLABLE.get)
    if "data_id" in frame:
        frame["data_id"] = pd.Series(
            [None if v is None else dict(v) for v in frame["data_id"]],
            index=frame.index,
            dtype=object,
        )
    return frame


def _load(
    dest: str | os.PathLike[str],
    table: str,
    time_column: str | None,
    run: str | None,
    task_label: str | None,
    since: Time,
    until: Time,
    columns: list[str] | None,
    data_id_keys: Sequence[str] = (),
) -> pd.DataFrame:
    dataset = _dataset(dest, table)
    expression = _filter(dataset, run, task_label, since, until, time_column)
    if columns is not None and data_id_keys and "data_id" not in columns:
        columns = [*columns, "data_id"]
    return _frame(dataset.to_table(columns=columns, filter=expression), data_id_keys)


def load_events(
    dest: str | os.PathLike[str],
    *,
    run: str | None = None,
    task_label: str | None = None,
    since: Time = None,
    until: Time = None,
    columns: list[str] | None = None,
    data_id_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """Load the events table (one row per event and dataset).

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.
    run, task_label : `str`, optional
        Keep only this run (a partition: other runs are not read) or task.
    since, until : `datetime.datetime`, `pandas.Timestamp` or `str`, optional
        Keep events with ``since <= timestamp < until`` (naive times are UTC);
        row groups outside the range are skipped by their statistics.
    columns : `list` [`str`], optional
        Read only these columns.
    data_id_keys : `~collections.abc.Sequence` [`str`], optional
        Data-ID keys to add as columns ``data_id.<key>`` (strings, missing
        where a row's data ID lacks the key), taken from the Parquet map in
        one vectorized step.

    Returns
    -------
    events : `pandas.DataFrame`
        Ids as strings, data IDs as dicts, nullable dtypes (``Int64``,
        ``boolean``, ``string``) for columns that may be missing.
    """
    return _load(dest, "events", "timestamp", run, task_label, since, until, columns, data_id_keys)


def load_quanta(
    dest: str | os.PathLike[str],
    *,
    run: str | None = None,
    task_label: str | None = None,
    since: Time = None,
    until: Time = None,
    data_id_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """Load the quanta table (one row per exported log).

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.
    run, task_label : `str`, optional
        Keep only this run or task.
    since, until : optional
        Keep quanta that started in ``[since, until)``.
    data_id_keys : `~collections.abc.Sequence` [`str`], optional
        Data-ID keys to add as columns ``data_id.<key>``, as for `load_events`.

    Returns
    -------
    quanta : `pandas.DataFrame`
        Status, timings, event count, final hash, whether the log verified
        and its problems, with nullable dtypes.
    """
    return _load(dest, "quanta", "started", run, task_label, since, until, None, data_id_keys)


def load_provenance(
    dest: str | os.PathLike[str], *, run: str | None = None, task_label: str | None = None
) -> pd.DataFrame:
    """Load the provenance table, with each quantum's task label.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset with provenance tables (`write_provenance`).
    run, task_label : `str`, optional
        Keep only this run or task.

    Returns
    -------
    provenance : `pandas.DataFrame`
        One row per quantum, dataset and role.
    """
    provenance = _load(dest, "provenance", None, run, None, None, None, None)
    quanta = load_quanta(dest, run=run, task_label=task_label)[
        ["quantum_id", "attempt", "task_label"]
    ]
    if task_label is not None:
        return provenance.merge(quanta, on=["quantum_id", "attempt"], how="inner")
    return provenance.merge(quanta, on=["quantum_id", "attempt"], how="left")


def _roles(provenance: pd.DataFrame, have: str, lack: str) -> pd.DataFrame:
    key = ["quantum_id", "attempt", "dataset_id"]
    wanted = provenance[provenance["role"] == have]
    found = provenance[provenance["role"] == lack][key]
    merged = wanted.merge(found, on=key, how="left", indicator=True)
    result: pd.DataFrame = merged[merged["_merge"] == "left_only"].drop(columns="_merge")
    return result.reset_index(drop=True)


def unused_inputs(dest: str | os.PathLike[str], **filters: Any) -> pd.DataFrame:
    """Count, per task, inputs predicted but never used.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset with provenance tables.
    **filters
        ``run`` and ``task_label``, as for `load_provenance`.

    Returns
    -------
    unused : `pandas.DataFrame`
        Columns ``task_label``, ``unused`` (predicted inputs not in the
        actual inputs), ``predicted`` and ``fraction``, one row per task.
    """
    provenance = load_provenance(dest, **filters)
    unused = _roles(provenance, "predicted_input", "actual_input")
    predicted = provenance[provenance["role"] == "predicted_input"]
    table = pd.DataFrame(
        {
            "unused": unused.groupby("task_label").size(),
            "predicted": predicted.groupby("task_label").size(),
        }
    ).fillna(0)
    table = table.astype({"unused": "int64", "predicted": "int64"})
    table["fraction"] = table["unused"] / table["predicted"].where(table["predicted"] > 0)
    return table.reset_index(names="task_label")


def unwritten_outputs(dest: str | os.PathLike[str], **filters: Any) -> pd.DataFrame:
    """List outputs predicted but not written.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset with provenance tables.
    **filters
        ``run`` and ``task_label``.

    Returns
    -------
    outputs : `pandas.DataFrame`
        One row per missing output: quantum, attempt, dataset id, task label.
    """
    provenance = load_provenance(dest, **filters)
    return _roles(provenance, "predicted_output", "actual_output")[
        ["quantum_id", "attempt", "dataset_id", "task_label"]
    ]


def quanta_with_missing_inputs(dest: str | os.PathLike[str], **filters: Any) -> pd.DataFrame:
    """List quanta some of whose predicted inputs were found missing.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset with provenance tables.
    **filters
        ``run`` and ``task_label``.

    Returns
    -------
    quanta : `pandas.DataFrame`
        ``quantum_id``, ``attempt``, ``task_label`` and ``missing`` (how many
        inputs were unavailable).
    """
    provenance = load_provenance(dest, **filters)
    missing = provenance[provenance["role"] == "unavailable_input"]
    grouped = missing.groupby(["quantum_id", "attempt", "task_label"], dropna=False).size()
    return grouped.rename("missing").reset_index()


def time_per_task(dest: str | os.PathLike[str], **filters: Any) -> pd.DataFrame:
    """Sum and average the time spent per task.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.
    **filters
        ``run``, ``task_label``, ``since`` and ``until``, as for `load_quanta`.

    Returns
    -------
    times : `pandas.DataFrame`
        Per task: ``quanta``, ``wall_s`` and ``cpu_s`` (sums), ``mean_wall_s``,
        ``max_peak_rss_bytes``, sorted by total wall time, longest first.
    """
    quanta = load_quanta(dest, **filters)
    grouped = quanta.groupby("task_label", dropna=False)
    table = pd.DataFrame(
        {
            "quanta": grouped.size(),
            "wall_s": grouped["wall_ns"].sum() / 1e9,
            "cpu_s": grouped["cpu_ns"].sum() / 1e9,
            "mean_wall_s": grouped["wall_ns"].mean() / 1e9,
            "max_peak_rss_bytes": grouped["peak_rss_bytes"].max(),
        }
    )
    return table.sort_values("wall_s", ascending=False).reset_index()


def unverified_quanta(dest: str | os.PathLike[str], **filters: Any) -> pd.DataFrame:
    """List quanta whose log did not verify when exported.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.
    **filters
        ``run``, ``task_label``, ``since`` and ``until``.

    Returns
    -------
    quanta : `pandas.DataFrame`
        ``quantum_id``, ``attempt``, ``task_label``, ``source`` and ``problems``.
    """
    quanta = load_quanta(dest, **filters)
    bad = quanta[~quanta["verified"].astype(bool)]
    return bad[["quantum_id", "attempt", "task_label", "source", "problems"]].reset_index(drop=True)
