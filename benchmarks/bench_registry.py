"""Transfer of a generated run into the registry: SQLite and PostgreSQL, 1 and 2 workers.

Generates a run of ``100,000 x --scale`` quanta of three tasks, each with 2
inputs (the previous quantum's first outputs, or raws) and 10 outputs, as
JSON Lines logs (``quantum_started``, one ``existence_checked``, 2 reads, 10
writes with their records, ``quantum_finished``: 15 events, 26 provenance
rows). Then times, each phase in its own process so its peak RSS is its own:

- ``transfer_run`` of the logs into a new SQLite registry, 1 and 2 workers;
- the same into a new PostgreSQL database (``--postgres URL``, default
  ``$QBB_TEST_POSTGRES_URL``), 1 and 2 workers;
- the baseline: ``QuantumProvenanceData.collect_and_transfer`` one quantum
  at a time (``--baseline-quanta`` of them, into SQLite), the reference's way;
- the floor: ``verify_logs`` over the logs alone, on one core, which any
  transfer from logs does first (its rate counts the outputs of the logs).

Output datasets per second count every row that goes with them: their
records, the quanta and every provenance row. The issue's size is
``--scale 1`` (100,000 quanta, 1,000,000 outputs).

Usage: ``python benchmarks/bench_registry.py [--scale 0.1] [--dir PATH] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INPUTS, OUTPUTS = 2, 10
TARGETS = {"sqlite": 100_000, "postgresql": 50_000}
PEAK_TARGET_MIB = 1024
REFERENCE = 17_000  # the reference's collect_and_transfer, measured on this machine


def _refs(number: int) -> tuple[list, list]:
    from qbb_events import DatasetRef, DatasetType, deterministic_dataset_id

    raw = DatasetType("raw", "json", ("exposure", "detector"))
    out = DatasetType(f"out{number % 3}", "json", ("exposure", "detector"))
    if number == 0:
        inputs = [
            DatasetRef(raw, {"exposure": 0, "detector": d}, "bench/raw") for d in range(INPUTS)
        ]
    else:
        previous = DatasetType(f"out{(number - 1) % 3}", "json", ("exposure", "detector"))
        inputs = [
            DatasetRef(
                previous,
                {"exposure": number - 1, "detector": d},
                "bench/run",
                deterministic_dataset_id(
                    previous, {"exposure": number - 1, "detector": d}, "bench/run"
                ),
            )
            for d in range(INPUTS)
        ]
    outputs = [
        DatasetRef.deterministic(out, {"exposure": number, "detector": d}, "bench/run")
        for d in range(OUTPUTS)
    ]
    return inputs, outputs


def _record(ref, number: int, index: int) -> dict:
    return {
        "record_type": "file",
        "dataset_id": str(ref.id),
        "datastore_name": "FileDatastore",
        "path": f"bench/run/{ref.dataset_type.name}/exposure={number}/detector={index}.json",
        "formatter": "json",
        "storage_class": "json",
        "file_size": 4096,
        "checksum": "sha256:" + "0" * 64,
    }


def generate(logs: Path, quanta: int) -> None:
    """Write ``quanta`` logs, as a butler with a JSON Lines log records them."""
    from qbb_events import (
        FileDatastore,
        JsonLinesEventLog,
        Quantum,
        QuantumBackedButler,
        SyncPolicy,
    )

    datastore = FileDatastore(logs.parent / "repo", create=True)
    for number in range(quanta):
        inputs, outputs = _refs(number)
        quantum = Quantum(f"task{number % 3}", {"exposure": number}, inputs, outputs)
        log = JsonLinesEventLog(logs / f"{quantum.id}.jsonl", sync=SyncPolicy.on_close())
        butler = QuantumBackedButler.initialize(datastore, quantum, log=log)
        append = log.append
        append(
            "existence_checked",
            {"dataset_ids": [str(r.id) for r in inputs], "results": [True] * INPUTS},
        )
        for index, ref in enumerate(inputs):
            append(
                "input_read",
                {
                    "dataset_id": str(ref.id),
                    "ok": True,
                    "failure": None,
                    "bytes_read": 2048,
                    "duration_ns": 150_000 + index,
                },
            )
        for index, ref in enumerate(outputs):
            append(
                "output_written",
                {
                    "dataset_id": str(ref.id),
                    "record": _record(ref, number, index),
                    "duration_ns": 300_000 + index,
                },
            )
        butler.close()
        log.close()


def _baseline(url: str, quanta: int) -> int:
    """collect_and_transfer, one quantum per call; return the outputs registered."""
    from qbb_events import FileRecord, Quantum, QuantumProvenanceData, Registry

    registered = 0
    with Registry.create(url) as registry:
        for number in range(quanta):
            inputs, outputs = _refs(number)
            quantum = Quantum(f"task{number % 3}", {"exposure": number}, inputs, outputs)
            ids = frozenset(r.id for r in inputs)
            records = [FileRecord(**_record(r, number, i)) for i, r in enumerate(outputs)]
            provenance = QuantumProvenanceData(
                predicted_inputs=ids,
                available_inputs=ids,
                actual_inputs=ids,
                predicted_outputs=frozenset(r.id for r in outputs),
                actual_outputs=frozenset(r.id for r in outputs),
                datastore_records={"FileDatastore": sorted(records, key=lambda r: r.dataset_id)},
                quantum_id=quantum.id,
                status="succeeded",
            )
            report = QuantumProvenanceData.collect_and_transfer(registry, [quantum], [provenance])
            registered += report.datasets_new
    return registered


def phase(kind: str, url: str, logs: Path, workers: int, quanta: int) -> dict[str, float]:
    """Run one phase in this process and return its figures."""
    from qbb_events import Registry, transfer_run

    start = time.perf_counter()
    if kind == "baseline":
        datasets = _baseline(url, quanta)
        provenance = 0
    elif kind == "floor":
        # What any transfer from logs must do first: read and verify every log.
        from qbb_events import verify_logs

        report = verify_logs(logs)
        assert report.ok
        datasets, provenance = len(report.logs) * OUTPUTS, 0
    else:
        with Registry.create(url) as registry:
            report = transfer_run(registry, [str(logs)], workers=workers, progress=False)
        assert report.ok, report
        datasets, provenance = report.datasets_new, report.provenance_rows_new
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "datasets": datasets,
        "provenance": provenance,
        "seconds": seconds,
        "peak_mib": max(own, children) / 1024,
    }


def _in_process(kind: str, url: str, logs: Path, workers: int, quanta: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", kind, "--url", url, "--dir", str(logs)]
    command += ["--workers", str(workers), "--baseline-quanta", str(quanta)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _postgres_database(server: str) -> tuple[str, object]:
    import sqlalchemy as sa

    url = sa.make_url(server)
    name = f"qbb_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1 = 100,000 quanta")
    parser.add_argument("--dir", type=Path, help="Work directory (default: a temporary one).")
    parser.add_argument("--postgres", default=os.environ.get("QBB_TEST_POSTGRES_URL"))
    parser.add_argument("--baseline-quanta", type=int, default=2000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url, args.dir, args.workers, args.baseline_quanta)))
        return
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench_registry_"))
    logs = work / "logs"
    quanta = int(100_000 * args.scale)
    if not logs.is_dir():
        logs.mkdir(parents=True)
        start = time.perf_counter()
        generate(logs, quanta)
        print(f"generated {quanta:,} quanta in {time.perf_counter() - start:.0f} s", flush=True)
    rows: list[tuple[str, dict[str, float], str]] = []
    try:
        for workers in (1, 2):
            url = str(work / f"registry-{workers}.sqlite3")
            for stale in work.glob(f"registry-{workers}.sqlite3*"):
                stale.unlink()
            rows.append(
                (
                    f"sqlite, {workers} worker(s)",
                    _in_process("transfer", url, logs, workers, 0),
                    "sqlite",
                )
            )
            print(rows[-1], flush=True)
        if args.postgres:
            for workers in (1, 2):
                url, drop = _postgres_database(args.postgres)
                try:
                    figures = _in_process("transfer", url, logs, workers, 0)
                finally:
                    drop()  # type: ignore[operator]
                rows.append((f"postgresql, {workers} worker(s)", figures, "postgresql"))
                print(rows[-1], flush=True)
        rows.append(("floor: verify_logs alone, 1 core", _in_process("floor", "", logs, 1, 0), ""))
        print(rows[-1], flush=True)
        url = str(work / "baseline.sqlite3")
        for stale in work.glob("baseline.sqlite3*"):
            stale.unlink()
        rows.append(
            (
                f"collect_and_transfer x{args.baseline_quanta:,} (baseline)",
                _in_process("baseline", url, logs, 1, args.baseline_quanta),
                "",
            )
        )
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    baseline = rows[-1][1]["datasets"] / rows[-1][1]["seconds"]
    print(f"\n{quanta:,} quanta, {quanta * OUTPUTS:,} outputs (machine shared: figures are noisy)")
    print(
        f"{'phase':<42} {'datasets':>10} {'prov rows':>10} {'s':>8} {'datasets/s':>11} "
        f"{'target':>8} {'x base':>7} {'peak MiB':>9}"
    )
    for name, figures, dialect in rows:
        rate = figures["datasets"] / figures["seconds"]
        target = TARGETS.get(dialect)
        shown = f"{target:,}" if target else "-"
        mark = "" if target is None else (" ok" if rate >= target else " !!")
        print(
            f"{name:<42} {figures['datasets']:>10,.0f} {figures['provenance']:>10,.0f} "
            f"{figures['seconds']:>8.1f} {rate:>11,.0f} {shown:>8}{mark} {rate / baseline:>6.1f} "
            f"{figures['peak_mib']:>9.0f}{'' if figures['peak_mib'] < PEAK_TARGET_MIB else ' !!'}"
        )
    print(f"reference collect_and_transfer (measured earlier, no provenance): {REFERENCE:,}/s")


if __name__ == "__main__":
    main()
