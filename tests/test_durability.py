"""The crash-safe file log: killed writers, resume, sync policies and disk errors.

The SIGKILL loop forks its writers from one long-lived "zygote" process that
has already imported qbb_events, so that each of the hundreds of writers
costs a ``fork`` rather than a fresh interpreter: every writer is still a
real process, appending through `JsonLinesEventLog`, killed by the test with
``SIGKILL`` at a random point.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.workflows import run_workflow

from qbb_events import (
    FileDatastore,
    InMemoryEventLog,
    JsonLinesEventLog,
    LogClosedError,
    LogCorruptedError,
    LogExistsError,
    LogInUseError,
    LogSealedError,
    LogWriteError,
    QbbEventsError,
    QuantumBackedButler,
    SyncPolicy,
    TornLogWarning,
    VerificationReport,
    read_log,
    verify_logs,
)

ENVELOPE = frozenset(
    {"schema_version", "quantum_id", "attempt", "seq", "timestamp_ns", "kind", "prev_hash", "hash"}
)
FINISHED = {
    "status": "succeeded",
    "exception": None,
    "wall_ns": 1,
    "cpu_ns": 1,
    "peak_rss_bytes": 1,
}
POLICIES = ["every_event", "group", "group:3:60000", "on_close"]


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The payload of a real ``quantum_started`` event, to start logs by hand."""

    quantum_id: uuid.UUID
    payload: dict[str, Any]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Started:
    log = InMemoryEventLog()
    QuantumBackedButler.from_predicted(tmp_path_factory.mktemp("started"), [], [], log=log)
    event = log.events[0]
    payload = {k: v for k, v in event.model_dump(mode="json").items() if k not in ENVELOPE}
    return Started(event.quantum_id, payload)


def new_log(
    path: Path, started: Started, sync: SyncPolicy | None = None, attempt: int = 0
) -> JsonLinesEventLog:
    """A new file log holding ``quantum_started``."""
    log = JsonLinesEventLog(path, sync=sync)
    log.bind(started.quantum_id, attempt)
    assert log.append("quantum_started", started.payload) == 0
    return log


def unused(k: int) -> dict[str, Any]:
    """The payload of an ``input_marked_unused`` event."""
    return {"dataset_id": str(uuid.UUID(int=k + 1))}


def problems_of(report: VerificationReport) -> list[tuple[str, int | None, int | None]]:
    assert len(report.logs) == 1
    return [(p.kind, p.seq, p.position) for p in report.logs[0].problems]


def assert_whole_unsealed(path: Path, events: int) -> None:
    """The file holds exactly ``events`` whole, chained events, and no seal."""
    report = verify_logs(path)
    assert problems_of(report) == [("unsealed", events, None)]
    assert report.logs[0].events == events


# -- SIGKILLed writers -------------------------------------------------------------------------

ZYGOTE = textwrap.dedent(
    """
    import os, signal, sys, time, traceback, uuid
    from qbb_events import JsonLinesEventLog, SyncPolicy

    def say(text):
        os.write(1, (text + "\\n").encode())

    def writer(path, policy, limit, tear):
        log = JsonLinesEventLog(path, sync=SyncPolicy.parse(policy), resume=True)
        say(f"ready {len(log)}")
        for k in range(limit):
            payload = {"dataset_id": str(uuid.UUID(int=k % 7 + 1))}
            say(f"ack {log.append('input_marked_unused', payload)}")
        if tear >= 0:
            # Killed mid-write: a prefix of a record reaches the file, then SIGKILL.
            with open(path, "rb") as stream:
                last = stream.read().splitlines()[-1]
            fragment = last[: 1 + tear % (len(last) - 1)]
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            say(f"torn {len(fragment)}")
            os.write(fd, fragment)
            os.kill(os.getpid(), signal.SIGKILL)
        while True:
            time.sleep(60)

    say("zygote")
    while True:
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            break
        _, path, policy, limit, tear = words
        pid = os.fork()
        if pid == 0:
            try:
                writer(path, policy, int(limit), int(tear))
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(1)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {status}")
    """
)


@dataclass
class Round:
    """What one writer said before it died."""

    pid: int | None = None
    ready: int | None = None
    acks: list[int] = field(default_factory=list)
    torn: int | None = None
    status: int | None = None
    killed: bool = False


class Zygote:
    """A process that forks log writers on request and reports what they say."""

    def __init__(self, stderr: Path) -> None:
        self._stderr_path = stderr
        self._start()

    def _start(self) -> None:
        self._stderr = open(self._stderr_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        self._buffer = b""
        assert self._messages() == [["zygote"]]

    def _fail(self, why: str) -> AssertionError:
        self._stderr.flush()
        return AssertionError(f"{why}; zygote stderr:\n{self._stderr_path.read_text()}")

    def _messages(self, timeout: float = 30.0) -> list[list[str]]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not ready:
                raise self._fail("no word from the writer")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._fail("the zygote died")
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode().split() for line in lines]

    def run(
        self,
        path: Path,
        policy: str,
        *,
        limit: int,
        tear: int,
        kill_after: int | None,
        pause: float,
    ) -> Round:
        """Fork a writer and kill it: at once (``kill_after=-1``), after that many acks, or
        never (``None``: it tears its log and kills itself)."""
        assert " " not in str(path)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {path} {policy} {limit} {tear}\n".encode())
        result = Round()
        try:
            while result.status is None:
                for word, *args in self._messages():
                    if word == "pid":
                        result.pid = int(args[0])
                    elif word == "ready":
                        result.ready = int(args[0])
                    elif word == "ack":
                        result.acks.append(int(args[0]))
                    elif word == "torn":
                        result.torn = int(args[0])
                    elif word == "exit":
                        result.status = int(args[0])
                    else:
                        raise self._fail(f"unexpected message {word} {args}")
                due = kill_after is not None and (
                    kill_after < 0 or (result.ready is not None and len(result.acks) >= kill_after)
                )
                if due and not result.killed and result.pid and result.status is None:
                    if pause:
                        time.sleep(pause)
                    os.kill(result.pid, signal.SIGKILL)
                    result.killed = True
        finally:
            if result.status is None:
                # A failed round must leave no writer behind, nor words of its
                # own for the next round to read: start afresh.
                if result.pid and not result.killed:
                    os.kill(result.pid, signal.SIGKILL)
                self.close()
                self._start()
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(b"quit\n")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    process = Zygote(tmp_path_factory.mktemp("zygote") / "stderr.txt")
    try:
        yield process
    finally:
        process.close()


ROUNDS = 40
ROTATE_AT = 1500


def _seal(path: Path, sync: SyncPolicy) -> None:
    log = JsonLinesEventLog(path, sync=sync, resume=True)
    log.append("quantum_finished", FINISHED)
    log.close()
    report = verify_logs(path)
    assert report.ok, list(report.problems())
    assert report.logs[0].sealed
    sealed = JsonLinesEventLog(path, sync=sync, resume=True)
    with pytest.raises(LogSealedError):
        sealed.append("input_marked_unused", unused(0))
    sealed.close()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("policy", POLICIES)
def test_sigkilled_writers_lose_nothing_and_resume(
    zygote: Zygote, started: Started, tmp_path: Path, policy: str, seed: int
) -> None:
    """SIGKILL a writer at random points, round after round, on the same log.

    After each kill the log opens, holds a whole chained prefix of what was
    written, with every acknowledged event (the OS holds each event once
    `append` returns, whatever the sync policy), and appending resumes.
    """
    rng = random.Random(f"{policy}/{seed}")
    sync = SyncPolicy.parse(policy)
    logs = tmp_path / "logs"
    path = logs / "q0.jsonl"
    log = new_log(path, started, sync)
    log.close()
    hashes = [e.hash for e in log.events]
    seen = {"kill": 0, "early": 0, "tear": 0, "torn by the kernel": 0}
    for number in range(ROUNDS):
        mode = "tear" if number % 8 == 5 else "early" if number % 8 == 2 else "kill"
        if mode == "tear":
            result = zygote.run(
                path,
                policy,
                limit=rng.randint(0, 12),
                tear=rng.randrange(1 << 30),
                kill_after=None,
                pause=0.0,
            )
        else:
            result = zygote.run(
                path,
                policy,
                limit=1 << 30,
                tear=-1,
                kill_after=-1 if mode == "early" else rng.choice([0, 1, rng.randint(2, 40)]),
                pause=rng.choice([0.0, rng.uniform(0, 0.003)]),
            )
        what = f"round {number} ({mode}): {result}"
        assert result.status is not None, what
        assert os.WIFSIGNALED(result.status), what
        assert os.WTERMSIG(result.status) == signal.SIGKILL, what
        seen[mode] += 1
        before = len(hashes)
        if result.ready is not None:
            # The writer resumed after every event the previous rounds left.
            assert result.ready == before, what
        assert result.acks == list(range(before, before + len(result.acks))), what
        acked = result.acks[-1] if result.acks else before - 1

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            log = JsonLinesEventLog(path, sync=sync, resume=True)
        assert all(issubclass(w.category, TornLogWarning) for w in caught), what
        assert bool(caught) == (log.bytes_cut > 0), what
        if mode == "tear":
            assert result.torn is not None, what
            assert log.bytes_cut == result.torn, what
            assert "cut" in str(caught[0].message)
        elif caught:
            # The kill came inside a write: the kernel may cut a write short
            # at a page boundary when a fatal signal is pending. The tail of
            # the event being written was cut back; nothing acknowledged was lost.
            seen["torn by the kernel"] += 1
        events = log.events
        # The events of earlier rounds are unchanged, and every acknowledged
        # event is there: at most the one being appended when the kill came
        # is there too, unacknowledged.
        assert [e.hash for e in events[:before]] == hashes, what
        assert acked + 1 <= len(events) <= acked + 2, what
        if mode == "tear":
            assert len(events) == acked + 1, what
        # Appending resumes, chained to the last whole event.
        seq = log.append(
            "existence_checked", {"dataset_ids": [str(uuid.uuid4())], "results": [True]}
        )
        assert seq == len(events)
        log.close()
        assert log.events[-1].prev_hash == events[-1].hash
        hashes = [e.hash for e in log.events]
        report = verify_logs(path)
        assert problems_of(report) == [("unsealed", len(hashes), None)], what
        assert report.logs[0].final_hash == hashes[-1]
        if len(hashes) > ROTATE_AT:
            _seal(path, sync)
            path = logs / f"q{number}.jsonl"
            log = new_log(path, started, sync, attempt=number)
            log.close()
            hashes = [e.hash for e in log.events]

    _seal(path, sync)
    report = verify_logs(logs)
    assert report.ok, list(report.problems())
    assert all(v.sealed for v in report.logs)
    assert seen["kill"] + seen["early"] + seen["tear"] == ROUNDS
    assert seen["tear"] == ROUNDS // 8
    assert seen["early"] == ROUNDS // 8


# -- resume ------------------------------------------------------------------------------------


def _unsealed_log(path: Path, started: Started, events: int = 5) -> JsonLinesEventLog:
    log = new_log(path, started)
    for k in range(events - 1):
        log.append("input_marked_unused", unused(k))
    log.close()
    return log


def test_resume_continues_the_chain(tmp_path: Path, started: Started) -> None:
    path = tmp_path / "q.jsonl"
    first = _unsealed_log(path, started)
    with path.open("rb") as stream:
        data = stream.read()
    log = JsonLinesEventLog(path, resume=True)
    assert log.bytes_cut == 0
    assert log.events == first.events
    assert log.quantum_id == started.quantum_id
    assert log.attempt == 0
    assert log.last_hash == first.last_hash
    assert not log.sealed
    # The log is taken: it cannot start another quantum.
    with pytest.raises(LogInUseError):
        log.bind(uuid.uuid4(), 0)
    assert log.append("input_marked_unused", unused(9)) == 5
    log.append("quantum_finished", FINISHED)
    log.close()
    assert path.read_bytes().startswith(data)
    events = read_log(path)
    assert events == list(log.events)
    assert events[5].prev_hash == first.last_hash
    assert events[5].timestamp_ns >= events[4].timestamp_ns
    assert {(e.quantum_id, e.attempt) for e in events} == {(started.quantum_id, 0)}
    report = verify_logs(path)
    assert report.ok
    assert report.logs[0].final_hash == log.last_hash


def test_resume_of_a_sealed_log_refuses_appends(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    butler = run_workflow(tmp_path / "repo", path)
    data = path.read_bytes()
    log = JsonLinesEventLog(path, resume=True)
    assert log.sealed
    assert log.events == butler.events
    with pytest.raises(LogSealedError) as info:
        log.append("input_marked_unused", unused(0))
    assert isinstance(info.value, QbbEventsError)
    log.close()
    assert path.read_bytes() == data
    assert verify_logs(path).ok


def _corruptions(lines: list[bytes]) -> dict[str, bytes]:
    flipped = lines[4].replace(b'"seq":4', b'"seq":5')
    whole = [line + b"\n" for line in lines]
    return {
        "flipped byte": b"".join([*whole[:4], flipped + b"\n", *whole[5:]]),
        "deleted line": b"".join(whole[:3] + whole[4:]),
        "junk line": b"".join([*whole[:3], b"junk\n", *whole[3:]]),
        "blank line": b"".join([*whole[:3], b"\n", *whole[3:]]),
        "torn line inside": b"".join([*whole[:3], lines[3][:20] + b"\n", *whole[4:]]),
        # A damaged middle and a torn tail: nothing is cut, the log is refused.
        "corrupt and torn": b"".join([*whole[:3], *whole[4:]]) + lines[-1][:30],
    }


@pytest.mark.parametrize(
    "corruption",
    [
        "flipped byte",
        "deleted line",
        "junk line",
        "blank line",
        "torn line inside",
        "corrupt and torn",
    ],
)
def test_resume_refuses_a_corrupted_log_and_leaves_it_alone(
    tmp_path: Path, started: Started, corruption: str
) -> None:
    path = tmp_path / "q.jsonl"
    _unsealed_log(path, started, events=8)
    bad = _corruptions(path.read_bytes().split(b"\n")[:-1])[corruption]
    path.write_bytes(bad)
    before = path.stat()
    for _ in range(2):  # refused again: the first refusal released the file
        with pytest.raises(LogCorruptedError):
            JsonLinesEventLog(path, resume=True)
        assert path.read_bytes() == bad
        assert path.stat().st_mtime_ns == before.st_mtime_ns
        assert path.stat().st_size == before.st_size


@pytest.mark.parametrize("state", ["missing", "empty", "torn only", "blank only"])
def test_resume_of_a_log_with_no_events_starts_a_new_one(tmp_path: Path, state: str) -> None:
    path = tmp_path / "a" / "b" / "q.jsonl"
    junk = {"missing": None, "empty": b"", "torn only": b'{"schema_vers', "blank only": b"\n\n"}
    content = junk[state]
    if content is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    if content:
        with pytest.warns(TornLogWarning):
            log = JsonLinesEventLog(path, resume=True)
    else:
        log = JsonLinesEventLog(path, resume=True)
    assert log.bytes_cut == len(content or b"")
    assert len(log) == 0
    assert log.quantum_id is None
    assert path.read_bytes() == b""
    butler = run_workflow(tmp_path / "repo", log)
    assert read_log(path) == list(butler.events)
    assert verify_logs(path).ok


def test_resume_restores_the_newline_of_a_whole_last_event(
    tmp_path: Path, started: Started
) -> None:
    path = tmp_path / "q.jsonl"
    _unsealed_log(path, started)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    log = JsonLinesEventLog(path, resume=True)  # no warning: nothing was cut
    assert log.bytes_cut == 0
    assert len(log) == 5
    assert path.read_bytes() == data
    log.append("input_marked_unused", unused(7))
    log.close()
    assert path.read_bytes().startswith(data)
    assert_whole_unsealed(path, 6)


@pytest.mark.parametrize("blank", [b"\n", b"\n\n\n", b"\n \t\n"])
def test_resume_cuts_trailing_blank_lines(tmp_path: Path, started: Started, blank: bytes) -> None:
    path = tmp_path / "q.jsonl"
    _unsealed_log(path, started)
    data = path.read_bytes()
    path.write_bytes(data + blank)
    with pytest.warns(TornLogWarning, match="blank"):
        log = JsonLinesEventLog(path, resume=True)
    assert log.bytes_cut == len(blank)
    assert path.read_bytes() == data
    log.append("input_marked_unused", unused(7))
    log.close()
    assert_whole_unsealed(path, 6)


@pytest.mark.parametrize("cut", [1, 2, 40, -2])
def test_resume_cuts_a_torn_last_line(tmp_path: Path, started: Started, cut: int) -> None:
    path = tmp_path / "q.jsonl"
    _unsealed_log(path, started)
    data = path.read_bytes()
    last = data.split(b"\n")[-2]
    torn = last[: cut if cut > 0 else len(last) + cut]
    path.write_bytes(data + torn)
    with pytest.warns(TornLogWarning, match=f"cut {len(torn)} bytes"):
        log = JsonLinesEventLog(path, resume=True)
    assert log.bytes_cut == len(torn)
    assert path.read_bytes() == data
    assert len(log) == 5
    log.append("input_marked_unused", unused(7))
    log.close()
    assert_whole_unsealed(path, 6)


@pytest.mark.parametrize("sealed", [False, True])
def test_a_log_with_events_is_refused_without_resume(
    tmp_path: Path, started: Started, sealed: bool
) -> None:
    path = tmp_path / "q.jsonl"
    if sealed:
        run_workflow(tmp_path / "repo", path)
    else:
        _unsealed_log(path, started)
    data = path.read_bytes()
    with pytest.raises(LogExistsError, match="resume") as info:
        JsonLinesEventLog(path)
    assert isinstance(info.value, FileExistsError)
    assert path.read_bytes() == data
    # The refusal let go of the file: resume takes it.
    JsonLinesEventLog(path, resume=True).close()


LOCK_PROBE = textwrap.dedent(
    """
    import sys
    from qbb_events import JsonLinesEventLog, LogExistsError
    try:
        JsonLinesEventLog(sys.argv[1], resume=True).close()
    except LogExistsError as err:
        print("refused", err)
    else:
        print("taken")
    """
)


def test_a_resumed_log_is_locked_against_other_writers(tmp_path: Path, started: Started) -> None:
    path = tmp_path / "q.jsonl"
    _unsealed_log(path, started)
    log = JsonLinesEventLog(path, resume=True)
    data = path.read_bytes()
    for resume in (True, False):
        with pytest.raises(LogExistsError):
            JsonLinesEventLog(path, resume=resume)
    with pytest.raises(LogExistsError, match="in use"):
        JsonLinesEventLog(path, resume=True)

    def probe() -> str:
        done = subprocess.run(
            [sys.executable, "-c", LOCK_PROBE, str(path)], capture_output=True, check=True
        )
        return done.stdout.decode()

    assert probe().startswith("refused")
    assert "in use" in probe()
    assert path.read_bytes() == data
    # The first writer was not disturbed.
    log.append("input_marked_unused", unused(7))
    log.close()
    assert probe() == "taken\n"
    assert_whole_unsealed(path, 6)


# -- sync policies -----------------------------------------------------------------------------


class FakeOs:
    """Stands in for the ``os`` module of the file log: counts syncs, fails on request.

    ``sync_error``: every ``fdatasync`` raises that errno. ``write_error``: the
    next ``write`` raises it, after ``write_keep`` bytes went through in a
    short write first (if set).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.syncs = 0
        self.syncs_done = 0
        self.sync_threads: list[str] = []
        self.sync_error: int | None = None
        self.write_error: int | None = None
        self.write_keep: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fdatasync(self, fd: int) -> None:
        with self._lock:
            self.syncs += 1
            self.sync_threads.append(threading.current_thread().name)
            error = self.sync_error
        try:
            if error is not None:
                raise OSError(error, os.strerror(error))
            os.fdatasync(fd)
        finally:
            with self._lock:
                self.syncs_done += 1

    def write(self, fd: int, data: Any) -> int:
        if self.write_error is None:
            return os.write(fd, data)
        if self.write_keep is not None:
            keep, self.write_keep = self.write_keep, None
            return os.write(fd, bytes(data[:keep]))
        raise OSError(self.write_error, os.strerror(self.write_error))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeOs:
    stand_in = FakeOs()
    monkeypatch.setattr("qbb_events.logs.jsonl._log.os", stand_in)
    return stand_in


def wait_for(condition: Any, timeout: float = 2.0) -> float:
    """Poll ``condition`` until it holds; return how long that took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.002)
    return time.monotonic() - start


def test_every_event_syncs_each_append(tmp_path: Path, started: Started, fake: FakeOs) -> None:
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.every_event())
    assert fake.syncs == 1
    for k in range(5):
        log.append("input_marked_unused", unused(k))
        assert fake.syncs == k + 2
    log.append("quantum_finished", FINISHED)
    assert fake.syncs == 7
    log.close()
    assert fake.syncs == 8
    assert verify_logs(tmp_path / "q.jsonl").ok


def test_group_syncs_a_full_group_at_once_in_the_background(
    tmp_path: Path, started: Started, fake: FakeOs
) -> None:
    # A delay far longer than the test: only a full group makes a sync start.
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.group(3, 60_000))
    assert fake.syncs == 0
    log.append("input_marked_unused", unused(0))
    time.sleep(0.05)
    assert fake.syncs == 0
    log.append("input_marked_unused", unused(1))  # the third pending event
    wait_for(lambda: fake.syncs_done == 1)
    # The writer did not wait for the disk: the group-commit thread synced.
    assert fake.sync_threads == [thread_name(log)]
    for k in range(2, 4):
        log.append("input_marked_unused", unused(k))
    time.sleep(0.05)
    assert fake.syncs == 1
    log.append("input_marked_unused", unused(4))
    wait_for(lambda: fake.syncs_done == 2)
    log.close()
    assert fake.syncs == 3
    assert_whole_unsealed(tmp_path / "q.jsonl", 6)


def test_group_holds_the_writer_back_at_two_full_groups(
    tmp_path: Path, started: Started, fake: FakeOs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the disk is slow to sync, at most two groups are ever unsynced."""
    gate, entered = threading.Event(), threading.Event()
    real_sync = fake.fdatasync
    order: list[str] = []

    def slow_in_background(fd: int) -> None:
        order.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            entered.set()
            gate.wait(10)
        real_sync(fd)

    monkeypatch.setattr(fake, "fdatasync", slow_in_background)
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.group(3, 60_000))
    try:
        for k in range(2):
            log.append("input_marked_unused", unused(k))  # 3 pending: the thread syncs
        assert entered.wait(2)
        for k in range(2, 8):
            log.append("input_marked_unused", unused(k))
        # The thread's sync is stuck; six more pending events made the writer sync itself.
        assert order == [thread_name(log), threading.main_thread().name]
    finally:
        gate.set()
        log.close()
    assert_whole_unsealed(tmp_path / "q.jsonl", 9)


def thread_name(log: JsonLinesEventLog) -> str:
    return f"qbb-sync:{log.path.name}"


def test_group_syncs_an_idle_writer_within_the_delay(
    tmp_path: Path, started: Started, fake: FakeOs
) -> None:
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.group(1000, 20))
    # The writer goes quiet: the group-commit thread syncs for it.
    wait_for(lambda: fake.syncs >= 1)
    assert fake.sync_threads[0].startswith("qbb-sync")
    # Nothing is pending any more: an idle log is not synced again.
    time.sleep(0.1)
    assert fake.syncs == 1
    for k in range(3):
        log.append("input_marked_unused", unused(k))
    wait_for(lambda: fake.syncs >= 2)
    time.sleep(0.1)
    assert fake.syncs == 2
    log.close()
    assert fake.syncs == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("qbb-sync")]
    assert_whole_unsealed(tmp_path / "q.jsonl", 4)


def test_on_close_syncs_only_at_seal_and_close(
    tmp_path: Path, started: Started, fake: FakeOs
) -> None:
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.on_close())
    for k in range(20):
        log.append("input_marked_unused", unused(k))
    time.sleep(0.08)  # longer than the default group delay: no thread syncs
    assert fake.syncs == 0
    log.append("quantum_finished", FINISHED)
    assert fake.syncs == 1
    log.close()
    assert fake.syncs == 2
    assert verify_logs(tmp_path / "q.jsonl").ok


@pytest.mark.parametrize("policy", [*POLICIES, "group:1000000:600000"])
def test_quantum_finished_always_syncs(
    tmp_path: Path, started: Started, fake: FakeOs, policy: str
) -> None:
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.parse(policy))
    log.append("input_marked_unused", unused(0))
    before = fake.syncs
    log.append("quantum_finished", FINISHED)
    # Synced before append returns, by the appending thread.
    assert fake.syncs > before
    assert fake.sync_threads[-1] == threading.current_thread().name
    log.close()
    assert verify_logs(tmp_path / "q.jsonl").ok


@pytest.mark.parametrize("policy", [*POLICIES, "group:1000000:600000"])
def test_close_always_syncs(tmp_path: Path, started: Started, fake: FakeOs, policy: str) -> None:
    log = new_log(tmp_path / "q.jsonl", started, SyncPolicy.parse(policy))
    log.append("input_marked_unused", unused(0))
    before = fake.syncs
    log.close()
    assert fake.syncs == before + 1
    log.close()  # closing again does nothing
    assert fake.syncs == before + 1
    with pytest.raises(LogClosedError):
        log.append("input_marked_unused", unused(1))


def test_the_default_policy_is_group_commit(tmp_path: Path) -> None:
    assert SyncPolicy() == SyncPolicy.group() == SyncPolicy("group", 1000, 50.0)
    log = JsonLinesEventLog(tmp_path / "q.jsonl")
    assert log.sync_policy == SyncPolicy()
    log.close()
    policy = SyncPolicy.every_event()
    log = JsonLinesEventLog(tmp_path / "r.jsonl", sync=policy)
    assert log.sync_policy is policy
    log.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: SyncPolicy("bogus"),  # type: ignore[arg-type]
        lambda: SyncPolicy("EVERY_EVENT"),  # type: ignore[arg-type]
        lambda: SyncPolicy.group(0),
        lambda: SyncPolicy.group(-5),
        lambda: SyncPolicy.group(True),
        lambda: SyncPolicy.group(2.5),  # type: ignore[arg-type]
        lambda: SyncPolicy.group("10"),  # type: ignore[arg-type]
        lambda: SyncPolicy.group(10, 0),
        lambda: SyncPolicy.group(10, -1),
        lambda: SyncPolicy.group(10, float("nan")),
        lambda: SyncPolicy("on_close", 0),
    ],
    ids=[
        "mode",
        "mode case",
        "zero events",
        "negative events",
        "bool events",
        "float events",
        "str events",
        "zero delay",
        "negative delay",
        "nan delay",
        "zero events on_close",
    ],
)
def test_sync_policy_validation(make: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked below
        make()


def test_sync_policy_messages() -> None:
    with pytest.raises(ValueError, match="unknown sync mode"):
        SyncPolicy("bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_events"):
        SyncPolicy.group(0)
    with pytest.raises(ValueError, match="max_events"):
        SyncPolicy.group(True)
    with pytest.raises(ValueError, match="max_delay_ms"):
        SyncPolicy.group(10, -1)


def test_sync_policy_is_frozen() -> None:
    policy = SyncPolicy.group(10, 5)
    with pytest.raises(AttributeError):
        policy.max_events = 3  # type: ignore[misc]
    assert hash(policy) == hash(SyncPolicy.group(10, 5.0))


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("every_event", SyncPolicy.every_event()),
        ("on_close", SyncPolicy.on_close()),
        ("group", SyncPolicy.group()),
        ("group:10:5", SyncPolicy.group(10, 5.0)),
        ("group:10", SyncPolicy.group(10, 50.0)),
        ("group:1:0.5", SyncPolicy.group(1, 0.5)),
    ],
)
def test_sync_policy_parse(text: str, policy: SyncPolicy) -> None:
    assert SyncPolicy.parse(text) == policy


@pytest.mark.parametrize(
    "text",
    ["", "nope", "every_event:3", "on_close:1:2", "group:x:5", "group:0:5", "group:5:0",
     "group:5:-1", "group:5:x", "group:10:5:7", "group:1.5:5"],
)  # fmt: skip
def test_sync_policy_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        SyncPolicy.parse(text)


@pytest.mark.parametrize("delay", [float("inf"), 1e13])
def test_a_delay_too_long_for_a_timer_is_refused_or_works(
    tmp_path: Path, started: Started, monkeypatch: pytest.MonkeyPatch, delay: float
) -> None:
    """A positive delay the group-commit thread cannot wait for must not kill that thread."""
    try:
        policy = SyncPolicy.group(10, delay)
    except ValueError:
        return  # refused up front: fine
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    log = new_log(tmp_path / "q.jsonl", started, policy)
    log.append("input_marked_unused", unused(0))
    time.sleep(0.1)
    log.close()
    assert crashed == []
    assert_whole_unsealed(tmp_path / "q.jsonl", 2)


# -- disk errors -------------------------------------------------------------------------------

ERRNOS = [errno.ENOSPC, errno.EIO]


@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("keep", [None, 10, -1], ids=["nothing", "prefix", "all-but-1"])
@pytest.mark.parametrize("policy", ["every_event", "group:3:60000", "on_close"])
def test_a_failed_write_leaves_the_log_whole(
    tmp_path: Path, started: Started, fake: FakeOs, code: int, keep: int | None, policy: str
) -> None:
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.parse(policy))
    for k in range(3):
        log.append("input_marked_unused", unused(k))
    data = path.read_bytes()
    events = log.events
    fake.write_error = code
    if keep is not None:
        # A short write first: part of the line reaches the file.
        line_length = len(data.split(b"\n")[-2]) + 1
        fake.write_keep = keep if keep > 0 else line_length + keep
    with pytest.raises(LogWriteError) as info:
        log.append("input_marked_unused", unused(3))
    error = info.value
    assert isinstance(error, OSError)
    assert isinstance(error, QbbEventsError)
    assert error.errno == code
    assert str(path) in str(error)
    assert "seq 4" in str(error)
    # What was written before is intact, and nothing of the failed event.
    assert path.read_bytes() == data
    assert log.events == events
    assert log.last_hash == events[-1].hash
    assert_whole_unsealed(path, 4)
    # The disk has room again: the same seq is appended right after.
    fake.write_error = None
    assert log.append("input_marked_unused", unused(3)) == 4
    log.append("quantum_finished", FINISHED)
    log.close()
    assert read_log(path) == list(log.events)
    assert verify_logs(path).ok


@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
def test_every_event_a_failed_sync_refuses_the_event(
    tmp_path: Path, started: Started, fake: FakeOs, code: int
) -> None:
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.every_event())
    log.append("input_marked_unused", unused(0))
    data = path.read_bytes()
    events = log.events
    fake.sync_error = code
    with pytest.raises(LogWriteError) as info:
        log.append("input_marked_unused", unused(1))
    assert isinstance(info.value, OSError)
    assert info.value.errno == code
    assert str(path) in str(info.value)
    # The event that was not synced is not in the file, nor in the log.
    assert path.read_bytes() == data
    assert log.events == events
    assert log.last_hash == events[-1].hash
    assert_whole_unsealed(path, 2)
    fake.sync_error = None
    with contextlib.suppress(LogWriteError):
        log.close()
    # A fresh check of the file resumes after what it holds.
    resumed = JsonLinesEventLog(path, resume=True)
    assert resumed.events == events
    resumed.close()


def test_every_event_after_a_failed_sync_the_log_stays_whole(
    tmp_path: Path, started: Started, fake: FakeOs
) -> None:
    """Whether the log goes on or refuses later appends, the file stays whole.

    (The class docstring says a failed sync makes the log refuse every later
    append; docs/event-log.md says only that, under ``every_event``, the
    event is cut back and its append raises. Either is accepted here.)
    """
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.every_event())
    fake.sync_error = errno.EIO
    with pytest.raises(LogWriteError):
        log.append("input_marked_unused", unused(0))
    fake.sync_error = None  # the disk seems fine again
    try:
        seq = log.append("input_marked_unused", unused(1))
    except LogWriteError:
        expected = 1
    else:
        assert seq == 1
        expected = 2
    with contextlib.suppress(LogWriteError):
        log.close()
    assert_whole_unsealed(path, expected)
    assert read_log(path) == list(log.events)


@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
def test_group_a_failed_inline_sync_is_raised_by_the_next_call(
    tmp_path: Path, started: Started, fake: FakeOs, code: int
) -> None:
    """docs/event-log.md: under ``group``, a failed sync, inline or in the
    background, is raised by the next ``append`` or by ``close()``, and the log
    then refuses every append. The append whose event filled the group wrote
    it: that append stands."""
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.group(3, 60_000))
    log.append("input_marked_unused", unused(0))
    fake.sync_error = code
    # The third pending event fills the group: the thread syncs it, and the sync fails.
    assert log.append("input_marked_unused", unused(1)) == 2
    wait_for(lambda: fake.syncs_done >= 1)
    time.sleep(0.05)  # for the thread to keep its error
    assert fake.syncs == 1
    fake.sync_error = None
    written = log.events
    data = path.read_bytes()
    for k in range(2):
        with pytest.raises(LogWriteError) as info:
            log.append("input_marked_unused", unused(2 + k))
        assert info.value.errno == code
    with pytest.raises(LogWriteError) as info:
        log.close()
    assert info.value.errno == code
    assert path.read_bytes() == data
    assert read_log(path) == list(written)
    assert_whole_unsealed(path, 3)


@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
def test_group_after_a_failed_inline_sync_the_file_is_whole_and_resumes(
    tmp_path: Path, started: Started, fake: FakeOs, code: int
) -> None:
    """Whoever raises it, the failure leaves whole, chained events, and refuses appends."""
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.group(3, 60_000))
    log.append("input_marked_unused", unused(0))
    acknowledged = log.events
    fake.sync_error = code
    log.append("input_marked_unused", unused(1))  # fills the group: the thread syncs
    wait_for(lambda: fake.syncs_done >= 1)
    fake.sync_error = None
    with pytest.raises(LogWriteError) as info:
        log.append("input_marked_unused", unused(2))
    assert info.value.errno == code
    with pytest.raises(LogWriteError):
        log.close()
    with pytest.raises(LogClosedError):
        log.append("input_marked_unused", unused(9))
    # The file holds whole, chained events: those acknowledged, and at most
    # the one whose sync failed.
    events = read_log(path)
    assert events[: len(acknowledged)] == list(acknowledged)
    assert len(events) in (len(acknowledged), len(acknowledged) + 1)
    assert_whole_unsealed(path, len(events))
    # Only reading the file back says what it holds: resume, and go on.
    resumed = JsonLinesEventLog(path, resume=True)
    assert resumed.append("input_marked_unused", unused(5)) == len(events)
    resumed.close()
    assert_whole_unsealed(path, len(events) + 1)


def test_group_a_failed_inline_sync_keeps_the_log_consistent(
    tmp_path: Path, started: Started, fake: FakeOs
) -> None:
    """The log object agrees with itself after the failure: its last hash is
    that of its last event, whether or not the append that filled the group
    was refused."""
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.group(3, 60_000))
    log.append("input_marked_unused", unused(0))
    fake.sync_error = errno.EIO
    with contextlib.suppress(LogWriteError):
        log.append("input_marked_unused", unused(1))
    wait_for(lambda: fake.syncs_done >= 1)
    fake.sync_error = None
    assert len(log) == len(log.events)
    assert log.last_hash == log.events[-1].hash
    with contextlib.suppress(LogWriteError):
        log.close()


@pytest.mark.parametrize("next_call", ["append", "close"])
@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
def test_group_a_failed_background_sync_is_raised_by_the_next_call(
    tmp_path: Path, started: Started, fake: FakeOs, code: int, next_call: str
) -> None:
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.group(1000, 20))
    fake.sync_error = code
    log.append("input_marked_unused", unused(0))
    wait_for(lambda: fake.syncs_done >= 1)  # the group-commit thread tried, and failed
    assert fake.sync_threads[0].startswith("qbb-sync")
    time.sleep(0.05)  # for the thread to keep its error
    fake.sync_error = None
    data = path.read_bytes()
    events = log.events
    if next_call == "append":
        with pytest.raises(LogWriteError) as info:
            log.append("input_marked_unused", unused(1))
        assert info.value.errno == code
        # The refused event was not written; later appends are refused too.
        assert path.read_bytes() == data
        assert log.events == events
        with pytest.raises(LogWriteError):
            log.append("input_marked_unused", unused(2))
        assert path.read_bytes() == data
        with pytest.raises(LogWriteError):
            log.close()
    else:
        with pytest.raises(LogWriteError) as info:
            log.close()
        assert info.value.errno == code
        with pytest.raises(LogClosedError):
            log.append("input_marked_unused", unused(1))
    assert path.read_bytes() == data
    assert read_log(path) == list(events)
    assert_whole_unsealed(path, len(events))


@pytest.mark.parametrize(
    "policy",
    ["on_close", "group:1000:60000", "group:3:60000"],
    ids=["on_close", "group", "group filled by the seal"],
)
def test_a_failed_sync_at_the_seal_is_raised_by_close(
    tmp_path: Path, started: Started, fake: FakeOs, policy: str
) -> None:
    """``quantum_finished`` is in the file when its sync fails: the append stands.

    With ``group:3``, quantum_finished is the third pending event, so the
    group is full as the seal's own append syncs it.
    """
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.parse(policy))
    log.append("input_marked_unused", unused(0))
    fake.sync_error = errno.EIO
    # quantum_finished is in the file: its append is not refused.
    assert log.append("quantum_finished", FINISHED) == 2
    assert log.sealed
    fake.sync_error = None
    with pytest.raises(LogWriteError) as info:
        log.close()
    assert info.value.errno == errno.EIO
    report = verify_logs(path)
    assert report.ok
    assert report.logs[0].sealed
    assert read_log(path) == list(log.events)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("code", ERRNOS, ids=["ENOSPC", "EIO"])
def test_a_failed_sync_at_close_is_raised_and_the_file_is_closed(
    tmp_path: Path, started: Started, fake: FakeOs, policy: str, code: int
) -> None:
    path = tmp_path / "q.jsonl"
    log = new_log(path, started, SyncPolicy.parse(policy))
    for k in range(4):
        log.append("input_marked_unused", unused(k))
    data = path.read_bytes()
    fake.sync_error = code
    with pytest.raises(LogWriteError) as info:
        log.close()
    assert info.value.errno == code
    fake.sync_error = None
    log.close()  # already closed: nothing more to report
    with pytest.raises(LogClosedError):
        log.append("input_marked_unused", unused(9))
    assert path.read_bytes() == data
    assert_whole_unsealed(path, 5)
    # The lock went with the file: the log can be resumed.
    JsonLinesEventLog(path, resume=True).close()


def test_a_failed_write_through_the_butler(tmp_path: Path, fake: FakeOs) -> None:
    path = tmp_path / "q.jsonl"
    butler = QuantumBackedButler.from_predicted(
        FileDatastore(tmp_path / "repo", create=True), [], [], log=path
    )
    butler.markInputUnused(uuid.uuid4())  # type: ignore[arg-type]
    events = butler.events
    fake.write_error = errno.EIO
    fake.write_keep = 15
    with pytest.raises(LogWriteError) as info:
        butler.finish("succeeded")
    assert info.value.errno == errno.EIO
    assert butler.events == events
    assert_whole_unsealed(path, 2)
    fake.write_error = None
    butler.close()
    assert read_log(path) == list(butler.events)
    assert verify_logs(path).ok
