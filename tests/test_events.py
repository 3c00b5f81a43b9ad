"""Events: frozen envelopes, parsing, canonical JSON, the hash chain and log sealing."""

from __future__ import annotations

import copy
import hashlib
import json
import time
import types
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from support.workflows import DIMS, RUN, body_of, run_workflow, stored_line

import qbb_events
from qbb_events import (
    EVENT_KINDS,
    GENESIS_HASH,
    SCHEMA_VERSION,
    DatasetRef,
    DatasetType,
    FileDatastore,
    FileRecord,
    InMemoryEventLog,
    JsonLinesEventLog,
    LogCorruptedError,
    LogSealedError,
    Quantum,
    QuantumBackedButler,
    SchemaVersionError,
    UnknownEventKindError,
    canonical_json,
    chain_hash,
    check_chain,
    parse_event,
    read_log,
)
from qbb_events.logs import _base as log_base


@pytest.fixture
def butler(tmp_path: Path) -> QuantumBackedButler:
    return run_workflow(tmp_path / "repo", attempt=2, retrieve_to=tmp_path / "retrieved")


def patch_clock(monkeypatch: pytest.MonkeyPatch, values: list[int]) -> None:
    """Make the logs' ``time.time_ns`` return ``values`` in turn."""
    ticks = iter(values)
    monkeypatch.setattr(log_base, "time", types.SimpleNamespace(time_ns=lambda: next(ticks)))


# -- immutability ----------------------------------------------------------


def test_events_are_frozen(butler: QuantumBackedButler) -> None:
    for event in butler.events:
        for field, value in (
            ("seq", 99),
            ("hash", "f" * 64),
            ("kind", "input_read"),
            ("timestamp_ns", 0),
        ):
            with pytest.raises(pydantic.ValidationError):
                setattr(event, field, value)
        with pytest.raises(pydantic.ValidationError):
            event.new_field = 1  # type: ignore[union-attr]
    check_chain(butler.events)


def test_nested_event_values_are_frozen(butler: QuantumBackedButler) -> None:
    started = butler.events[0]
    assert isinstance(started, qbb_events.QuantumStarted)
    with pytest.raises(pydantic.ValidationError):
        started.quantum.task_label = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        started.quantum.inputs[0].run = "other"  # type: ignore[misc]
    written = next(e for e in butler.events if isinstance(e, qbb_events.OutputWritten))
    with pytest.raises(pydantic.ValidationError):
        written.record.path = "elsewhere"  # type: ignore[misc]
    failed = next(
        e for e in butler.events if isinstance(e, qbb_events.InputRead) and e.failure is not None
    )
    assert failed.failure is not None
    with pytest.raises(pydantic.ValidationError):
        failed.failure.category = "bad_request"  # type: ignore[misc]


def test_event_containers_cannot_be_changed(butler: QuantumBackedButler) -> None:
    events = butler.events
    started = events[0]
    assert isinstance(started, qbb_events.QuantumStarted)
    with pytest.raises(TypeError):
        started.quantum.data_id["visit"] = 99  # type: ignore[index]
    with pytest.raises(AttributeError):
        started.quantum.inputs.append(started.quantum.inputs[0])  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        started.quantum.inputs[0].data_id["visit"] = 99  # type: ignore[index]
    with pytest.raises(TypeError):
        started.quantum.input_records["x"] = ()  # type: ignore[index]
    checked = next(e for e in events if isinstance(e, qbb_events.ExistenceChecked))
    with pytest.raises(TypeError):
        checked.results[0] = not checked.results[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        checked.dataset_ids[0] = checked.dataset_ids[0]  # type: ignore[index]
    # Nothing a caller can do to its copy reaches the log.
    check_chain(butler.events)
    assert qbb_events.fold(butler.events) == butler.extract_provenance_data()


# -- parse_event -------------------------------------------------------------


def test_parse_event_rejects_unknown_kind(butler: QuantumBackedButler) -> None:
    data = butler.events[3].model_dump(mode="json")
    data["kind"] = "quantum_exploded"
    with pytest.raises(UnknownEventKindError, match="quantum_exploded") as info:
        parse_event(data)
    assert isinstance(info.value, LogCorruptedError)
    assert info.value.seq == 3
    del data["kind"]
    with pytest.raises(UnknownEventKindError):
        parse_event(data)


def test_parse_event_rejects_newer_schema_version(butler: QuantumBackedButler) -> None:
    data = butler.events[1].model_dump(mode="json")
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError) as info:
        parse_event(data)
    message = str(info.value)
    assert str(SCHEMA_VERSION + 1) in message
    assert "upgrade" in message.lower()
    assert isinstance(info.value, LogCorruptedError)
    assert info.value.seq == 1


@pytest.mark.parametrize("version", [None, 0, -1, "1", 1.0, True, [1]])
def test_parse_event_rejects_missing_or_invalid_version(
    butler: QuantumBackedButler, version: object
) -> None:
    data = butler.events[1].model_dump(mode="json")
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(SchemaVersionError, match="schema_version"):
        parse_event(data)


def test_parse_event_upcasts_older_versions(
    butler: QuantumBackedButler, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qbb_events.events as events_module

    data = butler.events[1].model_dump(mode="json")
    monkeypatch.setattr(events_module, "SCHEMA_VERSION", 2)
    with pytest.raises(SchemaVersionError, match="upcaster"):
        parse_event(data)
    monkeypatch.setattr(events_module, "_UPCASTERS", {1: lambda b: {**b, "schema_version": 2}})
    event = parse_event(data)
    assert event.schema_version == 2
    assert event.model_dump(exclude={"schema_version"}) == butler.events[1].model_dump(
        exclude={"schema_version"}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hash", "XYZ"),
        ("prev_hash", "0" * 63),
        ("seq", -1),
        ("quantum_id", "not-a-uuid"),
        ("attempt", "zero"),
        ("timestamp_ns", -5),
        ("unexpected", 1),
    ],
)
def test_parse_event_rejects_invalid_fields(
    butler: QuantumBackedButler, field: str, value: object
) -> None:
    data = butler.events[1].model_dump(mode="json")
    data[field] = value
    with pytest.raises(LogCorruptedError):
        parse_event(data)


def test_parse_event_rejects_missing_envelope_field(butler: QuantumBackedButler) -> None:
    for field in ("quantum_id", "attempt", "seq", "timestamp_ns", "prev_hash", "hash"):
        data = butler.events[1].model_dump(mode="json")
        del data[field]
        with pytest.raises(LogCorruptedError):
            parse_event(data)


def test_parse_event_rejects_kind_specific_violations(butler: QuantumBackedButler) -> None:
    checked = next(e for e in butler.events if e.kind == "existence_checked")
    data = checked.model_dump(mode="json")
    data["results"] = [*data["results"], True]
    with pytest.raises(LogCorruptedError, match="existence_checked"):
        parse_event(data)
    read = next(e for e in butler.events if e.kind == "input_read")
    data = read.model_dump(mode="json")
    data["ok"] = not data["ok"]
    with pytest.raises(LogCorruptedError, match="input_read"):
        parse_event(data)


def test_every_kind_round_trips_through_json(butler: QuantumBackedButler) -> None:
    assert {e.kind for e in butler.events} == EVENT_KINDS
    for event in butler.events:
        dumped = event.model_dump(mode="json")
        again = parse_event(dumped)
        assert again == event
        assert type(again) is type(event)
        assert again.model_dump(mode="json") == dumped
        # Through actual JSON text too.
        assert parse_event(json.loads(canonical_json(dumped))) == event


# -- canonical JSON and the chain ---------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    body = {"b": 1, "a": {"d": [1, "x y"], "c": "é"}, "é": "日本語 🙂", "Z": None, "t": True}
    data = canonical_json(body)
    assert isinstance(data, bytes)
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == expected.encode("utf-8")
    assert data == '{"Z":null,"a":{"c":"é","d":[1,"x y"]},"b":1,"t":true,"é":"日本語 🙂"}'.encode()
    assert b"\\u" not in data
    assert "🙂".encode() in data


def test_canonical_json_of_uuid_and_models() -> None:
    ident = uuid.UUID("0190b2f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b")
    record = FileRecord(
        dataset_id=ident,
        datastore_name="store",
        path="run/type/visit=1.json",
        formatter="json",
        storage_class="json",
        file_size=10,
        checksum="sha256:" + "a" * 64,
    )
    data = canonical_json({"z": ident, "record": record})
    decoded = json.loads(data)
    assert decoded["z"] == "0190b2f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b"
    assert decoded["record"] == record.model_dump(mode="json")
    expected = json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == expected.encode()


def test_chain_hash_definition() -> None:
    body = {"seq": 0, "kind": "x", "text": "ü"}
    prev = "ab" * 32
    expected = hashlib.sha256(prev.encode() + canonical_json(body)).hexdigest()
    assert chain_hash(prev, body) == expected
    assert (
        chain_hash(GENESIS_HASH, body)
        == hashlib.sha256(b"0" * 64 + canonical_json(body)).hexdigest()
    )
    assert chain_hash(GENESIS_HASH, body) != chain_hash(prev, body)


def test_genesis_hash() -> None:
    assert GENESIS_HASH == "0" * 64


def test_butler_events_form_a_hash_chain(butler: QuantumBackedButler) -> None:
    events = butler.events
    assert events[0].prev_hash == GENESIS_HASH
    prev = GENESIS_HASH
    for event in events:
        assert event.prev_hash == prev
        assert (
            event.hash
            == hashlib.sha256(event.prev_hash.encode() + canonical_json(body_of(event))).hexdigest()
        )
        assert event.hash == chain_hash(event.prev_hash, body_of(event))
        prev = event.hash
    assert len({e.hash for e in events}) == len(events)
    assert butler.log.last_hash == events[-1].hash
    check_chain(events)


def test_envelope_fields(tmp_path: Path) -> None:
    before = time.time_ns()
    butler = run_workflow(tmp_path / "repo", attempt=3)
    after = time.time_ns()
    events = butler.events
    assert len(events) >= len(EVENT_KINDS)
    assert events[0].kind == "quantum_started"
    assert events[-1].kind == "quantum_finished"
    last_ts = 0
    for index, event in enumerate(events):
        assert event.schema_version == SCHEMA_VERSION
        assert event.quantum_id == butler.quantum_id
        assert event.attempt == 3
        assert event.seq == index
        assert event.kind in EVENT_KINDS
        assert before <= event.timestamp_ns <= after
        assert event.timestamp_ns >= last_ts
        last_ts = event.timestamp_ns
        for digest in (event.prev_hash, event.hash):
            assert len(digest) == 64
            assert set(digest) <= set("0123456789abcdef")
        dumped = event.model_dump(mode="json")
        assert {
            "schema_version",
            "quantum_id",
            "attempt",
            "seq",
            "timestamp_ns",
            "kind",
            "prev_hash",
            "hash",
        } <= dumped.keys()


def test_quantum_started_carries_the_quantum(butler: QuantumBackedButler) -> None:
    started = butler.events[0]
    assert isinstance(started, qbb_events.QuantumStarted)
    assert started.quantum.id == butler.quantum_id
    assert started.quantum.task_label == "calibrate_tâche"
    assert started.quantum.data_id == {"visit": 1, "band": "Zürich ✓"}
    assert len(started.quantum.inputs) == 2
    assert len(started.quantum.outputs) == 2
    for info in (*started.quantum.inputs, *started.quantum.outputs):
        assert info.dataset_type in {"raw", "calexp"}
        assert info.run == RUN
        assert info.data_id is not None
        assert set(info.data_id) == set(DIMS)
    assert started.pid > 0
    assert started.host
    assert started.library_version


def test_check_chain_detects_tampering(butler: QuantumBackedButler) -> None:
    events = list(butler.events)
    check_chain(events)
    with pytest.raises(LogCorruptedError) as info:
        check_chain(events[:3] + events[4:])
    assert info.value.seq == 4
    assert info.value.line == 4
    with pytest.raises(LogCorruptedError) as info:
        check_chain([events[0], events[2], events[1], *events[3:]])
    assert info.value.seq == 2
    with pytest.raises(LogCorruptedError) as info:
        check_chain(events[1:])
    assert info.value.line == 1
    edited = events[5].model_copy(update={"timestamp_ns": events[5].timestamp_ns + 1})
    with pytest.raises(LogCorruptedError, match="hash") as info:
        check_chain([*events[:5], edited, *events[6:]])
    assert info.value.seq == 5
    assert info.value.line == 6


# -- logs: identical content gives identical hashes ------------------------


def _payloads(dataset_id: uuid.UUID, quantum_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    record = FileRecord(
        dataset_id=dataset_id,
        datastore_name="store",
        path="run/calexp/visit=1.json",
        formatter="json",
        storage_class="json",
        file_size=42,
        checksum="sha256:" + "c" * 64,
    )
    return [
        (
            "quantum_started",
            {
                "quantum": {
                    "id": quantum_id,
                    "task_label": "tâche",
                    "data_id": {"visit": 1, "band": "ü"},
                    "dataset_types": [
                        {"name": "calexp", "storage_class": "json", "dimensions": ["visit"]}
                    ],
                    "inputs": [],
                    "init_inputs": [],
                    "outputs": [
                        {
                            "id": dataset_id,
                            "dataset_type": "calexp",
                            "run": "r",
                            "data_id": {"visit": 1},
                        }
                    ],
                    "input_records": {},
                },
                "host": "hôte",
                "pid": 123,
                "library_version": "1.0",
            },
        ),
        ("existence_checked", {"dataset_ids": [dataset_id], "results": [False]}),
        ("output_written", {"dataset_id": dataset_id, "record": record, "duration_ns": 7}),
        ("input_marked_unused", {"dataset_id": dataset_id}),
        (
            "quantum_finished",
            {
                "status": "succeeded",
                "exception": None,
                "wall_ns": 10,
                "cpu_ns": 5,
                "peak_rss_bytes": 1 << 20,
            },
        ),
    ]


def test_memory_and_file_logs_hash_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quantum_id = uuid.UUID("0190b2f0-0000-7000-8000-000000000001")
    dataset_id = uuid.UUID("0190b2f0-0000-7000-8000-000000000002")
    stamps = [1_700_000_000_000_000_000 + 1000 * i for i in range(5)]
    logs = []
    for log in (InMemoryEventLog(), JsonLinesEventLog(tmp_path / "q.jsonl")):
        patch_clock(monkeypatch, stamps)
        log.bind(quantum_id, 1)
        for seq, (kind, payload) in enumerate(_payloads(dataset_id, quantum_id)):
            assert log.append(kind, payload) == seq  # type: ignore[arg-type]
        log.close()
        logs.append(log)
    memory, on_disk = logs
    assert [e.hash for e in memory.events] == [e.hash for e in on_disk.events]
    assert memory.events == on_disk.events
    assert [e.timestamp_ns for e in memory.events] == stamps
    assert memory.last_hash == on_disk.last_hash == memory.events[-1].hash
    check_chain(memory.events)
    lines = (tmp_path / "q.jsonl").read_bytes().splitlines()
    assert len(lines) == len(memory.events)
    for line, event in zip(lines, memory.events, strict=True):
        assert line == stored_line(event)
    assert read_log(tmp_path / "q.jsonl") == list(memory.events)


@pytest.mark.parametrize("store", ["memory", "file"])
def test_log_is_sealed_after_quantum_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    path = tmp_path / "q.jsonl"
    log = InMemoryEventLog() if store == "memory" else JsonLinesEventLog(path)
    quantum_id = uuid.uuid4()
    log.bind(quantum_id, 0)
    for kind, payload in _payloads(uuid.uuid4(), quantum_id):
        log.append(kind, payload)  # type: ignore[arg-type]
    assert log.sealed
    count = len(log)
    size = path.stat().st_size if store == "file" else None
    for kind, payload in _payloads(uuid.uuid4(), quantum_id)[1:]:
        with pytest.raises(LogSealedError):
            log.append(kind, payload)  # type: ignore[arg-type]
    assert len(log) == count
    assert len(log.events) == count
    assert log.events[-1].kind == "quantum_finished"
    if store == "file":
        assert path.stat().st_size == size
    check_chain(log.events)
    log.close()


def test_bind_refused_once_events_exist() -> None:
    log = InMemoryEventLog()
    quantum_id = uuid.uuid4()
    log.bind(quantum_id, 0)
    kind, payload = _payloads(uuid.uuid4(), quantum_id)[0]
    log.append(kind, payload)  # type: ignore[arg-type]
    with pytest.raises(qbb_events.LogInUseError, match="already holds") as info:
        log.bind(uuid.uuid4(), 1)
    assert isinstance(info.value, ValueError)
    assert log.quantum_id == quantum_id


def test_a_used_log_object_is_refused_by_a_new_butler(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    with pytest.raises(qbb_events.LogInUseError):
        run_workflow(tmp_path / "repo", butler.log)
    assert len(butler.log) == len(butler.events)


def test_append_to_a_closed_file_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = JsonLinesEventLog(path)
    quantum_id = uuid.uuid4()
    log.bind(quantum_id, 0)
    (kind, payload), (kind2, payload2) = _payloads(uuid.uuid4(), quantum_id)[:2]
    log.append(kind, payload)  # type: ignore[arg-type]
    log.close()
    before = path.read_bytes()
    with pytest.raises(qbb_events.LogClosedError, match="closed") as info:
        log.append(kind2, payload2)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == before
    assert len(log.events) == 1


@pytest.mark.parametrize("store", ["memory", "file"])
def test_timestamps_never_decrease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    stamps = [5_000, 4_000, 9_000, 1_000, 9_500]
    patch_clock(monkeypatch, stamps)
    log = InMemoryEventLog() if store == "memory" else JsonLinesEventLog(tmp_path / "q.jsonl")
    quantum_id = uuid.uuid4()
    log.bind(quantum_id, 0)
    for kind, payload in _payloads(uuid.uuid4(), quantum_id):
        log.append(kind, payload)  # type: ignore[arg-type]
    log.close()
    assert [e.timestamp_ns for e in log.events] == [5_000, 5_000, 9_000, 9_000, 9_500]
    check_chain(log.events)
    if store == "file":
        assert read_log(tmp_path / "q.jsonl") == list(log.events)


def test_butler_timestamps_survive_a_clock_step_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time_ns
    calls = 0

    def stepping_clock() -> int:
        nonlocal calls
        calls += 1
        # Every third reading jumps an hour into the past.
        return real() - (3_600 * 10**9 if calls % 3 == 0 else 0)

    monkeypatch.setattr(log_base, "time", types.SimpleNamespace(time_ns=stepping_clock))
    butler = run_workflow(tmp_path / "repo")
    stamps = [e.timestamp_ns for e in butler.events]
    assert calls == len(stamps)
    assert stamps == sorted(stamps)
    check_chain(butler.events)


# -- every value a butler accepts can be recorded -----------------------------


def test_data_id_ints_must_fit_in_64_bits(tmp_path: Path) -> None:
    visit = DatasetType("visit_summary", "json", ("visit",))
    for value in (2**63, -(2**63) - 1, 2**70):
        with pytest.raises(qbb_events.InvalidDataIdError, match="64-bit"):
            DatasetRef(visit, {"visit": value}, RUN)
        with pytest.raises(qbb_events.InvalidDataIdError, match="64-bit"):
            Quantum("task", {"visit": value}, inputs=[], outputs=[])
    # The extremes that fit are recorded and read back exactly.
    refs = [DatasetRef(visit, {"visit": v}, RUN) for v in (2**63 - 1, -(2**63))]
    quantum = Quantum("task", {"visit": 2**63 - 1}, inputs=[], outputs=refs)
    path = tmp_path / "q.jsonl"
    with QuantumBackedButler.initialize(
        FileDatastore(tmp_path / "repo", create=True), quantum, log=path
    ) as butler:
        butler.put({"x": 1}, refs[1])
    check_chain(butler.events)
    assert read_log(path) == list(butler.events)
    started = butler.events[0]
    assert isinstance(started, qbb_events.QuantumStarted)
    assert [o.data_id for o in started.quantum.outputs] == [
        {"visit": 2**63 - 1},
        {"visit": -(2**63)},
    ]


@pytest.mark.parametrize("text", ["caf\udce9", "\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused_in_recorded_text(text: str) -> None:
    visit = DatasetType("visit_summary", "json", ("visit",))
    with pytest.raises(qbb_events.InvalidDefinitionError):
        Quantum(text, {"visit": 1}, inputs=[], outputs=[])
    with pytest.raises(qbb_events.InvalidDefinitionError):
        Quantum("task", {"band": text}, inputs=[], outputs=[])
    with pytest.raises(qbb_events.InvalidDefinitionError):
        DatasetRef(visit, {"visit": 1}, text)


@pytest.mark.parametrize("store", ["memory", "file"])
def test_exception_with_lone_surrogate_is_recorded(tmp_path: Path, store: str) -> None:
    visit = DatasetType("visit_summary", "json", ("visit",))
    quantum = Quantum(
        "task", {"visit": 1}, inputs=[], outputs=[DatasetRef(visit, {"visit": 1}, RUN)]
    )
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.initialize(
        FileDatastore(tmp_path / "repo", create=True),
        quantum,
        log=path if store == "file" else None,
    )
    with pytest.raises(ValueError, match="bad file"), butler:
        raise ValueError("bad file caf\udce9.fits")
    finished = butler.events[-1]
    assert isinstance(finished, qbb_events.QuantumFinished)
    assert finished.status == "failed"
    assert finished.exception is not None
    assert finished.exception.exc_type == "ValueError"
    assert finished.exception.message == "bad file caf\\udce9.fits"
    check_chain(butler.events)
    if store == "file":
        assert read_log(path) == list(butler.events)


@pytest.mark.parametrize("kind", [["input_read"], {"input_read": 1}, 7, None, True])
def test_parse_event_rejects_a_kind_that_is_not_a_string(
    butler: QuantumBackedButler, kind: Any
) -> None:
    data = butler.events[3].model_dump(mode="json")
    data["kind"] = kind
    with pytest.raises(UnknownEventKindError, match="unknown event kind") as info:
        parse_event(data)
    assert isinstance(info.value, LogCorruptedError)
    assert info.value.seq == 3


def test_upcasting_never_changes_the_callers_data(
    butler: QuantumBackedButler, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qbb_events.events as events_module

    data = butler.events[0].model_dump(mode="json")
    original = copy.deepcopy(data)

    def upcast(body: dict[str, Any]) -> dict[str, Any]:
        # An upcaster that rewrites a nested value in place.
        body["quantum"]["task_label"] = "renamed"
        return {**body, "schema_version": 2}

    monkeypatch.setattr(events_module, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(events_module, "_UPCASTERS", {1: upcast})
    event = parse_event(data)
    assert event.quantum.task_label == "renamed"
    # The caller's data, whose hash a reader checks next, is as it was.
    assert data == original


# -- quantum_finished fields of the executor harness ---------------------------


def test_a_plain_seal_serializes_without_the_harness_fields(tmp_path: Path) -> None:
    with QuantumBackedButler.from_predicted(
        FileDatastore(tmp_path / "repo", create=True), [], []
    ) as butler:
        pass
    finished = butler.events[-1]
    assert (finished.caveats, finished.traceback, finished.host, finished.pid) == (
        (),
        None,
        None,
        None,
    )
    body = body_of(finished)
    for name in ("caveats", "traceback", "host", "pid"):
        assert name not in body
    # The chain still holds when events are re-serialized from the models.
    check_chain(butler.events)


def test_harness_fields_and_blocked_status_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    root = FileDatastore(tmp_path / "repo", create=True)
    butler = QuantumBackedButler.from_predicted(root, [], [], log=path)
    butler.finish(
        "blocked",
        caveats=["no_work", "all_outputs_missing"],
        traceback="Traceback ...",
        record_process=True,
    )
    butler.close()
    (finished,) = read_log(path)[-1:]
    assert finished.status == "blocked"
    assert finished.caveats == ("no_work", "all_outputs_missing")
    assert finished.traceback == "Traceback ..."
    assert finished.pid is not None
    assert finished.host
    check_chain(read_log(path))
    assert json.loads(stored_line(finished))["caveats"] == ["no_work", "all_outputs_missing"]


def test_unknown_caveats_and_statuses_are_refused(tmp_path: Path) -> None:
    butler = QuantumBackedButler.from_predicted(
        FileDatastore(tmp_path / "repo", create=True), [], []
    )
    with pytest.raises(qbb_events.InvalidDefinitionError, match="unknown caveats"):
        butler.finish("succeeded", caveats=["fine"])
    with pytest.raises(qbb_events.InvalidDefinitionError, match="status must be"):
        butler.finish("skipped")  # type: ignore[arg-type]
    butler.close()
