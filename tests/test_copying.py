"""Copying logs between stores: idempotent, whole records only, verified on both sides."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.durable import kinds, rehashed, sealed_log
from support.readonly import frozen, unlistable
from support.store_workers import empty_quantum, existence_payload

from qbb_events import (
    JsonLinesEventLog,
    LogConflictError,
    LogCorruptedError,
    LogWriteError,
    QuantumBackedButler,
    SqliteEventStore,
    SyncPolicy,
    copy_logs,
    verify_logs,
)
from qbb_events.logs import StoredLog
from qbb_events.logs.jsonl import file_log

# -- copy_logs -------------------------------------------------------------------------------


def test_copy_never_overwrites_a_destination_event_that_differs(tmp_path: Path) -> None:
    # BUG: the destination's last line is a whole event (only its newline is
    # missing, which the docs call "a whole event"), of another history: a
    # quantum_finished with another status. copy_logs takes it for a torn tail,
    # cuts it and writes the source's event instead of raising LogConflictError.
    source = sealed_log(tmp_path / "src")
    lines = source.read_bytes().splitlines(keepends=True)
    theirs = json.loads(lines[-1])
    theirs["status"] = "failed"
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"{theirs['quantum_id']}.0.jsonl"
    target.write_bytes(b"".join(lines[:-1]) + rehashed(theirs))
    before = target.read_bytes()
    assert verify_logs(target).ok  # a sound log, sealed "failed"
    with pytest.raises(LogConflictError):
        copy_logs(source, out)
    assert target.read_bytes() == before


@pytest.mark.parametrize("into", ["itself", "a directory holding it"])
def test_copying_into_a_directory_that_holds_the_log_stores_it_once(
    tmp_path: Path, into: str
) -> None:
    # BUG: a directory destination that already holds the log under its
    # writer's name gets a second copy named <quantum>.<attempt>.jsonl, so the
    # destination now fails verification ("duplicated") and events_added says
    # 13 events were new.
    source_dir = tmp_path / "run"
    sealed_log(source_dir)
    if into == "itself":
        destination = source_dir
    else:
        destination = tmp_path / "archive"
        shutil.copytree(source_dir, destination)
    assert verify_logs(destination).ok
    report = copy_logs(source_dir, destination)
    assert report.ok
    assert verify_logs(destination).ok, kinds(verify_logs(destination))
    assert report.events_added == 0


def test_copying_a_log_whose_writer_appends_meanwhile(tmp_path: Path) -> None:
    # BUG: copy_logs reads each source log twice (verify, then copy). A live
    # log that gains an event in between is copied with it, and the copy's
    # check against the *first* read then raises a spurious LogConflictError
    # ("the copy ... holds 5 events ... not the source's 4"), after writing.
    path = tmp_path / "live.jsonl"
    live = JsonLinesEventLog(path, sync=SyncPolicy.every_event())
    QuantumBackedButler.initialize(
        str(tmp_path / "repo"), empty_quantum(str(uuid.uuid4())), log=live
    )
    for index in range(3):
        live.append("existence_checked", existence_payload(index))
    plain = file_log(path)
    reads = 0

    def records() -> Iterator[tuple[int, bytes, bool]]:
        nonlocal reads
        reads += 1
        if reads == 2:  # the writer, in another process, goes on
            live.append("existence_checked", existence_payload(99))
        yield from plain.records()

    try:
        report = copy_logs(StoredLog(plain.location, records), tmp_path / "out")
    finally:
        live.close()
    (copied,) = report.copied
    assert copied.events in (4, 5)
    assert kinds(verify_logs(tmp_path / "out")) == ["unsealed"]


def test_an_empty_log_is_not_refused_without_a_reason(tmp_path: Path) -> None:
    # BUG: an empty log file (a writer that died before quantum_started)
    # verifies ok, yet copy_logs puts it in `refused` with no problem at all,
    # and `qbb-events copy` exits 1 printing "refused <path>: " and nothing
    # else. CopyReport.refused is documented as logs that failed verification.
    source_dir = tmp_path / "run"
    sealed_log(source_dir)
    (source_dir / "crashed.jsonl").touch()
    # Issue 8 reversed the first half: an empty log is a log with no
    # quantum_started, reported as not_started (see test_verification.py).
    assert [p.kind for _, p in verify_logs(source_dir).problems()] == ["not_started"]
    report = copy_logs(source_dir, tmp_path / "out")
    assert all(verdict.problems for verdict in report.refused), report.refused


def test_an_existing_empty_sqlite_file_is_an_sqlite_destination(tmp_path: Path) -> None:
    # BUG (minor): an existing empty *.sqlite file (touch, mkstemp) is a valid,
    # empty SQLite database, and SqliteEventStore opens it; copy_logs takes it
    # for a directory and fails with "Cannot open x.sqlite/<id>.0.jsonl: File exists".
    source = sealed_log(tmp_path / "src")
    destination = tmp_path / "run.sqlite"
    destination.touch()
    report = copy_logs(source, destination)
    assert report.ok
    assert report.events_added == 13


def test_a_new_copy_file_survives_a_power_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BUG: copying into a directory fsyncs the new file but never its
    # directory (JsonLinesEventLog._open does, "so the file's name survives a
    # power loss too"): a copy reported done, whose source is then deleted
    # (a move), can vanish with its directory entry.
    source = sealed_log(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    synced_directories: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced_directories.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert copy_logs(source, out).events_added == 13
    assert synced_directories, "the new copy's directory was never synced"


def test_a_partial_directory_copy_with_a_torn_tail_is_completed(tmp_path: Path) -> None:
    # PIN (correct, untested): a copy killed mid-write leaves a prefix and a
    # torn line; the next copy cuts the torn line and adds the rest, once.
    source = sealed_log(tmp_path / "src")
    lines = source.read_bytes().splitlines(keepends=True)
    quantum_id = json.loads(lines[0])["quantum_id"]
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"{quantum_id}.0.jsonl"
    target.write_bytes(b"".join(lines[:5]) + lines[5][:40])
    report = copy_logs(source, out)
    assert (report.events_added, report.events_present) == (8, 5)
    assert target.read_bytes() == source.read_bytes()
    again = copy_logs(source, out)
    assert (again.events_added, again.events_present) == (0, 13)


# -- destinations that are not stores (issue 8) -------------------------------------------------


def test_a_foreign_sqlite_database_is_refused_as_a_destination_untouched(tmp_path: Path) -> None:
    source = sealed_log(tmp_path / "src")
    foreign = tmp_path / "accounts.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO accounts VALUES (1, 'ada')")
    connection.commit()
    connection.close()
    before = foreign.read_bytes()
    with pytest.raises(LogCorruptedError, match="another application"):
        copy_logs(source, foreign)
    assert foreign.read_bytes() == before
    assert not (tmp_path / "accounts.db-wal").exists()
    mode = sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "delete"


@pytest.mark.parametrize("content", [b"", b"some notes\n", b'{"a": 1}\n'])
def test_a_file_that_is_not_a_store_is_refused_as_a_destination(
    tmp_path: Path, content: bytes
) -> None:
    source = sealed_log(tmp_path / "src")
    target = tmp_path / "notes.txt"
    target.write_bytes(content)
    with pytest.raises(LogCorruptedError, match="not an event store"):
        copy_logs(source, target)
    assert target.read_bytes() == content


def test_sqlite_event_store_refuses_an_empty_file_not_named_as_a_database(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.touch()
    with pytest.raises(LogCorruptedError, match="empty file"):
        SqliteEventStore(target)
    assert target.read_bytes() == b""
    # Named as a database, an empty file is a new store (SQLite's own view).
    named = tmp_path / "new.sqlite"
    named.touch()
    SqliteEventStore(named).close()
    assert named.stat().st_size > 0


def test_a_readonly_sqlite_destination_says_why_not_errno_2(tmp_path: Path) -> None:
    source = sealed_log(tmp_path / "src")
    folder = tmp_path / "archive"
    folder.mkdir()
    with frozen(folder), pytest.raises(LogWriteError) as caught:
        copy_logs(source, folder / "run.sqlite")
    assert caught.value.errno in (errno.EACCES, errno.EROFS, errno.EPERM)
    assert "Errno 2" not in str(caught.value)
    assert "not writable" in str(caught.value)
    assert not (folder / "run.sqlite").exists()


def test_a_subdirectory_that_cannot_be_listed_is_refused_not_skipped(tmp_path: Path) -> None:
    sealed_log(tmp_path / "logs")
    hidden = tmp_path / "logs" / "node7"
    sealed_log(hidden, "q7.jsonl")
    with unlistable(hidden):
        report = copy_logs(tmp_path / "logs", tmp_path / "out")
    assert not report.ok
    assert [v.location for v in report.refused] == [str(hidden)]
    assert [p.kind for p in report.refused[0].problems] == ["unreadable"]
    assert len(report.copied) == 1
