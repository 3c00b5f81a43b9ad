"""qbb_replay: audit a run of qbb_events quanta from their logs alone.

Built only on the public API of `qbb_events` (a test checks it). The command
line is ``qbb-replay`` (`qbb_replay.cli`); these names let a program do the
same.
"""

from ._analysis import Finding, LogResult, Options, analyze_sources, compare_roles
from ._diff import diff_logs
from ._events import DatasetNames, LogEvents, parse_events, read_events
from ._report import DETAIL_LIMIT, render_report, worth_a_look
from ._sources import Source, SourceKind, logs_of, resolve_sources
from ._stats import distribution, run_stats
from ._timeline import TimelineRow, provenance_state, state_at, timeline

__all__ = [
    "DETAIL_LIMIT",
    "DatasetNames",
    "Finding",
    "LogEvents",
    "LogResult",
    "Options",
    "Source",
    "SourceKind",
    "TimelineRow",
    "analyze_sources",
    "compare_roles",
    "diff_logs",
    "distribution",
    "logs_of",
    "parse_events",
    "provenance_state",
    "read_events",
    "render_report",
    "resolve_sources",
    "run_stats",
    "state_at",
    "timeline",
    "worth_a_look",
]
