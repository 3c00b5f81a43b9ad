"""The pure fold of a quantum's events into `QuantumProvenanceData`.

The rules (SPEC section 5, with the deliberate differences of section 6) live
in the small methods of `ProvenanceReducer`; `ProvenanceReducer.apply` only
unpacks an event into one of them. The butler calls the same methods as it
appends each event, so its running state is by construction the fold of its
log, and ``extract_provenance_data`` costs nothing but building the result.

This module does no I/O and logs nothing: warnings are returned on the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Literal

from .errors import FoldError
from .events import (
    DatasetsPruned,
    DeferredLoaded,
    DeferredRequested,
    Event,
    ExistenceChecked,
    InputMarkedUnused,
    InputRead,
    OutputWritten,
    QuantumFinished,
    QuantumStarted,
)
from .provenance import ProvenanceWarning, QuantumProvenanceData
from .records import FileRecord

__all__ = ["ProvenanceReducer", "fold"]

Status = Literal["succeeded", "failed", "no_work", "blocked"]


class ProvenanceReducer:
    """An incremental fold: feed it events in order, ask for the result any time.

    Folding a prefix and then the rest gives the same result as folding the
    whole log; `copy` lets a caller branch from a prefix.

    Notes
    -----
    Every rule treats only the quantum's own predicted datasets: events about
    other datasets are kept in the log for audit but change no set.
    """

    __slots__ = (
        "_actual",
        "_attempt",
        "_available",
        "_next_seq",
        "_outputs",
        "_predicted_inputs",
        "_predicted_outputs",
        "_quantum_id",
        "_read_ok",
        "_status",
        "_unavailable",
    )

    def __init__(self) -> None:
        self._quantum_id: uuid.UUID | None = None
        self._attempt = 0
        self._next_seq = 0
        self._predicted_inputs: frozenset[uuid.UUID] = frozenset()
        self._predicted_outputs: frozenset[uuid.UUID] = frozenset()
        self._available: set[uuid.UUID] = set()
        self._unavailable: set[uuid.UUID] = set()
        self._actual: set[uuid.UUID] = set()
        self._read_ok: set[uuid.UUID] = set()
        # Output id -> its record, or None once the artifact was unstored.
        self._outputs: dict[uuid.UUID, FileRecord | None] = {}
        self._status: Status | None = None

    def copy(self) -> ProvenanceReducer:
        """Return an independent copy of this state.

        Returns
        -------
        reducer : `ProvenanceReducer`
            A reducer that has folded the same events.
        """
        other = ProvenanceReducer()
        other._quantum_id = self._quantum_id
        other._attempt = self._attempt
        other._next_seq = self._next_seq
        other._predicted_inputs = self._predicted_inputs
        other._predicted_outputs = self._predicted_outputs
        other._available = set(self._available)
        other._unavailable = set(self._unavailable)
        other._actual = set(self._actual)
        other._read_ok = set(self._read_ok)
        other._outputs = dict(self._outputs)
        other._status = self._status
        return other

    # -- event dispatch --------------------------------------------------

    def update(self, events: Iterable[Event]) -> ProvenanceReducer:
        """Fold more events, in order.

        Parameters
        ----------
        events : `~collections.abc.Iterable` [`Event`]
            The next events of the log.

        Returns
        -------
        self : `ProvenanceReducer`
            This reducer, for chaining.

        Raises
        ------
        FoldError
            If the events do not continue this log (wrong ``seq`` or quantum,
            or anything before ``quantum_started``).
        """
        for event in events:
            self.apply(event)
        return self

    def apply(self, event: Event) -> None:
        """Fold one event.

        Parameters
        ----------
        event : `Event`
            The next event of the log.

        Raises
        ------
        FoldError
            If the event does not continue this log.
        """
        if event.seq != self._next_seq:
            raise FoldError(f"expected the event with seq {self._next_seq}, got seq {event.seq}")
        if self._quantum_id is None:
            if not isinstance(event, QuantumStarted):
                raise FoldError(f"a log must start with quantum_started, not {event.kind}")
        elif event.quantum_id != self._quantum_id or event.attempt != self._attempt:
            raise FoldError(
                f"event seq {event.seq} belongs to quantum {event.quantum_id} attempt "
                f"{event.attempt}, not {self._quantum_id} attempt {self._attempt}"
            )
        self._next_seq += 1
        if isinstance(event, QuantumStarted):
            if self._quantum_id is not None:
                raise FoldError(f"a second quantum_started at seq {event.seq}")
            info = event.quantum
            self._attempt = event.attempt
            self.start(
                event.quantum_id,
                [ref.id for ref in (*info.inputs, *info.init_inputs)],
                [ref.id for ref in info.outputs],
            )
        elif isinstance(event, ExistenceChecked):
            self.existence(event.dataset_ids, event.results)
        elif isinstance(event, InputRead | DeferredLoaded):
            self.read(event.dataset_id, None if event.failure is None else event.failure.category)
        elif isinstance(event, DeferredRequested):
            self.deferred(event.dataset_id)
        elif isinstance(event, InputMarkedUnused):
            self.unused(event.dataset_id)
        elif isinstance(event, OutputWritten):
            self.written(event.dataset_id, event.record)
        elif isinstance(event, DatasetsPruned):
            self.pruned(event.dataset_ids, event.removed, event.purge and event.error is None)
        elif isinstance(event, QuantumFinished):
            self.finished(event.status)
        # output_rejected changes nothing: the rejected put wrote nothing.
        # uri_requested and artifacts_retrieved change nothing either: learning
        # a path or copying an artifact out is not a read through the butler,
        # so it neither proves use nor observes availability.

    # -- the rules -------------------------------------------------------

    def start(
        self, quantum_id: uuid.UUID, input_ids: Iterable[uuid.UUID], output_ids: Iterable[uuid.UUID]
    ) -> None:
        """Rule for ``quantum_started``: the predicted sets."""
        self._quantum_id = quantum_id
        self._predicted_inputs = frozenset(input_ids)
        self._predicted_outputs = frozenset(output_ids)

    def existence(self, ids: Sequence[uuid.UUID], results: Sequence[bool]) -> None:
        """Rule for ``existence_checked``: found inputs are available, others not."""
        predicted = self._predicted_inputs
        for dataset_id, found in zip(ids, results, strict=True):
            if dataset_id in predicted:
                (self._available if found else self._unavailable).add(dataset_id)

    def read(self, dataset_id: uuid.UUID, failure: str | None) -> None:
        """Rule for ``input_read``/``deferred_loaded``.

        A successful read makes a predicted input available and actual and
        proves it was used; a read that found the artifact missing makes it
        unavailable; a bad request or other error changes nothing.
        """
        if dataset_id not in self._predicted_inputs:
            return
        if failure is None:
            self._available.add(dataset_id)
            self._actual.add(dataset_id)
            self._read_ok.add(dataset_id)
        elif failure == "missing":
            self._unavailable.add(dataset_id)

    def deferred(self, dataset_id: uuid.UUID) -> None:
        """Rule for ``deferred_requested``: the input counts as used at once."""
        if dataset_id in self._predicted_inputs:
            self._actual.add(dataset_id)

    def unused(self, dataset_id: uuid.UUID) -> None:
        """Rule for ``input_marked_unused``: the input is no longer used."""
        self._actual.discard(dataset_id)

    def written(self, dataset_id: uuid.UUID, record: FileRecord) -> None:
        """Rule for ``output_written``: a predicted output and its record."""
        if dataset_id in self._predicted_outputs:
            self._outputs[dataset_id] = record

    def pruned(self, ids: Iterable[uuid.UUID], removed: Iterable[uuid.UUID], purged: bool) -> None:
        """Rule for ``datasets_pruned``.

        Removed artifacts lose their records; purged outputs leave the actual
        outputs, so they may be written again.
        """
        outputs = self._outputs
        for dataset_id in removed:
            if dataset_id in outputs:
                outputs[dataset_id] = None
        if purged:
            for dataset_id in ids:
                outputs.pop(dataset_id, None)

    def finished(self, status: Status) -> None:
        """Rule for ``quantum_finished``: the status."""
        self._status = status

    def output_record(self, dataset_id: uuid.UUID) -> FileRecord | None:
        """Return the record of an output written and still stored, if any.

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            A predicted output.

        Returns
        -------
        record : `FileRecord` or `None`
            Its record, or `None` if it was not written or was unstored.
        """
        return self._outputs.get(dataset_id)

    # -- result ----------------------------------------------------------

    def result(self) -> QuantumProvenanceData:
        """Return the provenance of the events folded so far.

        Returns
        -------
        provenance : `QuantumProvenanceData`
            The provenance, with its warnings.
        """
        warnings: list[ProvenanceWarning] = []
        # Deliberate difference 1: only inputs never read successfully are
        # dropped; a successful read proves use whatever checks said.
        dropped = self._actual & (self._unavailable - self._read_ok)
        if dropped:
            warnings.append(
                ProvenanceWarning(
                    tag="inputs_used_but_missing",
                    dataset_ids=sorted(dropped),
                    message=(
                        f"{len(dropped)} input(s) were marked as used (by a deferred handle) "
                        "but found missing and never read; they are not actual inputs."
                    ),
                )
            )
        unchecked = self._predicted_inputs - self._available - self._unavailable
        if unchecked:
            warnings.append(
                ProvenanceWarning(
                    tag="unchecked_predicted_inputs",
                    dataset_ids=sorted(unchecked),
                    message=(
                        f"{len(unchecked)} predicted input(s) were never checked for existence "
                        "nor read; available inputs may be incomplete."
                    ),
                )
            )
        records: dict[str, list[FileRecord]] = {}
        for dataset_id in sorted(self._outputs):
            record = self._outputs[dataset_id]
            if record is not None:
                records.setdefault(record.datastore_name, []).append(record)
        return QuantumProvenanceData(
            predicted_inputs=self._predicted_inputs,
            available_inputs=frozenset(self._available),
            unavailable_inputs=frozenset(self._unavailable),
            actual_inputs=frozenset(self._actual - dropped),
            predicted_outputs=self._predicted_outputs,
            actual_outputs=frozenset(self._outputs),
            datastore_records=records,
            quantum_id=self._quantum_id,
            status=self._status,
            warnings=warnings,
        )


def fold(events: Iterable[Event]) -> QuantumProvenanceData:
    """Fold a quantum's events into its provenance.

    Parameters
    ----------
    events : `~collections.abc.Iterable` [`Event`]
        The whole log of one quantum attempt, in ``seq`` order (an empty log
        folds to empty provenance).

    Returns
    -------
    provenance : `QuantumProvenanceData`
        What the quantum predicted, found, used and wrote, with warnings.

    Raises
    ------
    FoldError
        If the events do not form one ordered log of one quantum.

    Notes
    -----
    Pure and deterministic: the same events give an equal result, and
    ``fold(a + b)`` equals ``ProvenanceReducer().update(a).update(b).result()``.
    """
    return ProvenanceReducer().update(events).result()
