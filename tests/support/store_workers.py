"""Child-process bodies for the SQL store tests (importable under the spawn start method).

A target is an SQLite path or a PostgreSQL URL.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from qbb_events import (
    PostgresEventStore,
    Quantum,
    QuantumBackedButler,
    SqliteEventStore,
    SyncPolicy,
)


def open_store(target: str, sync: SyncPolicy) -> SqliteEventStore | PostgresEventStore:
    """The store at ``target``: a PostgreSQL URL, or else an SQLite file."""
    if target.startswith("postgresql"):
        return PostgresEventStore(target, sync=sync)
    return SqliteEventStore(target, sync=sync)


def empty_quantum(quantum_id: str) -> Quantum:
    """A quantum with no datasets: its butler only logs what the test appends."""
    return Quantum("append_test", {"visit": 1}, inputs=[], outputs=[], id=uuid.UUID(quantum_id))


def existence_payload(index: int) -> dict[str, Any]:
    """An ``existence_checked`` payload naming one dataset."""
    return {"dataset_ids": [str(uuid.UUID(int=index + 1))], "results": [index % 2 == 0]}


def append_events(
    path: str, root: str, quantum_id: str, count: int, start: Any, max_events: int
) -> None:
    """Claim a quantum in the store at ``path``, wait for ``start``, append ``count`` events."""
    with open_store(path, SyncPolicy.group(max_events=max_events)) as store:
        butler = QuantumBackedButler.initialize(root, empty_quantum(quantum_id), log=store.log())
        # Every process has opened the file and claimed its quantum before any
        # appends, so the appends really overlap.
        start.wait()
        append = butler.log.append
        for index in range(count):
            append("existence_checked", existence_payload(index))
        butler.close()


def append_until_killed(path: str, root: str, quantum_id: str, committed: int, ready: Any) -> None:
    """Append forever, setting ``ready`` once ``committed`` events are surely committed."""
    store = open_store(path, SyncPolicy.group(max_events=100, max_delay_ms=60_000))
    butler = QuantumBackedButler.initialize(root, empty_quantum(quantum_id), log=store.log())
    append = butler.log.append
    index = 0
    while True:
        append("existence_checked", existence_payload(index))
        index += 1
        # A multiple of max_events: the append that reached it committed the group.
        if index == committed:
            ready.set()


def run_writers(target: str, root: Path, quanta: list[str], count: int, max_events: int) -> None:
    """Run one spawned ``append_events`` process per quantum, all at once; all must succeed."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(len(quanta) + 1)
    processes = [
        spawn.Process(
            target=append_events,
            args=(target, str(root / f"repo{k}"), quantum, count, start, max_events),
        )
        for k, quantum in enumerate(quanta)
    ]
    # The store may not exist yet: the writers also race to create it.
    for process in processes:
        process.start()
    try:
        start.wait(timeout=120)
        for process in processes:
            process.join(timeout=300)
        assert [p.exitcode for p in processes] == [0] * len(quanta)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
            process.close()


def kill_mid_group(target: str, root: Path, quantum_id: str, committed: int) -> None:
    """Run ``append_until_killed`` and SIGKILL it once ``committed`` events are committed."""
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    process = spawn.Process(
        target=append_until_killed, args=(target, str(root), quantum_id, committed, ready)
    )
    process.start()
    try:
        assert ready.wait(timeout=120)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=60)
        assert process.exitcode == -signal.SIGKILL
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        process.close()
