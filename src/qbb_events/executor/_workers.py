"""Worker processes that run quanta with the harness, one at a time each.

Workers are started with ``forkserver`` (``spawn`` where it is missing), never
``fork``: a worker starts clean, holding no log or lock of the parent. Each
rebuilds the pipeline from the operator's spec, then answers one quantum per
message with its `QuantumReport`. A worker that dies (a SIGKILL, a crash)
closes its pipe: the parent sees the quantum as aborted and starts another.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import uuid
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from ..quantum import Quantum
from ._faults import FaultInjection
from ._harness import QuantumReport, execute_quantum
from ._loading import load_pipeline

__all__ = ["Worker", "WorkerSettings", "default_workers", "start_worker", "worker_context"]


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of a run needs (picklable)."""

    pipeline: str | None
    root: str
    logs: str
    faults: FaultInjection
    skip_existing: bool = True
    clobber: bool = True


def _serve(conn: multiprocessing.connection.Connection, settings: WorkerSettings) -> None:
    # Fold warnings (an input unused, one missing) are in the logs and the
    # summary; printed by every worker they would only bury the progress bar.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    tasks = {task.label: task for task in load_pipeline(settings.pipeline).tasks}
    while True:
        message = conn.recv()
        if message is None:
            return
        quantum, attempt, upstream_failed = message
        task = settings.faults.wrap(tasks[quantum.task_label], attempt)
        try:
            reply: QuantumReport | tuple[str, str] = execute_quantum(
                task,
                quantum,
                settings.root,
                log=settings.logs,
                attempt=attempt,
                skip_existing=settings.skip_existing,
                clobber=settings.clobber,
                upstream_failed=upstream_failed,
            )
        except Exception as err:  # the harness itself failed: the parent decides
            reply = (type(err).__name__, str(err))
        conn.send(reply)


class Worker:
    """One worker process and its pipe."""

    def __init__(self, process: BaseProcess, conn: multiprocessing.connection.Connection) -> None:
        self.process = process
        self.conn = conn
        self.current: tuple[Quantum, int] | None = None

    def send(self, quantum: Quantum, attempt: int, upstream_failed: tuple[uuid.UUID, ...]) -> None:
        """Hand the worker a quantum attempt, with the inputs failed quanta did not produce."""
        self.current = (quantum, attempt)
        self.conn.send((quantum, attempt, upstream_failed))

    def receive(self) -> QuantumReport | tuple[str, str] | None:
        """Return the reply, or `None` if the worker died."""
        try:
            reply: Any = self.conn.recv()
        except (EOFError, OSError):
            return None
        return reply  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Ask the worker to exit and wait for it."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()

    @property
    def quantum_id(self) -> uuid.UUID | None:
        """The quantum it is running, if any."""
        return None if self.current is None else self.current[0].id


def worker_context() -> (
    multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext
):
    """Return the start method of worker processes: ``forkserver``, else ``spawn``.

    Returns
    -------
    context : `multiprocessing.context.BaseContext`
        A context whose processes start clean (never ``fork``).
    """
    ctx: multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The server imports the library once; every worker (and every
        # replacement of a killed one) then starts as a fork of it, in
        # milliseconds instead of a fresh interpreter's second.
        ctx.set_forkserver_preload(["qbb_events"])
    else:
        ctx = multiprocessing.get_context("spawn")
    return ctx


def start_worker(settings: WorkerSettings) -> Worker:
    """Start one worker process.

    Parameters
    ----------
    settings : `WorkerSettings`
        The run's settings.

    Returns
    -------
    worker : `Worker`
        A started worker, idle.
    """
    ctx = worker_context()
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, settings), daemon=True)
    process.start()
    child.close()
    return Worker(process, parent)


def default_workers() -> int:
    """Return the number of cores this process may use."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
