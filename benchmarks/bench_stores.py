"""PostgreSQL append throughput (1 and 4 writer processes) and verification's peak memory.

Appends: each writer process opens `PostgresEventStore` with the default
sync policy (group commit), starts its own quantum and appends
``existence_checked`` events through ``EventLog.append``; the figure is all
events over the wall time from the common start to the last close. The
baseline measured in the same run is SQLite with the same policy and the
same writers (one file), and the floor the bare JSON Lines file log.

Verification memory: a run of ``--verify-events`` events is generated as
many logs of ``--events-per-log`` events (one real log, re-keyed per quantum
and re-chained with hashlib over the stored bytes, so generation costs a
hash per event), then `verify_logs` runs on the directory in a fresh child
process whose peak RSS (``ru_maxrss``, interpreter included) is reported.
The baseline is the same child importing qbb_events and doing nothing.

Usage: ``python benchmarks/bench_stores.py [--events 100000] [--verify-events 1000000]
[--verify-events 10000000] [--events-per-log 10000] [--url URL] [--dir PATH]``
(``--url`` or ``QBB_TEST_POSTGRES_URL``; a database is created and dropped).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qbb_events import (
    InMemoryEventLog,
    JsonLinesEventLog,
    PostgresEventStore,
    Quantum,
    QuantumBackedButler,
    SqliteEventStore,
)

TARGET_APPEND_4 = 50_000
TARGET_RSS_MIB = 300
SPAWN = multiprocessing.get_context("spawn")


def _payload(index: int) -> dict[str, Any]:
    return {"dataset_ids": [str(uuid.UUID(int=index + 1))], "results": [index % 2 == 0]}


def _writer(kind: str, target: str, root: str, count: int, start: Any, done: Any) -> None:
    quantum = Quantum("bench", {"visit": 1}, inputs=[], outputs=[])
    store: Any = None
    if kind == "postgres":
        store = PostgresEventStore(target)
        log: Any = store.log()
    elif kind == "sqlite":
        store = SqliteEventStore(target)
        log = store.log()
    else:
        log = JsonLinesEventLog(Path(target) / f"{quantum.id}.jsonl")
    butler = QuantumBackedButler.initialize(root, quantum, log=log)
    start.wait()
    append = log.append
    for index in range(count):
        append("existence_checked", _payload(index))
    butler.close()
    log.close()
    if store is not None:
        store.close()
    done.put(time.perf_counter())


def append_rate(kind: str, target: str, work: Path, writers: int, count: int) -> float:
    start = SPAWN.Barrier(writers + 1)
    done = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=_writer, args=(kind, target, str(work / f"repo{k}"), count, start, done)
        )
        for k in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    ends = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
        assert process.exitcode == 0, (kind, process.exitcode)
    return writers * count / (max(ends) - began)


def generate_run(directory: Path, total: int, per_log: int) -> int:
    """Write ``total`` events as logs of ``per_log`` events; return the events written."""
    directory.mkdir(parents=True, exist_ok=True)
    template = InMemoryEventLog()
    quantum = Quantum("bench", {"visit": 1}, inputs=[], outputs=[])
    butler = QuantumBackedButler.initialize(directory.parent / "repo", quantum, log=template)
    for index in range(per_log - 2):
        template.append("existence_checked", _payload(index))
    butler.close()
    records = list(template.records())
    # Each record's body (what its hash covers) and the prev_hash it names.
    bodies = [
        (r[: -len(',"hash":"') - 66] + b"}", b'"prev_hash":"' + h) for r, h in _prevs(records)
    ]
    old = str(quantum.id).encode()
    written = 0
    while written < total:
        new = str(uuid.uuid4()).encode()
        prev = b"0" * 64
        lines = []
        for body, named in bodies:
            body = body.replace(old, new).replace(named, b'"prev_hash":"' + prev)
            digest = hashlib.sha256(prev + body).hexdigest().encode()
            lines.append(b'%s,"hash":"%s"}\n' % (body[:-1], digest))
            prev = digest
        (directory / f"{new.decode()}.0.jsonl").write_bytes(b"".join(lines))
        written += len(bodies)
    return written


def _prevs(records: list[bytes]) -> list[tuple[bytes, bytes]]:
    prevs, prev = [], b"0" * 64
    for record in records:
        prevs.append((record, prev))
        prev = record[-66:-2]
    return prevs


_CHILD = """
import resource, sys, time
from qbb_events import verify_logs
began = time.perf_counter()
report = verify_logs(sys.argv[1]) if len(sys.argv) > 1 else None
seconds = time.perf_counter() - began
ok = report.ok if report is not None else True
events = report.events if report is not None else 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, events, seconds, ok)
"""


def verify_in_child(path: Path | None) -> tuple[float, int, float, bool]:
    args = [sys.executable, "-c", _CHILD] + ([str(path)] if path else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) / 1024, int(out[1]), float(out[2]), out[3] == "True"


def _database(url: str) -> tuple[str, sa.Engine, str]:
    base = sa.make_url(url)
    name = f"bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False), admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per writer")
    parser.add_argument("--verify-events", type=int, action="append", default=None)
    parser.add_argument("--events-per-log", type=int, default=10_000)
    parser.add_argument("--url", default=os.environ.get("QBB_TEST_POSTGRES_URL"))
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--skip-append", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    sizes = args.verify_events or [1_000_000]
    work = Path(tempfile.mkdtemp(prefix="qbb-bench-", dir=args.dir))
    rows: list[tuple[str, str, str, str]] = []
    try:
        if not args.skip_append:
            if not args.url:
                sys.exit("no PostgreSQL: pass --url or set QBB_TEST_POSTGRES_URL")
            for writers in (1, 4):
                files = str(work / f"files{writers}")
                floor = append_rate("file", files, work, writers, args.events)
                sqlite = append_rate(
                    "sqlite", str(work / f"s{writers}.sqlite"), work, writers, args.events
                )
                url, admin, name = _database(args.url)
                try:
                    postgres = append_rate("postgres", url, work, writers, args.events)
                finally:
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                    admin.dispose()
                target = f">= {TARGET_APPEND_4:,}" if writers == 4 else "-"
                met = "" if writers == 1 else (" ✓" if postgres >= TARGET_APPEND_4 else " ✗")
                rows.append(
                    (
                        f"append, {writers} writer(s), group commit",
                        f"PostgreSQL {postgres:,.0f} ev/s{met}",
                        target,
                        f"SQLite {sqlite:,.0f}; files (floor) {floor:,.0f}",
                    )
                )
        base_rss = verify_in_child(None)[0]
        for size in [] if args.skip_verify else sizes:
            run = work / f"run{size}"
            began = time.perf_counter()
            events = generate_run(run, size, args.events_per_log)
            made = time.perf_counter() - began
            rss, verified, seconds, ok = verify_in_child(run)
            assert ok, "the generated run did not verify"
            assert verified == events, (verified, events)
            met = "✓" if rss < TARGET_RSS_MIB else "✗"
            rows.append(
                (
                    f"verify_logs peak RSS, {events:,} events",
                    f"{rss:,.0f} MiB {met} ({events / seconds:,.0f} ev/s)",
                    f"< {TARGET_RSS_MIB} MiB",
                    f"interpreter + import {base_rss:,.0f} MiB; generated in {made:.0f} s",
                )
            )
            shutil.rmtree(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ("figure", "measured", "target", "baseline")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
