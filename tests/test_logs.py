"""The JSON Lines log: its file format, refusal to overwrite, and reading back with checks."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.durable import kinds
from support.store_workers import empty_quantum, existence_payload
from support.workflows import (
    DIMS,
    RUN,
    body_of,
    lines_of,
    rehash,
    run_workflow,
    stored_line,
    write_lines,
)

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    FoldError,
    JsonLinesEventLog,
    LogCorruptedError,
    LogExistsError,
    LogWriteError,
    ProvenanceReducer,
    QbbEventsError,
    Quantum,
    QuantumBackedButler,
    SchemaVersionError,
    SyncPolicy,
    TornLogWarning,
    UnknownEventKindError,
    canonical_json,
    chain_hash,
    check_chain,
    fold,
    iter_log,
    parse_event,
    read_log,
    verify_logs,
)


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, QuantumBackedButler]:
    """A finished butler and the JSON Lines file holding its events."""
    path = tmp_path / "logs" / "quantum.jsonl"
    return path, run_workflow(tmp_path / "repo", path)


def assert_corrupt(path: Path, *, line: int, seq: int | None = None) -> LogCorruptedError:
    """Check that reading ``path`` fails at ``line`` (and ``seq``), named in the message."""
    with pytest.raises(LogCorruptedError) as info:
        read_log(path)
    err = info.value
    message = str(err)
    assert err.line == line, message
    assert f"line {line}" in message
    if seq is not None:
        assert err.seq == seq, message
    if err.seq is not None:
        assert f"seq {err.seq}" in message
    return err


# -- the file format ---------------------------------------------------------


def test_one_canonical_event_per_line(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert b"\r" not in data
    lines = lines_of(path)
    assert len(lines) == len(butler.events)
    for line, event in zip(lines, butler.events, strict=True):
        assert line
        assert line == stored_line(event)
        decoded = json.loads(line)
        assert decoded == event.model_dump(mode="json")
        assert parse_event(decoded) == event
    # Non-ASCII text is stored as UTF-8, not escaped.
    assert "Zürich ✓".encode() in data
    assert "calibrate_tâche".encode() in data
    assert b"\\u" not in data


def test_events_are_written_and_flushed_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    raw = DatasetType("raw", "json", DIMS)
    calexp = DatasetType("calexp", "json", DIMS)
    present = DatasetRef(raw, {"visit": 1, "detector": 0}, RUN)
    out = DatasetRef(calexp, {"visit": 1, "detector": 0}, RUN)
    datastore = FileDatastore(tmp_path / "repo")
    datastore.put([1, 2], present)
    quantum = Quantum("task", {"visit": 1}, inputs=[present], outputs=[out])
    sizes: list[int] = []

    def check_file(butler: QuantumBackedButler) -> None:
        # Read through a separate open(), while the writer still holds the file.
        with open(path, "rb") as stream:
            data = stream.read()
        assert data.endswith(b"\n")
        lines = data.split(b"\n")[:-1]
        assert len(lines) == len(butler.events)
        assert parse_event(json.loads(lines[-1])) == butler.events[-1]
        assert not sizes or len(data) > sizes[-1]
        sizes.append(len(data))
        assert os.path.getsize(path) == len(data)

    butler = QuantumBackedButler.initialize(datastore, quantum, log=path)
    check_file(butler)
    for call in (
        lambda: butler.stored(present),
        lambda: butler.get(present),
        lambda: butler.getDeferred(present),
        lambda: butler.markInputUnused(present),
        lambda: butler.put({"x": 1}, out),
        lambda: butler.finish("succeeded"),
    ):
        call()
        check_file(butler)
    assert read_log(path) == list(butler.events)
    butler.close()
    assert read_log(path) == list(butler.events)
    assert len(sizes) == 7


def test_read_log_returns_the_butler_events(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    events = read_log(path)
    assert events == list(butler.events)
    assert read_log(str(path)) == events
    check_chain(events)
    assert [e.seq for e in events] == list(range(len(events)))


def test_read_log_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_log(path) == []


# -- refusing to overwrite -----------------------------------------------------


def test_log_with_events_is_refused(
    logged: tuple[Path, QuantumBackedButler], tmp_path: Path
) -> None:
    path, _ = logged
    before = path.read_bytes()
    stat = path.stat()
    with pytest.raises(LogExistsError) as info:
        JsonLinesEventLog(path)
    assert isinstance(info.value, FileExistsError)
    assert str(path) in str(info.value)
    with pytest.raises(FileExistsError):
        run_workflow(tmp_path / "other_repo", path)
    with pytest.raises(LogExistsError):
        QuantumBackedButler.from_predicted(tmp_path / "repo", [], [], log=str(path))
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


def test_log_holding_only_a_torn_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"schema_vers')
    with pytest.raises(LogExistsError):
        JsonLinesEventLog(path)
    assert path.read_bytes() == b'{"schema_vers'


def test_empty_existing_file_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.touch()
    butler = run_workflow(tmp_path / "repo", path)
    assert read_log(path) == list(butler.events)
    assert len(lines_of(path)) == len(butler.events)


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "q.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    assert read_log(path) == list(butler.events)


# -- corruption: a changed byte -------------------------------------------------


def _flip_at(path: Path, lines: list[bytes], line: int, offset: int, new: bytes) -> Path:
    changed = list(lines)
    old = changed[line - 1]
    assert old[offset : offset + 1] != new
    changed[line - 1] = old[:offset] + new + old[offset + 1 :]
    return write_lines(path, changed)


def _find(line: bytes, needle: bytes) -> int:
    offset = line.find(needle)
    assert offset >= 0, needle
    return offset


def test_changed_byte_in_a_dataset_id(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)
    index = next(i for i, e in enumerate(butler.events) if e.kind == "output_written")
    dataset_id = str(butler.events[index].dataset_id).encode()  # type: ignore[union-attr]
    start = _find(lines[index], b'"dataset_id":"' + dataset_id) + len(b'"dataset_id":"')
    bad = path.with_name("bad.jsonl")
    for offset in (start, start + 9, start + 20, start + 35):
        char = lines[index][offset : offset + 1]
        # Another hex digit (a different dataset), or the same digit upper-cased
        # (the same UUID, but not the bytes that were hashed).
        for new in (b"0" if char != b"0" else b"1", char.upper() if char.isalpha() else b"f"):
            if new != char:
                _flip_at(bad, lines, index + 1, offset, new)
                assert_corrupt(bad, line=index + 1, seq=index)


def test_changed_byte_in_the_hash(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for index in (0, 4, len(lines) - 1):
        start = _find(lines[index], b'"hash":"') + len(b'"hash":"')
        for offset in (start, start + 31, start + 63):
            char = lines[index][offset : offset + 1]
            _flip_at(bad, lines, index + 1, offset, b"1" if char != b"1" else b"2")
            err = assert_corrupt(bad, line=index + 1, seq=index)
            assert "hash" in str(err)
            _flip_at(bad, lines, index + 1, offset, b"G")
            assert_corrupt(bad, line=index + 1, seq=index)


def test_changed_byte_in_the_prev_hash(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for index in (0, 5):
        offset = _find(lines[index], b'"prev_hash":"') + len(b'"prev_hash":"') + 10
        char = lines[index][offset : offset + 1]
        _flip_at(bad, lines, index + 1, offset, b"7" if char != b"7" else b"8")
        assert_corrupt(bad, line=index + 1, seq=index)


@pytest.mark.parametrize("field", [b"timestamp_ns", b"seq", b"attempt", b"bytes_read", b"pid"])
def test_changed_byte_in_a_number(logged: tuple[Path, QuantumBackedButler], field: bytes) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    index = next(i for i, line in enumerate(lines) if b'"%s":' % field in line)
    offset = _find(lines[index], b'"%s":' % field) + len(field) + 3
    assert lines[index][offset : offset + 1].isdigit()
    for new in (b"5", b"9", b"x", b"-"):
        if new != lines[index][offset : offset + 1]:
            _flip_at(bad, lines, index + 1, offset, new)
            assert_corrupt(bad, line=index + 1)


def test_changed_kind_or_version(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    offset = _find(lines[2], b'"kind":"') + len(b'"kind":"') + 1
    _flip_at(bad, lines, 3, offset, b"Q")
    err = assert_corrupt(bad, line=3, seq=2)
    assert isinstance(err, UnknownEventKindError)
    offset = _find(lines[2], b'"schema_version":') + len(b'"schema_version":')
    _flip_at(bad, lines, 3, offset, b"9")
    err = assert_corrupt(bad, line=3, seq=2)
    assert isinstance(err, SchemaVersionError)
    assert "upgrade" in str(err)


def test_every_single_byte_change_is_caught(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for index, line in enumerate(lines):
        for offset in range(len(line)):
            # Another digit or letter, another case, or a broken delimiter.
            new = bytes([line[offset] ^ (0x01, 0x20, 0x02)[offset % 3]])
            if new != b"\n":
                _flip_at(bad, lines, index + 1, offset, new)
                assert_corrupt(bad, line=index + 1)


def test_a_line_that_is_not_an_event(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for junk in (b"", b"[1,2]", b"null", b'"text"', b"{}", b"\xff\xfe"):
        write_lines(bad, [*lines[:3], junk, *lines[3:]])
        assert_corrupt(bad, line=4)


# -- corruption: lines removed, moved, repeated, added ----------------------------


def test_deleted_line(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for number in range(1, len(lines)):  # the last line's loss is a plain truncation
        write_lines(bad, lines[: number - 1] + lines[number:])
        err = assert_corrupt(bad, line=number, seq=number)
        assert "missing" in str(err)


def test_swapped_lines(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for number in range(1, len(lines)):
        swapped = list(lines)
        swapped[number - 1], swapped[number] = swapped[number], swapped[number - 1]
        write_lines(bad, swapped)
        assert_corrupt(bad, line=number, seq=number)


def test_duplicated_line(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for number in range(1, len(lines) + 1):
        write_lines(bad, [*lines[:number], lines[number - 1], *lines[number:]])
        err = assert_corrupt(bad, line=number + 1, seq=number - 1)
        assert "duplicated" in str(err)


def test_event_appended_after_quantum_finished(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)
    last = butler.events[-1]
    assert last.kind == "quantum_finished"
    forged = {
        "schema_version": last.schema_version,
        "quantum_id": str(last.quantum_id),
        "attempt": last.attempt,
        "seq": last.seq + 1,
        "timestamp_ns": last.timestamp_ns + 1,
        "kind": "input_marked_unused",
        "prev_hash": last.hash,
        "dataset_id": str(uuid.uuid4()),
    }
    line = rehash(forged)
    # The forgery is a valid, correctly chained event: only the seal can catch it.
    event = parse_event(json.loads(line))
    assert event.prev_hash == last.hash
    assert event.hash == chain_hash(last.hash, forged)
    bad = write_lines(path.with_name("bad.jsonl"), [*lines, line])
    err = assert_corrupt(bad, line=len(lines) + 1, seq=last.seq + 1)
    assert "quantum_finished" in str(err)
    assert "sealed" in str(err)
    # A second quantum_finished is no better.
    finish_again = {**body_of(last), "seq": last.seq + 1, "prev_hash": last.hash}
    write_lines(bad, [*lines, rehash(finish_again)])
    assert_corrupt(bad, line=len(lines) + 1, seq=last.seq + 1)


def test_edited_event_with_recomputed_hash(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    for number in range(1, len(lines)):  # the next event's prev_hash catches the edit
        data = json.loads(lines[number - 1])
        data["timestamp_ns"] += 1
        write_lines(bad, [*lines[: number - 1], rehash(data), *lines[number:]])
        err = assert_corrupt(bad, line=number + 1, seq=number)
        assert "prev_hash" in str(err)


def test_failed_read_forged_into_success(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)
    index = next(
        i
        for i, e in enumerate(butler.events)
        if e.kind == "input_read" and e.failure is not None  # type: ignore[union-attr]
    )
    data = json.loads(lines[index])
    data.update(ok=True, failure=None, bytes_read=12)
    forged = rehash(data)
    parse_event(json.loads(forged))  # a valid event on its own
    bad = write_lines(path.with_name("bad.jsonl"), [*lines[:index], forged, *lines[index + 1 :]])
    assert_corrupt(bad, line=index + 2, seq=index + 1)


def test_edited_event_without_rehash(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)
    index = next(i for i, e in enumerate(butler.events) if e.kind == "output_written")
    data = json.loads(lines[index])
    data["record"]["file_size"] += 1
    bad = write_lines(
        path.with_name("bad.jsonl"), [*lines[:index], canonical_json(data), *lines[index + 1 :]]
    )
    err = assert_corrupt(bad, line=index + 1, seq=index)
    assert "hash" in str(err)


def _other_log(tmp_path: Path, name: str, **kwargs: Any) -> list[bytes]:
    path = tmp_path / name / "q.jsonl"
    run_workflow(tmp_path / name / "repo", path, **kwargs)
    return lines_of(path)


def test_spliced_logs_of_two_quanta(
    logged: tuple[Path, QuantumBackedButler], tmp_path: Path
) -> None:
    path, _ = logged
    ours = lines_of(path)
    theirs = _other_log(tmp_path, "other")
    assert len(theirs) == len(ours)
    bad = path.with_name("bad.jsonl")
    for number in range(2, len(ours) + 1):
        write_lines(bad, ours[: number - 1] + theirs[number - 1 :])
        err = assert_corrupt(bad, line=number, seq=number - 1)
        assert "spliced" in str(err)
    # Another log appended whole restarts at seq 0.
    write_lines(bad, ours + theirs)
    assert_corrupt(bad, line=len(ours) + 1, seq=0)
    # A single foreign line in the middle.
    write_lines(bad, [*ours[:4], theirs[4], *ours[5:]])
    assert_corrupt(bad, line=5, seq=4)


def test_spliced_logs_of_two_attempts(
    logged: tuple[Path, QuantumBackedButler], tmp_path: Path
) -> None:
    path, butler = logged
    ours = lines_of(path)
    retry = _other_log(tmp_path, "retry", attempt=1, quantum_id=butler.quantum_id)
    bad = path.with_name("bad.jsonl")
    write_lines(bad, ours[:5] + retry[5:])
    err = assert_corrupt(bad, line=6, seq=5)
    assert "spliced" in str(err)
    # The same attempt run twice: the ids match, the chain does not.
    rerun = _other_log(tmp_path, "rerun", attempt=0, quantum_id=butler.quantum_id)
    write_lines(bad, ours[:5] + rerun[5:])
    err = assert_corrupt(bad, line=6, seq=5)
    assert "prev_hash" in str(err)


# -- torn and truncated logs ---------------------------------------------------


def test_torn_last_line_is_not_corruption(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    data = path.read_bytes()
    lines = lines_of(path)
    last_start = len(data) - len(lines[-1]) - 1
    torn = path.with_name("torn.jsonl")
    for cut in (1, 2, len(lines[-1]) // 2, len(lines[-1]) - 1):
        torn.write_bytes(data[: last_start + cut])
        with pytest.warns(TornLogWarning, match=f"line {len(lines)}"):
            events = read_log(torn)
        assert events == list(butler.events[:-1])


def test_a_whole_last_event_without_its_newline_is_read(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    whole = path.with_name("whole.jsonl")
    whole.write_bytes(path.read_bytes()[:-1])
    assert read_log(whole) == list(butler.events)  # no warning: warnings are errors here


def test_blank_lines_only_at_the_end_are_tolerated(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    data = path.read_bytes()
    trailing = path.with_name("trailing.jsonl")
    trailing.write_bytes(data + b"\n\n")
    assert read_log(trailing) == list(butler.events)
    lines = lines_of(path)
    inside = write_lines(path.with_name("inside.jsonl"), [*lines[:2], b"", *lines[2:]])
    with pytest.raises(LogCorruptedError, match="blank line") as info:
        read_log(inside)
    assert info.value.line == 3


def test_torn_line_in_a_truncated_log(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    lines = lines_of(path)
    torn = path.with_name("torn.jsonl")
    for keep in range(len(lines)):
        partial = lines[keep][: len(lines[keep]) // 3]
        torn.write_bytes(b"".join(line + b"\n" for line in lines[:keep]) + partial)
        with pytest.warns(TornLogWarning):
            assert read_log(torn) == list(butler.events[:keep])


def test_torn_line_followed_by_more_lines_is_corruption(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, _ = logged
    lines = lines_of(path)
    bad = path.with_name("bad.jsonl")
    write_lines(bad, [*lines[:3], lines[3][:40], *lines[4:]])
    assert_corrupt(bad, line=4)


def test_truncation_at_a_line_boundary_reads_without_warning(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    lines = lines_of(path)
    cut = path.with_name("cut.jsonl")
    for keep in range(len(lines) + 1):
        write_lines(cut, lines[:keep])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert read_log(cut) == list(butler.events[:keep])


# -- regression: a failed append is cut back ------------------------------------------


class _FailingWrites:
    """Stands in for the ``os`` module of the JSON Lines log (as the review's r9 does).

    The ``fail_at``-th write (counting from 1) writes ``keep(data)`` bytes, and the next
    raises ``OSError(ENOSPC)``; every other write goes through.
    """

    def __init__(self, fail_at: int, keep: Any) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.keep = keep

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.calls == self.fail_at:
            kept = self.keep(len(data))
            if kept:
                return os.write(fd, bytes(data[:kept]))
            self.calls += 1
        if self.calls == self.fail_at + 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


@pytest.mark.parametrize(
    "keep",
    [lambda n: 20, lambda n: 0, lambda n: n // 2, lambda n: n - 1],
    ids=["prefix", "nothing", "half", "all-but-newline"],
)
def test_partial_append_is_cut_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: Any
) -> None:
    path = tmp_path / "q.jsonl"
    raw = DatasetType("raw", "json", DIMS)
    present = DatasetRef(raw, {"visit": 1, "detector": 0}, RUN)
    FileDatastore(tmp_path / "repo").put([1], present)
    butler = QuantumBackedButler.initialize(
        tmp_path / "repo", Quantum("t", {}, [present], []), log=path
    )
    assert butler.stored(present)
    before = butler.events
    fake = _FailingWrites(fail_at=1, keep=keep)
    monkeypatch.setattr("qbb_events.logs.jsonl._log.os", fake)
    with pytest.raises(LogWriteError) as info:
        butler.stored(present)
    monkeypatch.undo()
    error = info.value
    assert isinstance(error, OSError)
    assert isinstance(error, QbbEventsError)
    assert error.errno == errno.ENOSPC
    assert str(path) in str(error)
    # The log holds whole lines only: exactly the events appended before.
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert lines_of(path) == [stored_line(e) for e in before]
    assert butler.events == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_log(path) == list(before)
    # Later calls append normally, right after the last whole line.
    assert butler.get(present) == [1]
    butler.markInputUnused(present)
    butler.close()
    events = read_log(path)
    assert events == list(butler.events)
    assert [e.kind for e in events] == [
        "quantum_started",
        "existence_checked",
        "input_read",
        "input_marked_unused",
        "quantum_finished",
    ]
    check_chain(events)
    assert fold(events) == butler.extract_provenance_data()


# -- regression: one writer per log file ------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new", "empty file"])
def test_a_second_writer_on_the_same_path_is_refused(tmp_path: Path, existing: bool) -> None:
    path = tmp_path / "q.jsonl"
    if existing:
        path.touch()
    first = JsonLinesEventLog(path)
    assert path.read_bytes() == b""
    # The file is still empty, but it is taken.
    with pytest.raises(LogExistsError, match="in use") as info:
        JsonLinesEventLog(path)
    assert isinstance(info.value, FileExistsError)
    with pytest.raises(LogExistsError):
        QuantumBackedButler.from_predicted(tmp_path / "repo", [], [], log=path)
    butler = run_workflow(tmp_path / "repo", first)  # closes the butler, so the log
    with pytest.raises(LogExistsError, match="already holds events"):
        JsonLinesEventLog(path)
    assert read_log(path) == list(butler.events)


def test_a_closed_empty_log_can_be_taken_again(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    JsonLinesEventLog(path).close()
    butler = run_workflow(tmp_path / "repo", path)
    assert read_log(path) == list(butler.events)


LOCK_PROBE = textwrap.dedent(
    """
    import sys
    from qbb_events import JsonLinesEventLog, LogExistsError
    try:
        JsonLinesEventLog(sys.argv[1]).close()
    except LogExistsError as err:
        print("refused", err)
    else:
        print("taken")
    """
)


def test_a_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"

    def probe() -> str:
        result = subprocess.run(
            [sys.executable, "-c", LOCK_PROBE, str(path)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return result.stdout.decode()

    log = JsonLinesEventLog(path)
    assert probe().startswith("refused")
    assert "in use" in probe()
    log.close()
    assert probe() == "taken\n"


# -- regression: iter_log streams ------------------------------------------------------


def test_iter_log_streams_the_events(logged: tuple[Path, QuantumBackedButler]) -> None:
    path, butler = logged
    stream = iter_log(path)
    assert isinstance(stream, Iterator)
    assert iter(stream) is stream
    first = next(stream)
    assert first == butler.events[0]
    assert [first, *stream] == read_log(path) == list(butler.events)
    assert list(iter_log(str(path))) == list(butler.events)
    provenance = butler.extract_provenance_data()
    assert fold(iter_log(path)) == provenance
    assert fold(iter_log(path)) == fold(read_log(path))


def test_iter_log_checks_each_line_when_it_reaches_it(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    lines = lines_of(path)
    bad = write_lines(path.with_name("bad.jsonl"), [*lines[:4], b"not json", *lines[5:]])
    stream = iter_log(bad)
    assert [next(stream) for _ in range(4)] == list(butler.events[:4])
    with pytest.raises(LogCorruptedError) as info:
        next(stream)
    assert info.value.line == 5


def test_iter_log_warns_of_a_torn_line_only_when_it_reaches_it(
    logged: tuple[Path, QuantumBackedButler],
) -> None:
    path, butler = logged
    lines = lines_of(path)
    torn = path.with_name("torn.jsonl")
    torn.write_bytes(path.read_bytes()[:-10])
    stream = iter_log(torn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = [next(stream) for _ in range(len(lines) - 1)]
    assert head == list(butler.events[:-1])
    with pytest.warns(TornLogWarning, match=f"line {len(lines)}"):
        assert list(stream) == []
    with pytest.warns(TornLogWarning):
        assert fold(iter_log(torn)) == fold(butler.events[:-1])


def test_iter_log_memory_is_bounded_by_a_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    raw = DatasetType("raw", "json", DIMS)
    refs = [DatasetRef(raw, {"visit": 1, "detector": k}, RUN) for k in range(100)]
    quantum = Quantum("t", {}, refs, [])
    butler = QuantumBackedButler.initialize(tmp_path / "repo", quantum, log=path)
    for _ in range(250):
        butler.stored_many(refs)
    butler.close()
    size = path.stat().st_size
    assert size > 1_000_000
    tracemalloc.start()
    try:
        count = 0
        for _event in iter_log(path):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(butler.events)
    assert peak < size / 4, (peak, size)


# -- regression: kinds that are not strings ------------------------------------------------


@pytest.mark.parametrize("kind", [["quantum_started"], ["x"], {"kind": 1}, 1, None])
@pytest.mark.parametrize("line", [1, 3])
def test_a_kind_that_is_not_a_string_is_corruption(
    logged: tuple[Path, QuantumBackedButler], kind: Any, line: int
) -> None:
    path, _ = logged
    lines = lines_of(path)
    data = json.loads(lines[line - 1])
    data["kind"] = kind
    bad = path.with_name("bad.jsonl")
    for new in (rehash(data), json.dumps(data).encode()):
        write_lines(bad, [*lines[: line - 1], new, *lines[line:]])
        err = assert_corrupt(bad, line=line, seq=line - 1)
        assert isinstance(err, UnknownEventKindError)
        assert repr(kind) in str(err)
    # The review's own line.
    write_lines(bad, [json.dumps({"schema_version": 1, "kind": ["x"], "seq": 0}).encode()])
    assert_corrupt(bad, line=1)


# -- regression: the fold checks the attempt -------------------------------------------------


def test_fold_refuses_events_spliced_from_two_attempts(tmp_path: Path) -> None:
    first = run_workflow(tmp_path / "first" / "repo", attempt=0)
    retry = run_workflow(tmp_path / "retry" / "repo", attempt=1, quantum_id=first.quantum_id)
    ours, theirs = list(first.events), list(retry.events)
    assert len(ours) == len(theirs)
    assert fold(ours) == first.extract_provenance_data()
    assert fold(theirs) == retry.extract_provenance_data()
    for cut in range(1, len(ours)):
        with pytest.raises(FoldError, match="attempt") as info:
            fold([*ours[:cut], *theirs[cut:]])
        assert isinstance(info.value, ValueError)
    # A single event of the other attempt in the middle.
    with pytest.raises(FoldError):
        fold([*ours[:4], theirs[4], *ours[5:]])
    # Folding in steps checks it too.
    reducer = ProvenanceReducer().update(ours[:3])
    with pytest.raises(FoldError):
        reducer.update(theirs[3:])


# -- the file log ---------------------------------------------------------------------------


def test_a_forked_child_cannot_append_to_its_parents_log(tmp_path: Path) -> None:
    # BUG: "two processes never append to the same quantum's log" rests on
    # flock, which a forked child shares with its parent. A task that forks
    # (multiprocessing) with the butler in hand appends from both processes:
    # both write seq 1, and the log is corrupt (duplicated, tampered). The log
    # should refuse appends from a process other than the one that opened it.
    path = tmp_path / "q.jsonl"
    log = JsonLinesEventLog(path, sync=SyncPolicy.every_event())
    QuantumBackedButler.initialize(
        str(tmp_path / "repo"), empty_quantum(str(uuid.uuid4())), log=log
    )
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 0
        try:
            log.append("existence_checked", existence_payload(1))
        except BaseException:
            status = 3
        os._exit(status)
    os.waitpid(pid, 0)
    log.append("existence_checked", existence_payload(2))
    log.close()
    assert kinds(verify_logs(path)) == ["unsealed"]


def test_a_directory_as_log_path_raises_a_library_error(tmp_path: Path) -> None:
    # BUG (minor): documented "LogWriteError if the file cannot be created",
    # but a path naming a directory raises a bare IsADirectoryError from
    # os.open in JsonLinesEventLog._open (the second, non-O_EXCL open is not
    # wrapped).
    (tmp_path / "taken").mkdir()
    with pytest.raises(LogWriteError):
        JsonLinesEventLog(tmp_path / "taken")


def test_read_log_of_a_binary_file_says_it_is_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "image.jsonl"
    # No newline at the end: it used to be taken for a torn last record.
    path.write_bytes(b"\x89PNG\x1a\x00\x00\x00\rIHDR" + bytes(range(11, 256)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LogCorruptedError) as caught:
            read_log(path)
    assert "torn" not in str(caught.value)
    assert "not a JSON Lines log record" in str(caught.value)
