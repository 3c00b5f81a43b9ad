"""Statistics of a run, per run and per task, from the logs' results."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ._analysis import LogResult

__all__ = ["distribution", "run_stats"]


def distribution(values: Sequence[int]) -> dict[str, int] | None:
    """Summarize values: count, min, median, 90th percentile, max and total.

    Parameters
    ----------
    values : `~collections.abc.Sequence` [`int`]
        Measurements, e.g. nanoseconds or bytes.

    Returns
    -------
    summary : `dict` [`str`, `int`] or `None`
        `None` for no values. Percentiles are nearest-rank.
    """
    if not values:
        return None
    ordered = sorted(values)

    def rank(fraction: float) -> int:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": rank(0.5),
        "p90": rank(0.9),
        "max": ordered[-1],
        "total": sum(ordered),
    }


def _task_stats(results: Sequence[LogResult]) -> dict[str, Any]:
    by_status: dict[str, Counter[int]] = {}
    kinds: Counter[str] = Counter()
    for r in results:
        by_status.setdefault(r.status, Counter())[r.attempt or 0] += 1
        kinds.update(r.kinds)
    sealed = [r for r in results if r.wall_ns is not None]
    return {
        "quanta": len({r.quantum_id for r in results}),
        "logs": len(results),
        "attempts_by_status": {
            status: {str(a): n for a, n in sorted(c.items())}
            for status, c in sorted(by_status.items())
        },
        "events_by_kind": dict(sorted(kinds.items())),
        "missing_inputs": sum(len(r.missing_inputs) for r in results),
        "unused_inputs": sum(len(r.unused_inputs) for r in results),
        "unwritten_outputs": sum(len(r.unwritten_outputs) for r in results),
        "warnings": sum(len(r.warnings) for r in results),
        "wall_ns": distribution([r.wall_ns for r in sealed if r.wall_ns is not None]),
        "cpu_ns": distribution([r.cpu_ns for r in sealed if r.cpu_ns is not None]),
        "peak_rss_bytes": distribution(
            [r.peak_rss_bytes for r in sealed if r.peak_rss_bytes is not None]
        ),
        "failed_verification": sorted(r.location for r in results if not r.verified),
    }


def run_stats(results: Iterable[LogResult]) -> dict[str, Any]:
    """Aggregate log results per run and per task.

    Parameters
    ----------
    results : `~collections.abc.Iterable` [`LogResult`]
        One result per log, folded (``Options(fold=True)``).

    Returns
    -------
    stats : `dict`
        ``runs``: run name -> ``total`` and ``tasks`` (task label -> the
        figures of `_task_stats`: quanta, logs, attempts by status, events by
        kind, missing / unused inputs, unwritten outputs, warnings, wall / CPU
        time and peak memory distributions, logs that failed verification).
        Logs too damaged to name their run or task are filed under ``?``.
    """
    grouped: dict[str, dict[str, list[LogResult]]] = {}
    for r in results:
        grouped.setdefault(r.run or "?", {}).setdefault(r.task_label or "?", []).append(r)
    runs = {}
    for run, tasks in sorted(grouped.items()):
        everything = [r for rs in tasks.values() for r in rs]
        runs[run] = {
            "total": _task_stats(everything),
            "tasks": {task: _task_stats(rs) for task, rs in sorted(tasks.items())},
        }
    return {"runs": runs}
