"""How two logs (two attempts of one quantum, or two quanta) differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qbb_events import Event, fold

from ._events import DatasetNames
from ._timeline import TimelineRow, provenance_state, timeline

__all__ = ["diff_logs"]

_ACTIONS = ("read", "read_failed", "found", "not_found", "deferred", "marked_unused", "written")


def _actions(events: Sequence[Event], names: DatasetNames) -> dict[str, set[str]]:
    """Collect what a log did to which dataset, by action."""
    done: dict[str, set[str]] = {action: set() for action in _ACTIONS}
    for event in events:
        data: Any = event
        if event.kind in ("input_read", "deferred_loaded"):
            done["read" if data.ok else "read_failed"].add(names(data.dataset_id))
        elif event.kind == "existence_checked":
            for dataset_id, result in zip(data.dataset_ids, data.results, strict=True):
                done["found" if result else "not_found"].add(names(dataset_id))
        elif event.kind == "deferred_requested":
            done["deferred"].add(names(data.dataset_id))
        elif event.kind == "input_marked_unused":
            done["marked_unused"].add(names(data.dataset_id))
        elif event.kind == "output_written":
            done["written"].add(names(data.dataset_id))
    return done


def _signature(row: TimelineRow) -> tuple[object, ...]:
    # Times, hosts and hashes always differ between attempts: compare what happened.
    outcome = row.outcome if row.kind != "quantum_started" else row.outcome.split(", host")[0]
    return row.kind, tuple(row.datasets), outcome


def _split(a: set[str], b: set[str]) -> dict[str, list[str]]:
    return {"only_a": sorted(a - b), "only_b": sorted(b - a)}


def diff_logs(a: Sequence[Event], b: Sequence[Event]) -> dict[str, Any]:
    """Compare two logs: actions, provenance sets, and where the timelines diverge.

    Parameters
    ----------
    a, b : `~collections.abc.Sequence` [`Event`]
        The two logs' events.

    Returns
    -------
    diff : `dict`
        ``same`` (`bool`); ``status`` (of each); ``actions``: for each of
        read, read_failed, found, not_found, deferred, marked_unused and
        written that differs, the datasets ``only_a`` and ``only_b``;
        ``provenance``: the same for each differing provenance set;
        ``divergence``: `None`, or the index of the first event that differs
        with the two rows there (`None` for a log that ended).

    Notes
    -----
    Datasets are compared by dataset type and data ID, so two attempts of
    one quantum (same ids) and two quanta of one task (other ids) both compare.
    """
    names_a, names_b = DatasetNames(list(a)), DatasetNames(list(b))
    acts_a, acts_b = _actions(a, names_a), _actions(b, names_b)
    actions = {
        act: _split(acts_a[act], acts_b[act]) for act in _ACTIONS if acts_a[act] != acts_b[act]
    }
    prov_a, prov_b = fold(a), fold(b)
    sets_a, sets_b = provenance_state(prov_a, names_a), provenance_state(prov_b, names_b)
    provenance = {
        name: _split(set(sets_a[name]), set(sets_b[name]))
        for name in sets_a
        if set(sets_a[name]) != set(sets_b[name])
    }
    rows_a, rows_b = timeline(a), timeline(b)
    divergence: dict[str, Any] | None = None
    for index in range(max(len(rows_a), len(rows_b))):
        row_a = rows_a[index] if index < len(rows_a) else None
        row_b = rows_b[index] if index < len(rows_b) else None
        if row_a is None or row_b is None or _signature(row_a) != _signature(row_b):
            divergence = {
                "index": index,
                "a": row_a.model_dump() if row_a else None,
                "b": row_b.model_dump() if row_b else None,
            }
            break
    status = {"a": prov_a.status or "aborted", "b": prov_b.status or "aborted"}
    same = not actions and not provenance and divergence is None and status["a"] == status["b"]
    return {
        "same": same,
        "status": status,
        "actions": actions,
        "provenance": provenance,
        "divergence": divergence,
    }
