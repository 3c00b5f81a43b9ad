"""``qbb-events``: the command line of qbb_events (thin: parse, call, report)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import click
import structlog
from rich.console import Console
from rich.table import Table

from . import _cli_registry
from ._sql import is_database_url
from .cli_contract import ContractGroup, InputError, emit_json, print_table, progress
from .demo import run_demo
from .errors import QbbEventsError
from .executor import register_commands as register_executor
from .fold import fold
from .interop import LineageFormat, export_lineage
from .logs import (
    LogSource,
    LogVerification,
    StoredLog,
    VerificationReport,
    copy_logs,
    read_log,
    source_kind,
    stored_logs,
    verify_logs,
)
from .model import DatasetRef
from .parquet import export_parquet, write_provenance
from .quantum import Quantum

__all__ = ["main"]

TOOL = "qbb-events"

_json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")


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


def _only_files(sources: Iterable[str]) -> bool:
    """Whether every source is a plain file (not a directory, a store or a URL)."""
    return all(source_kind(s) == "jsonl" and Path(s).is_file() for s in sources)


def _not_logs(verdicts: Iterable[LogVerification]) -> str:
    """One line naming sources of which not one event could be read."""
    parts = []
    for verdict in verdicts:
        first = verdict.problems[0].message if verdict.problems else "no events"
        parts.append(f"{verdict.location}: {first}")
    return "not a qbb_events log: " + "; ".join(parts)


def _label(ref: DatasetRef) -> str:
    data_id = ",".join(f"{k}={v}" for k, v in ref.data_id.items())
    return f"{ref.dataset_type.name}({data_id})"


def _names(quantum: Quantum, ids: Iterable[uuid.UUID]) -> str:
    refs = {**quantum.predicted_inputs, **quantum.predicted_outputs}
    return ", ".join(sorted(_label(refs[i]) for i in ids)) or "-"


@click.group(cls=ContractGroup)
@click.version_option(package_name="qbb-events")
def main() -> None:
    """Record and fold the provenance of pipeline quanta.

    Exit 0 when all is well, 1 when a check found a problem, 2 for a usage
    error or input that cannot be read (see docs/cli.md).
    """


def _verdict_json(log: LogVerification) -> dict[str, Any]:
    return {**log.model_dump(mode="json"), "ok": log.ok}


def _counted(sources: tuple[Path, ...] | tuple[str, ...], label: str) -> LogSource:
    """Return the sources, with a counted progress bar over their log files on a terminal.

    Off a terminal the sources are returned as given. Files and directories
    are listed first so the bar has a total; a store is passed as it is, so
    one that cannot be read is still reported by verification.
    """
    if not Console(stderr=True).is_terminal:
        return list(sources)
    logs: list[StoredLog | Path | str] = []
    for source in sources:
        # A database URL or a store file is passed on whole (see above).
        if Path(source).is_dir():
            logs.extend(stored_logs(Path(source)))
        else:
            logs.append(source)
    bar = iter(progress(range(len(logs)), total=len(logs), label=label, enabled=True))
    next(bar, None)  # draws the bar at 0; each finished log then advances it

    def counted(log: StoredLog) -> StoredLog:
        def records() -> Iterator[tuple[int, bytes, bool]]:
            yield from log.records()
            next(bar, None)

        return StoredLog(log.location, records)

    return [counted(log) if isinstance(log, StoredLog) else log for log in logs]


@main.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("qbb-demo"),
    show_default=True,
    help="Directory for the demo datastore (repo/) and logs (logs/).",
)
@_json_option
def demo(root: Path, as_json: bool) -> None:
    """Run a few chained quanta with the recording butler and show their provenance."""
    # Structured warnings go to stderr so the report on stdout stays readable.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    console = Console()
    try:
        quanta = run_demo(root)
    except (QbbEventsError, OSError) as err:
        raise InputError(f"demo failed: {err}") from err
    if as_json:
        replays = [fold(read_log(q.log_path)) == q.provenance for q in quanta]
        emit_json(
            TOOL,
            "demo",
            {
                "root": str(root),
                "quanta": [
                    {
                        "quantum_id": str(q.quantum.id),
                        "task_label": q.quantum.task_label,
                        "data_id": dict(q.quantum.data_id),
                        "note": q.note,
                        "log": str(q.log_path),
                        "replayed": same,
                        "provenance": q.provenance.model_dump(mode="json"),
                    }
                    for q, same in zip(quanta, replays, strict=True)
                ],
            },
        )
        if not all(replays):
            sys.exit(1)
        return
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
    rows = []
    for log in report.logs:
        if log.ok and not verbose:
            continue
        verdict = "ok" if log.ok else "; ".join(str(p) for p in log.problems)
        rows.append(
            [
                str(log.quantum_id or "?"),
                str(log.attempt if log.attempt is not None else "?"),
                str(log.events),
                log.status or "unsealed",
                verdict,
                log.location,
            ]
        )
    if rows:
        # The location is the column a person needs whole: it is never cut.
        columns = ("quantum", "attempt", "events", "status", "verdict", "location")
        title = f"{len(report.logs)} logs, {report.events} events"
        print_table(console, columns, rows, key=5, title=title)
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
@_json_option
@click.option("-v", "--verbose", is_flag=True, help="List sound logs too.")
def verify(
    sources: tuple[str, ...], expected: str | None, validate: bool, as_json: bool, verbose: bool
) -> None:
    """Verify logs (files, directories, SQLite stores, PostgreSQL URLs): chains, order, sealing.

    Exits 0 when every log is sound (and the digest matches), 1 when a log has a
    problem, 2 when no log was found or the sources cannot be read.
    """
    try:
        report = verify_logs(
            _counted(sources, "verifying"), expected_digest=expected, validate=validate
        )
    except (QbbEventsError, OSError) as err:
        raise InputError(f"verification failed to read the logs: {err}") from err
    if not report.logs:
        # A check pointed at the wrong place must not pass.
        raise InputError(f"no logs found in {', '.join(map(str, sources))}")
    if not report.events and _only_files(sources):
        # Not one event could be read from the files given (an empty file,
        # notes, binary data): that is unusable input (exit 2), not a log with
        # a problem; among readable logs the same file is reported (exit 1),
        # and so is a damaged store.
        raise InputError(_not_logs(report.logs))
    if as_json:
        emit_json(
            TOOL,
            "verify",
            {
                "ok": report.ok,
                "digest": report.digest,
                "expected_digest": report.expected_digest,
                "events": report.events,
                "logs": [_verdict_json(log) for log in report.logs],
            },
        )
    else:
        _print_report(Console(), report, verbose=verbose)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=_SOURCE)
@click.argument("destination")
@_json_option
def copy(sources: tuple[str, ...], destination: str, as_json: bool) -> None:
    """Copy logs into an SQLite store (*.sqlite, *.db), a PostgreSQL URL or a directory.

    Idempotent and verified on both sides; a destination that is a file but not
    an event store is refused and left as it was.

    Exits 0 when every log was copied, 1 when some failed verification and were
    refused, 2 when the sources or the destination cannot be used.
    """
    console = Console()
    try:
        report = copy_logs(_counted(sources, "copying"), destination)
    except (QbbEventsError, OSError) as err:
        raise InputError(f"copy failed: {err}") from err
    if (
        not report.copied
        and report.refused
        and not any(log.events for log in report.refused)
        and _only_files(sources)
    ):
        raise InputError("copy refused: " + _not_logs(report.refused))
    if as_json:
        emit_json(
            TOOL,
            "copy",
            {
                "ok": not report.refused,
                "destination": str(destination),
                "events_added": report.events_added,
                "events_present": report.events_present,
                "copied": [_verdict_json(log) for log in report.copied],
                "refused": [_verdict_json(log) for log in report.refused],
            },
        )
        if report.refused:
            sys.exit(1)
        return
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
@_json_option
def export(
    sources: tuple[str, ...],
    destination: Path,
    run: str | None,
    progress: bool | None,
    provenance: bool,
    as_json: bool,
) -> None:
    """Export logs (files, directories, SQLite stores, PostgreSQL URLs) to a Parquet dataset.

    Writes DESTINATION/events, predicted and quanta, partitioned by run, then the
    provenance tables. Exporting logs the dataset already holds adds nothing. Exits 1 if
    a log did not verify (it is exported, flagged in the quanta table), a source held
    nothing to export (an empty or foreign file, an unreadable directory), or a log is of
    a schema version this qbb_events cannot read: nothing is written for those two, each
    is named with why, and the other logs are exported; 2 when the
    sources cannot be read.
    """
    console = Console(stderr=True)
    try:
        report = export_parquet(list(sources), destination, run=run, progress=progress)
        if provenance and (destination / "quanta").is_dir():
            write_provenance(destination)
    except (QbbEventsError, OSError) as err:
        raise InputError(f"export failed: {err}") from err
    nothing, unsupported = len(report.unexported), len(report.unsupported)
    if as_json:
        emit_json(
            TOOL,
            "export",
            {
                "ok": not (report.flagged or nothing or unsupported),
                "destination": str(destination),
                "logs": report.logs,
                "events": report.events,
                "skipped": report.skipped,
                "flagged": list(report.flagged),
                "unexported": [
                    {"location": str(location), "reason": why}
                    for location, why in (*report.unexported, *report.unsupported)
                ],
                "files": [str(f) for f in report.files],
            },
        )
        if report.flagged or nothing or unsupported:
            sys.exit(1)
        return
    click.echo(
        f"exported {report.logs} logs ({report.events} events) to {destination}; "
        f"{report.skipped} already there; {len(report.files)} files written"
        + (f"; {nothing} sources held nothing to export" if nothing else "")
        + (f"; {unsupported} logs not exported (unsupported schema version)" if unsupported else "")
    )
    for location in report.flagged:
        console.print(f"[red]did not verify[/red] (exported, flagged): {location}")
    for location, why in (*report.unexported, *report.unsupported):
        console.print(f"[red]not exported[/red] {location}: {why}")
    if report.flagged or report.unexported or report.unsupported:
        sys.exit(1)


@main.command("export-lineage")
@click.argument("sources", nargs=-1, required=True, type=_SOURCE)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["openlineage", "prov-json", "prov-n"]),
    default="openlineage",
    show_default=True,
    help="OpenLineage RunEvents (NDJSON), W3C PROV-JSON or PROV-N.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file.")
@click.option("--url", help="Also POST each OpenLineage event to URL/api/v1/lineage.")
@click.option("--derivations", is_flag=True, help="PROV: also state wasDerivedFrom.")
@_json_option
def export_lineage_command(
    sources: tuple[str, ...],
    format_: str,
    out: Path | None,
    url: str | None,
    derivations: bool,
    as_json: bool,
) -> None:
    """Export the lineage of every quantum attempt to OpenLineage or W3C PROV (docs/interop.md).

    Writes to --out, or to stdout without it. Exits 1 if a log did not verify
    (it is left out), 2 when the sources cannot be read or the server refuses.
    """
    if as_json and out is None:
        raise click.UsageError("--json prints a report on stdout; give --out for the document.")
    report = export_lineage(
        _counted(sources, "exporting"),
        out if out is not None else sys.stdout.buffer,
        format=cast(LineageFormat, format_),  # click.Choice checked it
        url=url,
        derivations=derivations,
    )
    refused = [_verdict_json(log) for log in report.refused]
    if as_json:
        emit_json(
            TOOL,
            "export-lineage",
            {
                "ok": not refused,
                "format": report.format,
                "out": str(out),
                "attempts": report.attempts,
                "events": report.events,
                "bytes": report.bytes_written,
                "posted": report.posted,
                "refused": refused,
            },
        )
    elif out is not None:
        click.echo(f"exported {report.attempts} quantum attempts as {report.format} to {out}")
    for log in report.refused:
        problems = "; ".join(str(p) for p in log.problems)
        click.echo(f"did not verify (left out): {log.location}: {problems}", err=True)
    if refused:
        sys.exit(1)


register_executor(main)

for _command in (_cli_registry.registry, _cli_registry.transfer, _cli_registry.query):
    main.add_command(_command)
main.add_command(_cli_registry.orphans)


if __name__ == "__main__":  # pragma: no cover
    main()
