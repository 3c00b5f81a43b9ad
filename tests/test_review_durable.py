"""Review of the durable event logs: copying, SQLite verification, the CLI, edge cases.

Each test either demonstrates a bug (it fails on the reviewed code) or, where
marked PIN, pins a behaviour that is correct today but was untested.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.sqlite_workers import empty_quantum, existence_payload
from support.workflows import run_workflow
from test_schema_evolution import V1_LOG, _as_version_2

from qbb_events import (
    FileDatastore,
    JsonLinesEventLog,
    LogConflictError,
    LogCorruptedError,
    LogWriteError,
    QbbEventsError,
    QuantumBackedButler,
    SyncPolicy,
    canonical_json,
    chain_hash,
    copy_logs,
    verify_logs,
)
from qbb_events.cli import main
from qbb_events.logs import SqliteEventStore, StoredLog
from qbb_events.logs._sources import file_log

# -- helpers ---------------------------------------------------------------------------------


def sealed_log(root: Path, name: str = "writer.jsonl") -> Path:
    """A sound, sealed 13-event log written by the butler at ``root / name``."""
    root.mkdir(parents=True, exist_ok=True)
    log = JsonLinesEventLog(root / name)
    run_workflow(root.parent / f"{root.name}-repo", log)
    log.close()
    return root / name


def rehashed(data: dict[str, Any]) -> bytes:
    """The record of ``data`` with its hash recomputed (a forger's edit)."""
    body = {k: v for k, v in data.items() if k != "hash"}
    canonical = canonical_json(body)
    return canonical[:-1] + b',"hash":"%s"}' % chain_hash(body["prev_hash"], canonical).encode()


def kinds(report: Any) -> list[str]:
    return [p.kind for _, p in report.problems()]


def sqlite_copy(tmp_path: Path) -> tuple[Path, str]:
    """A store holding one sealed log (13 rows); returns its path and quantum id."""
    db = tmp_path / "run.sqlite"
    source = sealed_log(tmp_path / "src")
    assert copy_logs(source, db).ok
    quantum_id = json.loads(source.read_bytes().splitlines()[0])["quantum_id"]
    return db, quantum_id


def edit(db: Path, sql: str) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute(sql)
        connection.commit()
    finally:
        connection.close()


def cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def said(result: Any) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


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
        FileDatastore(str(tmp_path / "repo"), create=True),
        empty_quantum(str(uuid.uuid4())),
        log=live,
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
    assert verify_logs(source_dir).ok
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
    _as_version_2(monkeypatch, [])
    log = JsonLinesEventLog(path, resume=True)
    try:
        assert kinds(verify_logs(path)) == ["unsealed"]
        assert kinds(verify_logs(log)) == ["unsealed"]
        assert copy_logs(log, tmp_path / "out").ok
    finally:
        log.close()


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
        FileDatastore(str(tmp_path / "repo"), create=True),
        empty_quantum(str(uuid.uuid4())),
        log=log,
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


# -- the command line -------------------------------------------------------------------------


def test_cli_verify_and_copy_exit_codes(tmp_path: Path) -> None:
    # PIN (correct, untested): verify exits 0 on sound logs and 1 on a bad
    # one, 2 with a usage message on a missing path; copy is idempotent and
    # exits 1 when it refuses a log.
    source = sealed_log(tmp_path / "src")
    assert cli("verify", source).exit_code == 0
    missing = cli("verify", tmp_path / "nope")
    assert missing.exit_code == 2
    assert "does not exist" in said(missing)
    first = cli("copy", source, tmp_path / "run.sqlite")
    assert first.exit_code == 0
    assert "13 events added" in said(first)
    second = cli("copy", source, tmp_path / "run.sqlite")
    assert second.exit_code == 0
    assert "0 events added, 13 already there" in said(second)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a log\n")
    assert cli("verify", junk).exit_code == 1
    refused = cli("copy", junk, tmp_path / "out")
    assert refused.exit_code == 1
    assert "refused" in said(refused)


def test_cli_verify_of_a_directory_without_logs_fails(tmp_path: Path) -> None:
    # BUG (judgement): `qbb-events verify DIR` on a directory holding no log
    # (a wrong path, a run whose logs went elsewhere) prints "0 of 0 logs
    # verified" and exits 0, so a CI check of a run passes vacuously. The
    # issue asks for a message and a non-zero exit on bad input.
    (tmp_path / "empty").mkdir()
    result = cli("verify", tmp_path / "empty")
    assert result.exit_code != 0
