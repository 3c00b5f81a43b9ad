"""Child-process bodies for the SQLite store tests (importable under the spawn start method)."""

from __future__ import annotations

import uuid
from typing import Any

from qbb_events import FileDatastore, Quantum, QuantumBackedButler, SyncPolicy
from qbb_events.logs.sqlite import SqliteEventStore


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
    with SqliteEventStore(path, sync=SyncPolicy.group(max_events=max_events)) as store:
        butler = QuantumBackedButler.initialize(
            FileDatastore(root, create=True), empty_quantum(quantum_id), log=store.log()
        )
        # Every process has opened the file and claimed its quantum before any
        # appends, so the appends really overlap.
        start.wait()
        append = butler.log.append
        for index in range(count):
            append("existence_checked", existence_payload(index))
        butler.close()


def append_until_killed(path: str, root: str, quantum_id: str, committed: int, ready: Any) -> None:
    """Append forever, setting ``ready`` once ``committed`` events are surely committed."""
    store = SqliteEventStore(path, sync=SyncPolicy.group(max_events=100, max_delay_ms=60_000))
    butler = QuantumBackedButler.initialize(
        FileDatastore(root, create=True), empty_quantum(quantum_id), log=store.log()
    )
    append = butler.log.append
    index = 0
    while True:
        append("existence_checked", existence_payload(index))
        index += 1
        # A multiple of max_events: the append that reached it committed the group.
        if index == committed:
            ready.set()
