"""Executor figures: harness overhead per quantum, and the main job at 10,000 quanta.

1. Harness overhead: N quanta (one small json input, one output each) run
   through ``execute_quantum`` (JSON Lines log per quantum, sealed and synced),
   against the bare task doing the same datastore I/O with no butler, no log
   and no harness, interleaved round by round in the same process. The
   difference per quantum is what the harness adds; target at most 5 ms.
2. Quantum graphs: plan, save and load a graph of ``--graph-quanta`` trivial
   quanta, and read one quantum by id (target: a million quanta load in seconds).
3. The main job: ``run_pipeline`` (what ``qbb-events run`` calls) with the
   trivial two-task pipeline at 10,000 quanta and 2 workers: seconds and
   quanta/s per phase (plan, execute, export, transfer, verify); target the
   whole run under 60 s.

Usage: ``python benchmarks/bench_executor.py [--quanta 10000] [--harness-quanta 500]
[--rounds 3] [--workers 2] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    Quantum,
    QuantumBackedButler,
    QuantumGraph,
    execute_quantum,
    run_pipeline,
)
from qbb_events.executor import trivial_pipeline

INPUT = DatasetType("bench_in", "json", ("index",))
OUTPUT = DatasetType("bench_out", "json", ("index",))
OVERHEAD_TARGET_MS = 5.0
RUN_TARGET_S = 60.0


class CopyTask:
    """Read the input, write it back with one more key."""

    def run(self, butler: QuantumBackedButler, quantum: Quantum) -> None:
        value = butler.get(quantum.inputs[0])
        butler.put({**value, "seen": True}, quantum.outputs[0])


def _quanta(n: int, run: str) -> list[Quantum]:
    return [
        Quantum(
            "copy",
            {"index": i},
            [DatasetRef.deterministic(INPUT, {"index": i}, "inputs")],
            [DatasetRef.deterministic(OUTPUT, {"index": i}, run)],
        )
        for i in range(n)
    ]


def sync_floor(base: Path, n: int) -> float:
    """Return ms per quantum of the disk work a sealed log cannot skip.

    A new log file, six small records, the seal's ``fdatasync``, the one
    ``close`` makes, and the directory ``fsync`` that makes the name durable.
    """
    base.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i in range(n):
        fd = os.open(base / f"{i}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        dir_fd = os.open(base, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
        for _ in range(6):
            os.write(fd, b"x" * 300 + b"\n")
        os.fdatasync(fd)
        os.fdatasync(fd)
        os.close(fd)
    return (time.perf_counter() - start) * 1000 / n


def harness_overhead(base: Path, n: int, rounds: int) -> tuple[float, float, float]:
    """Return the median ms per quantum of the bare task, the sync floor and the harness."""
    store = FileDatastore(base / "repo", create=True)
    for i in range(n):
        store.put(
            {"index": i, "payload": list(range(10))},
            DatasetRef.deterministic(INPUT, {"index": i}, "inputs"),
        )
    bare_ms, floor_ms, harness_ms = [], [], []
    task = CopyTask()
    for r in range(rounds):
        quanta = _quanta(n, f"bare{r}")
        start = time.perf_counter()
        for q in quanta:
            value = store.get(q.inputs[0])
            store.put({**value, "seen": True}, q.outputs[0])
        bare_ms.append((time.perf_counter() - start) * 1000 / n)
        floor_ms.append(sync_floor(base / f"floor{r}", n))
        quanta = _quanta(n, f"harness{r}")
        start = time.perf_counter()
        for q in quanta:
            execute_quantum(task, q, store, log=base / f"logs{r}")
        harness_ms.append((time.perf_counter() - start) * 1000 / n)
    return statistics.median(bare_ms), statistics.median(floor_ms), statistics.median(harness_ms)


def graph_figures(base: Path, n: int) -> None:
    """Print seconds to plan, save and load a graph of ``n`` quanta, and to read one."""
    pipeline = trivial_pipeline()
    start = time.perf_counter()
    graph = QuantumGraph(pipeline.plan(pipeline.data_ids(n), run="r"), run="r", pipeline="t")
    plan = time.perf_counter() - start
    start = time.perf_counter()
    graph.save(base)
    save = time.perf_counter() - start
    start = time.perf_counter()
    loaded = QuantumGraph.load(base)
    load = time.perf_counter() - start
    start = time.perf_counter()
    loaded.upstream()
    edges = time.perf_counter() - start
    wanted = list(graph)[len(graph) // 2].id
    start = time.perf_counter()
    QuantumGraph.load_quantum(base, wanted)
    one = time.perf_counter() - start
    print(f"quantum graph: {len(graph)} quanta")
    print(f"{'step':<34}{'seconds':>10}{'quanta/s':>12}")
    for step, seconds in (
        ("plan", plan),
        ("save (Parquet)", save),
        ("load", load),
        ("upstream map (Arrow join)", edges),
    ):
        print(f"{step:<34}{seconds:>10.3f}{len(graph) / seconds:>12.0f}")
    print(f"{'load_quantum (one, by id)':<34}{one:>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quanta", type=int, default=10_000)
    parser.add_argument("--harness-quanta", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--graph-quanta", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-executor-", dir=args.dir))
    try:
        bare, floor, harness = harness_overhead(base / "overhead", args.harness_quanta, args.rounds)
        overhead = harness - bare
        print(f"harness overhead ({args.harness_quanta} quanta x {args.rounds} rounds, median)")
        print(f"{'measure':<40}{'ms/quantum':>12}{'target':>12}")
        print(f"{'bare task, same I/O (baseline)':<40}{bare:>12.3f}{'':>12}")
        print(f"{'log file + its syncs alone (disk floor)':<40}{floor:>12.3f}{'':>12}")
        print(f"{'execute_quantum (file log, sealed)':<40}{harness:>12.3f}{'':>12}")
        ok = "ok" if overhead <= OVERHEAD_TARGET_MS else "MISSED"
        target = f"<= {OVERHEAD_TARGET_MS} {ok}"
        print(f"{'overhead (harness - bare)':<40}{overhead:>12.3f}{target:>12}")
        print(f"{'overhead beyond the disk floor':<40}{overhead - floor:>12.3f}{'':>12}")
        print()
        graph_figures(base / "graph", args.graph_quanta)
        print()
        start = time.perf_counter()
        report = run_pipeline(
            base / "run",
            quanta=args.quanta,
            workers=args.workers,
            pipeline="qbb_events.executor:trivial_pipeline",
            progress=False,
        )
        total = time.perf_counter() - start
        n = len(report.quanta)
        print(f"qbb-events run: {n} quanta (trivial tasks), {args.workers} workers")
        print(f"{'phase':<12}{'seconds':>10}{'quanta/s':>12}")
        for phase, seconds in report.phases.items():
            print(f"{phase:<12}{seconds:>10.2f}{n / seconds:>12.0f}")
        ok = "ok" if total < RUN_TARGET_S else "MISSED"
        target = f"target < {RUN_TARGET_S:.0f} s: {ok}"
        print(f"{'whole run':<12}{total:>10.2f}{n / total:>12.0f}   {target}")
        assert report.ok, "the run did not verify"
        assert report.logs_verified == n, "a log did not verify"
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
