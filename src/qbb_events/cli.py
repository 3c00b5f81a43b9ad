"""``qbb-events``: the command line of qbb_events (thin: parse, call, report)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import click
import structlog
from rich.console import Console
from rich.table import Table

from ._sql import is_database_url
from .demo import run_demo
from .errors import QbbEventsError
from .fold import fold
from .logs import VerificationReport, copy_logs, read_log, verify_logs
from .model import DatasetRef
from .parquet import export_parquet, write_provenance
from .quantum import Quantum

__all__ = ["main"]


class _Source(click.ParamType):  # type: ignore[type-arg]
    """A log source on the command line: an existing path, or a database URL."""

    name = "source"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        if not is_database_url(text) and not Path(text).exists():
            self.fail(f"{text!r} does not exist (nor is it a database URL)", param, ctx)
        return text


_SOURCE = _Source()


def _label(ref: DatasetRef) -> str:
    data_id = ",".join(f"{k}={v}" for k, v in ref.data_id.items())
    return f"{ref.dataset_type.name}({data_id})"


def _names(quantum: Quantum, ids: Iterable[uuid.UUID]) -> str:
    refs = {**quantum.predicted_inputs, **quantum.predicted_outputs}
    return ", ".join(sorted(_label(refs[i]) for i in ids)) or "-"


@click.group()
@click.version_option(package_name="qbb-events")
def main() -> None:
    """Record and fold the provenance of pipeline quanta."""


@main.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("qbb-demo"),
    show_default=True,
    help="Directory for the demo datastore (repo/) and logs (logs/).",
)
def demo(root: Path) -> None:
    """Run a few chained quanta with the recording butler and show their provenance."""
    # Structured warnings go to stderr so the report on stdout stays readable.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    console = Console()
    try:
        quanta = run_demo(root)
    except (QbbEventsError, OSError) as err:
        raise click.ClickException(f"demo failed: {err}") from err
    table = Table(title=f"Provenance of {len(quanta)} quanta in {root}")
    for column in (
        "task",
        "data ID",
        "status",
        "inputs used/found/predicted",
        "outputs",
        "warnings",
    ):
        table.add_column(column)
    for q in quanta:
        p = q.provenance
        table.add_row(
            q.quantum.task_label,
            ",".join(f"{k}={v}" for k, v in q.quantum.data_id.items()),
            p.status or "running",
            f"{len(p.actual_inputs)}/{len(p.available_inputs)}/{len(p.predicted_inputs)}",
            f"{len(p.actual_outputs)}/{len(p.predicted_outputs)}",
            ", ".join(w.tag for w in p.warnings) or "-",
        )
    console.print(table)
    failures = 0
    for q in quanta:
        p = q.provenance
        console.print(f"[bold]{q.quantum.task_label}[/bold] {q.quantum.id}: {q.note}")
        console.print(f"  used:    {_names(q.quantum, p.actual_inputs)}")
        unused = p.available_inputs - p.actual_inputs
        console.print(f"  unused:  {_names(q.quantum, unused)}")
        console.print(f"  missing: {_names(q.quantum, p.unavailable_inputs)}")
        console.print(f"  written: {_names(q.quantum, p.actual_outputs)}")
        console.print(f"  log:     {q.log_path}")
        replayed = fold(read_log(q.log_path)) == p
        failures += not replayed
        console.print(
            "  replay:  "
            + (
                "log re-read and re-folded to the same provenance"
                if replayed
                else "[red]log re-read folds to DIFFERENT provenance[/red]"
            )
        )
    if failures:
        sys.exit(1)


def _print_report(console: Console, report: VerificationReport, *, verbose: bool) -> None:
    table = Table(title=f"{len(report.logs)} logs, {report.events} events")
    for column in ("quantum", "attempt", "events", "status", "verdict", "location"):
        table.add_column(column)
    for log in report.logs:
        if log.ok and not verbose:
            continue
        verdict = "ok" if log.ok else "[red]" + "; ".join(str(p) for p in log.problems) + "[/red]"
        table.add_row(
            str(log.quantum_id or "?"),
            str(log.attempt if log.attempt is not None else "?"),
            str(log.events),
            log.status or "unsealed",
            verdict,
            log.location,
        )
    if table.row_count:
        console.print(table)
    bad = sum(not log.ok for log in report.logs)
    console.print(f"run digest: {report.digest}")
    if report.expected_digest is not None:
        same = report.expected_digest == report.digest
        console.print("digest: " + ("as expected" if same else "[red]NOT as expected[/red]"))
    console.print(
        f"{len(report.logs) - bad} of {len(report.logs)} logs verified"
        + ("" if not bad else f"; [red]{bad} with problems[/red]")
    )


@main.command()
@click.argument("sources", nargs=-1, required=True, type=_SOURCE)
@click.option("--digest", "expected", help="Run digest to check the logs against.")
@click.option("--validate", is_flag=True, help="Also validate every field of every event.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="List sound logs too.")
def verify(
    sources: tuple[str, ...], expected: str | None, validate: bool, as_json: bool, verbose: bool
) -> None:
    """Verify logs (files, directories, SQLite stores, PostgreSQL URLs): chains, order, sealing.

    Exits 0 when every log is sound (and the digest matches), 1 when a log has a
    problem or no log was found.
    """
    try:
        report = verify_logs(list(sources), expected_digest=expected, validate=validate)
    except (QbbEventsError, OSError) as err:
        raise click.ClickException(f"verification failed to read the logs: {err}") from err
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        _print_report(Console(), report, verbose=verbose)
    if not report.logs:
        # A check pointed at the wrong place must not pass.
        click.echo(f"Error: no logs found in {', '.join(map(str, sources))}", err=True)
        sys.exit(1)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=_SOURCE)
@click.argument("destination")
def copy(sources: tuple[str, ...], destination: str) -> None:
    """Copy logs into an SQLite store (*.sqlite, *.db), a PostgreSQL URL or a directory.

    Idempotent and verified on both sides; a destination that is a file but not
    an event store is refused and left as it was.

    Exits 0 when every log was copied, 1 when some failed verification and were refused.
    """
    console = Console()
    try:
        report = copy_logs(list(sources), destination)
    except (QbbEventsError, OSError) as err:
        raise click.ClickException(f"copy failed: {err}") from err
    console.print(
        f"copied {len(report.copied)} logs into {destination}: {report.events_added} events "
        f"added, {report.events_present} already there"
    )
    for log in report.refused:
        problems = "; ".join(str(p) for p in log.problems)
        console.print(f"[red]refused[/red] {log.location}: {problems}")
    if report.refused:
        sys.exit(1)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=_SOURCE)
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--run", help="File every log under this run (default: each quantum's output run).")
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal)."
)
@click.option(
    "--provenance/--no-provenance",
    default=True,
    show_default=True,
    help="Also fold every quantum into the provenance tables (vectorized).",
)
def export(
    sources: tuple[str, ...],
    destination: Path,
    run: str | None,
    progress: bool | None,
    provenance: bool,
) -> None:
    """Export logs (files, directories, SQLite stores, PostgreSQL URLs) to a Parquet dataset.

    Writes DESTINATION/events, predicted and quanta, partitioned by run, then the
    provenance tables. Exporting logs the dataset already holds adds nothing. Exits 1 if
    a log did not verify (it is exported, flagged in the quanta table) or a source held
    nothing to export (an empty or foreign file, an unreadable directory: nothing is
    written for it, and it is named).
    """
    console = Console(stderr=True)
    try:
        report = export_parquet(list(sources), destination, run=run, progress=progress)
        if provenance and (destination / "quanta").is_dir():
            write_provenance(destination)
    except (QbbEventsError, OSError) as err:
        raise click.ClickException(f"export failed: {err}") from err
    nothing = len(report.unexported)
    click.echo(
        f"exported {report.logs} logs ({report.events} events) to {destination}; "
        f"{report.skipped} already there; {len(report.files)} files written"
        + (f"; {nothing} sources held nothing to export" if nothing else "")
    )
    for location in report.flagged:
        console.print(f"[red]did not verify[/red] (exported, flagged): {location}")
    for location, why in report.unexported:
        console.print(f"[red]not exported[/red] {location}: {why}")
    if report.flagged or report.unexported:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
