"""Quantum attempts read from logs, verified and folded: what every export format maps.

Each log is verified before it is exported, so what travels to another tool
is what the hash chain proves; a log with any problem other than being
unsealed or cut short is refused and reported, never exported.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from ..events import (
    DatasetsPruned,
    DeferredLoaded,
    DeferredRequested,
    Event,
    InputMarkedUnused,
    InputRead,
    OutputWritten,
    QuantumFinished,
    QuantumStarted,
    RefInfo,
    parse_event,
)
from ..fold import fold
from ..logs import LogSource, LogVerification, stored_logs, verify_stored_logs
from ..provenance import QuantumProvenanceData

__all__ = ["QuantumAttempt", "read_attempts", "ref_label"]

# Problems that leave a sound prefix: the events there are proved by the chain.
_EXPORTABLE_PROBLEMS = frozenset({"unsealed", "truncated"})


@dataclass(frozen=True)
class QuantumAttempt:
    """One verified quantum attempt, folded, with the times each dataset changed role.

    Attributes
    ----------
    started : `QuantumStarted`
        Its first event (the whole quantum).
    finished : `QuantumFinished` or `None`
        Its last event, `None` when the log is unsealed (the attempt was cut).
    last_ns : `int`
        Timestamp of its last event.
    provenance : `QuantumProvenanceData`
        The fold of its events.
    used_ns : `dict` [`uuid.UUID`, `int`]
        For each actual input, when it was first read or requested.
    generated_ns : `dict` [`uuid.UUID`, `int`]
        For each actual output, when it was written.
    invalidated_ns : `dict` [`uuid.UUID`, `int`]
        Datasets pruned by the quantum, and when.
    marked_unused : `frozenset` [`uuid.UUID`]
        Inputs read or requested and then marked unused.
    """

    started: QuantumStarted
    finished: QuantumFinished | None
    last_ns: int
    provenance: QuantumProvenanceData
    used_ns: dict[uuid.UUID, int] = field(default_factory=dict)
    generated_ns: dict[uuid.UUID, int] = field(default_factory=dict)
    invalidated_ns: dict[uuid.UUID, int] = field(default_factory=dict)
    marked_unused: frozenset[uuid.UUID] = frozenset()

    @property
    def quantum_id(self) -> uuid.UUID:
        """The quantum's id."""
        return self.started.quantum_id

    @property
    def attempt(self) -> int:
        """The attempt number."""
        return self.started.attempt

    @property
    def run(self) -> str:
        """The run collection of the quantum: its outputs' run, else its inputs'."""
        info = self.started.quantum
        for ref in (*info.outputs, *info.inputs, *info.init_inputs):
            if ref.run is not None:
                return ref.run
        return "unknown"

    @property
    def refs(self) -> dict[uuid.UUID, RefInfo]:
        """Every predicted ref of the quantum by id."""
        info = self.started.quantum
        return {ref.id: ref for ref in (*info.inputs, *info.init_inputs, *info.outputs)}


def ref_label(ref: RefInfo) -> str:
    """Return ``dataset_type(key=value,...)`` for a ref, keys sorted.

    Parameters
    ----------
    ref : `RefInfo`
        A predicted ref.

    Returns
    -------
    label : `str`
        A name unique within the ref's run.
    """
    data_id = ",".join(f"{k}={v}" for k, v in sorted((ref.data_id or {}).items()))
    return f"{ref.dataset_type or 'unknown'}({data_id})"


def _attempt(events: list[Event]) -> QuantumAttempt | None:
    if not events or not isinstance(events[0], QuantumStarted):
        return None
    provenance = fold(events)
    used: dict[uuid.UUID, int] = {}
    generated: dict[uuid.UUID, int] = {}
    invalidated: dict[uuid.UUID, int] = {}
    unused: set[uuid.UUID] = set()
    for event in events:
        if isinstance(event, InputRead | DeferredLoaded | DeferredRequested):
            # A failed read proves nothing; a deferred request makes the input actual.
            if getattr(event, "ok", True):
                used.setdefault(event.dataset_id, event.timestamp_ns)
        elif isinstance(event, InputMarkedUnused):
            unused.add(event.dataset_id)
        elif isinstance(event, OutputWritten):
            generated[event.dataset_id] = event.timestamp_ns
        elif isinstance(event, DatasetsPruned) and event.unstore:
            for dataset_id in event.removed:
                invalidated[dataset_id] = event.timestamp_ns
    actual_in, actual_out = provenance.actual_inputs, provenance.actual_outputs
    last = events[-1]
    return QuantumAttempt(
        started=events[0],
        finished=last if isinstance(last, QuantumFinished) else None,
        last_ns=last.timestamp_ns,
        provenance=provenance,
        used_ns={i: t for i, t in used.items() if i in actual_in},
        generated_ns={i: t for i, t in generated.items() if i in actual_out},
        invalidated_ns=invalidated,
        marked_unused=frozenset(unused - actual_in),
    )


def read_attempts(sources: LogSource, refused: list[LogVerification]) -> Iterator[QuantumAttempt]:
    """Yield every verified quantum attempt of the sources, one log at a time.

    Parameters
    ----------
    sources : `LogSource`
        Log files, directories, SQLite stores or live logs (see `stored_logs`).
    refused : `list` [`LogVerification`]
        Filled with the verdicts of the logs verification refused (or that
        hold no ``quantum_started``).

    Yields
    ------
    attempt : `QuantumAttempt`
        Each sound log, folded; memory holds one log at a time.
    """
    for log in stored_logs(sources):
        verdict = verify_stored_logs([log]).logs[0]
        if any(p.kind not in _EXPORTABLE_PROBLEMS for p in verdict.problems):
            refused.append(verdict)
            continue
        # Only the records verification counted: a live writer's later events wait.
        events: list[Event] = []
        for _, record, _ in log:
            if len(events) == verdict.events:
                break
            events.append(parse_event(orjson.loads(record)))
        attempt = _attempt(events)
        if attempt is None:
            refused.append(verdict)
        else:
            yield attempt
