"""Folding a stored log's decoded records, without building an event model per record.

A transfer folds millions of events. Validating each into its pydantic
model cost about 70% of a transfer's time, so records of the current schema
version from a log that verified are folded from their decoded JSON: the
dispatch below unpacks each kind into the very rule methods of
`ProvenanceReducer` (the fold's rules exist once), and tracks the ``seq``
columns of the provenance rows alongside. Older versions, and logs forced
through unverified, go through `parse_event` (validation, upcasting) and its
JSON dump first, so every record reaches the same dispatch in the current
layout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import FoldError
from ..events import SCHEMA_VERSION, event_body, parse_event
from ..fold import ProvenanceReducer
from ..records import FileRecord

__all__ = ["LogFold"]


class LogFold:
    """The fold of one log's records, plus what the registry rows need.

    Attributes
    ----------
    reducer : `ProvenanceReducer`
        The provenance sets.
    started, finished : `dict` or `None`
        The decoded ``quantum_started`` / ``quantum_finished`` records.
    written : `dict` [`uuid.UUID`, `int`]
        The ``seq`` of each output's last write.
    """

    __slots__ = (
        "_expected",
        "_first_missing",
        "_first_ok",
        "_first_use",
        "_ids",
        "_inputs",
        "finished",
        "reducer",
        "started",
        "written",
    )

    def __init__(self) -> None:
        self.reducer = ProvenanceReducer()
        self.started: dict[str, Any] | None = None
        self.finished: dict[str, Any] | None = None
        self.written: dict[uuid.UUID, int] = {}
        self._expected = 0
        self._inputs: frozenset[uuid.UUID] = frozenset()
        self._first_use: dict[uuid.UUID, int] = {}
        self._first_missing: dict[uuid.UUID, int] = {}
        self._first_ok: dict[uuid.UUID, int] = {}
        # The same ids recur in a log (quantum_started, then each event):
        # parsing a UUID string costs more than a lookup.
        self._ids: dict[Any, uuid.UUID] = {}

    def _id(self, value: Any) -> uuid.UUID:
        found = self._ids.get(value)
        if found is None:
            found = value if isinstance(value, uuid.UUID) else uuid.UUID(value)
            self._ids[value] = found
        return found

    def _id_list(self, values: Iterable[Any]) -> list[uuid.UUID]:
        return [self._id(value) for value in values]

    def add(self, raw: Mapping[str, Any], *, validate: bool) -> None:
        """Fold one decoded record.

        Parameters
        ----------
        raw : `~collections.abc.Mapping`
            The record's JSON object.
        validate : `bool`
            Validate it with `parse_event` first (always done for another
            schema version).

        Raises
        ------
        FoldError
            If it does not continue the log.
        LogCorruptedError, KeyError, TypeError, ValueError
            If it is not a valid event.
        """
        if validate or raw.get("schema_version") != SCHEMA_VERSION:
            raw = event_body(parse_event(raw))
        seq = raw["seq"]
        if seq != self._expected:
            raise FoldError(f"expected the event with seq {self._expected}, got seq {seq}")
        self._expected += 1
        kind = raw["kind"]
        if self.started is None:
            if kind != "quantum_started":
                raise FoldError(f"a log must start with quantum_started, not {kind}")
        elif (raw["quantum_id"], raw["attempt"]) != (
            self.started["quantum_id"],
            self.started["attempt"],
        ):
            raise FoldError(f"event seq {seq} belongs to another quantum attempt")
        self._dispatch(kind, raw, seq)

    def _dispatch(self, kind: str, raw: Mapping[str, Any], seq: int) -> None:
        reducer = self.reducer
        if kind == "quantum_started":
            if self.started is not None:
                raise FoldError(f"a second quantum_started at seq {seq}")
            self.started = dict(raw)
            info = raw["quantum"]
            inputs = self._id_list(ref["id"] for ref in (*info["inputs"], *info["init_inputs"]))
            self._inputs = frozenset(inputs)
            reducer.start(
                self._id(info["id"]), inputs, self._id_list(ref["id"] for ref in info["outputs"])
            )
        elif kind == "existence_checked":
            ids, results = self._id_list(raw["dataset_ids"]), raw["results"]
            reducer.existence(ids, results)
            for dataset_id, found in zip(ids, results, strict=True):
                if not found and dataset_id in self._inputs:
                    self._first_missing.setdefault(dataset_id, seq)
        elif kind in ("input_read", "deferred_loaded"):
            dataset_id = self._id(raw["dataset_id"])
            failure = raw["failure"]
            category = None if failure is None else failure["category"]
            reducer.read(dataset_id, category)
            if dataset_id in self._inputs:
                if category is None:
                    self._first_ok.setdefault(dataset_id, seq)
                    self._first_use.setdefault(dataset_id, seq)
                elif category == "missing":
                    self._first_missing.setdefault(dataset_id, seq)
        elif kind == "deferred_requested":
            dataset_id = self._id(raw["dataset_id"])
            reducer.deferred(dataset_id)
            if dataset_id in self._inputs:
                self._first_use.setdefault(dataset_id, seq)
        elif kind == "input_marked_unused":
            dataset_id = self._id(raw["dataset_id"])
            reducer.unused(dataset_id)
            self._first_use.pop(dataset_id, None)
        elif kind == "output_written":
            dataset_id = self._id(raw["dataset_id"])
            reducer.written(dataset_id, FileRecord.model_validate(raw["record"]))
            self.written[dataset_id] = seq
        elif kind == "datasets_pruned":
            purged = raw["purge"] and raw["error"] is None
            reducer.pruned(self._id_list(raw["dataset_ids"]), self._id_list(raw["removed"]), purged)
        elif kind == "quantum_finished":
            reducer.finished(raw["status"])
            self.finished = dict(raw)
        # Other kinds (output_rejected, and kinds that change no set) are
        # kept in the log for audit and fold to nothing.

    def actual_input_seq(self, dataset_id: uuid.UUID) -> int | None:
        """Return the ``seq`` from which an actual input is used for good.

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            An actual input.

        Returns
        -------
        seq : `int` or `None`
            The first use after its last ``input_marked_unused``; but if it
            was found missing before its first successful read and that read
            came after this use, the read (before it, folding a prefix drops
            it as used-but-missing). See `PROVENANCE_SCHEMA`.
        """
        use = self._first_use.get(dataset_id)
        ok = self._first_ok.get(dataset_id)
        missing = self._first_missing.get(dataset_id)
        if use is not None and ok is not None and missing is not None and missing < ok > use:
            return ok
        return use
