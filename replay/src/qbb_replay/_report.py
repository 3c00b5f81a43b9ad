"""One self-contained HTML report of a run: stats, charts, and the quanta to look at.

Charts are drawn by plotly with its JavaScript inlined once into the file, so
the report opens with no network access.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from qbb_events import Event, FoldError, fold

from ._analysis import LogResult
from ._events import DatasetNames
from ._timeline import provenance_state, timeline

__all__ = ["DETAIL_LIMIT", "render_report", "worth_a_look"]

DETAIL_LIMIT = 200
"""At most this many quanta get their own timeline section (the worst first)."""

_ROWS_PER_QUANTUM_LIMIT = 60
"""Above this many quantum attempts the timeline draws one lane per task."""

_STATUS_COLOURS = {
    "succeeded": "#2ca02c",
    "no_work": "#7f7f7f",
    "failed": "#d62728",
    "aborted": "#ff7f0e",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.id { font-family: monospace; white-space: nowrap; }
.bad { color: #b00; }
section.quantum { border-top: 2px solid #ddd; margin-top: 1.5em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], id_columns: int = 0) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="id">{_e(c)}</td>' if i < id_columns else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _seconds(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:.3f}"


def _gantt(results: Sequence[LogResult]) -> go.Figure:
    timed = [r for r in results if r.started_ns is not None and r.finished_ns is not None]
    timed.sort(key=lambda r: (r.task_label or "?", r.started_ns or 0))
    figure = go.Figure()
    start = min((r.started_ns or 0 for r in timed), default=0)
    # One row per quantum attempt while that stays legible; beyond, one lane
    # per task, so the chart keeps its height whatever the run's size.
    per_quantum = len(timed) <= _ROWS_PER_QUANTUM_LIMIT
    for status, colour in _STATUS_COLOURS.items():
        chosen = [r for r in timed if r.status == status]
        if not chosen:
            continue
        figure.add_trace(
            go.Bar(
                orientation="h",
                name=status,
                marker_color=colour,
                opacity=1.0 if per_quantum else 0.6,
                y=[
                    f"{r.task_label} {r.data_id} #{r.attempt}" if per_quantum else r.task_label
                    for r in chosen
                ],
                base=[((r.started_ns or 0) - start) / 1e9 for r in chosen],
                # A bar of zero width would not show: a quantum lasts at least 1 ms here.
                x=[max(1e-3, ((r.finished_ns or 0) - (r.started_ns or 0)) / 1e9) for r in chosen],
                customdata=[r.quantum_id for r in chosen],
                hovertemplate="%{y}<br>quantum %{customdata}<br>from %{base:.3f} s, "
                "%{x:.3f} s<extra></extra>",
            )
        )
    figure.update_layout(
        title="Quanta per task over time",
        barmode="overlay",
        xaxis_title="seconds since the first event",
        height=120 + (18 * len(timed) if per_quantum else 60 * len({r.task_label for r in timed})),
        yaxis={"autorange": "reversed"},
    )
    return figure


def _resources(results: Sequence[LogResult]) -> go.Figure:
    figure = make_subplots(rows=1, cols=2, subplot_titles=("wall time (s)", "peak memory (MiB)"))
    tasks = sorted({r.task_label or "?" for r in results})
    for task in tasks:
        chosen = [r for r in results if (r.task_label or "?") == task and r.wall_ns is not None]
        wall = [(r.wall_ns or 0) / 1e9 for r in chosen]
        memory = [(r.peak_rss_bytes or 0) / 2**20 for r in chosen]
        figure.add_trace(go.Box(y=wall, name=task, boxpoints="all", legendgroup=task), 1, 1)
        figure.add_trace(
            go.Box(y=memory, name=task, boxpoints="all", legendgroup=task, showlegend=False), 1, 2
        )
    figure.update_layout(title="Time and memory per task", height=420)
    return figure


def _stats_section(stats: Mapping[str, Any]) -> str:
    parts = []
    for run, figures in stats["runs"].items():
        rows = []
        for task, t in figures["tasks"].items():
            statuses = ", ".join(
                f"{status}: " + " ".join(f"#{a}x{n}" for a, n in attempts.items())
                for status, attempts in t["attempts_by_status"].items()
            )
            wall, rss = t["wall_ns"], t["peak_rss_bytes"]
            rows.append(
                [
                    task,
                    t["quanta"],
                    t["logs"],
                    statuses,
                    sum(t["events_by_kind"].values()),
                    t["missing_inputs"],
                    t["unused_inputs"],
                    t["unwritten_outputs"],
                    "-"
                    if wall is None
                    else f"{_seconds(wall['median'])} / {_seconds(wall['max'])}",
                    "-"
                    if rss is None
                    else f"{rss['median'] / 2**20:.1f} / {rss['max'] / 2**20:.1f}",
                    len(t["failed_verification"]),
                ]
            )
        headers = (
            "task",
            "quanta",
            "logs",
            "status: attemptxlogs",
            "events",
            "missing inputs",
            "unused inputs",
            "unwritten outputs",
            "wall s median / max",
            "peak MiB median / max",
            "failed verification",
        )
        parts.append(f"<h3>run {_e(run)}</h3>" + _table(headers, rows))
    return "".join(parts)


def _quantum_section(result: LogResult, events: Sequence[Event] | None) -> str:
    why = []
    if not result.verified:
        why.append("failed verification")
    if result.status in ("failed", "aborted"):
        why.append(result.status)
    if result.missing_inputs:
        why.append(f"{len(result.missing_inputs)} missing inputs")
    if result.unused_inputs:
        why.append(f"{len(result.unused_inputs)} unused inputs")
    why.extend(f"warning {w}" for w in result.warnings)
    head = (
        f'<section class="quantum"><h3>{_e(result.task_label)} {_e(result.data_id)} '
        f"attempt {_e(result.attempt)}: <span class=bad>{_e(', '.join(why))}</span></h3>"
        f"<p>quantum <code>{_e(result.quantum_id)}</code>, "
        f"log <code>{_e(result.location)}</code></p>"
    )
    findings = ""
    if result.findings:
        findings = _table(
            ("kind", "seq", "reason"),
            [(f.kind, "-" if f.seq is None else f.seq, f.message) for f in result.findings],
        )
    if not events:
        return head + findings + "</section>"
    names = DatasetNames(list(events))
    try:
        sets = provenance_state(fold(events), names)
    except FoldError as err:
        sets = {"(cannot be folded)": [str(err)]}
    provenance = _table(("set", "datasets"), [(k, ", ".join(v) or "-") for k, v in sets.items()])
    rows = [
        (
            row.seq,
            f"+{row.offset_ns / 1e9:.6f}",
            row.kind,
            ", ".join(row.datasets) or "-",
            row.outcome,
            "-" if row.duration_ns is None else f"{row.duration_ns / 1e6:.3f}",
        )
        for row in timeline(events)
    ]
    events_table = _table(("seq", "offset s", "kind", "datasets", "outcome", "ms"), rows)
    return head + findings + provenance + events_table + "</section>"


def render_report(
    results: Sequence[LogResult],
    stats: Mapping[str, Any],
    details: Mapping[str, Sequence[Event] | None],
) -> str:
    """Return the report as one HTML document.

    Parameters
    ----------
    results : `~collections.abc.Sequence` [`LogResult`]
        Every log, folded.
    stats : `~collections.abc.Mapping`
        `run_stats` of the results.
    details : `~collections.abc.Mapping` [`str`, `~collections.abc.Sequence` [`Event`]]
        Events of the quanta to show in detail, by log location (`None` for a
        log whose events could not be read).

    Returns
    -------
    document : `str`
        Self-contained: plotly's JavaScript is inlined once, nothing is fetched.
    """
    config = {"displaylogo": False, "responsive": True}
    gantt = pio.to_html(_gantt(results), full_html=False, include_plotlyjs=True, config=config)
    resources = pio.to_html(
        _resources(results), full_html=False, include_plotlyjs=False, config=config
    )
    failed = sum(not r.verified for r in results)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    sections = "".join(
        _quantum_section(r, details.get(r.location)) for r in results if r.location in details
    )
    summary = (
        f"<p>{len(results)} logs of {len({r.quantum_id for r in results})} quanta, "
        f"{sum(r.events for r in results)} events; "
        f"<span class={'bad' if failed else 'ok'}>{failed} failed verification</span>. "
        f"Made {created} by qbb-replay from the logs alone.</p>"
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<title>qbb-replay report</title>"
        f"<style>{_STYLE}</style></head><body><h1>qbb-replay report</h1>{summary}"
        f"<h2>Statistics</h2>{_stats_section(stats)}"
        f'<h2>Timeline</h2><div class="chart">{gantt}</div>'
        f'<h2>Resources</h2><div class="chart">{resources}</div>'
        f"<h2>Quanta to look at</h2>{sections or '<p>none: every quantum succeeded cleanly.</p>'}"
        "</body></html>"
    )


def worth_a_look(results: Sequence[LogResult]) -> list[LogResult]:
    """Return the failed, aborted, unverified or suspicious logs, worst first, capped.

    Parameters
    ----------
    results : `~collections.abc.Sequence` [`LogResult`]
        Every log.

    Returns
    -------
    chosen : `list` [`LogResult`]
        At most `DETAIL_LIMIT` logs.
    """

    def badness(r: LogResult) -> tuple[int, str]:
        score = (not r.verified) * 8 + (r.status == "failed") * 4 + (r.status == "aborted") * 4
        return -(score + r.suspicious), r.location

    chosen = [
        r for r in results if not r.verified or r.status in ("failed", "aborted") or r.suspicious
    ]
    return sorted(chosen, key=badness)[:DETAIL_LIMIT]
