"""The executor's commands: ``qbb-events run``, ``run-quantum`` and ``rerun``."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from ..cli_contract import print_table
from ..errors import QbbEventsError
from ._faults import FaultInjection
from ._graph import QuantumGraph
from ._harness import EXIT_INVALID, execute_quantum
from ._loading import load_pipeline
from ._rerun import rerun_quantum
from ._run import RunReport, run_pipeline

__all__ = ["register"]

_STATUSES = ("succeeded", "no_work", "failed", "blocked", "aborted", "skipped")


def _app_dir() -> None:
    # As uvicorn does: a pipeline module in the working directory is found
    # (the workers inherit this path).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _usage(message: str, code: int = 2) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _rate(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter("must be a probability between 0 and 1")
    return value


def _print_run(console: Console, report: RunReport) -> None:
    counts = report.by_task()
    rows = []
    for label, by_status in counts.items():
        attempts = sum(o.attempts for o in report.quanta if o.task_label == label)
        rows.append([label, *(str(by_status.get(s, 0)) for s in _STATUSES), str(attempts)])
    # The task label is the column a person needs whole; the counts may fold.
    print_table(
        console,
        ["task", *_STATUSES, "attempts"],
        rows,
        title=f"{len(report.quanta)} quanta of pipeline {report.pipeline!r}",
    )
    written = sum(o.written for o in report.quanta)
    missing = sum(o.missing_inputs for o in report.quanta)
    unused = sum(o.unused_inputs for o in report.quanta)
    console.print(
        f"datasets written: {written}   inputs missing: {missing}   inputs unused: {unused}   "
        f"aborted attempts: {report.logs_aborted}"
    )
    gets = sum(o.n_get for o in report.quanta)
    puts = sum(o.n_put for o in report.quanta)
    get_s = sum(o.time_in_get for o in report.quanta)
    put_s = sum(o.time_in_put for o in report.quanta)
    console.print(f"butler: {gets} gets in {get_s:.2f} s, {puts} puts in {put_s:.2f} s")
    console.print(
        "time: " + "   ".join(f"{name} {seconds:.2f} s" for name, seconds in report.phases.items())
    )
    verdict = "every log and the export verified" if report.ok else "[red]CHECKS FAILED[/red]"
    console.print(
        f"checks: {report.logs_verified} logs verified, {report.logs_aborted} unsealed "
        f"(killed attempts, reported as aborted): {verdict}"
    )
    for problem in (report.log_problems + report.export_problems)[:20]:
        console.print(f"  [red]{problem}[/red]")
    console.print("where to look next:")
    console.print(f"  graph      {report.graph}")
    console.print(f"  datastore  {report.datastore}")
    console.print(f"  logs       {report.logs}   (qbb-events verify {report.logs})")
    console.print(f"  parquet    {report.parquet}   (DuckDB, pandas, Polars: docs/parquet.md)")
    if report.registry is not None:
        console.print(f"  registry   {report.registry}")
    console.print(
        f"  audit      qbb-replay stats {report.logs}   "
        f"(qbb-replay report {report.logs} -o report.html: docs/replay.md)"
    )
    # A quantum that was given inputs it did not use is the interesting one to re-run.
    succeeded = [o for o in report.quanta if o.status == "succeeded"]
    example = next((o for o in succeeded if o.unused_inputs), succeeded[0] if succeeded else None)
    if example is not None:
        console.print(
            f"  re-run one on its actual inputs ({example.task_label}): qbb-events rerun "
            f"{report.graph} {example.quantum_id} --root {report.datastore} --logs {report.logs}"
        )


@click.command("run")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("qbb-run"),
    show_default=True,
    help="New directory for the run's graph, datastore, logs, export.",
)
@click.option(
    "--quanta",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="About how many quanta to plan.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: all usable cores).",
)
@click.option(
    "--pipeline",
    "pipeline_spec",
    default=None,
    metavar="MOD:FUNC",
    help="package.module:function returning a Pipeline (default: the built-in demo).",
)
@click.option(
    "--registry", default=None, help="Registry URL or file (default: OUT/registry.sqlite3)."
)
@click.option(
    "--fail-rate", type=float, default=0.0, callback=_rate, help="Probability a task fails."
)
@click.option(
    "--missing-rate",
    type=float,
    default=0.0,
    callback=_rate,
    help="Probability a task does not write its first output.",
)
@click.option(
    "--kill-rate",
    type=float,
    default=0.0,
    callback=_rate,
    help="Probability a worker is SIGKILLed before the log is sealed.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Extra attempts for failed (worth retrying) and killed quanta.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of failure injection.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_command(
    out: Path,
    quanta: int,
    workers: int | None,
    pipeline_spec: str | None,
    registry: str | None,
    fail_rate: float,
    missing_rate: float,
    kill_rate: float,
    retries: int,
    seed: int,
    as_json: bool,
) -> None:
    """Plan a pipeline, run its quanta in worker processes, export, transfer, verify.

    Exits 0 when every log, the export (and the registry) check out, even if
    quanta failed: failures are recorded, not lost. Exits 1 when a check
    found a problem, 2 on a usage error.
    """
    faults = FaultInjection(fail_rate, missing_rate, kill_rate, seed)
    _app_dir()
    try:
        report = run_pipeline(
            out,
            quanta=quanta,
            workers=workers,
            pipeline=pipeline_spec,
            registry=registry,
            faults=faults,
            retries=retries,
        )
    except QbbEventsError as err:
        _usage(str(err))
    except OSError as err:
        _usage(f"cannot write the run: {err}")
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        _print_run(Console(), report)
    if not report.ok:
        sys.exit(1)


def _load(graph: Path, quantum_id: str, pipeline_spec: str | None) -> tuple[Any, Any]:
    _app_dir()
    try:
        qid = uuid.UUID(quantum_id)
    except ValueError:
        _usage(f"{quantum_id!r} is not a quantum id")
    try:
        quantum = QuantumGraph.load_quantum(graph, qid)
        task = load_pipeline(pipeline_spec).task(quantum.task_label)
    except (QbbEventsError, OSError) as err:
        # A quantum that cannot be loaded or has no task will not run on retry.
        _usage(str(err), EXIT_INVALID)
    return task, quantum


_common = [
    click.argument("graph", type=click.Path(exists=True, file_okay=False, path_type=Path)),
    click.argument("quantum_id"),
    click.option(
        "--root",
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="The run's datastore.",
    ),
    click.option(
        "--logs",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="The run's log directory.",
    ),
    click.option(
        "--pipeline",
        "pipeline_spec",
        default=None,
        metavar="MOD:FUNC",
        help="The pipeline the graph was planned from (default: the built-in demo).",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
]


def _with_common(func: Any) -> Any:
    for decorator in reversed(_common):
        func = decorator(func)
    return func


@click.command("run-quantum")
@_with_common
@click.option(
    "--attempt",
    type=click.IntRange(min=0),
    default=None,
    help="Attempt number (default: after the last log found).",
)
@click.option("--skip-existing/--no-skip-existing", default=True, show_default=True)
@click.option("--clobber/--no-clobber", default=True, show_default=True)
def run_quantum_command(
    graph: Path,
    quantum_id: str,
    root: Path,
    logs: Path,
    pipeline_spec: str | None,
    as_json: bool,
    attempt: int | None,
    skip_existing: bool,
    clobber: bool,
) -> None:
    """Run one quantum of a saved graph in this process (what a batch system calls).

    Exit codes: 0 success (or no work, or skipped), 1 a failure worth retrying
    (or blocked by a missing input), 20 a failure that will repeat, 21 an
    invalid quantum (not in the graph, or not a task of the pipeline).
    """
    task, quantum = _load(graph, quantum_id, pipeline_spec)
    try:
        report = execute_quantum(
            task,
            quantum,
            root,
            log=logs,
            attempt=attempt,
            skip_existing=skip_existing,
            clobber=clobber,
        )
    except QbbEventsError as err:
        _usage(str(err), EXIT_INVALID)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        line = f"{report.task_label} {report.quantum_id} attempt {report.attempt}: {report.status}"
        if report.caveats:
            line += f" ({', '.join(report.caveats)})"
        if report.exc_type:
            line += f": {report.exc_type}: {report.message}"
        click.echo(line)
        click.echo(f"log: {report.log_path}")
    sys.exit(report.exit_code)


@click.command("rerun")
@_with_common
@click.option(
    "--scratch",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Empty directory for the scratch datastore (default: a new temporary one).",
)
def rerun_command(
    graph: Path,
    quantum_id: str,
    root: Path,
    logs: Path,
    pipeline_spec: str | None,
    as_json: bool,
    scratch: Path | None,
) -> None:
    """Re-execute a finished quantum with only its actual inputs; compare output checksums.

    Exits 0 when every output is identical, 1 when outputs differ or the re-run
    failed (the inputs it needed but did not declare actual are named), 2 on a
    usage error.
    """
    task, quantum = _load(graph, quantum_id, pipeline_spec)
    try:
        report = rerun_quantum(task, quantum, root, logs, scratch=scratch)
    except (QbbEventsError, OSError) as err:
        _usage(str(err))
    if as_json:
        click.echo(json.dumps(json.loads(report.model_dump_json()), indent=2))
    else:
        click.echo(
            f"{quantum.task_label} {quantum.id}: {report.verdict} "
            f"(re-run with {report.actual_inputs} actual inputs, in {report.scratch})"
        )
        for name in report.differing:
            click.echo(f"  differs: {name}")
        for name in report.missing_reads:
            click.echo(f"  needed but not declared actual: {name}")
        if report.message:
            click.echo(f"  error: {report.message}")
    if report.verdict != "identical":
        sys.exit(1)


def register(group: click.Group) -> None:
    """Add the executor's commands to the ``qbb-events`` group.

    Parameters
    ----------
    group : `click.Group`
        The ``qbb-events`` command group.
    """
    for command in (run_command, run_quantum_command, rerun_command):
        group.add_command(command)
