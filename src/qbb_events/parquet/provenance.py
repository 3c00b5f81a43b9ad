"""Provenance tables: the fold of many quanta at once, vectorized over an export.

`vectorized_provenance` computes, from the events and predicted tables of an
export, one row per (quantum attempt, dataset, role) for the six sets of
`QuantumProvenanceData`, with Arrow compute only: filters, per-dataset
aggregations over ``seq``, joins and a sort. `provenance_rows_scalar` builds
the same rows for one log with the scalar `fold`: it is the reference the
vectorized fold is tested against.

The rules of `ProvenanceReducer` depend on order only through a few "last
event of a kind" comparisons, so each becomes an aggregation over ``seq`` per
(quantum, attempt, dataset):

- *available*: some ``existence_checked`` row found it, or some read
  (``input_read``/``deferred_loaded``) had no failure;
- *unavailable*: some ``existence_checked`` row did not find it, or some read
  failed with category ``missing`` (other failures change nothing);
- *actual input*: let ``L`` be the last ``input_marked_unused`` seq and
  ``f`` the first "use" (successful read or ``deferred_requested``) after
  ``L``; the input is used at the end iff ``f`` exists, and it is actual iff
  moreover it is not (unavailable and never read successfully);
- *actual output*: let ``w`` be the last ``output_written`` seq and ``p`` the
  last ``datasets_pruned`` that purged it (``purge`` true, no error); it is
  actual iff ``w`` exists and ``w > p`` (unstoring without purging keeps it).

Only datasets of the predicted table count, exactly as the fold ignores
events about datasets outside the quantum.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..events import SCHEMA_VERSION, Event, OutputWritten, parse_event
from ..fold import ProvenanceReducer, fold
from ._files import format_of, open_writer, write_rows
from .reading import exact_times, rebuilt_records
from .schema import EXPORT_FORMAT, UUID_TYPE

__all__ = [
    "PROVENANCE_ROLES",
    "PROVENANCE_SCHEMA",
    "fold_export",
    "provenance_rows_scalar",
    "vectorized_provenance",
    "write_provenance",
]

PROVENANCE_ROLES: Final = (
    "predicted_input",
    "available_input",
    "unavailable_input",
    "actual_input",
    "predicted_output",
    "actual_output",
)
"""The roles of a provenance row: one per set of `QuantumProvenanceData`."""

PROVENANCE_SCHEMA: Final = pa.schema(
    [
        pa.field("quantum_id", UUID_TYPE, nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("dataset_id", UUID_TYPE, nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("seq", pa.int64()),
    ]
)
"""One row per quantum attempt, dataset and role.

``seq`` is set for two roles only, null otherwise:

- ``actual_input``: the smallest ``seq`` ``s`` such that the fold of every
  prefix of the log ending at ``s`` or later lists the input as actual, i.e.
  the event (a successful read or a ``deferred_requested``) from which it is
  actual for good. That is the first use after the last
  ``input_marked_unused``, unless the input was found missing after that use
  and before its first successful read: then it is that read.
- ``actual_output``: the ``seq`` of the last ``output_written`` of the
  output, the write whose artifact and record the output holds (or held, if
  it was unstored since without being purged).
"""

# Format 1 kept the role as an Arrow dictionary; its provenance parts stay so.
_SCHEMA_V1 = PROVENANCE_SCHEMA.set(
    PROVENANCE_SCHEMA.get_field_index("role"),
    pa.field("role", pa.dictionary(pa.int32(), pa.string()), nullable=False),
)

_KEYS = ["quantum_id", "attempt", "dataset_id"]
_QUANTUM = ["quantum_id", "attempt"]
_READS = ["input_read", "deferred_loaded"]
_SET_KINDS = [
    "existence_checked",
    *_READS,
    "deferred_requested",
    "input_marked_unused",
    "output_written",
    "datasets_pruned",
]
# The payload of a datasets_pruned row with item 0 is canonical JSON with sorted
# keys: only a purge that raised no error removes outputs from the actual set.
_PURGED = r'^\{"disassociate":(true|false),"error":null,"purge":true,'
_EVENT_COLUMNS: Final = (
    "quantum_id",
    "attempt",
    "seq",
    "item",
    "schema_version",
    "kind",
    "dataset_id",
    "found",
    "failure_category",
    "extra",
)
"""Columns of the events table `vectorized_provenance` reads (but see its Notes)."""

_INT64_NULL = pa.scalar(None, pa.int64())


# -- the scalar reference ------------------------------------------------------


def provenance_rows_scalar(events: Iterable[Event]) -> pa.Table:
    """Return the provenance rows of one log with the scalar fold.

    Parameters
    ----------
    events : `~collections.abc.Iterable` [`Event`]
        The whole log of one quantum attempt, in ``seq`` order.

    Returns
    -------
    table : `pyarrow.Table`
        `PROVENANCE_SCHEMA` rows, sorted by role (in `PROVENANCE_ROLES`
        order) then dataset id; empty for an empty log.

    Raises
    ------
    FoldError
        If the events do not form one ordered log of one quantum.

    Notes
    -----
    The sets are those of `fold`. The ``seq`` of an actual input is found by
    folding every prefix (`ProvenanceReducer.result` after each event), so
    it follows its definition literally; this costs a result per event.
    """
    events = list(events)
    result = fold(events)
    if result.quantum_id is None:
        return PROVENANCE_SCHEMA.empty_table()
    reducer = ProvenanceReducer()
    since: dict[uuid.UUID, int] = {}
    written: dict[uuid.UUID, int] = {}
    for event in events:
        reducer.apply(event)
        actual = reducer.result().actual_inputs
        for dataset_id in actual:
            since.setdefault(dataset_id, event.seq)
        for dataset_id in [d for d in since if d not in actual]:
            del since[dataset_id]
        if isinstance(event, OutputWritten):
            written[event.dataset_id] = event.seq
    sets = {
        "predicted_input": (result.predicted_inputs, None),
        "available_input": (result.available_inputs, None),
        "unavailable_input": (result.unavailable_inputs, None),
        "actual_input": (result.actual_inputs, since),
        "predicted_output": (result.predicted_outputs, None),
        "actual_output": (result.actual_outputs, written),
    }
    rows: dict[str, list[Any]] = {name: [] for name in PROVENANCE_SCHEMA.names}
    for role, (ids, seqs) in sets.items():
        for dataset_id in sorted(ids):
            rows["quantum_id"].append(result.quantum_id.bytes)
            rows["attempt"].append(events[0].attempt)
            rows["dataset_id"].append(dataset_id.bytes)
            rows["role"].append(role)
            rows["seq"].append(None if seqs is None else seqs[dataset_id])
    return pa.table(rows, schema=PROVENANCE_SCHEMA)


# -- the vectorized fold -------------------------------------------------------


def _string(column: pa.ChunkedArray | pa.Array) -> Any:
    return column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column


def _decoded(table: pa.Table) -> pa.Table:
    """Return the table with its dictionary columns as plain strings (joins need that)."""
    return table.cast(pa.schema([f.with_type(_string_type(f.type)) for f in table.schema]))


def _string_type(type_: pa.DataType) -> pa.DataType:
    return type_.value_type if pa.types.is_dictionary(type_) else type_


def _seq_where(mask: Any, seq: Any) -> Any:
    return pc.if_else(pc.fill_null(mask, False), seq, _INT64_NULL)


def _fallback_mask(events: pa.Table) -> Any:
    """Rows the columns cannot describe: a whole payload in ``extra``, or another version."""
    whole = pc.fill_null(pc.equal(events["item"], -2), False)
    other = pc.not_equal(events["schema_version"], SCHEMA_VERSION)
    return pc.or_(whole, other)


def vectorized_provenance(events_table: pa.Table, predicted_table: pa.Table) -> pa.Table:
    """Fold many logs at once: the provenance rows of every quantum attempt.

    Parameters
    ----------
    events_table : `pyarrow.Table`
        Rows of the events table of an export (`EVENTS_SCHEMA`), any number
        of quantum attempts, in any order. At least ``quantum_id``,
        ``attempt``, ``seq``, ``item``, ``schema_version``, ``kind``,
        ``dataset_id``, ``found``, ``failure_category`` and ``extra``;
        other columns are ignored (but see Notes).
    predicted_table : `pyarrow.Table`
        Rows of the predicted table (`PREDICTED_SCHEMA`) of the same
        attempts: at least ``quantum_id``, ``attempt``, ``dataset_id`` and
        ``role``.

    Returns
    -------
    table : `pyarrow.Table`
        `PROVENANCE_SCHEMA` rows, sorted by quantum id, attempt, role (in
        `PROVENANCE_ROLES` order) and dataset id: for each attempt, the
        same rows as `provenance_rows_scalar` of its log.

    Raises
    ------
    ValueError
        If fallback quanta need columns the events table lacks.

    Notes
    -----
    Each log must be whole and well formed (as the scalar fold requires;
    ``verified`` in the quanta table says so). A quantum attempt with a row
    the columns cannot describe (``item`` -2: its payload is only in
    ``extra``) or of another schema version is folded by the scalar fold
    instead, its events rebuilt from its rows: for those quanta only, the
    events table must then hold every column of `EVENTS_SCHEMA`.
    """
    events = _decoded(events_table.select(list(_EVENT_COLUMNS)))
    predicted = _decoded(predicted_table.select(["quantum_id", "attempt", "dataset_id", "role"]))
    fallback = events.filter(_fallback_mask(events)).group_by(_QUANTUM).aggregate([])
    scalar_part: list[pa.Table] = []
    if fallback.num_rows:
        scalar_part = _scalar_fallback(events_table, fallback)
        events = events.join(fallback, keys=_QUANTUM, join_type="left anti")
        predicted = predicted.join(fallback, keys=_QUANTUM, join_type="left anti")
    parts = _vectorized(events, predicted) + [part.cast(_STRING_SCHEMA) for part in scalar_part]
    table = pa.concat_tables(parts) if parts else _STRING_SCHEMA.empty_table()
    order = pc.index_in(table["role"], pa.array(PROVENANCE_ROLES))
    table = table.append_column("_order", order).sort_by(
        [
            ("quantum_id", "ascending"),
            ("attempt", "ascending"),
            ("_order", "ascending"),
            ("dataset_id", "ascending"),
        ]
    )
    return table.drop_columns(["_order"]).cast(PROVENANCE_SCHEMA)


_STRING_SCHEMA = pa.schema(
    [f.with_type(pa.string()) if f.name == "role" else f for f in PROVENANCE_SCHEMA]
)


def _vectorized(events: pa.Table, predicted: pa.Table) -> list[pa.Table]:
    kind = _string(events["kind"])
    events = events.filter(
        pc.and_(pc.is_in(kind, pa.array(_SET_KINDS)), pc.is_valid(events["dataset_id"]))
    )
    kind = _string(events["kind"])
    seq = events["seq"]
    category = _string(events["failure_category"])
    checked = pc.equal(kind, "existence_checked")
    found = pc.fill_null(events["found"], False)
    is_read = pc.is_in(kind, pa.array(_READS))
    read_ok = pc.and_(is_read, pc.is_null(category))
    missing = pc.and_(is_read, pc.fill_null(pc.equal(category, "missing"), False))
    # Purges: the flags are in the payload of the event's first row only.
    pruned = pc.equal(kind, "datasets_pruned")
    first = pc.fill_null(pc.equal(events["item"], 0), False)
    purging = pc.fill_null(pc.match_substring_regex(events["extra"], _PURGED), False)
    purge_events = events.filter(pc.and_(pc.and_(pruned, first), purging)).select(
        ["quantum_id", "attempt", "seq"]
    )
    purged = (
        events.filter(pruned)
        .select([*_KEYS, "seq"])
        .join(purge_events, keys=[*_QUANTUM, "seq"], join_type="inner")
    )
    long = pa.table(
        {
            "quantum_id": events["quantum_id"],
            "attempt": events["attempt"],
            "dataset_id": events["dataset_id"],
            "avail": _seq_where(pc.or_(pc.and_(checked, found), read_ok), seq),
            "unavail": _seq_where(pc.or_(pc.and_(checked, pc.invert(found)), missing), seq),
            "read_ok": _seq_where(read_ok, seq),
            "use": _seq_where(pc.or_(read_ok, pc.equal(kind, "deferred_requested")), seq),
            "unused": _seq_where(pc.equal(kind, "input_marked_unused"), seq),
            "write": _seq_where(pc.equal(kind, "output_written"), seq),
            "purge": pa.nulls(events.num_rows, pa.int64()),
        }
    )
    purge_long = pa.table(
        {
            **{name: purged[name] for name in _KEYS},
            **{
                name: pa.nulls(purged.num_rows, pa.int64())
                for name in ("avail", "unavail", "read_ok", "use", "unused", "write")
            },
            "purge": purged["seq"],
        }
    )
    long = pa.concat_tables([long, purge_long.cast(long.schema)])
    stats = long.group_by(_KEYS).aggregate(
        [
            ("avail", "min"),
            ("unavail", "min"),
            ("read_ok", "min"),
            ("unused", "max"),
            ("write", "max"),
            ("purge", "max"),
        ]
    )
    # The first use after the last markInputUnused (or the first use at all).
    uses = long.filter(pc.is_valid(long["use"])).select([*_KEYS, "use"])
    uses = uses.join(stats.select([*_KEYS, "unused_max"]), keys=_KEYS, join_type="inner")
    uses = uses.filter(pc.greater(uses["use"], pc.fill_null(uses["unused_max"], -1)))
    first_use = uses.group_by(_KEYS).aggregate([("use", "min")])
    stats = stats.join(first_use, keys=_KEYS, join_type="left outer")

    role = _string(predicted["role"])
    inputs = _distinct(predicted.filter(pc.is_in(role, pa.array(["input", "init_input"]))))
    outputs = _distinct(predicted.filter(pc.equal(role, "output")))
    ins = inputs.join(stats, keys=_KEYS, join_type="left outer")
    outs = outputs.join(stats, keys=_KEYS, join_type="left outer")

    unavailable = pc.is_valid(ins["unavail_min"])
    never_read = pc.is_null(ins["read_ok_min"])
    actual = pc.and_(pc.is_valid(ins["use_min"]), pc.invert(pc.and_(unavailable, never_read)))
    # Found missing after the use that starts the final streak and before the
    # first successful read: actual for good only from that read.
    late = pc.fill_null(
        pc.and_(
            pc.less(ins["unavail_min"], ins["read_ok_min"]),
            pc.greater(ins["read_ok_min"], ins["use_min"]),
        ),
        False,
    )
    ins = ins.append_column("since", pc.if_else(late, ins["read_ok_min"], ins["use_min"]))
    written = pc.is_valid(outs["write_max"])
    kept = pc.or_kleene(
        pc.is_null(outs["purge_max"]), pc.greater(outs["write_max"], outs["purge_max"])
    )
    return [
        _rows(inputs, "predicted_input"),
        _rows(ins.filter(pc.is_valid(ins["avail_min"])), "available_input"),
        _rows(ins.filter(unavailable), "unavailable_input"),
        _rows(ins.filter(actual), "actual_input", "since"),
        _rows(outputs, "predicted_output"),
        _rows(
            outs.filter(pc.and_(written, pc.fill_null(kept, False))), "actual_output", "write_max"
        ),
    ]


def _distinct(table: pa.Table) -> pa.Table:
    return table.group_by(_KEYS).aggregate([])


def _rows(table: pa.Table, role: str, seq: str | None = None) -> pa.Table:
    n = table.num_rows
    return pa.table(
        {
            **{name: table[name] for name in _KEYS},
            "role": pa.repeat(pa.scalar(role, pa.string()), n),
            "seq": table[seq] if seq is not None else pa.nulls(n, pa.int64()),
        },
        schema=_STRING_SCHEMA,
    )


# -- the scalar fallback ---------------------------------------------------------


def _scalar_fallback(events_table: pa.Table, fallback: pa.Table) -> list[pa.Table]:
    """Fold the given quanta with the scalar fold, their events rebuilt from rows."""
    missing = set(_ALL_EVENT_COLUMNS) - set(events_table.column_names)
    if missing:
        raise ValueError(
            f"{fallback.num_rows} quantum attempt(s) need the scalar fold, which needs "
            f"the events table's columns {sorted(missing)}"
        )
    columns = _fallback_columns(events_table.schema)
    rows = exact_times(
        events_table.select(columns).join(fallback, keys=_QUANTUM, join_type="inner")
    )
    rows = rows.sort_by(
        [
            ("quantum_id", "ascending"),
            ("attempt", "ascending"),
            ("seq", "ascending"),
            ("item", "ascending"),
        ]
    )
    logs: dict[tuple[bytes, int], list[list[dict[str, Any]]]] = {}
    for row in rows.to_pylist():
        log = logs.setdefault((row["quantum_id"], row["attempt"]), [])
        if log and log[-1][0]["seq"] == row["seq"]:
            log[-1].append(row)
        else:
            log.append([row])
    return [provenance_rows_scalar(_events_of(log)) for log in logs.values()]


def _events_of(log: Sequence[list[dict[str, Any]]]) -> list[Event]:
    return [parse_event(orjson.loads(record)) for record in rebuilt_records(log)]


def _fallback_columns(schema: pa.Schema) -> list[str]:
    """Name the events columns the scalar fold needs (format 2 adds ``timestamp_ns``)."""
    return [*_ALL_EVENT_COLUMNS, *(["timestamp_ns"] if "timestamp_ns" in schema.names else [])]


_ALL_EVENT_COLUMNS: Final = (
    "quantum_id",
    "attempt",
    "seq",
    "item",
    "timestamp",
    "schema_version",
    "kind",
    "dataset_id",
    "found",
    "ok",
    "failure_category",
    "error_type",
    "error_message",
    "reject_reason",
    "bytes_read",
    "duration_ns",
    "record_type",
    "datastore_name",
    "path",
    "formatter",
    "storage_class",
    "file_size",
    "checksum",
    "status",
    "extra",
)


# -- reading and writing an export -------------------------------------------------


_RUN_PARTITIONING = ds.partitioning(pa.schema([("run", pa.string())]), flavor="hive")


def _published(dest: Path, table: str) -> ds.Dataset:
    """Return the parts of a table whose export was published (with a quanta twin)."""
    files = []
    for quanta in sorted((dest / "quanta").glob("run=*/part-*.parquet")):
        part = dest / table / quanta.parent.name / quanta.name
        if not part.exists():
            raise FileNotFoundError(
                f"{part} is missing: {quanta} was exported without its {table} table "
                "(an export older than the predicted table?); export the logs again"
            )
        files.append(str(part))
    return ds.dataset(
        files,
        format="parquet",
        partitioning=_RUN_PARTITIONING,
        partition_base_dir=str(dest / table),
    )


def fold_export(dest: str | os.PathLike[str]) -> pa.Table:
    """Fold every log of an export at once.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.

    Returns
    -------
    table : `pyarrow.Table`
        `PROVENANCE_SCHEMA` rows of every exported quantum attempt (see
        `vectorized_provenance`), with a last column ``run``.

    Raises
    ------
    FileNotFoundError
        If a published part has no predicted twin (an export older than the
        predicted table).
    """
    dest = Path(dest)
    events = _published(dest, "events").to_table(columns=list(_EVENT_COLUMNS))
    if pc.any(_fallback_mask(events)).as_py():
        events = _published(dest, "events").to_table()
    predicted = _published(dest, "predicted").to_table(
        columns=["quantum_id", "attempt", "dataset_id", "role", "run"]
    )
    table = vectorized_provenance(events, predicted)
    runs = _distinct_runs(predicted)
    joined = table.join(runs, keys=_QUANTUM, join_type="left outer")
    order = [("quantum_id", "ascending"), ("attempt", "ascending")]
    order_role = pc.index_in(_string(joined["role"]), pa.array(PROVENANCE_ROLES))
    joined = joined.append_column("_order", order_role).sort_by(
        [*order, ("_order", "ascending"), ("dataset_id", "ascending")]
    )
    return joined.drop_columns(["_order"]).cast(
        PROVENANCE_SCHEMA.append(pa.field("run", pa.string()))
    )


def _distinct_runs(predicted: pa.Table) -> pa.Table:
    return predicted.select([*_QUANTUM, "run"]).group_by([*_QUANTUM, "run"]).aggregate([])


def write_provenance(dest: str | os.PathLike[str]) -> list[Path]:
    """Fold an export, part by part, and write its provenance tables.

    Parameters
    ----------
    dest : `str` or `os.PathLike`
        A dataset written by `export_parquet`.

    Returns
    -------
    files : `list` [`pathlib.Path`]
        The parts written now: ``provenance/run=<run>/part-<name>.parquet``
        (zstd), one per exported part that had none yet.

    Raises
    ------
    FileNotFoundError
        If a published part has no predicted twin.

    Notes
    -----
    Each exported part (one export of one run) holds whole quanta, so it is
    folded on its own: memory is bounded by the largest part, not the run,
    and provenance is written incrementally, once per part, like the export.
    Each part is written to a hidden temporary file and then renamed, so a
    reader never sees half a part.
    """
    dest = Path(dest)
    files: list[Path] = []
    for quanta in sorted((dest / "quanta").glob("run=*/part-*.parquet")):
        folder, name = quanta.parent.name, quanta.name
        target = dest / "provenance" / folder / name
        if target.exists():
            continue
        events_part = dest / "events" / folder / name
        predicted_part = dest / "predicted" / folder / name
        for part in (events_part, predicted_part):
            if not part.exists():
                raise FileNotFoundError(
                    f"{part} is missing: {quanta} was exported without it (an export older "
                    "than the predicted table?); export the logs again"
                )
        # The fallback needs every column: decided once per part, from two small ones.
        marks = pq.read_table(events_part, columns=["item", "schema_version"])
        needs_fallback = pc.any(_fallback_mask(marks)).as_py()
        del marks
        columns = (
            _fallback_columns(pq.read_schema(events_part))
            if needs_fallback
            else list(_EVENT_COLUMNS)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".part-{uuid.uuid4().hex}.tmp"
        # A part is written in its export's format: a format-1 dataset stays all format 1.
        metadata = pq.read_metadata(events_part).metadata or {}
        schema = PROVENANCE_SCHEMA if format_of(events_part) == EXPORT_FORMAT else _SCHEMA_V1
        with open_writer(tmp, schema) as writer:
            for events, predicted in _chunks(events_part, predicted_part, columns):
                write_rows(writer, vectorized_provenance(events, predicted).cast(schema))
            writer.add_key_value_metadata(
                {
                    key.decode(): value.decode()
                    for key, value in metadata.items()
                    if key.startswith(b"qbb_events.")
                }
            )
        os.replace(tmp, target)
        files.append(target)
    return files


CHUNK_ROWS = 262_144
"""Event rows folded at once by `write_provenance`: bounds its memory whatever a part's size."""

_PREDICTED_COLUMNS = ["quantum_id", "attempt", "dataset_id", "role"]


def _key(table: pa.Table | pa.RecordBatch) -> Any:
    """One binary column naming each row's quantum attempt."""
    quantum = pc.cast(table["quantum_id"], pa.binary())
    attempt = pc.cast(pc.cast(table["attempt"], pa.string()), pa.binary())
    return pc.binary_join_element_wise(quantum, attempt, b"/")


def _chunks(
    events_part: Path, predicted_part: Path, columns: list[str]
) -> Iterable[tuple[pa.Table, pa.Table]]:
    """Yield the events and predicted rows of a part in chunks of whole quanta.

    The exporter writes each log's rows together, and the logs in the same
    order in both tables, so a chunk ends where a quantum attempt does (the
    rows of the last, perhaps unfinished, one wait for the next chunk), and
    its predicted rows are read just until a later quantum's begin.
    """
    events_batches = pq.ParquetFile(events_part).iter_batches(columns=columns)
    predicted_batches = pq.ParquetFile(predicted_part).iter_batches(columns=_PREDICTED_COLUMNS)
    held: list[pa.RecordBatch] = []
    predicted = pa.Table.from_batches([], schema=_predicted_schema(predicted_part))
    rows = 0
    while True:
        batch = next(events_batches, None)
        if batch is not None:
            held.append(batch)
            rows += batch.num_rows
            if rows < CHUNK_ROWS:
                continue
        if not held:
            return
        events = pa.Table.from_batches(held)
        keys = _key(events)
        cut = events.num_rows
        if batch is not None:
            # Rows of one quantum attempt are contiguous: the last one's are the tail.
            cut -= pc.sum(pc.equal(keys, keys[-1])).as_py()
        complete = events.slice(0, cut)
        wanted = pc.unique(keys.slice(0, cut))
        while True:
            tail = predicted.slice(max(predicted.num_rows - 1, 0))
            if tail.num_rows and not pc.all(pc.is_in(_key(tail), value_set=wanted)).as_py():
                break  # a later quantum's predicted rows have begun
            more = next(predicted_batches, None)
            if more is None:
                break
            predicted = pa.concat_tables([predicted, pa.Table.from_batches([more])])
        mine = pc.is_in(_key(predicted), value_set=wanted)
        if cut:
            yield complete, predicted.filter(mine)
        predicted = predicted.filter(pc.invert(mine))
        if batch is None:
            return
        held = events.slice(cut).to_batches()
        rows = events.num_rows - cut


def _predicted_schema(part: Path) -> pa.Schema:
    schema = pq.read_schema(part)
    return pa.schema([schema.field(name) for name in _PREDICTED_COLUMNS])
