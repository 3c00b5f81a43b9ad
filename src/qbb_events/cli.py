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

from .demo import run_demo
from .errors import QbbEventsError
from .fold import fold
from .logs import read_log
from .model import DatasetRef
from .quantum import Quantum

__all__ = ["main"]


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


if __name__ == "__main__":  # pragma: no cover
    main()
