"""Verification reports: every kind of tampering, named with its seq, and the run digest.

Each test writes a real log with `run_workflow`, changes the stored bytes the
way an attacker or a failing disk would, and checks that `verify_logs`
reports exactly the problem, with the ``seq`` of the event at fault and the
line it is stored on, and nothing else. The workflow's log holds, by seq::

    0 quantum_started       5 deferred_requested     10 output_rejected
    1 existence_checked     6 deferred_loaded        11 datasets_pruned
    2 existence_checked     7 input_marked_unused    12 quantum_finished
    3 input_read (ok)       8 output_written
    4 input_read (failed)   9 output_rejected
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.durable import cli, edit, kinds, rehashed, sealed_log, sqlite_copy
from support.readonly import frozen, unlistable
from support.scenarios import run_scenario
from support.store_workers import empty_quantum, existence_payload
from support.strategies import Scenario, scenarios
from support.versions import V1_LOG, as_version_2
from support.workflows import lines_of, rehash, run_workflow, stored_line, write_lines

from qbb_events import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    InMemoryEventLog,
    JsonLinesEventLog,
    LogCorruptedError,
    LogVerification,
    Problem,
    QbbEventsError,
    QuantumBackedButler,
    SyncPolicy,
    VerificationReport,
    canonical_json,
    copy_logs,
    export_parquet,
    read_log,
    run_digest,
    source_kind,
    stored_logs,
    verify_logs,
)
from qbb_events.logs import SqliteEventStore

KINDS = [
    "quantum_started",
    "existence_checked",
    "existence_checked",
    "input_read",
    "input_read",
    "deferred_requested",
    "deferred_loaded",
    "input_marked_unused",
    "output_written",
    "output_rejected",
    "output_rejected",
    "datasets_pruned",
    "quantum_finished",
]
LAST = len(KINDS) - 1
OUTPUT_WRITTEN = KINDS.index("output_written")
FINISHED = {
    "status": "succeeded",
    "exception": None,
    "wall_ns": 1,
    "cpu_ns": 1,
    "peak_rss_bytes": 1,
}


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, QuantumBackedButler]:
    """A finished butler and the JSON Lines file holding its events."""
    path = tmp_path / "logs" / "quantum.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    assert [e.kind for e in butler.events] == KINDS
    return path, butler


def rechain(lines: list[bytes], start: int, edit: Any = None) -> list[bytes]:
    """Apply ``edit`` to the event at index ``start`` and forge every hash from there on.

    Each later event's ``prev_hash`` is rewritten to name its (re-hashed)
    predecessor, so the chain is whole again: only what ``edit`` changed is wrong.
    """
    out = list(lines[:start])
    prev = json.loads(lines[start - 1])["hash"] if start else GENESIS_HASH
    for index in range(start, len(lines)):
        data = json.loads(lines[index])
        if index == start and edit is not None:
            edit(data)
        data["prev_hash"] = prev
        line = rehash(data)
        prev = json.loads(line)["hash"]
        out.append(line)
    return out


def found(report: VerificationReport) -> list[tuple[str, int | None, int | None]]:
    """The problems of a one-log report as ``(kind, seq, position)``."""
    assert len(report.logs) == 1
    return [(p.kind, p.seq, p.position) for p in report.logs[0].problems]


def verify_bad(path: Path, lines: list[bytes]) -> VerificationReport:
    """Write ``lines`` next to ``path`` and verify them; the report must not be ok."""
    bad = write_lines(path.with_name("bad.jsonl"), lines)
    report = verify_logs(bad)
    assert report.ok is False
    assert report.logs[0].ok is False
    assert list(report.problems())
    for problem in report.logs[0].problems:
        # Every problem names where it is, in words too.
        text = str(problem)
        assert text.startswith(problem.kind)
        if problem.seq is not None:
            assert f"seq {problem.seq}" in text
        if problem.position is not None:
            assert f"position {problem.position}" in text
    return report


# -- a sound log ---------------------------------------------------------------------------


def test_a_sound_log_verifies(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    report = verify_logs(path)
    assert isinstance(report, VerificationReport)
    assert report.ok is True
    assert list(report.problems()) == []
    assert report.events == len(butler.events)
    [verdict] = report.logs
    assert isinstance(verdict, LogVerification)
    assert verdict.ok
    assert verdict.sealed
    assert verdict.problems == ()
    assert verdict.location == str(path)
    assert verdict.quantum_id == butler.quantum_id
    assert verdict.attempt == 0
    assert verdict.events == len(butler.events) == len(KINDS)
    assert verdict.final_hash == butler.events[-1].hash == butler.log.last_hash
    assert verdict.status == "succeeded"
    assert report.digest == run_digest([(butler.quantum_id, 0, butler.events[-1].hash)])
    assert report.expected_digest is None
    # The same verdict from a str path, and with every field validated.
    assert verify_logs(str(path)) == report
    assert verify_logs(path, validate=True) == report
    assert verify_logs(path, expected_digest=report.digest).ok


@pytest.mark.parametrize("status", ["failed", "no_work"])
def test_the_status_is_that_of_quantum_finished(tmp_path: Path, status: str) -> None:
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.from_predicted(tmp_path / "repo", [], [], log=path)
    butler.finish(status, ValueError("boom") if status == "failed" else None)  # type: ignore[arg-type]
    butler.close()
    [verdict] = verify_logs(path).logs
    assert verdict.ok
    assert verdict.sealed
    assert verdict.status == status
    assert verdict.events == 2


def test_an_unsealed_log(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.from_predicted(tmp_path / "repo", [], [], log=path)
    butler.markInputUnused(uuid.uuid4())  # type: ignore[arg-type]
    report = verify_logs(path)
    assert found(report) == [("unsealed", 2, None)]
    assert report.ok is False
    [verdict] = report.logs
    assert not verdict.sealed
    assert verdict.status is None
    assert verdict.events == 2
    assert verdict.final_hash == butler.events[-1].hash
    butler.close()
    assert verify_logs(path).ok


def test_an_empty_log_file_is_reported_as_not_started(tmp_path: Path) -> None:
    # Issue 8: a 0-byte log used to verify as OK; it is a log with no
    # quantum_started, and says so.
    path = tmp_path / "empty.jsonl"
    path.touch()
    report = verify_logs(path)
    assert not report.ok
    assert [p.kind for _, p in report.problems()] == ["not_started"]
    [verdict] = report.logs
    assert verdict.events == 0
    assert verdict.quantum_id is None
    assert verdict.final_hash is None
    assert report.digest == hashlib.sha256(b"").hexdigest()


def test_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_logs(tmp_path / "nowhere.jsonl")


# -- every kind of tampering -----------------------------------------------------------------


def _flip_in_field(line: bytes, field: str, *, last: bool = False) -> bytes:
    """Change one byte of a field's value: its first character, or its last with ``last``."""
    key = b'"%s":' % field.encode()
    start = line.index(key) + len(key)
    if line[start : start + 1] == b'"':
        start += 1
        end = line.index(b'"', start)
    else:
        end = min(i for i in (line.find(b",", start), line.find(b"}", start)) if i >= 0)
    offset = end - 1 if last else start
    old = line[offset : offset + 1]
    new = b"1" if old != b"1" else b"2"
    return line[:offset] + new + line[offset + 1 :]


@pytest.mark.parametrize("seq", [0, 4, OUTPUT_WRITTEN, LAST])
def test_a_flipped_byte_is_tampering_of_its_event(
    logged: tuple[Path, QuantumBackedButler], seq: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    # The timestamp's last digit: the content changes, nothing else looks wrong.
    lines[seq] = _flip_in_field(lines[seq], "timestamp_ns", last=True)
    report = verify_bad(path, lines)
    assert found(report) == [("tampered", seq, seq + 1)]
    assert "hash does not match" in report.logs[0].problems[0].message


@pytest.mark.parametrize("seq", [0, 5, LAST])
def test_a_flipped_byte_in_a_stored_hash(
    logged: tuple[Path, QuantumBackedButler], seq: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    lines[seq] = _flip_in_field(lines[seq], "hash")
    report = verify_bad(path, lines)
    # The event's own check fails; a record that fails its hash is set aside,
    # so the next event's link to it is not reported again: one edit, one problem.
    assert found(report) == [("tampered", seq, seq + 1)]


@pytest.mark.parametrize(
    ("field", "seq"),
    [
        ("timestamp_ns", 5),
        ("kind", 5),
        ("dataset_id", OUTPUT_WRITTEN),
        ("hash", 0),
        ("hash", 5),
        ("quantum_id", 5),
        ("prev_hash", 0),
        ("prev_hash", 5),
        ("prev_hash", LAST),
        ("quantum_id", 0),
        ("seq", 5),
        ("seq", LAST),
    ],
)
def test_a_flipped_byte_blames_only_its_event(
    logged: tuple[Path, QuantumBackedButler], field: str, seq: int
) -> None:
    """Whatever field the byte is in, the report names the changed event and no other.

    An event whose hash does not match its content cannot be trusted for its
    ``seq``, links or quantum either: none of them may put blame on the
    events stored around it.
    """
    path, _ = logged
    lines = lines_of(path)
    lines[seq] = _flip_in_field(lines[seq], field)
    report = verify_bad(path, lines)
    problems = found(report)
    assert ("tampered", seq, seq + 1) in problems, problems
    # Only the changed event is named: on its line, or on the next one when
    # that line's link to it is broken.
    assert all(p_seq == seq for _, p_seq, _ in problems), problems
    assert all(position in (seq + 1, seq + 2) for _, _, position in problems), problems


@pytest.mark.parametrize("seq", [0, 1, 5, LAST - 1])
def test_an_edited_event_with_its_hash_recomputed(
    logged: tuple[Path, QuantumBackedButler], seq: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    data = json.loads(lines[seq])
    data["timestamp_ns"] += 1
    lines[seq] = rehash(data)
    # The edited event is self-consistent: the next event's prev_hash catches it,
    # and the report names the edited event, on the line where the link breaks.
    report = verify_bad(path, lines)
    assert found(report) == [("tampered", seq, seq + 2)]
    message = report.logs[0].problems[0].message
    assert f"seq {seq}" in message
    assert "prev_hash" in message


@pytest.mark.parametrize("seq", [1, 4, LAST - 1])
def test_a_deleted_event_is_missing(logged: tuple[Path, QuantumBackedButler], seq: int) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, lines[:seq] + lines[seq + 1 :])
    assert found(report) == [("missing", seq, None)]
    assert f"seq {seq} " in report.logs[0].problems[0].message
    assert report.logs[0].sealed
    assert report.logs[0].events == len(lines) - 1


def test_two_deleted_events_in_a_row_are_one_missing_span(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, lines[:3] + lines[5:])
    assert found(report) == [("missing", 3, None)]
    assert "seqs 3 to 4" in report.logs[0].problems[0].message
    report = verify_bad(path, lines[:3] + lines[4:6] + lines[7:])
    assert found(report) == [("missing", 3, None), ("missing", 6, None)]


def test_the_deleted_first_event(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, lines[1:])
    # The log begins elsewhere, and seq 0 is missing; nothing else is claimed:
    # without quantum_started the quantum's outputs are unknown, not contradicted.
    assert found(report) == [("not_started", 1, 1), ("missing", 0, None)]


def test_the_deleted_last_event_is_an_unsealed_log(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    lines = lines_of(path)
    report = verify_bad(path, lines[:-1])
    assert found(report) == [("unsealed", LAST, None)]
    assert report.logs[0].final_hash == butler.events[-2].hash
    assert report.logs[0].status is None


@pytest.mark.parametrize("seq", [1, 4, LAST - 2])
def test_two_swapped_events_are_reordered(
    logged: tuple[Path, QuantumBackedButler], seq: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    lines[seq], lines[seq + 1] = lines[seq + 1], lines[seq]
    report = verify_bad(path, lines)
    # seq + 1 is stored first, seq after it, on line seq + 2.
    assert found(report) == [("reordered", seq, seq + 2)]
    assert f"seq {seq} is stored after seq {seq + 1}" in report.logs[0].problems[0].message


def test_an_event_moved_far_back(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    moved = [*lines[:2], *lines[3:9], lines[2], *lines[9:]]
    report = verify_bad(path, moved)
    assert found(report) == [("reordered", 2, 9)]


@pytest.mark.parametrize("seq", [0, 4, LAST - 1])
def test_a_duplicated_event(logged: tuple[Path, QuantumBackedButler], seq: int) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, [*lines[: seq + 1], lines[seq], *lines[seq + 1 :]])
    assert found(report) == [("duplicated", seq, seq + 2)]
    assert report.logs[0].events == len(lines) + 1


def test_a_duplicated_seal_is_also_after_seal(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, [*lines, lines[-1]])
    assert sorted(found(report)) == [("after_seal", LAST, LAST + 2), ("duplicated", LAST, LAST + 2)]


@pytest.mark.parametrize("cut", [1, 40, -2])
def test_a_truncated_tail(logged: tuple[Path, QuantumBackedButler], cut: int) -> None:
    path, butler = logged
    data = path.read_bytes()
    lines = lines_of(path)
    start = len(data) - len(lines[-1]) - 1
    bad = path.with_name("bad.jsonl")
    bad.write_bytes(data[: start + (cut if cut > 0 else len(lines[-1]) + cut)])
    report = verify_logs(bad)
    assert report.ok is False
    # The torn record is the seal: it is truncated and the log is unsealed.
    assert found(report) == [("truncated", LAST, LAST + 1), ("unsealed", LAST, None)]
    assert report.logs[0].events == LAST
    assert report.logs[0].final_hash == butler.events[-2].hash


def test_a_truncated_tail_further_back(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    torn = b"".join(line + b"\n" for line in lines[:5]) + lines[5][:30]
    bad = path.with_name("bad.jsonl")
    bad.write_bytes(torn)
    report = verify_logs(bad)
    assert found(report) == [("truncated", 5, 6), ("unsealed", 5, None)]


@pytest.mark.parametrize("keep", [1, 5, LAST])
def test_truncation_at_a_line_boundary_is_unsealed(
    logged: tuple[Path, QuantumBackedButler], keep: int
) -> None:
    path, butler = logged
    report = verify_bad(path, lines_of(path)[:keep])
    assert found(report) == [("unsealed", keep, None)]
    assert report.logs[0].final_hash == butler.events[keep - 1].hash


def test_a_whole_last_event_without_its_newline_is_sound(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    bad = path.with_name("whole.jsonl")
    bad.write_bytes(path.read_bytes()[:-1])
    assert verify_logs(bad).ok


def test_trailing_blank_lines_are_harmless_but_not_inside(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    trailing = path.with_name("trailing.jsonl")
    trailing.write_bytes(path.read_bytes() + b"\n\n")
    assert verify_logs(trailing).ok
    report = verify_bad(path, [*lines[:3], b"", *lines[3:]])
    assert found(report) == [("malformed", None, 4)]


def _forged_after_seal(last: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": last["schema_version"],
        "quantum_id": last["quantum_id"],
        "attempt": last["attempt"],
        "seq": last["seq"] + 1,
        "timestamp_ns": last["timestamp_ns"] + 1,
        "kind": "input_marked_unused",
        "prev_hash": last["hash"],
        "dataset_id": str(uuid.uuid4()),
    }


def test_events_appended_after_quantum_finished(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    first = _forged_after_seal(json.loads(lines[-1]))
    second = {**first, "seq": first["seq"] + 1, "prev_hash": json.loads(rehash(first))["hash"]}
    # Two forged events, correctly chained: only the seal catches them.
    report = verify_bad(path, [*lines, rehash(first), rehash(second)])
    assert found(report) == [("after_seal", LAST + 1, LAST + 2), ("after_seal", LAST + 2, LAST + 3)]
    assert f"seq {LAST}" in report.logs[0].problems[0].message
    assert report.logs[0].status == "succeeded"


def test_a_second_quantum_finished(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    again = json.loads(lines[-1])
    again.update(seq=LAST + 1, prev_hash=again["hash"], status="failed")
    report = verify_bad(path, [*lines, rehash(again)])
    assert found(report) == [("after_seal", LAST + 1, LAST + 2)]
    # The first seal decides the status.
    assert report.logs[0].status == "succeeded"


def _other_log(tmp_path: Path, name: str, **kwargs: Any) -> list[bytes]:
    path = tmp_path / name / "q.jsonl"
    run_workflow(tmp_path / name / "repo", path, **kwargs)
    return lines_of(path)


def test_two_logs_spliced(logged: tuple[Path, QuantumBackedButler], tmp_path: Path) -> None:
    path, butler = logged
    ours = lines_of(path)
    theirs = _other_log(tmp_path, "other")
    report = verify_bad(path, ours[:5] + theirs[5:])
    problems = found(report)
    # Every foreign event is named, from the first one on.
    assert [p for p in problems if p[0] == "spliced"] == [
        ("spliced", seq, seq + 1) for seq in range(5, len(ours))
    ]
    # The broken link names the last event of ours; their output is not ours.
    assert [p for p in problems if p[0] != "spliced"] == [
        ("tampered", 4, 6),
        ("inconsistent", OUTPUT_WRITTEN, OUTPUT_WRITTEN + 1),
    ]
    assert report.logs[0].quantum_id == butler.quantum_id
    message = report.logs[0].problems[0].message
    assert str(butler.quantum_id) in message


def test_two_attempts_spliced(logged: tuple[Path, QuantumBackedButler], tmp_path: Path) -> None:
    path, butler = logged
    ours = lines_of(path)
    retry = _other_log(tmp_path, "retry", attempt=1, quantum_id=butler.quantum_id)
    report = verify_bad(path, ours[:LAST] + retry[LAST:])
    assert found(report) == [("spliced", LAST, LAST + 1), ("tampered", LAST - 1, LAST + 1)]
    assert "attempt 1" in report.logs[0].problems[0].message


def test_a_whole_log_appended_to_another(
    logged: tuple[Path, QuantumBackedButler], tmp_path: Path
) -> None:
    path, _ = logged
    ours = lines_of(path)
    theirs = _other_log(tmp_path, "other")
    report = verify_bad(path, ours + theirs)
    problems = found(report)
    kinds = {kind for kind, _, _ in problems}
    assert kinds == {"spliced", "after_seal", "duplicated"}
    assert {(seq, position) for _, seq, position in problems} == {
        (seq, len(ours) + seq + 1) for seq in range(len(theirs))
    }


# -- what only the envelope or the payload says ----------------------------------------------


@pytest.mark.parametrize("seq", [1, 6, LAST])
def test_time_going_backwards(logged: tuple[Path, QuantumBackedButler], seq: int) -> None:
    path, butler = logged
    lines = lines_of(path)
    before = butler.events[seq - 1].timestamp_ns

    def earlier(data: dict[str, Any]) -> None:
        data["timestamp_ns"] = before - 1

    report = verify_bad(path, rechain(lines, seq, earlier))
    assert found(report) == [("time_reversed", seq, seq + 1)]
    assert str(before - 1) in report.logs[0].problems[0].message


def test_equal_timestamps_are_not_reversed(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)

    def same(data: dict[str, Any]) -> None:
        data["timestamp_ns"] = butler.events[4].timestamp_ns

    bad = write_lines(path.with_name("bad.jsonl"), rechain(lines, 5, same))
    assert verify_logs(bad).ok


def test_an_output_the_quantum_does_not_predict(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    stranger = str(uuid.uuid4())

    def other_output(data: dict[str, Any]) -> None:
        data["dataset_id"] = stranger

    report = verify_bad(path, rechain(lines, OUTPUT_WRITTEN, other_output))
    assert found(report) == [("inconsistent", OUTPUT_WRITTEN, OUTPUT_WRITTEN + 1)]
    assert stranger in report.logs[0].problems[0].message


def test_a_pruned_dataset_the_quantum_does_not_own(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    seq = KINDS.index("datasets_pruned")
    stranger = str(uuid.uuid4())

    def removed_other(data: dict[str, Any]) -> None:
        data["removed"] = [stranger]

    report = verify_bad(path, rechain(lines, seq, removed_other))
    assert found(report) == [("inconsistent", seq, seq + 1)]
    assert stranger in report.logs[0].problems[0].message


def test_quantum_started_describing_another_quantum(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)

    def other_quantum(data: dict[str, Any]) -> None:
        data["quantum"]["id"] = str(uuid.uuid4())

    report = verify_bad(path, rechain(lines, 0, other_quantum))
    assert found(report) == [("inconsistent", 0, 1)]


def test_a_log_that_does_not_start_with_quantum_started(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = JsonLinesEventLog(path)
    log.bind(uuid.uuid4(), 0)
    log.append("existence_checked", {"dataset_ids": [str(uuid.uuid4())], "results": [True]})
    log.append("quantum_finished", FINISHED)
    log.close()
    report = verify_logs(path)
    assert found(report) == [("not_started", 0, 1)]
    assert "existence_checked" in report.logs[0].problems[0].message
    # The quantum is still named, from the envelope.
    assert report.logs[0].quantum_id == log.quantum_id


def test_a_first_event_whose_prev_hash_is_not_genesis(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    data = json.loads(lines[0])
    data["prev_hash"] = "1" * 64
    first = rehash(data)
    report = verify_bad(path, [first, *rechain([first, *lines[1:]], 1)[1:]])
    assert found(report) == [("tampered", 0, 1)]
    assert "genesis" in report.logs[0].problems[0].message


@pytest.mark.parametrize("seq", [0, 4, LAST])
def test_a_newer_schema_version_is_unsupported(
    logged: tuple[Path, QuantumBackedButler], seq: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    newer = SCHEMA_VERSION + 1

    def upgrade(data: dict[str, Any]) -> None:
        data["schema_version"] = newer

    report = verify_bad(path, rechain(lines, seq, upgrade))
    assert found(report) == [("unsupported", seq, seq + 1)]
    message = report.logs[0].problems[0].message
    assert f"version {newer}" in message
    assert "upgrade" in message


@pytest.mark.parametrize("junk", [b"not json", b"{", b'{"seq": 4', b"\xff\xfe"])
def test_a_line_that_is_not_json_is_tampering_and_verification_goes_on(
    logged: tuple[Path, QuantumBackedButler], junk: bytes
) -> None:
    path, _ = logged
    lines = lines_of(path)
    # Line 5 (seq 4) is replaced, and seq 9 is duplicated further on: both are
    # reported, and the events in between are not blamed for the lost link.
    bad = [*lines[:4], junk, *lines[5:10], lines[9], *lines[10:]]
    report = verify_bad(path, bad)
    assert found(report) == [("tampered", 4, 5), ("duplicated", 9, 11)]
    assert "JSON" in report.logs[0].problems[0].message
    assert report.logs[0].events == len(lines)  # the junk line is not an event
    assert report.logs[0].sealed


@pytest.mark.parametrize(
    ("junk", "kind"), [(b"not json", "tampered"), (b"[1, 2]", "malformed"), (b"{}", "malformed")]
)
def test_an_inserted_junk_line_blames_no_event(
    logged: tuple[Path, QuantumBackedButler], junk: bytes, kind: str
) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, [*lines[:3], junk, *lines[3:]])
    problems = found(report)
    # The junk line itself is reported, at its line; every event is stored
    # exactly once, in order, so none of them is reported.
    assert [(k, position) for k, _, position in problems] == [(kind, 4)], problems


def test_a_record_without_seq_or_hash_is_malformed(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    data = json.loads(lines[4])
    del data["hash"]
    report = verify_bad(path, [*lines[:4], canonical_json(data), *lines[5:]])
    assert found(report) == [("malformed", 4, 5)]


def _not_a_uuid(data: dict[str, Any]) -> None:
    data["quantum_id"] = "not-a-uuid"


def _listed_output(data: dict[str, Any]) -> None:
    data["dataset_id"] = [data["dataset_id"]]


def _object_output(data: dict[str, Any]) -> None:
    data["dataset_id"] = {"id": data["dataset_id"]}


def _nested_removed(data: dict[str, Any]) -> None:
    data["removed"] = [["x"]]


def _listed_prediction(data: dict[str, Any]) -> None:
    data["quantum"]["outputs"][0]["id"] = ["x"]


@pytest.mark.parametrize(
    ("seq", "edit"),
    [
        (0, _not_a_uuid),
        (OUTPUT_WRITTEN, _listed_output),
        (OUTPUT_WRITTEN, _object_output),
        (KINDS.index("datasets_pruned"), _nested_removed),
        (0, _listed_prediction),
    ],
    ids=["quantum_id", "dataset_id list", "dataset_id object", "removed", "predicted output"],
)
def test_a_field_of_the_wrong_type_is_reported_not_raised(
    logged: tuple[Path, QuantumBackedButler], seq: int, edit: Any
) -> None:
    """`verify_logs` never raises for a bad log, even a forged one whose chain is whole."""
    path, _ = logged
    lines = lines_of(path)
    bad = write_lines(path.with_name("bad.jsonl"), rechain(lines, seq, edit))
    report = verify_logs(bad)  # must not raise
    assert report.ok is False
    assert report.logs[0].problems


@pytest.mark.parametrize("char", [b":", b"g", b"-"])
def test_a_flipped_byte_that_spoils_the_quantum_id_is_reported_not_raised(
    logged: tuple[Path, QuantumBackedButler], char: bytes
) -> None:
    path, _ = logged
    lines = lines_of(path)
    offset = lines[0].index(b'"quantum_id":"') + len(b'"quantum_id":"')
    lines[0] = lines[0][:offset] + char + lines[0][offset + 1 :]
    report = verify_bad(path, lines)  # must not raise
    assert ("tampered", 0, 1) in found(report)


# -- validate ------------------------------------------------------------------------------


def test_validate_catches_a_field_that_breaks_the_schema(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    seq = KINDS.index("input_read")

    def negative(data: dict[str, Any]) -> None:
        data["bytes_read"] = -1

    bad = write_lines(path.with_name("bad.jsonl"), rechain(lines, seq, negative))
    # The chain is whole: integrity checks alone find nothing.
    assert verify_logs(bad).ok
    assert verify_logs(bad, validate=False).ok
    report = verify_logs(bad, validate=True)
    assert report.ok is False
    assert found(report) == [("malformed", seq, seq + 1)]
    assert "bytes_read" in report.logs[0].problems[0].message


def test_validate_catches_an_unknown_kind(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)

    def unknown(data: dict[str, Any]) -> None:
        data["kind"] = "teleported"

    bad = write_lines(path.with_name("bad.jsonl"), rechain(lines, 7, unknown))
    assert verify_logs(bad).ok
    assert found(verify_logs(bad, validate=True)) == [("malformed", 7, 8)]


# -- many logs, and the run digest ------------------------------------------------------------


def _run_of_logs(root: Path, count: int) -> list[tuple[Path, QuantumBackedButler]]:
    made = []
    for index in range(count):
        # Some logs in subdirectories: the directory is searched recursively.
        path = root / "logs" / (f"sub{index % 2}" if index % 3 else "") / f"q{index}.jsonl"
        made.append((path, run_workflow(root / f"repo{index}", path)))
    return made


def test_a_directory_of_logs_gives_one_verdict_per_log(tmp_path: Path) -> None:
    made = _run_of_logs(tmp_path, 6)
    (tmp_path / "logs" / "notes.txt").write_text("not a log")
    report = verify_logs(tmp_path / "logs")
    assert report.ok
    assert len(report.logs) == 6
    ids = [v.quantum_id for v in report.logs]
    assert ids == sorted((b.quantum_id for _, b in made), key=str)
    by_id = {b.quantum_id: (p, b) for p, b in made}
    for verdict in report.logs:
        path, butler = by_id[verdict.quantum_id]  # type: ignore[index]
        assert verdict.location == str(path)
        assert verdict.final_hash == butler.events[-1].hash
    assert report.events == sum(len(b.events) for _, b in made)
    assert report.digest == run_digest((b.quantum_id, 0, b.events[-1].hash) for _, b in made)
    # Any order of the same sources gives the same report.
    paths = [p for p, _ in made]
    random.Random(4).shuffle(paths)
    assert verify_logs(paths) == verify_logs(reversed(paths)) == report


def test_a_bad_log_in_a_directory_is_named_alone(tmp_path: Path) -> None:
    made = _run_of_logs(tmp_path, 4)
    path, butler = made[2]
    lines = lines_of(path)
    write_lines(path, lines[:3] + lines[4:])
    report = verify_logs(tmp_path / "logs")
    assert report.ok is False
    bad = [(v.location, p.kind, p.seq) for v, p in report.problems()]
    assert bad == [(str(path), "missing", 3)]
    for verdict in report.logs:
        assert verdict.ok == (verdict.quantum_id != butler.quantum_id)


def test_the_same_attempt_in_two_files_is_duplicated(tmp_path: Path) -> None:
    made = _run_of_logs(tmp_path, 2)
    path, butler = made[0]
    copy = path.with_name("copy-of-q0.jsonl")
    shutil.copyfile(path, copy)
    report = verify_logs(tmp_path / "logs")
    assert report.ok is False
    assert len(report.logs) == 3
    flagged = [(v.location, p) for v, p in report.problems()]
    # One of the two files is flagged, naming the other.
    [(location, problem)] = flagged
    assert location in (str(path), str(copy))
    other = str(copy) if location == str(path) else str(path)
    assert problem.kind == "duplicated"
    assert problem.seq is None
    assert problem.position is None
    assert str(butler.quantum_id) in problem.message
    assert other in problem.message
    # Both verdicts are there, each with its own final hash.
    twins = [v for v in report.logs if v.quantum_id == butler.quantum_id]
    assert sorted(v.location for v in twins) == sorted([str(path), str(copy)])


def test_another_attempt_of_the_same_quantum_is_not_a_duplicate(tmp_path: Path) -> None:
    first = run_workflow(tmp_path / "repo0", tmp_path / "logs" / "a0.jsonl")
    run_workflow(
        tmp_path / "repo1", tmp_path / "logs" / "a1.jsonl", attempt=1, quantum_id=first.quantum_id
    )
    report = verify_logs(tmp_path / "logs")
    assert report.ok
    assert [(v.quantum_id, v.attempt) for v in report.logs] == [
        (first.quantum_id, 0),
        (first.quantum_id, 1),
    ]


def test_the_same_file_given_twice_is_one_log_or_a_problem(tmp_path: Path) -> None:
    """A file reached twice (listed twice, or by its directory and by name)
    either counts once or is reported: it never changes the digest silently."""
    made = _run_of_logs(tmp_path, 2)
    path = made[0][0]
    single = verify_logs(tmp_path / "logs")
    for sources in ([tmp_path / "logs", path], [path, path, made[1][0]]):
        report = verify_logs(sources)
        assert report.digest == single.digest or not report.ok, sources


def _digest_by_hand(finals: list[tuple[uuid.UUID, int, str]]) -> str:
    lines = sorted(finals, key=lambda f: (str(f[0]), f[1]))
    text = "".join(f"{q} {attempt} {final}\n" for q, attempt, final in lines)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def test_run_digest_definition_and_order_independence() -> None:
    rng = random.Random(7)
    finals = [
        (uuid.UUID(int=rng.getrandbits(128)), rng.choice([0, 1, 2, 10]), f"{k:064x}")
        for k in range(12)
    ]
    # Same quantum, attempts 2 and 10: sorted as numbers, not as text.
    same = uuid.UUID(int=rng.getrandbits(128))
    finals += [(same, 10, "a" * 64), (same, 2, "b" * 64)]
    digest = run_digest(finals)
    assert digest == _digest_by_hand(finals)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    for _ in range(5):
        rng.shuffle(finals)
        assert run_digest(finals) == digest
        assert run_digest(iter(finals)) == digest
    # Attempt 2 of the same quantum is digested before attempt 10.
    ordered = sorted(finals, key=lambda f: (str(f[0]), f[1]))
    text = "".join(f"{q} {a} {h}\n" for q, a, h in ordered).encode()
    assert text.index(f"{same} 2 ".encode()) < text.index(f"{same} 10 ".encode())
    assert hashlib.sha256(text).hexdigest() == digest
    # Every input matters.
    quantum, attempt, final = finals[0]
    assert run_digest([(quantum, attempt + 1, final), *finals[1:]]) != digest
    assert run_digest([(quantum, attempt, "f" * 64), *finals[1:]]) != digest
    assert run_digest(finals[1:]) != digest
    assert run_digest([]) == hashlib.sha256(b"").hexdigest()


def test_run_digest_of_one_log_by_hand() -> None:
    quantum = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    final = "0f" * 32
    line = f"01234567-89ab-cdef-0123-456789abcdef 3 {final}\n".encode()
    assert run_digest([(quantum, 3, final)]) == hashlib.sha256(line).hexdigest()


def test_an_expected_digest_that_differs(tmp_path: Path) -> None:
    _run_of_logs(tmp_path, 3)
    report = verify_logs(tmp_path / "logs")
    assert report.ok
    good = verify_logs(tmp_path / "logs", expected_digest=report.digest)
    assert good.ok
    assert good.expected_digest == report.digest
    wrong = "0" * 64
    bad = verify_logs(tmp_path / "logs", expected_digest=wrong)
    assert bad.ok is False
    assert bad.expected_digest == wrong
    assert all(v.ok for v in bad.logs)  # every log is sound: only the run differs
    [(run, problem)] = list(bad.problems())
    assert run.location == "run"
    assert problem.kind == "digest_mismatch"
    assert problem.seq is None
    assert problem.position is None
    assert report.digest in problem.message
    assert wrong in problem.message


def test_a_log_changed_since_the_digest_was_recorded(tmp_path: Path) -> None:
    made = _run_of_logs(tmp_path, 3)
    recorded = verify_logs(tmp_path / "logs").digest
    # A whole log removed: every remaining log is sound, the digest says otherwise.
    made[1][0].unlink()
    report = verify_logs(tmp_path / "logs", expected_digest=recorded)
    assert report.ok is False
    assert [p.kind for _, p in report.problems()] == ["digest_mismatch"]


# -- live logs -------------------------------------------------------------------------------


def test_a_live_in_memory_log_verifies_like_its_file_copy(tmp_path: Path) -> None:
    butler = run_workflow(tmp_path / "repo")
    assert isinstance(butler.log, InMemoryEventLog)
    report = verify_logs(butler.log)
    assert report.ok
    [verdict] = report.logs
    assert verdict.quantum_id == butler.quantum_id
    assert verdict.events == len(butler.events)
    assert verdict.final_hash == butler.events[-1].hash
    assert verdict.status == "succeeded"
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(b"".join(stored_line(e) + b"\n" for e in butler.events))
    assert read_log(copy) == list(butler.events)
    from_file = verify_logs(copy)
    assert from_file.ok
    assert from_file.digest == report.digest
    # Both in one report: the same attempt twice.
    both = verify_logs([butler.log, copy])
    assert [p.kind for _, p in both.problems()] == ["duplicated"]


def test_a_live_file_log_verifies_like_its_file(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    live = verify_logs(butler.log)
    assert isinstance(butler.log, JsonLinesEventLog)
    assert live.ok
    assert live.digest == verify_logs(path).digest
    assert live.logs[0].final_hash == verify_logs(path).logs[0].final_hash


def test_a_live_unsealed_log(tmp_path: Path) -> None:
    log = InMemoryEventLog()
    butler = QuantumBackedButler.from_predicted(tmp_path / "repo", [], [], log=log)
    butler.markInputUnused(uuid.uuid4())  # type: ignore[arg-type]
    assert found(verify_logs(log)) == [("unsealed", 2, None)]
    butler.close()
    assert verify_logs(log).ok
    assert [s.location for s in stored_logs(log)] == [repr(log)]


def test_problem_and_report_models_are_frozen(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    report = verify_bad(path, lines[:-1])
    problem = report.logs[0].problems[0]
    assert isinstance(problem, Problem)
    with pytest.raises(ValueError, match="frozen"):
        problem.kind = "tampered"  # type: ignore[misc]
    # A report survives a JSON round trip.
    assert VerificationReport.model_validate_json(report.model_dump_json()) == report


# -- properties ------------------------------------------------------------------------------


def _few(factor: int = 4) -> int:
    return max(1, settings.default.max_examples // factor)


@settings(max_examples=_few(), suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_calls=25))
def test_random_logs_read_back_and_verify(sc: Scenario) -> None:
    """Any butler call sequence: the file reads back to the events and verifies."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs" / "quantum.jsonl"
        butler = run_scenario(Path(tmp) / "repo", sc, log=path).butler
        sealed = butler.finished
        report = verify_logs(path)
        assert read_log(path) == list(butler.events)
        assert report.logs[0].events == len(butler.events)
        assert report.logs[0].final_hash == butler.events[-1].hash
        if sealed:
            assert report.ok, list(report.problems())
        else:
            assert found(report) == [("unsealed", len(butler.events), None)]
        butler.close()
        report = verify_logs(path, validate=True)
        assert report.ok, list(report.problems())
        assert read_log(path) == list(butler.events)
        assert report.digest == verify_logs(butler.log).digest


def _flip(data: bytes, position: int, value: int) -> bytes:
    assert data[position] != value
    return data[:position] + bytes([value]) + data[position + 1 :]


@pytest.fixture(scope="module")
def sound_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("sound")
    run_workflow(root / "repo", root / "q.jsonl")
    data = (root / "q.jsonl").read_bytes()
    assert verify_logs(root / "q.jsonl").ok
    return data


# A byte change is drawn without looking at the log (whose bytes differ from run
# to run: ids, timestamps), so that hypothesis can replay what it drew.
_changes = st.tuples(
    st.integers(0, 2**32).map(lambda n: n / 2**32).filter(lambda f: f < 1),
    st.integers(1, 255),
)


def _changed(data: bytes, change: tuple[float, int]) -> tuple[int, bytes]:
    where, delta = change
    position = int(where * len(data))
    return position, _flip(data, position, (data[position] + delta) % 256)


@settings(max_examples=_few(1))
@given(_changes)
def test_any_single_byte_change_is_detected(sound_log: bytes, change: tuple[float, int]) -> None:
    position, bad_bytes = _changed(sound_log, change)
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.jsonl"
        bad.write_bytes(bad_bytes)
        report = verify_logs(bad)
        assert not report.ok, (position, bad_bytes[position : position + 1])


@settings(max_examples=_few(), suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_calls=15), _changes)
def test_any_single_byte_change_of_a_random_log_is_detected(
    sc: Scenario, change: tuple[float, int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs" / "quantum.jsonl"
        run_scenario(Path(tmp) / "repo", sc, log=path).butler.close()
        assert verify_logs(path).ok
        position, bad_bytes = _changed(path.read_bytes(), change)
        path.write_bytes(bad_bytes)
        assert not verify_logs(path).ok, (position, bad_bytes[position : position + 1])


@pytest.mark.parametrize("value", [b" ", b"\t", b"\r", b"x", b"}", b"\x00"])
def test_a_changed_final_newline_is_detected(
    sound_log: bytes, tmp_path: Path, value: bytes
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_flip(sound_log, len(sound_log) - 1, value[0]))
    assert not verify_logs(bad).ok


@pytest.mark.parametrize("style", ["spaces", "hash first", "ascii escapes"])
def test_a_record_rewritten_with_the_same_content_is_detected(
    logged: tuple[Path, QuantumBackedButler], style: str
) -> None:
    """docs/event-log.md: the hash is the record's checksum, and any change to a
    record's bytes changes what its hash must be; a record is canonical JSON
    with ``hash`` last. The same content in other bytes is a changed record."""
    path, _ = logged
    lines = lines_of(path)
    data = json.loads(lines[0])  # quantum_started holds non-ASCII text
    if style == "spaces":
        rewritten = json.dumps(data, ensure_ascii=False).encode()
    elif style == "hash first":
        body = {k: v for k, v in data.items() if k != "hash"}
        hash_first = {"hash": data["hash"], **body}
        rewritten = json.dumps(hash_first, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        rewritten = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()
    assert rewritten != lines[0]
    assert json.loads(rewritten) == data
    report = verify_bad(path, [rewritten, *lines[1:]])
    assert [(kind, seq) for kind, seq, _ in found(report)] == [("tampered", 0)]


def test_every_single_byte_of_one_event_is_covered(sound_log: bytes, tmp_path: Path) -> None:
    """Exhaustively, over the bytes of one middle event (not its newline)."""
    lines = sound_log.split(b"\n")[:-1]
    start = sum(len(line) + 1 for line in lines[:7])
    bad = tmp_path / "bad.jsonl"
    for position in range(start, start + len(lines[7])):
        for mask in (0x01, 0x20, 0x80):
            bad.write_bytes(_flip(sound_log, position, sound_log[position] ^ mask))
            report = verify_logs(bad)
            assert not report.ok, position
            # Whatever the byte, the report names the changed line.
            assert 8 in {p.position for _, p in report.problems()}, position


# -- verification of SQLite stores ------------------------------------------------------------


def test_verifying_a_foreign_sqlite_file_leaves_it_alone(tmp_path: Path) -> None:
    # BUG: verification opens any SQLite file as a store for writing: it
    # switches the file to WAL mode and creates the qbb tables in it, then
    # reports "0 of 0 logs verified" and ok. A check must not write to what it
    # checks (nor need write access: a read-only archive cannot be verified).
    db = tmp_path / "other-app.db"
    edit(db, "CREATE TABLE notes (body TEXT)")
    before = db.read_bytes()
    try:
        report = verify_logs(db)
    except QbbEventsError:
        pass
    else:
        assert not report.ok, "a database holding no event store verified as sound"
    connection = sqlite3.connect(db)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()
    assert tables == ["notes"]
    assert mode == "delete"
    assert db.read_bytes() == before


def test_verification_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    # BUG (same root cause): verification opens the store with a BEGIN
    # IMMEDIATE transaction, so it queues behind any writer; with WAL a reader
    # never needs to. Here it would wait the 60 s busy timeout, then raise.
    db, _ = sqlite_copy(tmp_path)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(verify_logs(db)), daemon=True)
    try:
        thread.start()
        thread.join(3.0)
        finished = not thread.is_alive()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        thread.join(30.0)
    assert finished, "verify_logs waited for another connection's write lock"


def test_a_damaged_sqlite_file_is_reported_not_raised(tmp_path: Path) -> None:
    # BUG: verify_logs is documented to never raise for a bad log and has an
    # `unreadable` problem for a store that cannot be read, but a damaged
    # store file raises LogWriteError ("opening the store failed: file is not
    # a database") -- a *write* error, from a read.
    db = tmp_path / "run.sqlite"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    report = verify_logs(db)
    assert "unreadable" in kinds(report)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE qbb_events SET record = CAST(record AS TEXT) WHERE seq = 3",
        "UPDATE qbb_logs SET quantum_id = 'not-a-uuid'",
    ],
    ids=["record-stored-as-text", "claim-id-not-a-uuid"],
)
def test_a_damaged_sqlite_store_gives_a_report_not_an_untyped_error(
    tmp_path: Path, damage: str
) -> None:
    # BUG: stored_log() calls bytes(record) (TypeError for a TEXT value) and
    # quanta() calls uuid.UUID(...) (ValueError), outside what _LogChecker
    # catches: verify_logs raises, and `qbb-events verify` dies with a traceback.
    db, _ = sqlite_copy(tmp_path)
    edit(db, damage)
    try:
        report = verify_logs(db)
    except QbbEventsError:
        pass  # a typed error would do too
    else:
        assert not report.ok
    result = cli("verify", db)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE qbb_events SET seq = 99 WHERE seq = 12",
        "UPDATE qbb_events SET seq = seq + 100 WHERE seq >= 5",
        "DELETE FROM qbb_logs",
        "DELETE FROM qbb_events WHERE seq = 12",
    ],
    ids=["last-seq-edited", "seqs-shifted", "claim-row-deleted", "last-row-deleted"],
)
def test_sqlite_verification_sees_what_the_store_itself_refuses(
    tmp_path: Path, damage: str
) -> None:
    # BUG: verification reads only the record bytes, ordered by the seq column,
    # of the quanta listed in qbb_logs. It never compares the key columns with
    # the record nor the claim row with the rows, so: an edited seq column
    # verifies ok; deleting the claim row hides the whole log (0 logs, ok); a
    # deleted quantum_finished row reads as "unsealed: the quantum did not
    # finish" though the claim row says 13 events, sealed. store.read()
    # refuses every one of these logs (or no longer finds it).
    db, quantum_id = sqlite_copy(tmp_path)
    edit(db, damage)
    with SqliteEventStore(db) as store, pytest.raises((LogCorruptedError, LookupError)):
        store.read(uuid.UUID(quantum_id), 0)
    report = verify_logs(db)
    assert not report.ok, "a store that SqliteEventStore.read refuses verified as sound"
    assert set(kinds(report)) != {"unsealed"}, kinds(report)


# -- verification edge cases --------------------------------------------------------------------


def test_a_forged_huge_seq_is_reported_promptly(tmp_path: Path) -> None:
    # BUG: _LogChecker.finish lists every missing seq one by one
    # (range(max_seq + 1)), so one record whose seq was edited to 2**62 and
    # re-hashed (an attack the docs discuss) makes verification run out of
    # memory or never end instead of reporting one "missing" run.
    path = sealed_log(tmp_path / "src")
    lines = path.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    last["seq"] = 2**62
    lines[-1] = rehashed(last) + b"\n"
    path.write_bytes(b"".join(lines))
    code = textwrap.dedent(
        """
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from qbb_events import verify_logs
        report = verify_logs(sys.argv[1])
        print(" ".join(sorted({p.kind for _, p in report.problems()})))
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=8
        )
    except subprocess.TimeoutExpired:
        pytest.fail("verification of one forged record did not finish in 8 s")
    assert done.returncode == 0, done.stderr[-300:]
    assert "missing" in done.stdout.split()


def test_a_live_log_resumed_from_an_older_schema_verifies_and_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BUG: the docs promise old logs "keep verifying forever". A live log
    # resumed from a version-1 file under a newer library holds upcast events;
    # sources._live_log (and check_chain) re-serialize those upcast events and
    # hash them, so every v1 event is reported "tampered" and copy_logs
    # refuses the log. The file itself verifies fine.
    path = tmp_path / "partial.jsonl"
    path.write_bytes(b"".join(V1_LOG.read_bytes().splitlines(keepends=True)[:12]))
    as_version_2(monkeypatch, [])
    log = JsonLinesEventLog(path, resume=True)
    try:
        assert kinds(verify_logs(path)) == ["unsealed"]
        assert kinds(verify_logs(log)) == ["unsealed"]
        assert copy_logs(log, tmp_path / "out").ok
    finally:
        log.close()


# -- sources that cannot be read (issue 8) -----------------------------------------------------


def test_an_empty_log_among_good_logs_is_reported(tmp_path: Path) -> None:
    for k in range(2):
        run_workflow(tmp_path / f"repo{k}", tmp_path / "logs" / f"q{k}.jsonl")
    (tmp_path / "logs" / "crashed.jsonl").touch()
    report = verify_logs(tmp_path / "logs")
    assert not report.ok
    [(verdict, problem)] = list(report.problems())
    assert verdict.location.endswith("crashed.jsonl")
    assert problem.kind == "not_started"
    assert sum(v.ok for v in report.logs) == 2


def test_a_subdirectory_that_cannot_be_listed_is_reported_unreadable(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "q.jsonl")
    hidden = tmp_path / "logs" / "node7"
    run_workflow(tmp_path / "repo7", hidden / "q7.jsonl")
    with unlistable(hidden):
        report = verify_logs(tmp_path / "logs")
    assert not report.ok
    assert [(v.location, p.kind) for v, p in report.problems()] == [(str(hidden), "unreadable")]
    assert "Permission denied" in next(iter(report.problems()))[1].message


def test_a_store_in_a_readonly_directory_verifies(tmp_path: Path) -> None:
    store_path = tmp_path / "archive" / "run.sqlite"
    with SqliteEventStore(store_path) as store:
        run_workflow(tmp_path / "repo", store.log())
    before = {p.name: p.read_bytes() for p in store_path.parent.iterdir()}
    with frozen(store_path.parent):
        report = verify_logs(store_path)
        copied = copy_logs(store_path, tmp_path / "out")
    assert report.ok, list(report.problems())
    assert report.events == 13
    assert copied.ok
    assert {p.name: p.read_bytes() for p in store_path.parent.iterdir()} == before


@pytest.mark.parametrize(
    "content", [b"\x00\x01\x02binary\xff" * 50, b"\x89PNG\r\n\x1a\n" + bytes(range(256))]
)
def test_a_binary_file_is_refused_as_not_a_log_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "picture.bin"
    path.write_bytes(content)
    report = verify_logs(path)
    [(_, problem)] = list(report.problems())
    assert problem.kind == "unreadable"
    assert "not a JSON Lines log" in problem.message
    assert "binary" in problem.message
    assert path.read_bytes() == content


def test_a_parquet_export_is_named_as_such(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "q.jsonl")
    export_parquet(tmp_path / "logs", tmp_path / "export")
    report = verify_logs(tmp_path / "export")
    [(_, problem)] = list(report.problems())
    assert problem.kind == "unreadable"
    assert "Parquet export" in problem.message
    assert "verify_export" in problem.message


def test_source_kind_tells_every_source_apart(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "q.jsonl")
    copy_logs(tmp_path / "logs", tmp_path / "s.sqlite")
    export_parquet(tmp_path / "logs", tmp_path / "export")
    assert source_kind(tmp_path / "logs" / "q.jsonl") == "jsonl"
    assert source_kind(tmp_path / "logs") == "directory"
    assert source_kind(tmp_path / "s.sqlite") == "sqlite"
    assert source_kind(f"sqlite:///{tmp_path / 's.sqlite'}") == "sqlite"
    assert source_kind("postgresql+psycopg://u@h/db") == "postgresql"
    assert source_kind(tmp_path / "export") == "parquet"
    with pytest.raises(FileNotFoundError):
        source_kind(tmp_path / "none")


def test_verification_keeps_no_per_event_state(tmp_path: Path) -> None:
    # Bounded memory: the checker's seq runs stay one run for a sound log,
    # so tracemalloc's peak does not grow with the events (the benchmark
    # measures RSS at 10 million events).
    import tracemalloc

    peaks = []
    for events in (10_000, 40_000):
        log = JsonLinesEventLog(tmp_path / f"l{events}.jsonl", sync=SyncPolicy.on_close())
        butler = QuantumBackedButler.initialize(
            tmp_path / f"repo{events}", empty_quantum(str(uuid.uuid4())), log=log
        )
        for index in range(events):
            log.append("existence_checked", existence_payload(index))
        butler.close()
        log.close()
        tracemalloc.start()
        assert verify_logs(log.path).ok
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.2, peaks
