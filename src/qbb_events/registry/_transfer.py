"""`transfer_run`: a run's logs (or Parquet export) into a registry, in bulk, exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ArgumentTypeError, QbbEventsError
from ..logs import LogSource, StoredLog, stored_logs, verify_logs
from ..parquet import exported_logs
from ._registry import Registry
from ._report import RefusedLog, TransferReport, attempt_key
from ._rows import ABORT_KINDS, QuantumRows, check_artifacts, rows_from_log

__all__ = ["transfer_run"]

DEFAULT_BATCH_DATASETS = 10_000
"""Output datasets per transaction (provenance rows are bounded at 8 times that)."""

Roots = Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None


def transfer_run(
    registry: Registry,
    sources: LogSource,
    *,
    workers: int = 1,
    check_artifacts: bool = False,
    force_unverified: bool = False,
    progress: bool | None = None,
    datastore_root: Roots = None,
    batch_size: int = DEFAULT_BATCH_DATASETS,
) -> TransferReport:
    """Transfer the outputs, datastore records, quanta and provenance of a run's logs.

    Parameters
    ----------
    registry : `Registry`
        The registry to fill.
    sources : `LogSource`
        Log files, directories of logs, SQLite or other log stores, live
        logs, Parquet export directories (those written by
        `export_parquet`), or an iterable of these.
    workers : `int`, optional
        Processes to use. Each transfers every ``workers``-th log with its
        own connection; with more than one, ``sources`` must be paths or URLs.
    check_artifacts : `bool`, optional
        Check that each output's file exists with its recorded size and
        checksum before registering it (needs ``datastore_root``).
    force_unverified : `bool`, optional
        Transfer logs that fail verification too (folded up to their first
        unreadable event); their quanta are marked ``verified = false``.
    progress : `bool`, optional
        Show a progress bar; by default only on a terminal.
    datastore_root : path or mapping of datastore name to path, optional
        Where the artifacts are, for ``check_artifacts``.
    batch_size : `int`, optional
        Output datasets per transaction.

    Returns
    -------
    report : `TransferReport`
        What was added, what the registry already held, what was refused
        or in conflict. Transferring again adds nothing; a transfer killed
        at any point and run again ends with the registry a single clean
        transfer makes.

    Raises
    ------
    ArgumentTypeError
        If ``workers`` or ``batch_size`` is not a positive integer, or
        ``workers > 1`` with sources that are not paths.
    InvalidDefinitionError
        If ``check_artifacts`` is set without ``datastore_root``.
    FileNotFoundError
        If a source path does not exist.
    RegistryError
        If the database fails.

    Notes
    -----
    An unsealed log (a killed quantum) is transferred with status
    ``aborted``: its provenance rows are kept, its outputs are not
    registered, since nothing says they are complete.
    """
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentTypeError(f"{name} must be a positive integer, not {value!r}")
    roots = _roots(check_artifacts, datastore_root)
    options = {"roots": roots, "force_unverified": force_unverified, "batch_size": batch_size}
    show = Console(stderr=True).is_terminal if progress is None else progress
    with _Progress(show) as bar:
        if workers == 1:
            return _transfer(registry, _logs(sources), options, bar.advance)
        if not _is_paths(sources):
            raise ArgumentTypeError("transfer_run with workers > 1 needs sources given as paths")
        report = TransferReport()
        context = get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_transfer_part, registry.url, sources, part, workers, options)
                for part in range(workers)
            ]
            for future in futures:
                report.merge(future.result())
                bar.advance(0)
        bar.advance(report.logs)
        return report


def _roots(check: bool, root: Roots) -> Mapping[str, Path] | Path | None:
    from ..errors import InvalidDefinitionError

    if not check:
        return None
    if root is None:
        raise InvalidDefinitionError("check_artifacts needs datastore_root, the artifacts' root")
    if isinstance(root, Mapping):
        return {name: Path(path) for name, path in root.items()}
    return Path(root)


def _is_paths(sources: Any) -> bool:
    if isinstance(sources, str | os.PathLike):
        return True
    if isinstance(sources, list | tuple):
        return all(_is_paths(item) for item in sources)
    return False


def _is_export(path: Path) -> bool:
    events = path / "events"
    return events.is_dir() and any(events.rglob("*.parquet"))


def _logs(source: Any) -> Iterator[StoredLog]:
    """Every log of the sources; a Parquet export yields its rebuilt logs."""
    if isinstance(source, str | os.PathLike) and _is_export(Path(source)):
        yield from exported_logs(source)
    elif isinstance(source, list | tuple):
        for item in source:
            yield from _logs(item)
    else:
        yield from stored_logs(source)


def _transfer_part(
    url: str, sources: Any, part: int, parts: int, options: dict[str, Any]
) -> TransferReport:
    """One worker's share: every ``parts``-th log, starting at ``part``."""
    logs = (log for index, log in enumerate(_logs(sources)) if index % parts == part)
    with Registry.open(url) as registry:
        return _transfer(registry, logs, options, lambda count: None)


def _transfer(
    registry: Registry, logs: Iterator[StoredLog], options: dict[str, Any], advance: Any
) -> TransferReport:
    report = TransferReport()
    batch: list[QuantumRows] = []
    datasets = provenance = 0
    limit = options["batch_size"]
    for log in logs:
        report.logs += 1
        rows = _rows(log, options, report)
        advance(1)
        if rows is None:
            continue
        batch.append(rows)
        datasets += len(rows.datasets)
        provenance += len(rows.provenance)
        if datasets >= limit or provenance >= 8 * limit:
            registry.write(batch, report)
            batch, datasets, provenance = [], 0, 0
    registry.write(batch, report)
    return report


def _rows(log: StoredLog, options: dict[str, Any], report: TransferReport) -> QuantumRows | None:
    """Verify and fold one log; `None` (and a refusal in the report) if it may not go."""
    verdict = verify_logs(log).logs[0]
    serious = [str(p) for p in verdict.problems if p.kind not in ABORT_KINDS]
    forced = options["force_unverified"]
    if serious and not forced:
        report.refused.append(RefusedLog(verdict.location, tuple(serious)))
        return None
    try:
        rows = rows_from_log(log, verdict, force_unverified=forced)
    except (QbbEventsError, ValueError) as err:
        report.refused.append(RefusedLog(verdict.location, (*serious, f"{err}")))
        return None
    if serious:
        report.unverified.append(verdict.location)
    if rows.quantum["status"] == "aborted":
        report.aborted.append(attempt_key(*rows.key))
    if options["roots"] is not None:
        check_artifacts(rows, options["roots"])
        report.artifact_problems.extend(rows.artifact_problems)
    return rows


class _Progress:
    """A rich progress bar of logs read, or nothing when not shown."""

    def __init__(self, show: bool) -> None:
        self._bar: Progress | None = None
        self._task: Any = None
        if show:
            self._bar = Progress(
                TextColumn("transfer"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("logs", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)
