"""Schema evolution: the version 1 fixture log stays readable forever; older versions are
upcast, newer ones refused with the version they need."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
from support.versions import FIXTURES, V1_LOG, as_version_2, set_version

import qbb_events.events as events_module
from qbb_events import (
    GENESIS_HASH,
    JsonLinesEventLog,
    QuantumProvenanceData,
    SchemaVersionError,
    canonical_json,
    chain_hash,
    copy_logs,
    fold,
    iter_log,
    read_log,
    verify_logs,
)

# The fixture is a record of what version 1 wrote: it is never regenerated.
# If this digest changes, the fixture was edited, which defeats its purpose.
V1_LOG_SHA256 = "90ce4d351544fe6d3e926362674b3286b83a7cf5dfb0b5b0ac8a8229b87d4d77"
V1_FINAL_HASH = "6b13042b041ae9899032c7da52ba7a4df7a0dd1898608fe48d2b3c92273f5a65"


def test_the_v1_fixture_is_untouched() -> None:
    assert hashlib.sha256(V1_LOG.read_bytes()).hexdigest() == V1_LOG_SHA256


def test_the_v1_fixture_reads_and_folds_to_its_recorded_provenance() -> None:
    events = read_log(V1_LOG)
    assert [e.seq for e in events] == list(range(13))
    assert {e.schema_version for e in events} == {1}
    assert events[-1].hash == V1_FINAL_HASH
    expected = QuantumProvenanceData.model_validate_json(
        (FIXTURES / "workflow.provenance.json").read_text()
    )
    assert fold(events) == expected


def test_the_v1_fixture_verifies() -> None:
    report = verify_logs(V1_LOG, validate=True)
    assert report.ok, list(report.problems())
    assert report.logs[0].final_hash == V1_FINAL_HASH
    assert report.logs[0].status == "succeeded"


def test_the_v1_fixture_copies_into_sqlite_and_back(tmp_path: Path) -> None:
    into = copy_logs(V1_LOG, tmp_path / "logs.sqlite")
    assert into.ok
    assert into.events_added == 13
    back = copy_logs(tmp_path / "logs.sqlite", tmp_path / "back")
    assert back.ok
    (copied,) = sorted((tmp_path / "back").iterdir())
    assert copied.read_bytes() == V1_LOG.read_bytes()


def test_an_older_log_is_upcast_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    as_version_2(monkeypatch, seen)
    events = read_log(V1_LOG)
    assert {e.schema_version for e in events} == {2}
    assert seen == list(range(13))
    # The chain is checked on the stored bytes, before upcasting, so it holds.
    assert events[-1].hash == V1_FINAL_HASH
    assert verify_logs(V1_LOG).ok


def test_an_older_log_resumes_under_a_newer_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sealed log cannot take more events, so resume its first twelve.
    path = tmp_path / "partial.jsonl"
    path.write_bytes(b"".join(V1_LOG.read_bytes().splitlines(keepends=True)[:12]))
    as_version_2(monkeypatch, [])
    log = JsonLinesEventLog(path, resume=True)
    try:
        assert len(log) == 12
        log.append("input_marked_unused", {"dataset_id": log.events[1].dataset_ids[0]})
    finally:
        log.close()
    versions = [orjson.loads(line)["schema_version"] for line in path.read_bytes().splitlines()]
    assert versions == [1] * 12 + [2]
    problems = [p.kind for _, p in verify_logs(path).problems()]
    assert problems == ["unsealed"]


def test_a_newer_version_is_refused_naming_the_version_needed(tmp_path: Path) -> None:
    lines = V1_LOG.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    first["schema_version"] = 7
    del first["hash"]
    canonical = canonical_json(first)
    record = canonical[:-1] + b',"hash":"%s"}' % chain_hash(GENESIS_HASH, canonical).encode()
    path = tmp_path / "future.jsonl"
    path.write_bytes(record + b"\n")
    with pytest.raises(SchemaVersionError, match="schema version 7") as info:
        read_log(path)
    assert "upgrade" in str(info.value)
    assert info.value.seq == 0
    (log,) = verify_logs(path).logs
    unsupported = [p for p in log.problems if p.kind == "unsupported"]
    assert unsupported
    assert "version 7" in unsupported[0].message


def test_a_version_without_upcaster_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    set_version(monkeypatch, 3)
    monkeypatch.setattr(events_module, "_UPCASTERS", {2: lambda body: body})
    with pytest.raises(SchemaVersionError, match="no upcaster from schema version 1"):
        next(iter_log(V1_LOG))


def test_upcasting_never_changes_the_stored_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "copy.jsonl"
    shutil.copy(V1_LOG, path)
    as_version_2(monkeypatch, [])
    read_log(path)
    assert path.read_bytes() == V1_LOG.read_bytes()
