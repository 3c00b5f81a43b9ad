"""``qbb-replay``: audit a run from its logs alone (thin: parse, call, report).

The contract shared with ``qbb-events`` (exit codes, ``--json``, progress,
one-line errors, tables) comes from `qbb_events.cli_contract`.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from qbb_events import Event, QbbEventsError, Registry, StoredLog
from qbb_events.cli_contract import (
    EXIT_PROBLEM,
    ContractGroup,
    InputError,
    emit_json,
    print_table,
    progress,
)

from ._analysis import LogResult, Options, analyze_sources, default_jobs
from ._diff import diff_logs
from ._events import DatasetNames, parse_events, read_events
from ._report import render_report, worth_a_look
from ._sources import Source, logs_of, resolve_sources
from ._stats import run_stats
from ._timeline import provenance_state, state_at, timeline

__all__ = ["main"]

TOOL = "qbb-replay"

_json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")
_jobs_option = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: one per 500 log files, up to every core).",
)


@click.group(cls=ContractGroup)
@click.version_option(package_name="qbb-events")
def main() -> None:
    """Audit quanta from their logs alone: verify, show, diff, stats, report.

    Exit 0 when all is well, 1 when a check found a problem, 2 for a usage
    error or input that cannot be read.
    """


def _results(
    arguments: Sequence[str], options: Options, jobs: int | None, label: str
) -> list[LogResult]:
    sources = resolve_sources(arguments)
    known = None if any(s.kind != "file" for s in sources) else len(sources)
    if jobs is None:
        # A worker costs about a second to start: worth it only for many logs.
        jobs = min(default_jobs(), max(1, (known or 0) // 500))
    batches = analyze_sources(sources, options, jobs=jobs)
    results = [
        r for batch in progress(batches, total=known, label=label, weight=len) for r in batch
    ]
    if not results:
        raise InputError(f"{', '.join(arguments)}: no logs found")
    results.sort(key=lambda r: (r.quantum_id or "", r.attempt or 0, r.location))
    return results


def _result_json(r: LogResult) -> dict[str, Any]:
    return r.model_dump(mode="json")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--check-files",
    type=click.Path(exists=True, file_okay=False),
    help="Datastore root: check each actual output's artifact (size and checksum).",
)
@click.option(
    "--registry",
    "registry",
    help="Registry (a path is SQLite, or a database URL): compare its provenance rows too.",
)
@_jobs_option
@_json_option
def verify(
    sources: tuple[str, ...],
    check_files: str | None,
    registry: str | None,
    jobs: int | None,
    as_json: bool,
) -> None:
    """Verify logs, re-fold them, and compare every stored account of them.

    SOURCES are log files, directories, SQLite stores, Parquet exports or
    PostgreSQL URLs. Each problem is printed with its quantum, attempt, seq and
    reason; exits 1 if there is any.
    """
    if registry is not None:
        # Refused here, in one line, rather than in each worker.
        try:
            with Registry.open(registry):
                pass
        except (QbbEventsError, OSError) as err:
            raise InputError(f"{registry}: cannot open the registry ({err})") from err
    options = Options(check_files=check_files, registry=registry)
    results = _results(sources, options, jobs, "verifying")
    bad = [r for r in results if not r.ok]
    if as_json:
        emit_json(
            TOOL,
            "verify",
            {
                "ok": not bad,
                "logs": len(results),
                "events": sum(r.events for r in results),
                "failed": len(bad),
                "results": [_result_json(r) for r in results],
            },
        )
    else:
        for r in bad:
            for f in r.findings:
                seq = "-" if f.seq is None else f.seq
                click.echo(
                    f"FAIL quantum {r.quantum_id or '?'} attempt {r.attempt} seq {seq}: "
                    f"{f.kind}: {f.message}",
                )
                click.echo(f"  in {r.location}")
        click.echo(
            f"{len(results) - len(bad)} of {len(results)} logs verified "
            f"({sum(r.events for r in results)} events)"
            + (f"; {len(bad)} with problems" if bad else ""),
        )
    if bad:
        sys.exit(EXIT_PROBLEM)


def _first_record(log: StoredLog) -> dict[str, Any] | None:
    for _position, record, _complete in log:
        if record.strip():
            try:
                value = orjson.loads(record)
            except orjson.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _find_log(spec: str, arguments: Sequence[str], attempt: int | None) -> tuple[StoredLog, Source]:
    """Find a log by path, or by quantum id (or unique prefix) among the sources."""
    if "/" in spec or spec.endswith(".jsonl") or Path(spec).exists():
        # A path: the one log it holds (resolving refuses what is no log).
        found = [(log, s) for s in resolve_sources([spec]) for log in logs_of(s)]
        if len(found) != 1:
            raise InputError(f"{spec}: holds {len(found)} logs; name one log or a quantum id")
        return found[0]
    quantum, _, wanted = spec.partition("@")
    if wanted:
        if not wanted.isdigit():
            raise InputError(f"{spec}: the attempt after @ must be a number")
        attempt = int(wanted)
    if not arguments:
        raise InputError(f"{spec}: give the sources to look for quantum {quantum} in")
    matches: list[tuple[str, int, StoredLog, Source]] = []
    for source in resolve_sources(arguments):
        for log in logs_of(source):
            first = _first_record(log)
            if first is None:
                continue
            qid, att = str(first.get("quantum_id")), first.get("attempt")
            if qid.startswith(quantum.lower()) and isinstance(att, int):
                matches.append((qid, att, log, source))
    ids = {m[0] for m in matches}
    if not ids:
        raise InputError(f"no log of quantum {quantum} in {', '.join(arguments)}")
    if len(ids) > 1:
        raise InputError(f"{quantum} names {len(ids)} quanta: {', '.join(sorted(ids)[:4])}")
    if attempt is None:
        attempt = max(m[1] for m in matches)
    chosen = [m for m in matches if m[1] == attempt]
    if not chosen:
        have = ", ".join(str(m[1]) for m in sorted(matches, key=lambda m: m[1]))
        raise InputError(f"quantum {quantum} has no attempt {attempt} (attempts: {have})")
    return chosen[0][2], chosen[0][3]


def _identity(events: Sequence[Event]) -> dict[str, Any]:
    first = events[0]
    return {"quantum_id": str(first.quantum_id), "attempt": first.attempt}


@main.command()
@click.argument("quantum")
@click.argument("sources", nargs=-1)
@click.option("--attempt", type=click.IntRange(min=0), help="Attempt number (default: the last).")
@click.option(
    "--at",
    "at",
    help="Print the provenance as it stood at this seq, ISO 8601 time, or +SECONDS offset.",
)
@_json_option
def show(
    quantum: str, sources: tuple[str, ...], attempt: int | None, at: str | None, as_json: bool
) -> None:
    """Print the timeline of one quantum attempt, one line per event.

    QUANTUM is a log file, or a quantum id (a unique prefix will do, with
    @ATTEMPT if wanted) to look for in SOURCES.
    """
    log, _source = _find_log(quantum, sources, attempt)
    events = read_events(log)
    names = DatasetNames(events)
    rows = timeline(events)
    state: dict[str, Any] | None = None
    if at is not None:
        count, provenance = state_at(events, at)
        state = {
            "at": at,
            "events": count,
            "last_seq": count - 1 if count else None,
            "status": provenance.status,
            "sets": provenance_state(provenance, names),
            "warnings": [w.tag for w in provenance.warnings],
        }
    if as_json:
        emit_json(
            TOOL,
            "show",
            {
                **_identity(events),
                "location": log.location,
                "timeline": [r.model_dump() for r in rows],
                "state": state,
            },
        )
        return
    ident = _identity(events)
    click.echo(f"quantum {ident['quantum_id']} attempt {ident['attempt']}")
    click.echo(f"log {log.location}")
    if state is None:
        # One line per event, never wrapped: greppable, and nothing is cut.
        for r in rows:
            duration = "" if r.duration_ns is None else f" ({r.duration_ns / 1e6:.3f} ms)"
            datasets = ", ".join(r.datasets) or "-"
            offset = f"+{r.offset_ns / 1e9:.6f}s"
            click.echo(f"{r.seq:>5} {offset} {r.kind:<19} {datasets}: {r.outcome}{duration}")
        return
    last = state["last_seq"]
    click.echo(
        f"state after {state['events']} events (seq {last if last is not None else '-'}), "
        f"status {state['status'] or 'running'}:",
    )
    for name, members in state["sets"].items():
        click.echo(f"  {name}: {', '.join(members) or '-'}")
    if state["warnings"]:
        click.echo(f"  warnings: {', '.join(state['warnings'])}")


@main.command()
@click.argument("a")
@click.argument("b")
@click.argument("sources", nargs=-1)
@_json_option
def diff(a: str, b: str, sources: tuple[str, ...], as_json: bool) -> None:
    """Compare two logs: actions, provenance sets, first divergence.

    A and B are log files, or quantum ids with @ATTEMPT (``3f2a@0 3f2a@1``) to
    look for in SOURCES. Exits 1 when they differ, like diff(1).
    """
    log_a, _ = _find_log(a, sources, None)
    log_b, _ = _find_log(b, sources, None)
    events_a, events_b = read_events(log_a), read_events(log_b)
    result = diff_logs(events_a, events_b)
    if as_json:
        emit_json(
            TOOL,
            "diff",
            {
                "a": {**_identity(events_a), "location": log_a.location},
                "b": {**_identity(events_b), "location": log_b.location},
                **result,
            },
        )
    else:
        _print_diff(Console(highlight=False), log_a, log_b, result)
    if not result["same"]:
        sys.exit(EXIT_PROBLEM)


def _print_diff(
    console: Console, log_a: StoredLog, log_b: StoredLog, result: dict[str, Any]
) -> None:
    click.echo(f"a: {log_a.location}")
    click.echo(f"b: {log_b.location}")
    if result["same"]:
        click.echo("the two logs did the same thing")
        return
    status = result["status"]
    if status["a"] != status["b"]:
        click.echo(f"status: a {status['a']}, b {status['b']}")
    for title, section in (("did", result["actions"]), ("provenance", result["provenance"])):
        for name, split in section.items():
            for side in ("a", "b"):
                members = split[f"only_{side}"]
                if members:
                    click.echo(f"{title} {name} only in {side}: {', '.join(members)}")
    divergence = result["divergence"]
    if divergence is not None:
        click.echo(f"timelines diverge at event {divergence['index']}:")
        for side in ("a", "b"):
            row = divergence[side]
            text = (
                "(log ended)"
                if row is None
                else f"seq {row['seq']} {row['kind']} "
                + (f"{', '.join(row['datasets'])}: {row['outcome']}")
            )
            click.echo(f"  {side}: {text}")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@_jobs_option
@_json_option
def stats(sources: tuple[str, ...], jobs: int | None, as_json: bool) -> None:
    """Statistics per run and per task: status, attempts, events, inputs, time, memory.

    Exits 1 when a log failed verification.
    """
    results = _results(sources, Options(fold=True), jobs, "reading")
    figures = run_stats(results)
    failed = sum(not r.verified for r in results)
    if as_json:
        emit_json(TOOL, "stats", {"logs": len(results), "failed_verification": failed, **figures})
    else:
        _print_stats(Console(highlight=False), figures)
    if failed:
        sys.exit(EXIT_PROBLEM)


def _ms(summary: dict[str, int] | None, key: str, scale: float, unit: str) -> str:
    return "-" if summary is None else f"{summary[key] / scale:.1f}{unit}"


def _print_stats(console: Console, figures: dict[str, Any]) -> None:
    for run, data in figures["runs"].items():
        rows = []
        for task, t in data["tasks"].items():
            statuses = " ".join(
                f"{status}:" + ",".join(f"#{a}x{n}" for a, n in attempts.items())
                for status, attempts in t["attempts_by_status"].items()
            )
            rows.append(
                [
                    task,
                    str(t["quanta"]),
                    statuses,
                    str(sum(t["events_by_kind"].values())),
                    f"{t['missing_inputs']}/{t['unused_inputs']}/{t['unwritten_outputs']}",
                    f"{_ms(t['wall_ns'], 'median', 1e6, '')}/{_ms(t['wall_ns'], 'max', 1e6, '')}",
                    f"{_ms(t['peak_rss_bytes'], 'median', 2**20, '')}/"
                    f"{_ms(t['peak_rss_bytes'], 'max', 2**20, '')}",
                    str(len(t["failed_verification"])),
                ]
            )
        columns = (
            "task",
            "quanta",
            "status:attempt x logs",
            "events",
            "missing/unused/unwritten",
            "wall ms med/max",
            "MiB med/max",
            "bad logs",
        )
        print_table(console, columns, rows, key=0, title=f"run {run}")
        bad = data["total"]["failed_verification"]
        for location in bad:
            click.echo(f"failed verification: {location}")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write.",
)
@_jobs_option
@_json_option
def report(sources: tuple[str, ...], output: Path, jobs: int | None, as_json: bool) -> None:
    """Write one self-contained HTML report: stats, charts, quanta to look at.

    It opens with no network access. Exits 1 when a log failed verification.
    """
    results = _results(sources, Options(fold=True), jobs, "reading")
    chosen = worth_a_look(results)
    wanted = {r.location for r in chosen}
    details: dict[str, list[Event] | None] = {}
    for source in resolve_sources(sources):
        for log in logs_of(source):
            if log.location in wanted:
                parsed = parse_events(log)
                details[log.location] = parsed.events or None
    document = render_report(results, run_stats(results), details)
    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(output)
    failed = sum(not r.verified for r in results)
    size = output.stat().st_size
    if as_json:
        emit_json(
            TOOL,
            "report",
            {
                "output": str(output),
                "bytes": size,
                "logs": len(results),
                "detailed": len(details),
                "failed_verification": failed,
            },
        )
    else:
        click.echo(f"wrote {output} ({size} bytes): {len(results)} logs, {len(details)} in detail")
    if failed:
        sys.exit(EXIT_PROBLEM)
