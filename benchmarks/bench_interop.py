"""Export of a generated run to each interchange format: quanta per second and bytes per quantum.

Generates ``--quanta`` quanta (default 10,000, the issue's size) as JSON Lines logs,
each with 4 inputs and 2 outputs (``quantum_started``, one ``existence_checked``
for all inputs, 4 reads, 2 writes, one input marked unused, ``quantum_finished``:
10 events), then times, one after the other in this process:

- floor: verify every log, parse it and fold it (``verify_logs`` plus
  ``fold(read_log(path))``): the work every format needs before it writes a byte;
- LSST JSON: ``fold(read_log(path)).to_lsst_json()`` for every log;
- OpenLineage: ``export_lineage(logs, out, format="openlineage")`` (NDJSON);
- PROV-JSON and PROV-N: ``export_lineage(..., format="prov-json" / "prov-n")``.

The issue sets no speed target for these exports; each figure is shown beside the
floor measured in the same run, as wall-clock quanta/s and as quanta per CPU-second
(the machine may be shared: wall-clock figures are noisy). With ``--dir`` the logs are
kept, and a later run with the same ``--dir`` and ``--quanta`` reuses them.

Usage: ``python benchmarks/bench_interop.py [--quanta 10000] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def generate(logs: Path, quanta: int) -> None:
    """Write ``quanta`` sealed logs into ``logs``."""
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
    logs.mkdir(parents=True)
    for number in range(quanta):
        inputs = [
            DatasetRef(raw, {"exposure": number, "detector": d}, "bench/raw") for d in range(4)
        ]
        outputs = [
            DatasetRef(calexp, {"exposure": number, "detector": d}, "bench/run") for d in range(2)
        ]
        quantum = Quantum(("isr", "calibrate")[number % 2], {"exposure": number}, inputs, outputs)
        log = JsonLinesEventLog(logs / f"{quantum.id}.jsonl", sync=SyncPolicy.on_close())
        butler = QuantumBackedButler.initialize(datastore, quantum, log=log)
        append = log.append
        ids = [str(ref.id) for ref in inputs]
        append("existence_checked", {"dataset_ids": ids, "results": [True] * len(ids)})
        for dataset_id in ids:
            append(
                "input_read",
                {
                    "dataset_id": dataset_id,
                    "ok": True,
                    "failure": None,
                    "bytes_read": 2048,
                    "duration_ns": 150_000,
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
                {"dataset_id": str(ref.id), "record": record, "duration_ns": 300_000},
            )
        append("input_marked_unused", {"dataset_id": ids[-1]})
        butler.close()
        log.close()


def timed(work: Callable[[], int]) -> tuple[float, float, int]:
    """Run ``work`` (which returns bytes written); return (wall seconds, CPU seconds, bytes)."""
    start, cpu = time.perf_counter(), time.process_time()
    size = work()
    return time.perf_counter() - start, time.process_time() - cpu, size


def main() -> None:
    """Generate the run, time each format, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quanta", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None, help="Work here (kept) instead of /tmp.")
    args = parser.parse_args()
    from qbb_events import export_lineage, fold, read_log, verify_logs

    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-interop-"))
    logs = work / "logs"
    try:
        if logs.is_dir() and len(list(logs.glob("*.jsonl"))) == args.quanta:
            print(f"reusing the {args.quanta} logs in {logs}")
        else:
            start = time.perf_counter()
            generate(logs, args.quanta)
            print(f"generated {args.quanta} quanta in {time.perf_counter() - start:.1f} s")
        paths = sorted(logs.glob("*.jsonl"))

        def floor() -> int:
            assert verify_logs(logs).ok
            for path in paths:
                fold(read_log(path))
            return 0

        def lsst() -> int:
            return sum(len(fold(read_log(p)).to_lsst_json().encode()) for p in paths)

        def export(fmt: str) -> Callable[[], int]:
            def run() -> int:
                report = export_lineage(logs, work / f"out.{fmt}", format=fmt)  # type: ignore[arg-type]
                assert report.attempts == args.quanta
                return report.bytes_written

            return run

        rows = [("floor: verify + parse + fold", *timed(floor))]
        rows.append(("LSST JSON (to_lsst_json)", *timed(lsst)))
        for fmt in ("openlineage", "prov-json", "prov-n"):
            rows.append((fmt, *timed(export(fmt))))
        floor_cpu_rate = args.quanta / rows[0][2]
        print(f"\n{args.quanta} quanta, 4 inputs and 2 outputs each (shared machine: noisy)")
        header = f"{'format':<30} {'quanta/s':>9} {'per CPU-s':>10} {'CPU vs floor':>13}"
        print(f"{header} {'bytes/quantum':>14}  target")
        for name, seconds, cpu, size in rows:
            rate = args.quanta / seconds
            per = f"{size / args.quanta:,.0f}" if size else "-"
            cpu_rate = args.quanta / cpu
            line = f"{name:<30} {rate:>9,.0f} {cpu_rate:>10,.0f} {cpu_rate / floor_cpu_rate:>13.2f}"
            print(f"{line} {per:>14}  none set")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
