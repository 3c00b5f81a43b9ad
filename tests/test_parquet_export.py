"""The Parquet export: lossless round trip, explicit schema, partitions, incremental export.

Every test writes real logs (butler runs, random scenarios, the schema-v1
fixture, a log resumed after a torn tail, an SQLite store), exports them with
`export_parquet` and reads the dataset back with pyarrow, `exported_logs` and
`verify_export`. The originals are the reference: each exported log's records
must be byte for byte the stored records, and the chain rebuilt from the rows
must end in the final hash the quanta table recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tracemalloc
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from support.scenarios import run_scenario
from support.strategies import Scenario, scenarios
from support.workflows import RUN, lines_of, rehash, run_workflow, write_lines

import qbb_events.parquet.export as export_module
from qbb_events import (
    SCHEMA_VERSION,
    FileDatastore,
    InMemoryEventLog,
    JsonLinesEventLog,
    LogConflictError,
    QuantumBackedButler,
    SqliteEventStore,
    TornLogWarning,
    export_parquet,
    exported_logs,
    parse_event,
    read_log,
    run_digest,
    stored_logs,
    verify_export,
    verify_logs,
)
from qbb_events.parquet import DICTIONARY_COLUMNS, EVENTS_SCHEMA, EXPORT_FORMAT, QUANTA_SCHEMA

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "v1" / "workflow.jsonl"
ENVELOPE = frozenset(
    {"schema_version", "quantum_id", "attempt", "seq", "timestamp_ns", "kind", "prev_hash", "hash"}
)
FINISHED = {
    "status": "succeeded",
    "exception": None,
    "wall_ns": 5,
    "cpu_ns": 4,
    "peak_rss_bytes": 3,
}
Key = tuple[uuid.UUID, int]


# -- helpers ---------------------------------------------------------------------------------


def key_of(log: Any) -> Key:
    verdict = verify_logs(log).logs[0]
    assert verdict.quantum_id is not None
    assert verdict.attempt is not None
    return verdict.quantum_id, verdict.attempt


def records_by_log(logs: Iterable[Any]) -> dict[Key, list[bytes]]:
    """Each log's whole records (a torn last line left out), by quantum attempt."""
    found: dict[Key, list[bytes]] = {}
    for log in logs:
        key = key_of(log)
        assert key not in found, f"{key} is held twice"
        found[key] = [record for _, record, complete in log if complete]
    return found


def originals(sources: Any) -> dict[Key, list[bytes]]:
    return records_by_log(stored_logs(sources))


def exported(dest: Path) -> dict[Key, list[bytes]]:
    return records_by_log(exported_logs(dest))


def parts(dest: Path, table: str) -> list[Path]:
    return sorted((dest / table).glob("run=*/part-*.parquet"))


def quanta_rows(dest: Path) -> dict[Key, dict[str, Any]]:
    rows: dict[Key, dict[str, Any]] = {}
    for part in parts(dest, "quanta"):
        table = pq.read_table(part)
        for name in ("started", "finished"):
            # People and engines get microseconds; the exact nanoseconds sit beside them.
            exact = table[f"{name}_ns"]
            micros = [None if ns is None else ns // 1000 for ns in exact.to_pylist()]
            assert table[name].cast(pa.int64()).to_pylist() == micros
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, exact).drop_columns([f"{name}_ns"])
        for row in table.to_pylist():
            key = (uuid.UUID(bytes=row["quantum_id"]), row["attempt"])
            assert key not in rows, f"{key} listed twice in the quanta table"
            rows[key] = row
    return rows


def snapshot(dest: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``dest``: its bytes and modification time."""
    if not dest.exists():
        return {}
    return {
        str(path.relative_to(dest)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(dest.rglob("*"))
        if path.is_file()
    }


def stray_files(dest: Path) -> list[Path]:
    return sorted(dest.rglob(".part-*")) if dest.exists() else []


def assert_round_trip(sources: Any, dest: Path) -> None:
    """The export holds exactly the sources' logs, byte for byte, and verifies like them."""
    before = originals(sources)
    after = exported(dest)
    assert after.keys() == before.keys()
    for key, records in before.items():
        assert after[key] == records, key
        assert [orjson.loads(r) for r in after[key]] == [orjson.loads(r) for r in records]
    expected = verify_logs(sources)
    report = verify_export(dest)
    assert report.digest == expected.digest
    assert [(v.quantum_id, v.attempt, v.final_hash) for v in report.logs] == [
        (v.quantum_id, v.attempt, v.final_hash) for v in expected.logs
    ]
    assert [sorted(p.kind for p in v.problems) for v in report.logs] == [
        sorted(p.kind for p in v.problems) for v in expected.logs
    ]
    quanta = quanta_rows(dest)
    assert quanta.keys() == before.keys()
    for verdict in expected.logs:
        assert verdict.quantum_id is not None
        assert verdict.attempt is not None
        row = quanta[(verdict.quantum_id, verdict.attempt)]
        assert row["final_hash"] == verdict.final_hash
        assert row["verified"] is verdict.ok
        assert row["events"] == verdict.events
        assert row["status"] == verdict.status
        assert row["source"] == verdict.location
        assert row["problems"] == [str(p) for p in verdict.problems]


def events_of(records: list[bytes]) -> list[Any]:
    return [parse_event(orjson.loads(record)) for record in records]


def rechained(
    lines: list[bytes], index: int, edit: Callable[[dict[str, Any]], None]
) -> list[bytes]:
    """Edit one event and re-hash it and every later event: a chain that verifies."""
    out = list(lines[:index])
    prev = orjson.loads(lines[index])["prev_hash"]
    for position, line in enumerate(lines[index:], start=index):
        data = orjson.loads(line)
        data["prev_hash"] = prev
        if position == index:
            edit(data)
        record = rehash(data)
        out.append(record)
        prev = orjson.loads(record)["hash"]
    return out


def started_payload(root: Path) -> tuple[uuid.UUID, dict[str, Any]]:
    """The payload of a real ``quantum_started`` event, to write logs by hand."""
    log = InMemoryEventLog()
    QuantumBackedButler.from_predicted(FileDatastore(str(root), create=True), [], [], log=log)
    event = log.events[0]
    payload = {k: v for k, v in event.model_dump(mode="json").items() if k not in ENVELOPE}
    return event.quantum_id, payload


def resumed_log(root: Path, path: Path) -> None:
    """A log torn mid-write, resumed (the torn line cut off) and then finished."""
    quantum_id, payload = started_payload(root)
    log = JsonLinesEventLog(path)
    log.bind(quantum_id, 0)
    log.append("quantum_started", payload)
    for k in range(3):
        log.append("input_marked_unused", {"dataset_id": str(uuid.UUID(int=k + 1))})
    log.close()
    with path.open("ab") as stream:
        stream.write(b'{"attempt":0,"dataset_id":"0000')
    with pytest.warns(TornLogWarning):
        log = JsonLinesEventLog(path, resume=True)
    log.append("input_marked_unused", {"dataset_id": str(uuid.UUID(int=9))})
    log.append("quantum_finished", FINISHED)
    log.close()
    assert verify_logs(path).ok


def big_log(path: Path, template: list[bytes], events: int) -> None:
    """A sealed, sound log of ``events`` events: quantum_started, existence checks, the seal."""
    started = orjson.loads(template[0])
    check = {k: v for k, v in orjson.loads(template[1]).items() if k != "hash"}
    finished = {k: v for k, v in orjson.loads(template[-1]).items() if k != "hash"}
    assert check["kind"] == "existence_checked"
    assert finished["kind"] == "quantum_finished"
    prev = started["hash"]
    with path.open("wb") as stream:
        stream.write(template[0] + b"\n")
        for seq in range(1, events):
            body = dict(finished if seq == events - 1 else check)
            body.update(seq=seq, prev_hash=prev, timestamp_ns=started["timestamp_ns"] + seq)
            record = rehash(body)
            stream.write(record + b"\n")
            prev = orjson.loads(record)["hash"]


# -- a corpus of logs of every store and shape -----------------------------------------------


@dataclass
class Corpus:
    logs: Path
    store: Path
    dest: Path
    report: Any
    first: QuantumBackedButler

    @property
    def sources(self) -> list[Path]:
        return [self.logs, self.store]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    logs = root / "logs"
    first = run_workflow(root / "repo1", logs / "first.jsonl")
    run_workflow(root / "repo2", logs / "retry.jsonl", attempt=1, quantum_id=first.quantum_id)
    run_workflow(root / "repo3", logs / "nested" / "other.jsonl")
    shutil.copy(FIXTURE_V1, logs / "v1.jsonl")
    resumed_log(root / "repo4", logs / "resumed.jsonl")
    store = root / "store.sqlite"
    with SqliteEventStore(store) as opened:
        for k in range(3):
            run_workflow(root / f"store-repo{k}", opened.log())
    dest = root / "export"
    report = export_parquet([logs, store], dest)
    return Corpus(logs, store, dest, report, first)


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_of_every_store_and_shape(corpus: Corpus) -> None:
    assert verify_logs(corpus.sources).ok
    assert_round_trip(corpus.sources, corpus.dest)
    assert verify_export(corpus.dest).ok
    report = corpus.report
    assert report.logs == 8
    assert report.skipped == 0
    assert report.flagged == ()
    assert report.events == verify_logs(corpus.sources).events
    # Other tables may be written too; the events and quanta parts are among the files.
    assert {*parts(corpus.dest, "events"), *parts(corpus.dest, "quanta")} <= set(report.files)
    assert all(path.is_file() for path in report.files)


def test_exported_records_read_as_the_original_events(corpus: Corpus) -> None:
    back = exported(corpus.dest)
    files = sorted(corpus.logs.rglob("*.jsonl"))
    assert len(files) == 5
    for path in files:
        assert events_of(back[key_of(path)]) == read_log(path)
    with SqliteEventStore(corpus.store, readonly=True) as store:
        quanta = store.quanta()
        assert len(quanta) == 3
        for quantum_id, attempt in quanta:
            assert events_of(back[(quantum_id, attempt)]) == store.read(quantum_id, attempt)
    # The v1 log's events are upcast alike; its records stay v1, byte for byte.
    v1 = back[key_of(corpus.logs / "v1.jsonl")]
    assert {orjson.loads(r)["schema_version"] for r in v1} == {1}


def test_quanta_table_describes_each_log(corpus: Corpus) -> None:
    quanta = quanta_rows(corpus.dest)
    events = read_log(corpus.logs / "first.jsonl")
    row = quanta[(corpus.first.quantum_id, 0)]
    assert row["task_label"] == "calibrate_tâche"
    assert dict(row["data_id"]) == {"visit": "1", "band": "Zürich ✓"}
    assert row["status"] == "succeeded"
    assert row["started"] == events[0].timestamp_ns
    assert row["finished"] == events[-1].timestamp_ns
    finished = orjson.loads(lines_of(corpus.logs / "first.jsonl")[-1])
    assert (row["wall_ns"], row["cpu_ns"], row["peak_rss_bytes"]) == (
        finished["wall_ns"],
        finished["cpu_ns"],
        finished["peak_rss_bytes"],
    )
    assert row["events"] == len(events)
    assert row["final_hash"] == events[-1].hash
    assert row["verified"] is True
    assert row["problems"] == []
    assert row["source"] == os.path.abspath(corpus.logs / "first.jsonl")
    assert (corpus.first.quantum_id, 1) in quanta  # the retry is its own row


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_calls=15))
def test_random_logs_round_trip(sc: Scenario) -> None:
    """Any butler call sequence (sealed or not): the export gives its records back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs" / "quantum.jsonl"
        butler = run_scenario(Path(tmp) / "repo", sc, log=path).butler
        try:
            report = export_parquet(path, Path(tmp) / "export")
            assert report.logs == 1
            assert report.events == len(butler.events)
            assert (report.flagged == ()) is verify_logs(path).ok
            assert_round_trip(path, Path(tmp) / "export")
            back = exported(Path(tmp) / "export")
            assert events_of(back[(butler.quantum_id, 0)]) == list(butler.events)
        finally:
            butler.close()


def test_a_live_log_exports_what_it_holds(tmp_path: Path) -> None:
    log = InMemoryEventLog()
    butler = run_workflow(tmp_path / "repo", log)
    dest = tmp_path / "export"
    assert export_parquet(log, dest).events == len(butler.events)
    assert events_of(exported(dest)[(butler.quantum_id, 0)]) == list(butler.events)
    assert verify_export(dest).ok


# -- the explicit schema and file layout -----------------------------------------------------


def _dictionary_columns(schema: pa.Schema) -> set[str]:
    # Plain strings in the Arrow schema (no part carries a dictionary another
    # part's could conflict with); Parquet dictionary-encodes these ones.
    assert not any(pa.types.is_dictionary(f.type) for f in schema)
    return set(DICTIONARY_COLUMNS) & set(schema.names)


@pytest.mark.parametrize(
    ("table", "schema"), [("events", EVENTS_SCHEMA), ("quanta", QUANTA_SCHEMA)]
)
def test_files_follow_the_explicit_schema(corpus: Corpus, table: str, schema: pa.Schema) -> None:
    files = parts(corpus.dest, table)
    assert files
    dictionary = _dictionary_columns(schema)
    assert dictionary  # the schema has dictionary columns, and others
    for path in files:
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.equals(schema), path
        assert [f.nullable for f in parquet.schema_arrow] == [f.nullable for f in schema]
        metadata = parquet.metadata
        assert metadata.num_row_groups >= 1
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                top = chunk.path_in_schema.split(".")[0]
                assert chunk.compression == "ZSTD", chunk.path_in_schema
                assert chunk.is_stats_set, chunk.path_in_schema
                assert chunk.statistics is not None
                dictionary_encoded = chunk.has_dictionary_page or any(
                    "DICTIONARY" in encoding for encoding in chunk.encodings
                )
                assert dictionary_encoded is (top in dictionary), chunk.path_in_schema
        # Statistics are right, not only present.
        read = parquet.read()
        names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
        for name in ("attempt", "events", "seq"):
            if name in names:
                stats = metadata.row_group(0).column(names.index(name)).statistics
                assert stats.has_min_max
                assert stats.min == pc.min(read[name]).as_py()
                assert stats.max == pc.max(read[name]).as_py()
    # Read back, the whole table has exactly the schema too.
    assert pq.ParquetDataset(corpus.dest / table, partitioning=None).schema.equals(schema)


def test_hive_dataset_adds_the_run_column(corpus: Corpus) -> None:
    for table, schema in (("events", EVENTS_SCHEMA), ("quanta", QUANTA_SCHEMA)):
        dataset = pads.dataset(corpus.dest / table, format="parquet", partitioning="hive")
        assert dataset.schema.equals(schema.append(pa.field("run", pa.string())))
        read = dataset.to_table()
        assert set(read["run"].to_pylist()) <= {RUN, "unknown"}
    events = pads.dataset(corpus.dest / "events", format="parquet", partitioning="hive")
    assert events.count_rows() == sum(
        pq.read_metadata(p).num_rows for p in parts(corpus.dest, "events")
    )


def test_file_metadata_names_format_version_run_and_digest(corpus: Corpus) -> None:
    for events_part in parts(corpus.dest, "events"):
        quanta_part = corpus.dest / "quanta" / events_part.parent.name / events_part.name
        assert quanta_part.exists()
        run = urllib.parse.unquote(events_part.parent.name.removeprefix("run="))
        quanta = pq.read_table(quanta_part, columns=["quantum_id", "attempt", "final_hash"])
        finals = [
            (uuid.UUID(bytes=q), a, f)
            for q, a, f in zip(*(c.to_pylist() for c in quanta.columns), strict=True)
        ]
        for path in (events_part, quanta_part):
            metadata = pq.read_metadata(path).metadata
            assert metadata[b"qbb_events.export_format"] == EXPORT_FORMAT.encode()
            assert metadata[b"qbb_events.schema_version"] == str(SCHEMA_VERSION).encode()
            assert metadata[b"qbb_events.run"].decode() == run
            assert metadata[b"qbb_events.run_digest"].decode() == run_digest(finals)


def test_row_groups_hold_at_most_row_group_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROW_GROUP_ROWS is the row group size: a group never holds more rows than it."""
    monkeypatch.setattr(export_module, "ROW_GROUP_ROWS", 8)
    for k in range(3):
        run_workflow(tmp_path / f"repo{k}", tmp_path / "logs" / f"q{k}.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest)
    (events_part,) = parts(dest, "events")
    metadata = pq.read_metadata(events_part)
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sum(sizes) > 8 * 3
    assert max(sizes) <= 8, sizes


def test_row_groups_split_logs_without_losing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "ROW_GROUP_ROWS", 20)
    for k in range(4):
        run_workflow(tmp_path / f"repo{k}", tmp_path / "logs" / f"q{k}.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest)
    (events_part,) = parts(dest, "events")
    assert pq.read_metadata(events_part).num_row_groups > 1
    assert_round_trip(tmp_path / "logs", dest)
    assert verify_export(dest).ok


# -- partitions by run -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "folder"),
    [
        ("ünï/cödé run 1", "run=ünï%2Fcödé run 1"),
        ("a=b%c&d?e#f", "run=a%3Db%25c&d%3Fe%23f"),
        ("tab\there:{x}[y]^'\"*\\", "run=tab%09here%3A%7Bx}%5By%5D%5E%27%22%2A%5C"),
        ("plain", "run=plain"),
    ],
)
def test_run_override_partitions_hive_escaped(tmp_path: Path, run: str, folder: str) -> None:
    """Runs are escaped only where Hive requires, UTF-8 kept: every engine decodes them alike."""
    butler = run_workflow(tmp_path / "repo", tmp_path / "logs" / "a.jsonl")
    run_workflow(tmp_path / "repo2", tmp_path / "other" / "b.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest, run=run)
    export_parquet(tmp_path / "other", dest)  # by default, the quantum's own run
    folders = sorted(p.name for p in (dest / "events").iterdir())
    assert folders == sorted([folder, "run=events%2Frun"])
    assert sorted(p.name for p in (dest / "quanta").iterdir()) == folders
    quanta = pads.dataset(dest / "quanta", format="parquet", partitioning="hive").to_table()
    runs = dict(zip(quanta["quantum_id"].to_pylist(), quanta["run"].to_pylist(), strict=True))
    assert runs[butler.quantum_id.bytes] == run
    assert sorted(runs.values()) == sorted([run, RUN])
    events = pads.dataset(dest / "events", format="parquet", partitioning="hive")
    mine = events.to_table(filter=pc.field("run") == run)
    assert set(mine["quantum_id"].to_pylist()) == {butler.quantum_id.bytes}
    assert mine.num_rows == pq.read_metadata(parts(dest, "events")[folders.index(folder)]).num_rows
    assert verify_export(dest).ok


def test_a_quantum_with_no_datasets_goes_to_the_unknown_run(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.from_predicted(
        FileDatastore(str(tmp_path / "repo"), create=True), [], [], log=path
    )
    butler.close()
    dest = tmp_path / "export"
    export_parquet(path, dest)
    assert [p.parent.name for p in parts(dest, "events")] == ["run=unknown"]
    assert_round_trip(path, dest)


# -- data IDs, roles and dataset types -------------------------------------------------------


def first_attempt_rows(corpus: Corpus) -> pa.Table:
    """The events rows of the first workflow's attempt 0 (its retry has the same quantum)."""
    table = pq.read_table(parts(corpus.dest, "events")[0])
    quantum = pa.scalar(corpus.first.quantum_id.bytes, pa.binary(16))
    return table.filter(
        pc.and_(pc.equal(table["quantum_id"], quantum), pc.equal(table["attempt"], 0))
    )


def test_data_ids_are_queryable_by_key(corpus: Corpus) -> None:
    mine = first_attempt_rows(corpus)
    detector = pc.map_lookup(mine["data_id"], pa.scalar("detector"), "first")
    read = mine.filter(
        pc.and_(pc.equal(mine["kind"].cast(pa.string()), "input_read"), pc.equal(detector, "1"))
    )
    assert read.num_rows == 1
    assert read["ok"].to_pylist() == [False]
    assert read["dataset_type"].cast(pa.string()).to_pylist() == ["raw"]
    assert dict(read["data_id"][0].as_py()) == {"detector": "1", "visit": "1"}
    # With pandas too.
    frame = mine.select(["kind", "data_id"]).to_pandas()
    visits = {dict(d).get("visit") for d in frame["data_id"] if d is not None}
    assert visits == {"1"}
    # And in the quanta table.
    quanta = pa.concat_tables(pq.read_table(p) for p in parts(corpus.dest, "quanta"))
    band = pc.map_lookup(quanta["data_id"], pa.scalar("band"), "first")
    assert set(band.to_pylist()) - {None} == {"Zürich ✓"}
    assert band.null_count == 1  # the quantum with no data ID


def test_dataset_type_and_role_filled_for_predicted_datasets_only(corpus: Corpus) -> None:
    events = read_log(corpus.logs / "first.jsonl")
    quantum = events[0].model_dump(mode="json")["quantum"]
    predicted = {
        uuid.UUID(ref["id"]).bytes: (role, ref["dataset_type"])
        for role in ("inputs", "outputs", "init_inputs")
        for ref in quantum[role]
    }
    table = first_attempt_rows(corpus)
    rows = table.select(["kind", "dataset_id", "role", "dataset_type", "data_id"]).to_pylist()
    strays = 0
    for row in rows:
        if row["dataset_id"] in predicted:
            role, dataset_type = predicted[row["dataset_id"]]
            assert (row["role"], row["dataset_type"]) == (role[:-1], dataset_type), row
            assert row["data_id"] is not None
        else:
            assert (row["role"], row["dataset_type"], row["data_id"]) == (None, None, None), row
            strays += row["dataset_id"] is not None
    assert strays == 1  # the output the quantum does not predict, rejected
    assert {r["role"] for r in rows} == {None, "input", "output"}


# -- incremental export ----------------------------------------------------------------------


def test_exporting_the_same_logs_again_writes_nothing(corpus: Corpus) -> None:
    before = snapshot(corpus.dest)
    report = export_parquet(corpus.sources, corpus.dest)
    assert (report.logs, report.skipped, report.events, report.files) == (0, 8, 0, ())
    assert snapshot(corpus.dest) == before


def test_new_logs_go_to_new_files_old_ones_untouched(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    run_workflow(tmp_path / "repo0", logs / "q0.jsonl")
    run_workflow(tmp_path / "repo1", logs / "q1.jsonl")
    dest = tmp_path / "export"
    first = export_parquet(logs, dest)
    assert first.logs == 2
    before = snapshot(dest)
    run_workflow(tmp_path / "repo2", logs / "q2.jsonl")
    shutil.copy(FIXTURE_V1, logs / "v1.jsonl")
    second = export_parquet(logs, dest, progress=True)  # the bar draws on stderr
    assert (second.logs, second.skipped) == (2, 2)
    after = snapshot(dest)
    for name, (data, mtime) in before.items():
        assert after[name] == (data, mtime), name
    new = set(after) - set(before)
    assert new == {str(p.relative_to(dest)) for p in second.files}
    assert len([name for name in new if name.startswith(("events/", "quanta/"))]) == 2
    assert_round_trip(logs, dest)
    assert verify_export(dest).ok
    third = export_parquet(logs, dest)
    assert (third.logs, third.skipped, third.files) == (0, 4, ())
    assert snapshot(dest) == after


def test_an_attempt_with_another_final_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "q.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    early = write_lines(tmp_path / "early.jsonl", lines_of(path)[:5])
    dest = tmp_path / "export"
    export_parquet(early, dest)  # exported before the quantum finished
    before = snapshot(dest)
    good = tmp_path / "good" / "a.jsonl"
    run_workflow(tmp_path / "repo2", good)
    with pytest.raises(LogConflictError, match=str(butler.quantum_id)):
        export_parquet([good, path], dest)
    assert snapshot(dest) == before
    assert stray_files(dest) == []
    assert exported(dest).keys() == {(butler.quantum_id, 0)}
    assert verify_export(dest).digest == verify_logs(early).digest


def test_an_export_cut_short_is_cleaned_up_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    run_workflow(tmp_path / "repo0", logs / "q0.jsonl")
    dest = tmp_path / "export"
    export_parquet(logs, dest)
    run_workflow(tmp_path / "repo1", logs / "q1.jsonl")
    run_workflow(tmp_path / "repo2", logs / "q2.jsonl")
    real_replace = os.replace

    def crash_before_quanta(src: Any, dst: Any) -> None:
        if Path(dst).parent.parent.name == "quanta":
            raise OSError("simulated crash before the quanta part is published")
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash_before_quanta)
        with pytest.raises(OSError, match="simulated crash"):
            export_parquet(logs, dest)
    # The events part of the new logs is in place, its quanta twin is not.
    (folder,) = (dest / "events").iterdir()
    orphans = [
        p for p in parts(dest, "events") if not (dest / "quanta" / folder.name / p.name).exists()
    ]
    assert len(orphans) == 1
    # More debris of crashed exports: temporary files and another orphan events part.
    shutil.copy(orphans[0], folder / f"part-{'0' * 32}.parquet")
    for table in ("events", "quanta"):
        (dest / table / folder.name / f".part-{uuid.uuid4().hex}.tmp").write_bytes(b"half")
    assert stray_files(dest)
    # Until the next export, readers of the quanta table see only the first log.
    assert len(quanta_rows(dest)) == 1

    report = export_parquet(logs, dest)
    assert (report.logs, report.skipped) == (2, 1)
    assert stray_files(dest) == []
    events_parts = parts(dest, "events")
    assert [p.name for p in events_parts] == [p.name for p in parts(dest, "quanta")]
    assert len(events_parts) == 2
    rows = pads.dataset(dest / "events", format="parquet").to_table(
        columns=["quantum_id", "attempt", "seq", "item"]
    )
    keys = set(zip(*(c.to_pylist() for c in rows.columns), strict=True))
    assert len(keys) == rows.num_rows  # no duplicate rows
    assert_round_trip(logs, dest)
    assert verify_export(dest).ok


# -- empty runs ------------------------------------------------------------------------------


def test_exporting_an_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "logs"
    empty.mkdir()
    dest = tmp_path / "export"
    report = export_parquet(empty, dest)
    assert (report.logs, report.skipped, report.events, report.flagged, report.files) == (
        0,
        0,
        0,
        (),
        (),
    )
    assert snapshot(dest) == {}  # no file at all (the directory may or may not exist)
    assert list(exported_logs(dest)) == []
    verification = verify_export(dest)
    assert verification.ok
    assert verification.logs == ()
    assert verification.digest == run_digest([]) == verify_logs(empty).digest
    for table in ("events", "quanta"):
        if (dest / table).exists():
            assert (
                pads.dataset(dest / table, format="parquet", partitioning="hive").count_rows() == 0
            )
    # Exporting nothing into an existing dataset changes nothing.
    run_workflow(tmp_path / "repo", tmp_path / "one" / "q.jsonl")
    export_parquet(tmp_path / "one", dest)
    before = snapshot(dest)
    assert export_parquet(empty, dest).files == ()
    assert snapshot(dest) == before


def test_a_log_holding_only_quantum_started(tmp_path: Path) -> None:
    quantum_id, payload = started_payload(tmp_path / "repo")
    path = tmp_path / "logs" / "q.jsonl"
    log = JsonLinesEventLog(path)
    log.bind(quantum_id, 0)
    log.append("quantum_started", payload)
    log.close()
    dest = tmp_path / "export"
    report = export_parquet(path, dest)
    assert (report.logs, report.events) == (1, 1)
    assert report.flagged == (os.path.abspath(path),)
    row = quanta_rows(dest)[(quantum_id, 0)]
    assert row["verified"] is False
    assert row["events"] == 1
    assert row["status"] is None
    assert row["finished"] is None
    assert row["wall_ns"] is None
    assert row["started"] == read_log(path)[0].timestamp_ns
    assert [p.split(" ")[0] for p in row["problems"]] == ["unsealed"]
    assert_round_trip(path, dest)


# -- schema versions -------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 3, 12])
def test_an_unknown_schema_version_is_not_exported_naming_it(tmp_path: Path, index: int) -> None:
    good = tmp_path / "logs" / "a_good.jsonl"
    run_workflow(tmp_path / "repo", good)
    other = tmp_path / "repo2" / "b.jsonl"
    run_workflow(tmp_path / "repo2", other)

    def future(data: dict[str, Any]) -> None:
        data["schema_version"] = 99

    future_log = write_lines(
        tmp_path / "logs" / "b_future.jsonl", rechained(lines_of(other), index, future)
    )
    verdict = verify_logs(future_log).logs[0]
    assert [p.kind for p in verdict.problems] == ["unsupported"]  # nothing else is wrong
    dest = tmp_path / "export"
    # Like a source with nothing to export, the log is named with why and
    # nothing of it is written; the other logs are exported.
    report = export_parquet(tmp_path / "logs", dest)
    [(location, why)] = report.unsupported
    assert re.search(r"\b99\b", why)
    assert "b_future.jsonl" in location
    assert (report.logs, report.unexported, report.flagged) == (1, (), ())
    assert len(parts(dest, "events")) == len(parts(dest, "quanta")) == 1
    assert_round_trip(good, dest)
    assert stray_files(dest) == []
    # Into an existing dataset: refused alike, what the dataset held unchanged.
    before = snapshot(dest)
    report = export_parquet([future_log, tmp_path / "repo2"], dest)
    assert [(loc, why) for loc, why in report.unsupported if re.search(r"\b99\b", why)] == [
        (location, why)
    ]
    assert report.logs == 1  # the other quantum's log
    after = snapshot(dest)
    assert {name: after[name] for name in before} == before
    assert_round_trip([good, other], dest)
    assert stray_files(dest) == []


# -- logs that fail verification -------------------------------------------------------------


def _flip_timestamp_digit(line: bytes) -> bytes:
    at = line.index(b'"timestamp_ns":') + len(b'"timestamp_ns":') + 3
    digit = line[at : at + 1]
    return line[:at] + (b"1" if digit != b"1" else b"2") + line[at + 1 :]


def _edit(field: str, value: Any) -> Callable[[list[bytes]], list[bytes]]:
    def edit(lines: list[bytes]) -> list[bytes]:
        data = orjson.loads(lines[3])
        assert data["kind"] == "input_read"
        data[field] = value
        return [*lines[:3], rehash(data), *lines[4:]]

    return edit


TAMPERINGS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "flipped byte": lambda lines: [*lines[:6], _flip_timestamp_digit(lines[6]), *lines[7:]],
    "edited event": _edit("bytes_read", 1),
    "deleted event": lambda lines: [*lines[:5], *lines[6:]],
    "swapped events": lambda lines: [*lines[:5], lines[6], lines[5], *lines[7:]],
}


@pytest.mark.parametrize("how", list(TAMPERINGS))
def test_a_tampered_log_is_exported_flagged(tmp_path: Path, how: str) -> None:
    sound = tmp_path / "sound" / "a.jsonl"
    run_workflow(tmp_path / "repo", sound)
    path = tmp_path / "logs" / "bad.jsonl"
    run_workflow(tmp_path / "repo2", path)
    lines = TAMPERINGS[how](lines_of(path))
    write_lines(path, lines)
    verdict = verify_logs(path).logs[0]
    assert not verdict.ok
    dest = tmp_path / "export"
    report = export_parquet([sound, path], dest)
    assert report.logs == 2
    assert report.flagged == (os.path.abspath(path),)
    assert report.events == 13 + len(lines)
    quanta = quanta_rows(dest)
    row = quanta[key_of(path)]
    assert row["verified"] is False
    assert row["problems"] == [str(p) for p in verdict.problems]
    assert row["final_hash"] == verdict.final_hash
    assert row["events"] == len(lines)
    assert quanta[key_of(sound)]["verified"] is True
    # Every event is exported as stored (all but the hashes, which the chain rebuilds).
    back = exported(dest)[key_of(path)]

    def content(record: bytes) -> dict[str, Any]:
        return {k: v for k, v in orjson.loads(record).items() if k not in ("hash", "prev_hash")}

    assert [content(r) for r in back] == [content(r) for r in lines]
    # The export's own check still finds the log unsound; the sound one passes.
    checked = {(v.quantum_id, v.attempt): v for v in verify_export(dest).logs}
    assert not checked[key_of(path)].ok
    assert checked[key_of(sound)].ok


def test_a_log_with_a_damaged_line_exports_every_whole_event(tmp_path: Path) -> None:
    """A line that is no longer JSON is skipped; every whole event around it is exported."""
    path = tmp_path / "logs" / "bad.jsonl"
    run_workflow(tmp_path / "repo", path)
    lines = lines_of(path)
    damaged = [*lines[:5], b"}" + lines[5][1:], *lines[6:]]
    write_lines(path, damaged)
    dest = tmp_path / "export"
    report = export_parquet(path, dest)
    assert report.flagged == (os.path.abspath(path),)
    whole = [*lines[:5], *lines[6:]]
    assert report.events == len(whole)
    back = exported(dest)[key_of(path)]
    assert [orjson.loads(r)["seq"] for r in back] == [orjson.loads(r)["seq"] for r in whole]
    row = quanta_rows(dest)[key_of(path)]
    assert row["status"] == "succeeded"
    assert row["finished"] == orjson.loads(lines[-1])["timestamp_ns"]


def test_a_tampered_value_of_another_type_is_exported_flagged(tmp_path: Path) -> None:
    """An edited event whose value no longer fits its column is still exported, flagged."""
    path = tmp_path / "logs" / "bad.jsonl"
    run_workflow(tmp_path / "repo", path)
    lines = _edit("bytes_read", "lots")(lines_of(path))
    write_lines(path, lines)
    dest = tmp_path / "export"
    report = export_parquet(path, dest)
    assert report.flagged == (os.path.abspath(path),)
    assert report.events == len(lines)
    back = exported(dest)[key_of(path)]
    assert orjson.loads(back[3])["bytes_read"] == "lots"
    assert quanta_rows(dest)[key_of(path)]["verified"] is False


@pytest.mark.parametrize(
    ("field", "value"), [("ok", 1), ("duration_ns", 5.5), ("bytes_read", "lots")]
)
def test_a_sound_log_round_trips_whatever_its_value_types(
    tmp_path: Path, field: str, value: Any
) -> None:
    """rows.py: an event whose fields the columns cannot hold exactly travels whole in
    ``extra``, so nothing is ever lost, whatever the values of a log that verifies."""
    path = tmp_path / "logs" / "odd.jsonl"
    run_workflow(tmp_path / "repo", path)

    def odd(data: dict[str, Any]) -> None:
        assert data["kind"] == "input_read"
        data[field] = value

    write_lines(path, rechained(lines_of(path), 3, odd))
    assert verify_logs(path).ok
    dest = tmp_path / "export"
    export_parquet(path, dest)
    assert_round_trip(path, dest)
    assert verify_export(dest).ok


def test_a_torn_log_exports_its_whole_events(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "torn.jsonl"
    run_workflow(tmp_path / "repo", path)
    lines = lines_of(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines[:-1]) + lines[-1][:40])
    verdict = verify_logs(path).logs[0]
    assert "truncated" in {p.kind for p in verdict.problems}
    dest = tmp_path / "export"
    report = export_parquet(path, dest)
    assert report.flagged == (os.path.abspath(path),)
    assert report.events == len(lines) - 1
    # The whole events' chain is intact: their records come back byte for byte.
    assert exported(dest)[key_of(path)] == lines[:-1]
    row = quanta_rows(dest)[key_of(path)]
    assert (row["verified"], row["events"], row["status"]) == (False, len(lines) - 1, None)
    assert row["final_hash"] == orjson.loads(lines[-2])["hash"]
    assert verify_export(dest).logs[0].final_hash == row["final_hash"]


# -- verify_export ---------------------------------------------------------------------------


def _rewrite_events(part: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    parquet = pq.ParquetFile(part)
    metadata = parquet.schema_arrow.metadata
    table = change(parquet.read())
    pq.write_table(table.replace_schema_metadata(metadata), part, compression="zstd")


def test_verify_export_finds_a_changed_row(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "q.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest)
    assert verify_export(dest).ok

    def change(table: pa.Table) -> pa.Table:
        values = table["bytes_read"].to_pylist()
        at = next(i for i, v in enumerate(values) if v is not None)
        values[at] += 1
        index = table.schema.get_field_index("bytes_read")
        return table.set_column(index, table.schema.field(index), pa.array(values, pa.int64()))

    _rewrite_events(parts(dest, "events")[0], change)
    report = verify_export(dest)
    assert not report.ok
    assert [p.kind for _, p in report.problems()] == ["tampered"]


def test_verify_export_finds_a_dropped_last_event(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "q.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest)
    _rewrite_events(parts(dest, "events")[0], lambda t: t.slice(0, t.num_rows - 1))
    report = verify_export(dest)
    assert not report.ok
    assert "tampered" in {p.kind for _, p in report.problems()}


def test_verify_export_finds_a_quantum_whose_events_are_missing(tmp_path: Path) -> None:
    """The quanta table lists a log the events table no longer holds: not a sound export."""
    run_workflow(tmp_path / "repo0", tmp_path / "logs" / "q0.jsonl")
    dest = tmp_path / "export"
    export_parquet(tmp_path / "logs", dest)
    run_workflow(tmp_path / "repo1", tmp_path / "logs" / "q1.jsonl")
    second = export_parquet(tmp_path / "logs", dest)
    events_part = next(p for p in second.files if p.parent.parent.name == "events")
    events_part.unlink()
    report = verify_export(dest)
    assert not report.ok, "a quantum of the quanta table has no events, yet the export verifies"


# -- bounded memory --------------------------------------------------------------------------


def test_memory_stays_bounded_for_a_long_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One log of many events: the exporter holds a row group, not the whole log, in memory."""
    run_workflow(tmp_path / "repo", tmp_path / "template.jsonl")
    path = tmp_path / "logs" / "long.jsonl"
    path.parent.mkdir()
    events = 25_000
    big_log(path, lines_of(tmp_path / "template.jsonl"), events)
    size = path.stat().st_size
    monkeypatch.setattr(export_module, "ROW_GROUP_ROWS", 1_000)
    tracemalloc.start()
    try:
        report = export_parquet(path, tmp_path / "export")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.events == events
    # Holding every row of the log as a Python dict takes several times the log's
    # size; a streaming export holds one row group of 1000 rows.
    assert peak < 2 * size, f"peak {peak / 1e6:.1f} MB for a log of {size / 1e6:.1f} MB"
    metadata = pq.read_metadata(parts(tmp_path / "export", "events")[0])
    assert metadata.num_rows == events
