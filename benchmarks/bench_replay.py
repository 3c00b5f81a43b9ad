"""qbb-replay verify and report over a generated run, beside a floor measured in the same run.

The run: ``--logs`` quanta (default 10,000), each an ``isr`` quantum whose
task checks its input ``--checks`` times, reads it and writes its output, so
each log holds ``checks + 4`` events (default 100: about 1,000,000 events).
Logs are written by the real butler into JSON Lines files.

Figures (each through the real command line, in a fresh process, wall time
including interpreter start):

- floor: one process reading every file and doing only the per-event work
  an integrity check cannot avoid (split lines, parse JSON, SHA-256 of the
  stored bytes);
- library: `verify_logs` over the directory, one process (the baseline);
- ``qbb-replay verify`` with ``--jobs 1`` and ``--jobs 2`` on the logs alone
  (integrity) and on the same logs with a provenance document beside each
  (integrity plus a re-fold compared with the document);
- ``qbb-replay report --jobs 2``: time and file size.

Usage: ``python benchmarks/bench_replay.py [--logs 10000] [--checks 96] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    JsonLinesEventLog,
    Quantum,
    QuantumBackedButler,
    SyncPolicy,
    log_file_name,
    verify_logs,
)

TARGET = 1_000_000  # events/s, qbb-replay verify on this 2-core machine
RAW = DatasetType("raw", "json", ("exposure",))
CALEXP = DatasetType("calexp", "json", ("exposure",))


def generate(root: Path, logs: int, checks: int) -> tuple[Path, Path, int]:
    """Write the run's logs, and a twin directory whose logs have provenance documents."""
    repo, plain, documented = root / "repo", root / "logs", root / "documented"
    for folder in (repo, plain, documented):
        folder.mkdir(parents=True)
    datastore = FileDatastore(repo)
    events = 0
    for exposure in range(logs):
        raw = DatasetRef(RAW, {"exposure": exposure}, "raw/bench")
        datastore.put({"pixels": [exposure]}, raw)
        quantum = Quantum(
            "isr", {"exposure": exposure}, [raw], [DatasetRef(CALEXP, {"exposure": exposure}, "b")]
        )
        name = log_file_name(quantum.id, 0)
        log = JsonLinesEventLog(plain / name, sync=SyncPolicy.on_close())
        butler = QuantumBackedButler.initialize(datastore, quantum, log=log)
        for _ in range(checks):
            butler.stored(raw)
        butler.put(butler.get(raw), quantum.outputs[0])
        butler.close()
        events += checks + 4
        os.link(plain / name, documented / name)
        document = butler.extract_provenance_data().model_dump_json()
        (documented / name.replace(".jsonl", ".provenance.json")).write_text(document)
    return plain, documented, events


def floor(folder: Path) -> float:
    """Seconds for the unavoidable per-event work of an integrity check, one process."""
    start = time.perf_counter()
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            raw = orjson.loads(line)
            hashlib.sha256(raw["prev_hash"].encode() + line[: -(len(raw["hash"]) + 10)] + b"}")
    return time.perf_counter() - start


def timed(*command: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logs", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=96)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-replay-", dir=args.dir))
    replay = str(Path(sys.executable).with_name("qbb-replay"))
    try:
        start = time.perf_counter()
        plain, documented, events = generate(work / "run", args.logs, args.checks)
        made = time.perf_counter() - start
        size = sum(p.stat().st_size for p in plain.glob("*.jsonl"))
        print(
            f"generated {args.logs} logs, {events} events, {size / 2**20:.1f} MiB in {made:.1f} s"
        )
        rows: list[tuple[str, float, str]] = []
        rows.append(("floor: parse + SHA-256, 1 process", floor(plain), ""))
        start = time.perf_counter()
        report = verify_logs(plain)
        rows.append(("library verify_logs, 1 process", time.perf_counter() - start, ""))
        assert report.ok
        assert report.events == events
        for folder, what in ((plain, "logs only"), (documented, "with provenance documents")):
            for jobs in (1, 2):
                seconds = timed(replay, "verify", str(folder), "--jobs", str(jobs))
                rows.append((f"qbb-replay verify --jobs {jobs}, {what}", seconds, f">= {TARGET:,}"))
        html = work / "report.html"
        seconds = timed(replay, "report", str(plain), "-o", str(html), "--jobs", "2")
        rows.append(("qbb-replay report --jobs 2", seconds, ""))
        print(f"\n{'figure':<52} {'seconds':>8} {'events/s':>11} {'vs floor':>9}  target")
        base = rows[0][1]
        for name, secs, target in rows:
            print(f"{name:<52} {secs:>8.2f} {events / secs:>11,.0f} {base / secs:>9.2f}  {target}")
        print(f"\nreport file: {html.stat().st_size / 2**20:.1f} MiB for {args.logs} logs")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
