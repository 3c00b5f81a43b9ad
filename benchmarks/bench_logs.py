"""Append throughput of each durable store and policy, and verification throughput.

Every figure is compared with a *floor* measured in the same run: a bare
Python loop doing only the work every hashed event needs (build the body,
canonical JSON, SHA-256, one ``write``), with no log object around it. The
ratio says what the store adds on top of that unavoidable work.

Appends go through ``EventLog.append`` (``existence_checked`` events, one
dataset each, after a real ``quantum_started``), so they include the
envelope, the hash chain and the store. Verification runs `verify_logs` on
one file of ``--verify-events`` events, single-threaded; its floor is a
loop that only parses each line and recomputes its hash.

Usage: ``python benchmarks/bench_logs.py [--events 200000] [--fsync-events 2000]
[--verify-events 500000] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

from qbb_events import (
    DatasetRef,
    DatasetType,
    EventLog,
    FileDatastore,
    JsonLinesEventLog,
    Quantum,
    QuantumBackedButler,
    SqliteEventStore,
    SyncPolicy,
    canonical_json,
    chain_hash,
    verify_logs,
)

TARGETS = {
    ("file", "group"): 200_000,
    ("sqlite", "group"): 100_000,
    ("verify", "integrity"): 1_000_000,
}
RAW = DatasetType("raw", "json", ("exposure",))


def started_log(log: EventLog, root: Path) -> list[str]:
    """Log a real ``quantum_started`` and return dataset ids to check."""
    refs = [DatasetRef(RAW, {"exposure": i}, "bench") for i in range(1000)]
    quantum = Quantum("bench", {"exposure": 0}, inputs=refs, outputs=[])
    QuantumBackedButler.initialize(FileDatastore(root, create=True), quantum, log=log)
    return [str(ref.id) for ref in refs]


def append_rate(log: EventLog, root: Path, count: int) -> float:
    """Append ``count`` events and close; return events per second."""
    ids = started_log(log, root)
    append = log.append
    start = time.perf_counter()
    for i in range(count):
        append("existence_checked", {"dataset_ids": [ids[i % 1000]], "results": [True]})
    log.close()
    return count / (time.perf_counter() - start)


def floor_rate(path: Path, count: int) -> float:
    """The bare loop: body, canonical JSON, SHA-256, one write per event."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    quantum_id, ids, prev = uuid.uuid4(), [str(uuid.uuid4()) for _ in range(1000)], "0" * 64
    start = time.perf_counter()
    for i in range(count):
        body = {
            "schema_version": 1,
            "quantum_id": quantum_id,
            "attempt": 0,
            "seq": i,
            "timestamp_ns": time.time_ns(),
            "kind": "existence_checked",
            "prev_hash": prev,
            "dataset_ids": [ids[i % 1000]],
            "results": [True],
        }
        canonical = canonical_json(body)
        prev = chain_hash(prev, canonical)
        os.write(fd, b'%s,"hash":"%s"}\n' % (canonical[:-1], prev.encode()))
    os.fsync(fd)
    os.close(fd)
    return count / (time.perf_counter() - start)


def verify_floor_rate(path: Path) -> tuple[int, float]:
    """Parse each line and recompute its hash: the least any verifier must do."""
    start = time.perf_counter()
    count = 0
    with open(path, "rb") as stream:
        for line in stream:
            raw = orjson.loads(line)
            stored = raw.pop("hash")
            if hashlib.sha256(raw["prev_hash"].encode() + canonical_json(raw)).hexdigest() != (
                stored
            ):
                raise AssertionError("the floor loop found a bad hash")
            count += 1
    return count, count / (time.perf_counter() - start)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--fsync-events", type=int, default=2_000)
    parser.add_argument("--verify-events", type=int, default=500_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-logs-", dir=args.dir))
    rows: list[tuple[str, str, int, float]] = []
    try:
        floor = floor_rate(work / "floor.jsonl", args.events)
        rows.append(("floor", "write, no sync", args.events, floor))
        for name, policy, count in (
            ("group", SyncPolicy.group(), args.events),
            ("on_close", SyncPolicy.on_close(), args.events),
            ("every_event", SyncPolicy.every_event(), args.fsync_events),
        ):
            log = JsonLinesEventLog(work / f"{name}.jsonl", sync=policy)
            rows.append(("file", name, count, append_rate(log, work / "repo", count)))
        for name, policy, count in (
            ("group", SyncPolicy.group(), args.events),
            ("on_close", SyncPolicy.on_close(), args.events),
            ("every_event", SyncPolicy.every_event(), args.fsync_events),
        ):
            with SqliteEventStore(work / f"{name}.sqlite", sync=policy) as store:
                rate = append_rate(store.log(), work / "repo", count)
            rows.append(("sqlite", name, count, rate))
        big = work / "verify.jsonl"
        log = JsonLinesEventLog(big, sync=SyncPolicy.on_close())
        append_rate(log, work / "repo", args.verify_events - 1)
        count, verify_floor = verify_floor_rate(big)
        rows.append(("verify floor", "parse + hash", count, verify_floor))
        seconds = timed(lambda: verify_logs(big))
        rows.append(("verify", "integrity", count, count / seconds))
        seconds = timed(lambda: verify_logs(big, validate=True))
        rows.append(("verify", "validate=True", count, count / seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'store':<13} {'policy':<15} {'events':>9} {'events/s':>11} {'µs/event':>9} "
        f"{'vs floor':>9} {'target':>10}"
    )
    for store, policy, count, rate in rows:
        base = verify_floor if store.startswith("verify") else floor
        target = TARGETS.get((store, policy))
        mark = "" if target is None else f"{target:>9,}" + ("✓" if rate >= target else "✗")
        print(
            f"{store:<13} {policy:<15} {count:>9,} {rate:>11,.0f} {1e6 / rate:>9.2f} "
            f"{rate / base:>9.2f} {mark:>10}"
        )


if __name__ == "__main__":
    main()
