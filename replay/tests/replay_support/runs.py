"""Generated runs for the replay tests and benchmark, made through the public API only.

A run has two tasks. ``isr`` quanta read a raw and a config and write a
calexp; ``coadd`` quanta check every calexp, read those found, mark one
unused and write a coadd. Some raws are missing at first, so their ``isr``
quanta fail and are retried (attempt 1) after the raw is ingested; one quantum
is killed with SIGKILL mid-way (its log is unsealed) and retried too.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    JsonLinesEventLog,
    Quantum,
    QuantumBackedButler,
    SyncPolicy,
    log_file_name,
)

RAW = DatasetType("raw", "json", ("exposure",))
CONFIG = DatasetType("isr_config", "json", ())
CALEXP = DatasetType("calexp", "json", ("exposure",))
COADD = DatasetType("coadd", "json", ("patch",))


@dataclass
class Run:
    """What a generated run holds, for tests to check against."""

    root: Path
    logs: Path
    repo: Path
    quanta: dict[str, Quantum] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    log_paths: dict[tuple[str, int], Path] = field(default_factory=dict)


def _log(run: Run, quantum: Quantum, attempt: int, sync: SyncPolicy | None) -> Path:
    path = run.logs / quantum.task_label / log_file_name(quantum.id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    run.log_paths[(str(quantum.id), attempt)] = path
    return path


def _isr(butler: QuantumBackedButler, quantum: Quantum, extra_reads: int) -> None:
    raw, config = quantum.inputs[0], quantum.init_inputs[0]
    butler.stored_many([raw, config])
    gain = butler.get(config)["gain"]
    pixels = butler.get(raw)["pixels"]
    for _ in range(extra_reads):
        butler.stored(raw)
    butler.put({"pixels": [p * gain for p in pixels]}, quantum.outputs[0])


def _killed_isr(root: str, quantum: Quantum, log_path: str) -> None:
    """Run in a child process: start the quantum, read, and die by SIGKILL before sealing."""
    log = JsonLinesEventLog(log_path, sync=SyncPolicy.every_event())
    butler = QuantumBackedButler.initialize(FileDatastore(root), quantum, log=log, attempt=0)
    butler.stored_many([quantum.inputs[0], quantum.init_inputs[0]])
    butler.get(quantum.init_inputs[0])
    butler.get(quantum.inputs[0])
    os.kill(os.getpid(), signal.SIGKILL)


def _run_quantum(
    run: Run,
    datastore: FileDatastore,
    quantum: Quantum,
    attempt: int,
    *,
    sync: SyncPolicy | None,
    extra_reads: int = 0,
    documents: bool = True,
) -> str:
    path = _log(run, quantum, attempt, sync)
    log = JsonLinesEventLog(path, sync=sync)
    butler = QuantumBackedButler.initialize(datastore, quantum, log=log, attempt=attempt)
    try:
        if quantum.task_label == "isr":
            _isr(butler, quantum, extra_reads)
        else:
            found = butler.stored_many(quantum.inputs)
            present = [ref for ref, ok in found.items() if ok]
            values = [butler.get(ref)["pixels"][0] for ref in present]
            if present:
                # The task judges its last input too noisy to use.
                butler.markInputUnused(present[-1])
            butler.put({"sum": sum(values[:-1])}, quantum.outputs[0])
    except (FileNotFoundError, LookupError) as err:
        butler.finish("failed", err)
    butler.close()
    provenance = butler.extract_provenance_data()
    if documents:
        # The stored account verify compares the re-fold with.
        path.with_name(path.name.removesuffix(".jsonl") + ".provenance.json").write_text(
            provenance.model_dump_json()
        )
    return provenance.status or "aborted"


def generate_run(
    root: Path,
    *,
    exposures: int = 6,
    missing: tuple[int, ...] = (2,),
    kill: int | None = 4,
    extra_reads: int = 0,
    sync: SyncPolicy | None = None,
    documents: bool = True,
) -> Run:
    """Execute a generated run under ``root``.

    Parameters
    ----------
    root : `pathlib.Path`
        Gets ``repo/`` (the datastore) and ``logs/<task>/<id>.<attempt>.jsonl``.
    exposures : `int`
        How many ``isr`` quanta (one per exposure); ``coadd`` quanta take
        three exposures each.
    missing : `tuple` [`int`, ...]
        Exposures whose raw is missing at first: their ``isr`` fails, then is
        retried after the raw is ingested.
    kill : `int` or `None`
        An exposure whose first ``isr`` attempt is killed with SIGKILL.
    extra_reads : `int`
        Extra existence checks per ``isr`` quantum, to make logs longer.
    sync : `SyncPolicy`, optional
        Sync policy of the logs.
    documents : `bool`
        Write a provenance document next to each log.
    """
    run = Run(root=root, logs=root / "logs", repo=root / "repo")
    run.repo.mkdir(parents=True, exist_ok=True)
    datastore = FileDatastore(run.repo)
    config = DatasetRef(CONFIG, {}, "run/a")
    datastore.put({"gain": 2}, config)
    raws = [DatasetRef(RAW, {"exposure": e}, "raw/a") for e in range(exposures)]
    for e, ref in enumerate(raws):
        if e not in missing:
            datastore.put({"pixels": [e, e + 1]}, ref)
    calexps = [DatasetRef(CALEXP, {"exposure": e}, "run/a") for e in range(exposures)]
    isr = [
        Quantum("isr", {"exposure": e}, [raws[e]], [calexps[e]], init_inputs=[config])
        for e in range(exposures)
    ]
    for e, quantum in enumerate(isr):
        run.quanta[str(quantum.id)] = quantum
        if e == kill:
            path = _log(run, quantum, 0, sync)
            child = multiprocessing.get_context("spawn").Process(
                target=_killed_isr, args=(str(run.repo), quantum, str(path))
            )
            child.start()
            child.join()
            assert child.exitcode == -signal.SIGKILL
            run.killed.append(str(quantum.id))
            _run_quantum(run, datastore, quantum, 1, sync=sync, documents=documents)
            continue
        status = _run_quantum(
            run, datastore, quantum, 0, sync=sync, extra_reads=extra_reads, documents=documents
        )
        if status == "failed":
            run.failed.append(str(quantum.id))
            datastore.put({"pixels": [e, e + 1]}, raws[e])
            _run_quantum(run, datastore, quantum, 1, sync=sync, documents=documents)
    for start in range(0, exposures, 3):
        patch = start // 3
        inputs = calexps[start : start + 3]
        if patch == 0:
            # A calexp no quantum produces: coadd finds it missing and goes on.
            inputs = [*inputs, DatasetRef(CALEXP, {"exposure": exposures + 1}, "run/a")]
        quantum = Quantum(
            "coadd", {"patch": patch}, inputs, [DatasetRef(COADD, {"patch": patch}, "run/a")]
        )
        run.quanta[str(quantum.id)] = quantum
        _run_quantum(run, datastore, quantum, 0, sync=sync, documents=documents)
    return run
