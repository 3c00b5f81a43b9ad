"""`run_pipeline`: the main job. Plan, execute, export, transfer, verify.

The graph is planned and saved, its quanta run in worker processes in
topological order (a quantum is dispatched once every quantum writing its
inputs has ended; the harness then records it ``blocked`` if a required
input is missing), failed and killed attempts are retried, and the logs are
exported to Parquet, transferred into the registry and verified.
"""

from __future__ import annotations

import collections
import multiprocessing.connection
import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ..datastore import FileDatastore
from ..errors import InvalidDefinitionError, RegistryNotFoundError
from ..logs import VerificationReport, log_file_name, verify_logs
from ..parquet import export_parquet, verify_export, write_provenance
from ..quantum import Quantum
from ..registry import Registry, transfer_run
from ._faults import FaultInjection
from ._graph import QuantumGraph
from ._harness import EXIT_FAILURE, QuantumReport
from ._loading import load_pipeline
from ._workers import WorkerSettings, default_workers, start_worker, worker_context

__all__ = ["QuantumOutcome", "RunReport", "run_pipeline"]


class QuantumOutcome(BaseModel):
    """How one quantum ended after every attempt.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum.
    task_label : `str`
        Its task.
    status : `str`
        The last attempt's status, or ``aborted`` if it was killed.
    attempts : `int`
        Attempts made (logs written); a skip makes none.
    aborted : `tuple` [`int`, ...]
        Attempts killed before their log was sealed.
    written : `int`
        Outputs the last attempt wrote.
    missing_inputs, unused_inputs : `int`
        Predicted inputs found missing, and found but not used.
    n_get, n_put : `int`
        Successful reads and writes of the last attempt (`ButlerMetrics`).
    time_in_get, time_in_put : `float`
        Seconds they took.
    """

    model_config = ConfigDict(frozen=True)

    quantum_id: uuid.UUID
    task_label: str
    status: str
    attempts: int
    aborted: tuple[int, ...] = ()
    written: int = 0
    missing_inputs: int = 0
    unused_inputs: int = 0
    n_get: int = 0
    n_put: int = 0
    time_in_get: float = 0.0
    time_in_put: float = 0.0


class RunReport(BaseModel):
    """The summary of one run of the main job.

    Parameters
    ----------
    out : `str`
        The run directory; the artifacts below are inside it.
    graph, datastore, logs, parquet : `str`
        Where the graph, datastore, logs and Parquet export are.
    registry : `str` or `None`
        The registry the run was transferred into.
    pipeline : `str`
        The pipeline's name.
    quanta : `list` [`QuantumOutcome`]
        Every quantum of the graph, once.
    phases : `dict` [`str`, `float`]
        Seconds spent planning, executing, exporting, transferring, verifying.
    logs_verified, logs_aborted : `int`
        Logs that verified whole, and logs left unsealed by a killed attempt.
    log_problems : `list` [`str`]
        Every other verification problem (there should be none).
    export_problems : `list` [`str`]
        Problems `verify_export` found.
    transfer : `dict` or `None`
        The registry transfer's report, when one ran.
    """

    out: str
    graph: str
    datastore: str
    logs: str
    parquet: str
    registry: str | None = None
    pipeline: str
    quanta: list[QuantumOutcome]
    phases: dict[str, float] = Field(default_factory=dict)
    logs_verified: int = 0
    logs_aborted: int = 0
    log_problems: list[str] = Field(default_factory=list)
    export_problems: list[str] = Field(default_factory=list)
    transfer: dict[str, Any] | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Whether every log and the export verified (`bool`); failed quanta are not problems."""
        transfer_ok = self.transfer is None or bool(self.transfer.get("ok", True))
        return not self.log_problems and not self.export_problems and transfer_ok

    def by_task(self) -> dict[str, collections.Counter[str]]:
        """Return the count of quanta per status, per task.

        Returns
        -------
        counts : `dict` [`str`, `collections.Counter`]
            Task label to status counts.
        """
        counts: dict[str, collections.Counter[str]] = {}
        for outcome in self.quanta:
            counts.setdefault(outcome.task_label, collections.Counter())[outcome.status] += 1
        return counts


Progress = Callable[[int, int], None]


def _outcome(report: QuantumReport, attempts: int, aborted: list[int]) -> QuantumOutcome:
    p = report.provenance
    return QuantumOutcome(
        quantum_id=report.quantum_id,
        task_label=report.task_label,
        status=report.status,
        attempts=attempts,
        aborted=tuple(aborted),
        written=len(p.actual_outputs),
        missing_inputs=len(p.unavailable_inputs),
        unused_inputs=len(p.available_inputs - p.actual_inputs),
        **({} if report.metrics is None else report.metrics.model_dump()),
    )


def execute_graph(
    graph: QuantumGraph,
    settings: WorkerSettings,
    *,
    workers: int,
    retries: int,
    progress: Progress | None = None,
) -> list[QuantumOutcome]:
    """Run every quantum of a graph in worker processes, with retries.

    Parameters
    ----------
    graph : `QuantumGraph`
        The graph.
    settings : `WorkerSettings`
        Pipeline, datastore, logs and faults for the workers.
    workers : `int`
        Worker processes.
    retries : `int`
        Extra attempts for a quantum that failed worth retrying or was killed.
    progress : `~collections.abc.Callable`, optional
        Called with (quanta ended, quanta in all) as quanta end.

    Returns
    -------
    outcomes : `list` [`QuantumOutcome`]
        One per quantum, in the graph's order.
    """
    upstream = graph.upstream()
    producer = {ref.id: q.id for q in graph for ref in q.outputs}
    downstream: dict[uuid.UUID, list[uuid.UUID]] = collections.defaultdict(list)
    for qid, producers in upstream.items():
        for upstream_id in producers:
            downstream[upstream_id].append(qid)
    waiting = {qid: len(producers) for qid, producers in upstream.items()}
    ready: collections.deque[tuple[Quantum, int]] = collections.deque(
        (q, 0) for q in graph if not waiting[q.id]
    )
    aborted: dict[uuid.UUID, list[int]] = collections.defaultdict(list)
    outcomes: dict[uuid.UUID, QuantumOutcome] = {}
    pool = [start_worker(settings) for _ in range(max(1, min(workers, len(graph))))]
    idle = list(pool)

    def end(quantum: Quantum, outcome: QuantumOutcome) -> None:
        outcomes[quantum.id] = outcome
        for consumer in downstream[quantum.id]:
            waiting[consumer] -= 1
            if not waiting[consumer]:
                ready.append((graph.quantum(consumer), 0))
        if progress is not None:
            progress(len(outcomes), len(graph))

    try:
        while len(outcomes) < len(graph):
            while idle and ready:
                quantum, attempt = ready.popleft()
                # A failed or killed quantum's partial outputs are never inputs.
                unproduced = tuple(
                    ref.id
                    for ref in quantum.inputs
                    if ref.id in producer
                    and outcomes[producer[ref.id]].status in ("failed", "aborted")
                )
                idle.pop().send(quantum, attempt, unproduced)
            busy = [w for w in pool if w.current is not None]
            if not busy:
                raise RuntimeError("no quantum is running and none is ready: the graph has a cycle")
            signalled = set(
                multiprocessing.connection.wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy]
                )
            )
            for worker in busy:
                if worker.conn not in signalled and worker.process.sentinel not in signalled:
                    continue
                assert worker.current is not None
                quantum, attempt = worker.current
                reply = worker.receive()
                worker.current = None
                if reply is None:  # the worker died mid-quantum: the attempt is aborted
                    aborted[quantum.id].append(attempt)
                    pool.remove(worker)
                    worker.stop()
                    fresh = start_worker(settings)
                    pool.append(fresh)
                    idle.append(fresh)
                    if attempt < retries:
                        ready.appendleft((quantum, attempt + 1))
                    else:
                        end(
                            quantum,
                            QuantumOutcome(
                                quantum_id=quantum.id,
                                task_label=quantum.task_label,
                                status="aborted",
                                attempts=attempt + 1,
                                aborted=tuple(aborted[quantum.id]),
                            ),
                        )
                    continue
                idle.append(worker)
                if isinstance(reply, tuple):
                    raise RuntimeError(
                        f"the harness failed on quantum {quantum.id}: {reply[0]}: {reply[1]}"
                    )
                if (
                    reply.status == "failed"
                    and reply.exit_code == EXIT_FAILURE
                    and attempt < retries
                ):
                    ready.appendleft((quantum, attempt + 1))
                    continue
                made = attempt + 1 if reply.decision != "skip" else attempt
                end(quantum, _outcome(reply, made, aborted[quantum.id]))
    finally:
        for worker in pool:
            worker.stop()
    return [outcomes[q.id] for q in graph]


def _rich_progress(label: str) -> tuple[Progress | None, Callable[[], None]]:
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import Progress as Bar

    bar = Bar(transient=True)
    bar.start()
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def run_pipeline(
    out: str | os.PathLike[str],
    *,
    quanta: int = 100,
    workers: int | None = None,
    pipeline: str | None = None,
    registry: str | None = None,
    faults: FaultInjection | None = None,
    retries: int = 2,
    run: str = "qbb-run",
    progress: bool | None = None,
) -> RunReport:
    """Plan a pipeline, run its quanta, export, transfer and verify: the main job.

    Parameters
    ----------
    out : `str` or `os.PathLike`
        A new (or empty) directory for the run: ``graph/``, ``repo/`` (the
        datastore), ``logs/``, ``parquet/`` and the registry.
    quanta : `int`, optional
        About how many quanta to plan.
    workers : `int`, optional
        Worker processes; all usable cores by default.
    pipeline : `str`, optional
        ``package.module:function`` returning a `Pipeline`; the built-in demo
        by default.
    registry : `str`, optional
        Registry URL or file; ``OUT/registry.sqlite3`` by default.
    faults : `FaultInjection`, optional
        Failure injection.
    retries : `int`, optional
        Extra attempts for a failed (worth retrying) or killed quantum.
    run : `str`, optional
        RUN collection of the outputs.
    progress : `bool`, optional
        Show progress bars; by default only on a terminal.

    Returns
    -------
    report : `RunReport`
        Quanta by task and status, where everything is, and the checks.

    Raises
    ------
    InvalidDefinitionError
        If the pipeline cannot be loaded, or ``out`` already holds a run.
    """
    root = Path(out)
    if (root / "graph").exists():
        raise InvalidDefinitionError(f"{root} already holds a run; choose a new --out")
    phases: dict[str, float] = {}
    start = time.perf_counter()
    chosen = load_pipeline(pipeline)
    graph = QuantumGraph(
        chosen.plan(chosen.data_ids(quanta), run=run), run=run, pipeline=chosen.name
    )
    graph.save(root / "graph")
    datastore = FileDatastore(root / "repo", create=True)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    phases["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    settings = WorkerSettings(
        pipeline=pipeline,
        root=str(datastore.root),
        logs=str(logs),
        faults=faults or FaultInjection(),
    )
    show = sys.stderr.isatty() if progress is None else progress
    update, stop = _rich_progress("executing quanta") if show else (None, lambda: None)
    try:
        outcomes = execute_graph(
            graph, settings, workers=workers or default_workers(), retries=retries, progress=update
        )
    finally:
        stop()
    phases["execute"] = time.perf_counter() - start

    start = time.perf_counter()
    parquet = root / "parquet"
    export_parquet([logs], parquet, progress=progress)
    write_provenance(parquet)
    phases["export"] = time.perf_counter() - start

    report = RunReport(
        out=str(root),
        graph=str(root / "graph"),
        datastore=str(datastore.root),
        logs=str(logs),
        parquet=str(parquet),
        pipeline=chosen.name,
        quanta=outcomes,
        phases=phases,
    )
    _transfer(report, registry, root, progress)

    start = time.perf_counter()
    report.logs_verified, report.logs_aborted, report.log_problems = _verify_in_parallel(
        sorted(logs.iterdir()), workers or default_workers()
    )
    _, _, report.export_problems = _classify(verify_export(parquet))
    report.phases["verify"] = time.perf_counter() - start
    return report


def _verify_part(paths: list[Path]) -> tuple[int, int, list[str]]:
    return _classify(verify_logs(paths))


def _verify_in_parallel(paths: list[Path], workers: int) -> tuple[int, int, list[str]]:
    """Verify log files on every core: each log's chain is checked on its own."""
    if workers < 2 or len(paths) < 64:  # below that, starting processes costs more
        return _verify_part(paths)
    parts = [paths[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
        results = list(pool.map(_verify_part, parts))
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        [problem for r in results for problem in r[2]],
    )


def _classify(verification: VerificationReport) -> tuple[int, int, list[str]]:
    """Count logs sound and only unsealed (killed attempts); list every other problem."""
    sound = unsealed = 0
    problems: list[str] = []
    for log in verification.logs:
        kinds = {problem.kind for problem in log.problems}
        if not kinds:
            sound += 1
        elif kinds == {"unsealed"}:
            unsealed += 1
        else:
            problems.extend(f"{log.location}: {p}" for p in log.problems)
    return sound, unsealed, problems


def _transfer(report: RunReport, registry: str | None, root: Path, progress: bool | None) -> None:
    """Transfer the run's outputs, records, quanta and provenance into the registry."""
    start = time.perf_counter()
    url = registry or str(root / "registry.sqlite3")
    try:
        opened = Registry.open(url)
    except RegistryNotFoundError:
        opened = Registry.create(url)
    # Each quantum's last attempt and every killed attempt go in. A failed
    # attempt that was retried does not: its partial outputs were clobbered by
    # the retry, so registering them would register files that are gone. Its
    # log stays in logs/ and in the Parquet export, which hold every attempt.
    logs = Path(report.logs)
    sources = [
        logs / log_file_name(outcome.quantum_id, attempt)
        for outcome in report.quanta
        for attempt in sorted({*outcome.aborted, outcome.attempts - 1})
        if attempt >= 0
    ]
    with opened:
        # Artifacts are checked against their records: nothing is registered
        # that is not on disk as the log recorded it.
        result = transfer_run(
            opened,
            sources,
            check_artifacts=True,
            datastore_root=report.datastore,
            progress=progress,
        )
    report.registry = url
    report.transfer = result.to_dict()
    report.phases["transfer"] = time.perf_counter() - start
