"""Parquet export, vectorized fold and scalar fold on a generated run.

Generates a run of about ``--events`` events in ``--events / 100`` quanta (each:
``quantum_started`` with 40 inputs and 20 outputs, 40 existence checks, 38
successful and 2 failed reads, 20 writes, one input marked unused, and
``quantum_finished``) as JSON Lines logs, then times, each phase in its own
process so that its peak memory (max RSS) is its own:

- verification: ``verify_logs(logs)`` (both cores);
- export: ``export_parquet(logs, dest)``, events per second;
- vectorized fold: ``write_provenance(dest)``, the provenance tables computed from the
  Parquet dataset with Arrow compute and written;
- scalar fold: ``fold(read_log(path))`` for every log (the baseline);
- floors, on the same files in the same run: reading the bytes, reading and
  hashing every line, reading and parsing (orjson over each whole file, the fastest
  parser measured here; both on two cores), writing the events table, and reading
  the fold's columns and writing its table. Each phase is compared with the floor
  of its stage (its "vs floor").
- size on disk per event of the whole dataset.

Imports happen before the clock starts. The machine may be shared: compare the
ratios to the floors measured in the same run rather than absolute rates.

The issue asks for 10 million events (``--events 10000000``, about 10 minutes here);
the default of 1 million shows the same rates in about a minute.

Usage: ``python benchmarks/bench_parquet.py [--events 1000000] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INPUTS, OUTPUTS = 40, 20
EVENTS_PER_QUANTUM = 1 + INPUTS + INPUTS + OUTPUTS + 1 + 1
TARGETS = {"verification": 1_000_000, "export": 300_000, "vectorized fold": 3_000_000}
PHASES = (
    "verification",
    "export",
    "vectorized fold",
    "scalar fold",
    "floor: read",
    "floor: read+hash",
    "floor: read+parse",
    "floor: write events",
    "floor: fold read+write",
)


def _floor_of(name: str, figures: dict[str, dict[str, float]]) -> float | None:
    """The rate of the floor a phase is compared with: the unavoidable work of its stage.

    Verification must read, hash and parse every record; export must do that
    and write the events table; the fold must read its columns and write its table.
    """

    def seconds(*names: str) -> float | None:
        if not all(n in figures for n in names):
            return None
        return sum(figures[n]["seconds"] for n in names)

    events = figures.get(name, {}).get("events", 0)
    spent = {
        "verification": seconds("floor: read+hash", "floor: read+parse"),
        "export": seconds("floor: read+hash", "floor: read+parse", "floor: write events"),
        "vectorized fold": seconds("floor: fold read+write"),
    }.get(name)
    return events / spent if spent else None


PEAK_TARGET_MIB = 1024
BYTES_TARGET = 40


def generate(logs: Path, quanta: int) -> int:
    """Write ``quanta`` logs; return how many events they hold."""
    from qbb_events import (
        DatasetRef,
        DatasetType,
        FileDatastore,
        JsonLinesEventLog,
        Quantum,
        QuantumBackedButler,
        SyncPolicy,
    )

    raw = DatasetType("raw", "json", ("exposure", "detector"))
    calexp = DatasetType("calexp", "json", ("exposure", "detector"))
    datastore = FileDatastore(logs.parent / "repo", create=True)
    checksum = "sha256:" + "0" * 64
    total = 0
    for number in range(quanta):
        task = ("isr", "calibrate", "coadd")[number % 3]
        inputs = [
            DatasetRef(raw, {"exposure": number, "detector": d}, "bench/raw") for d in range(INPUTS)
        ]
        outputs = [
            DatasetRef(calexp, {"exposure": number, "detector": d}, "bench/run")
            for d in range(OUTPUTS)
        ]
        quantum = Quantum(task, {"exposure": number}, inputs=inputs, outputs=outputs)
        log = JsonLinesEventLog(logs / f"{quantum.id}.jsonl", sync=SyncPolicy.on_close())
        butler = QuantumBackedButler.initialize(datastore, quantum, log=log)
        append = log.append
        for ref in inputs:
            append("existence_checked", {"dataset_ids": [str(ref.id)], "results": [True]})
        for index, ref in enumerate(inputs):
            ok = index >= 2
            failure = (
                None
                if ok
                else {"exc_type": "ArtifactNotFoundError", "message": "gone", "category": "missing"}
            )
            append(
                "input_read",
                {
                    "dataset_id": str(ref.id),
                    "ok": ok,
                    "failure": failure,
                    "bytes_read": 2048 if ok else 0,
                    "duration_ns": 150_000 + index,
                },
            )
        for index, ref in enumerate(outputs):
            record = {
                "record_type": "file",
                "dataset_id": str(ref.id),
                "datastore_name": "FileDatastore",
                "path": f"bench/run/calexp/exposure={number}/detector={index}.json",
                "formatter": "json",
                "storage_class": "json",
                "file_size": 4096,
                "checksum": checksum,
            }
            append(
                "output_written",
                {"dataset_id": str(ref.id), "record": record, "duration_ns": 300_000 + index},
            )
        append("input_marked_unused", {"dataset_id": str(inputs[-1].id)})
        butler.close()
        log.close()
        total += len(log)
    return total


def _files(logs: Path) -> list[str]:
    return sorted(str(p) for p in logs.glob("*.jsonl"))


def _read(path: str) -> int:
    with open(path, "rb") as stream:
        return stream.read().count(b"\n")


def _hash(path: str) -> int:
    import hashlib

    with open(path, "rb") as stream:
        lines = stream.read().split(b"\n")[:-1]
    for line in lines:
        hashlib.sha256(line).hexdigest()
    return len(lines)


def _parse(path: str) -> int:
    import orjson

    with open(path, "rb") as stream:
        lines = stream.read().split(b"\n")[:-1]
    # The fastest parser measured here: orjson over the whole file at once (about
    # nine times pyarrow's C JSON reader on these records).
    return len(orjson.loads(b"[" + b",".join(lines) + b"]"))


def _on_cores(work: object, files: list[str]) -> int:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(work, files, chunksize=16))  # type: ignore[arg-type]


def _write_floor(dest: Path, table: str) -> tuple[int, float]:
    """Read a table's parts whole, then time writing them again (the write alone)."""
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted((dest / table).glob("run=*/part-*.parquet"))]
    start = time.perf_counter()
    for number, data in enumerate(tables):
        pq.write_table(data, dest / f"floor-{table}-{number}.parquet", compression="zstd")
    seconds = time.perf_counter() - start
    for number in range(len(tables)):
        (dest / f"floor-{table}-{number}.parquet").unlink()
    return sum(t.num_rows for t in tables), seconds


def phase(name: str, logs: Path, dest: Path) -> dict[str, float]:
    """Run one phase in this process and return its figures (imports are not timed)."""
    import pyarrow.parquet as pq

    from qbb_events import export_parquet, fold, iter_log, verify_logs, write_provenance

    files = _files(logs)
    count = 0
    start = time.perf_counter()
    if name == "verification":
        report = verify_logs(logs)
        assert report.ok
        count = report.events
    elif name == "export":
        count = export_parquet(logs, dest, progress=False).events
    elif name == "vectorized fold":
        write_provenance(dest)
        count = _events_in(dest)
    elif name == "scalar fold":
        for path in files:
            events = list(iter_log(path))
            fold(events)
            count += len(events)
    elif name == "floor: read":
        count = _on_cores(_read, files)
    elif name == "floor: read+hash":
        count = _on_cores(_hash, files)
    elif name == "floor: read+parse":
        count = _on_cores(_parse, files)
    elif name == "floor: write events":
        count, seconds = _write_floor(dest, "events")
        start = time.perf_counter() - seconds
    elif name == "floor: fold read+write":
        # What the fold cannot avoid: read the columns it needs, write its table.
        columns = [
            "quantum_id",
            "attempt",
            "seq",
            "item",
            "kind",
            "dataset_id",
            "found",
            "failure_category",
            "extra",
        ]
        for part in sorted((dest / "events").glob("run=*/part-*.parquet")):
            pq.read_table(part, columns=columns)
        _write_floor(dest, "provenance")
        count = _events_in(dest)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"events": count, "seconds": seconds, "peak_mib": peak_kib / 1024}


def _events_in(dest: Path) -> int:
    import pyarrow.parquet as pq

    return sum(
        sum(pq.read_table(part, columns=["events"]).column("events").to_pylist())
        for part in (dest / "quanta").glob("run=*/part-*.parquet")
    )


def main() -> None:
    """Generate the run, time every phase in a child process, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated phases to run (default: all; the fold and the write floors "
        "need the export)",
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        figures = phase(args.phase, args.work / "logs", args.work / "dataset")
        print(json.dumps(figures))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-parquet-", dir=args.dir))
    try:
        (work / "logs").mkdir()
        quanta = max(1, args.events // EVENTS_PER_QUANTUM)
        start = time.perf_counter()
        events = generate(work / "logs", quanta)
        print(
            f"generated {events:,} events in {quanta:,} quanta in "
            f"{time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        rows = []
        for name in args.phases.split(","):
            done = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--work", str(work)],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                print(f"{name} failed:\n{done.stderr}", file=sys.stderr)
                continue
            rows.append((name, json.loads(done.stdout.strip().splitlines()[-1])))
        size = sum(
            p.stat().st_size
            for p in (work / "dataset").rglob("*.parquet")
            if not p.name.startswith("floor-")
        )
        exported = (work / "dataset").is_dir()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = dict(rows)
    rates = {name: fig["events"] / fig["seconds"] for name, fig in rows}
    print(
        f"{'phase':<24} {'events':>11} {'seconds':>8} {'events/s':>12} {'vs floor':>9} "
        f"{'peak MiB':>9} {'target':>16}"
    )
    for name, fig in rows:
        rate = rates[name]
        target = TARGETS.get(name)
        mark = "" if target is None else f"{target:,}" + ("✓" if rate >= target else "✗")
        floor = _floor_of(name, figures)
        ratio = f"{rate / floor:.2f}" if floor else ""
        print(
            f"{name:<24} {fig['events']:>11,.0f} {fig['seconds']:>8.2f} {rate:>12,.0f} "
            f"{ratio:>9} {fig['peak_mib']:>9.0f} {mark:>16}"
        )
    per_event = size / events
    if not exported:
        return
    print(
        f"size on disk: {size:,} bytes, {per_event:.1f} bytes/event "
        f"(target <= {BYTES_TARGET}: {'✓' if per_event <= BYTES_TARGET else '✗'}); "
        f"peak target < {PEAK_TARGET_MIB} MiB"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
