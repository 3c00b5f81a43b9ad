"""``qbb-events registry|transfer|query|orphans``: the registry's commands (thin).

Exit codes: 0 all well, 1 a check found a problem (a conflict, a refused log,
an artifact mismatch, a dataset not found, orphans left), 2 a usage error or
input that cannot be read (a missing path, an unreachable or foreign
database). Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
import structlog

from .errors import QbbEventsError
from .registry import Registry, find_orphans, transfer_run

__all__ = ["orphans", "query", "registry", "transfer"]

_registry_option = click.option(
    "--registry", "url", required=True, help="Registry: a file path (SQLite) or a database URL."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")


class _InputError(click.ClickException):
    """Unreadable input or a refused database: exit code 2."""

    exit_code = 2


@contextmanager
def _errors(what: str, debug: bool) -> Iterator[None]:
    try:
        yield
    except (QbbEventsError, OSError, LookupError, ValueError) as err:
        if debug:
            raise
        raise _InputError(f"{what} failed: {err}") from err


def _emit(data: Any) -> None:
    click.echo(orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2).decode())


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    raise TypeError(f"cannot encode {type(value).__name__}")


@click.group()
def registry() -> None:
    """Create central registries."""


@registry.command("create")
@click.argument("url")
@_json_option
@_debug_option
def create(url: str, as_json: bool, debug: bool) -> None:
    """Create an empty registry at URL (a file path for SQLite, or postgresql+psycopg://...)."""
    with _errors("registry create", debug), Registry.create(url) as created:
        shown = repr(created)
    if as_json:
        _emit({"created": url, "registry": shown})
    else:
        click.echo(f"created {shown}")


@click.command()
# Plain strings: a source may be a PostgreSQL URL as well as a path.
@click.argument("sources", nargs=-1, required=True)
@_registry_option
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--check-artifacts", is_flag=True, help="Check each output's size and checksum.")
@click.option(
    "--datastore-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Root of the artifacts, for --check-artifacts.",
)
@click.option("--force-unverified", is_flag=True, help="Also transfer logs that do not verify.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: terminal).")
@_json_option
@_debug_option
def transfer(
    sources: tuple[str, ...],
    url: str,
    workers: int,
    check_artifacts: bool,
    datastore_root: Path | None,
    force_unverified: bool,
    progress: bool | None,
    as_json: bool,
    debug: bool,
) -> None:
    """Transfer logs (files, directories, SQLite or PostgreSQL stores, Parquet exports).

    Idempotent and resumable. Exits 1 on a conflict, a refused log or an artifact mismatch.
    """
    if check_artifacts and datastore_root is None:
        raise click.UsageError("--check-artifacts needs --datastore-root")
    with _errors("transfer", debug), Registry.open(url) as target:
        report = transfer_run(
            target,
            list(sources),
            workers=workers,
            check_artifacts=check_artifacts,
            force_unverified=force_unverified,
            progress=progress,
            datastore_root=datastore_root,
        )
    if as_json:
        _emit(report.to_dict())
    else:
        click.echo(
            f"transferred {report.logs} logs: {report.quanta_new} quanta, "
            f"{report.datasets_new} datasets, {report.provenance_rows_new} provenance rows new; "
            f"{report.quanta_existing} quanta already there"
        )
        for conflict in report.conflicts:
            click.echo(f"conflict ({conflict.kind}) {conflict.key}: {conflict.message}", err=True)
        for refused in report.refused:
            click.echo(f"refused {refused.location}: {'; '.join(refused.problems)}", err=True)
        for problem in report.artifact_problems:
            click.echo(
                f"artifact {problem.path} ({problem.dataset_id}): {problem.message}", err=True
            )
        for aborted in report.aborted:
            click.echo(f"aborted quantum {aborted}: no outputs registered", err=True)
    if not report.ok:
        sys.exit(1)


@click.group()
def query() -> None:
    """Query a registry: datasets, lineage, quanta."""


def _run_query(url: str, debug: bool, work: Callable[[Registry], Any]) -> Any:
    with _errors("query", debug), Registry.open(url) as opened:
        return work(opened)


@query.command("dataset")
@click.argument("dataset_id", required=False)
@click.option("--type", "type_name", help="Dataset type name (with --data-id and --run).")
@click.option("--data-id", help="Data ID as JSON, e.g. '{\"visit\": 1}'.")
@click.option("--run", help="RUN collection.")
@_registry_option
@_json_option
@_debug_option
def query_dataset(
    dataset_id: str | None,
    type_name: str | None,
    data_id: str | None,
    run: str | None,
    url: str,
    as_json: bool,
    debug: bool,
) -> None:
    """Show a dataset by id, or by --type, --data-id and --run. Exit 1 if absent."""
    if dataset_id is None and None in (type_name, data_id, run):
        raise click.UsageError("give a DATASET_ID, or all of --type, --data-id and --run")

    def work(opened: Registry) -> Any:
        if dataset_id is not None:
            ref = opened.get_dataset(dataset_id)
        else:
            try:
                values = orjson.loads(data_id or "")
            except orjson.JSONDecodeError as err:
                raise ValueError(f"--data-id is not JSON: {err}") from err
            ref = opened.find_dataset(type_name or "", values, run or "")
        if ref is None:
            return None
        records = opened.datastore_records([ref.id])
        producer = opened.producer(ref.id)
        return {
            "id": str(ref.id),
            "dataset_type": ref.dataset_type.name,
            "storage_class": ref.dataset_type.storage_class,
            "run": ref.run,
            "data_id": ref.data_id.to_dict(),
            "records": {k: [r.model_dump(mode="json") for r in v] for k, v in records.items()},
            "producer": None if producer is None else f"{producer.id}/{producer.attempt}",
        }

    found = _run_query(url, debug, work)
    if as_json:
        _emit(found)
    elif found is None:
        click.echo("no such dataset", err=True)
    else:
        for key, value in found.items():
            click.echo(f"{key}: {value}")
    if found is None:
        sys.exit(1)


def _lineage(direction: str) -> click.Command:
    @click.argument("dataset_id")
    @click.option("--depth", type=click.IntRange(min=1), help="Steps to walk (default: all).")
    @_registry_option
    @_json_option
    @_debug_option
    def command(dataset_id: str, depth: int | None, url: str, as_json: bool, debug: bool) -> None:
        steps = _run_query(url, debug, lambda opened: getattr(opened, direction)(dataset_id, depth))
        if as_json:
            _emit(steps)
            return
        for step in steps:
            click.echo(f"{step.depth}\t{step.dataset_id}\t{step.quantum_id}/{step.attempt}")

    command.__doc__ = (
        "Walk upstream: the inputs the producer of DATASET_ID actually used, recursively."
        if direction == "upstream"
        else "Walk downstream: the quanta that actually used DATASET_ID, recursively."
    )
    return query.command(direction)(command)


_lineage("upstream")
_lineage("downstream")


@query.command("quanta")
@click.option("--run", help="RUN collection.")
@click.option("--task", "task_label", help="Task label.")
@click.option("--status", help="succeeded, failed, no_work, aborted or unknown.")
@_registry_option
@_json_option
@_debug_option
def query_quanta(
    run: str | None,
    task_label: str | None,
    status: str | None,
    url: str,
    as_json: bool,
    debug: bool,
) -> None:
    """List registered quantum attempts."""
    found = _run_query(url, debug, lambda opened: opened.quanta(run, task_label, status))
    if as_json:
        _emit(found)
        return
    for quantum in found:
        click.echo(
            f"{quantum.id}/{quantum.attempt}\t{quantum.task_label}\t{quantum.status}\t"
            f"{'verified' if quantum.verified else 'unverified'}"
        )


@click.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_registry_option
@click.option(
    "--logs",
    "log_sources",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Logs whose writes also account for files (repeatable).",
)
@click.option("--delete", is_flag=True, help="Delete the orphans, after listing them.")
@_json_option
@_debug_option
def orphans(
    root: Path,
    url: str,
    log_sources: tuple[Path, ...],
    delete: bool,
    as_json: bool,
    debug: bool,
) -> None:
    """List files under ROOT that no registry record and no log accounts for.

    Exits 1 if orphans are left (always without --delete).
    """
    logs = [os.fspath(p) for p in log_sources] or None
    with _errors("orphans", debug), Registry.open(url) as opened:
        found = find_orphans(root, opened, logs)
    # The dry-run list is printed in full before anything is deleted.
    if as_json:
        _emit({"orphans": found, "deleted": delete})
    else:
        for path in found:
            click.echo(path)
        click.echo(f"{len(found)} orphans under {root}", err=True)
    if not delete:
        sys.exit(1 if found else 0)
    if found and len(found) == sum(len(files) for _, _, files in os.walk(root)):
        # Not one file under ROOT is known to the registry or the logs: a
        # wrong folder, not a datastore with some orphans. Refuse to empty it.
        click.echo(
            f"Error: nothing under {root} is accounted for by the registry or the logs; "
            "refusing to delete every file (is it the datastore root?)",
            err=True,
        )
        sys.exit(2)
    log = structlog.get_logger("qbb_events.orphans")
    with _errors("orphans --delete", debug):
        for path in found:
            (root / path).unlink()
            log.info("orphan_deleted", root=str(root), path=path)
