"""`QuantumBackedButler`: a butler backed only by its quantum, recording every call.

Each public call validates its arguments, does its I/O through the
`FileDatastore`, appends exactly one event to the log, folds that event into
the running provenance, and then returns or raises. The running state is the
fold of the log by construction (`ProvenanceReducer` holds the rules), so
`extract_provenance_data` is a pure read that costs only building its result.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, get_args

import structlog

from .datastore import FileDatastore
from .deferred import DeferredDatasetHandle
from .errors import (
    ArgumentTypeError,
    BadReadRequestError,
    ButlerClosedError,
    InvalidDefinitionError,
    LogClosedError,
    LogConflictError,
    LogSealedError,
    LogWriteError,
    OutputNotPredictedError,
    PathEscapeError,
    PruneArgumentError,
    PruneNotOwnedError,
)
from .events import Caveat, Event, EventKind
from .fold import ProvenanceReducer, Status
from .ids import as_uuid, uuid7
from .logs import EventLog, InMemoryEventLog, JsonLinesEventLog
from .model import DatasetRef
from .payloads import (
    HOST,
    LIBRARY_VERSION,
    error_info,
    peak_rss_bytes,
    predicted_map,
    quantum_info,
    rejection_reason,
)
from .provenance import QuantumProvenanceData
from .quantum import Quantum

__all__ = ["QuantumBackedButler"]

_log = structlog.get_logger("qbb_events")

LogArg = EventLog | str | os.PathLike[str] | None


def _open_log(log: LogArg) -> EventLog:
    if log is None:
        return InMemoryEventLog()
    if isinstance(log, EventLog):
        return log
    if isinstance(log, str | os.PathLike):
        return JsonLinesEventLog(log)
    raise ArgumentTypeError(
        f"log must be an EventLog, a file path or None, not {type(log).__name__}."
    )


def _check_ref(ref: object) -> DatasetRef:
    if not isinstance(ref, DatasetRef):
        raise ArgumentTypeError(f"Expected a DatasetRef, got {type(ref).__name__}.")
    return ref


class QuantumBackedButler:
    """A butler for one quantum that records what the task reads and writes.

    Make one with `initialize` (from a `Quantum`) or `from_predicted` (from
    predicted datasets), hand it to the task, then `close` it (or use it as a
    context manager) and read `extract_provenance_data`.

    Notes
    -----
    Every call appends exactly one event before it returns or raises, except
    a call whose argument is not a `DatasetRef` (a `TypeError`, before
    anything happens) and any call after the quantum finished
    (`ButlerClosedError`). Only the quantum's own predicted datasets change
    the provenance; reads and checks of other datasets are logged for audit.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | FileDatastore,
        quantum_info: dict[str, Any],
        predicted_inputs: Mapping[uuid.UUID, DatasetRef | None],
        predicted_outputs: Mapping[uuid.UUID, DatasetRef | None],
        log: LogArg,
        attempt: int,
    ) -> None:
        # Everything is checked before the log is opened, so a refused call
        # leaves no file behind.
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise InvalidDefinitionError(f"attempt must be an int >= 0, got {attempt!r}.")
        self._datastore = root if isinstance(root, FileDatastore) else FileDatastore(root)
        self._inputs = predicted_inputs
        self._outputs = predicted_outputs
        self._quantum_id: uuid.UUID = quantum_info["id"]
        self._reducer = ProvenanceReducer()
        self._finished = False
        # Appending an event and folding it happen together, so concurrent
        # calls fold in the order they were logged.
        self._lock = threading.Lock()
        self._wall0 = time.perf_counter_ns()
        self._cpu0 = time.process_time_ns()
        self._log = _open_log(log)
        try:
            self._log.bind(self._quantum_id, attempt)
            self._log.append(
                "quantum_started",
                {
                    "quantum": quantum_info,
                    "host": HOST,
                    "pid": os.getpid(),
                    "library_version": LIBRARY_VERSION,
                },
            )
        except BaseException:
            if self._log is not log:  # opened here, so closed here
                self._log.close()
            raise
        self._reducer.start(self._quantum_id, predicted_inputs, predicted_outputs)

    # -- construction ----------------------------------------------------

    @classmethod
    def initialize(
        cls,
        root: str | os.PathLike[str] | FileDatastore,
        quantum: Quantum,
        *,
        log: LogArg = None,
        attempt: int = 0,
    ) -> QuantumBackedButler:
        """Make a butler for a quantum.

        Parameters
        ----------
        root : `str`, `os.PathLike` or `FileDatastore`
            Datastore root directory, or the datastore itself.
        quantum : `Quantum`
            The quantum to execute.
        log : `EventLog`, `str`, `os.PathLike` or `None`, optional
            Where to record events: a log object, a JSON Lines file path, or
            `None` for an in-memory log.
        attempt : `int`, optional
            Attempt number of this execution, from 0.

        Returns
        -------
        butler : `QuantumBackedButler`
            A butler whose log holds ``quantum_started``.

        Raises
        ------
        ArgumentTypeError
            If ``quantum`` is not a `Quantum` or ``log`` has a wrong type (a `TypeError`).
        LogInUseError
            If ``log`` is a log object that already holds events.
        LogExistsError
            If ``log`` is a path that already holds events.
        """
        if not isinstance(quantum, Quantum):
            raise ArgumentTypeError(f"Expected a Quantum, got {type(quantum).__name__}.")
        info = quantum_info(
            quantum.id,
            quantum.task_label,
            quantum.data_id,
            {ref.id: ref for ref in quantum.inputs},
            {ref.id: ref for ref in quantum.init_inputs},
            quantum.predicted_outputs,
            quantum.datastore_records,
        )
        return cls(root, info, quantum.predicted_inputs, quantum.predicted_outputs, log, attempt)

    @classmethod
    def from_predicted(
        cls,
        root: str | os.PathLike[str] | FileDatastore,
        predicted_inputs: Iterable[DatasetRef | uuid.UUID | str],
        predicted_outputs: Iterable[DatasetRef | uuid.UUID | str],
        *,
        log: LogArg = None,
        attempt: int = 0,
        quantum_id: uuid.UUID | None = None,
    ) -> QuantumBackedButler:
        """Make a butler from predicted datasets alone.

        Parameters
        ----------
        root : `str`, `os.PathLike` or `FileDatastore`
            Datastore root directory, or the datastore itself.
        predicted_inputs : `~collections.abc.Iterable`
            Predicted inputs, as refs or bare dataset ids.
        predicted_outputs : `~collections.abc.Iterable`
            Predicted outputs, as refs or bare dataset ids.
        log : `EventLog`, `str`, `os.PathLike` or `None`, optional
            Where to record events.
        attempt : `int`, optional
            Attempt number, from 0.
        quantum_id : `uuid.UUID`, optional
            Id to record for the quantum; a new UUIDv7 by default.

        Returns
        -------
        butler : `QuantumBackedButler`
            A butler whose log holds ``quantum_started``; the task label is
            unknown and bare ids are recorded without type, run or data ID.

        Raises
        ------
        InvalidDefinitionError
            If an id is not a UUID, or a dataset is both input and output.
        """
        inputs = predicted_map(predicted_inputs, "predicted input")
        outputs = predicted_map(predicted_outputs, "predicted output")
        both = inputs.keys() & outputs.keys()
        if both:
            raise InvalidDefinitionError(
                f"Datasets {sorted(map(str, both))} are both predicted inputs and outputs."
            )
        qid = uuid7() if quantum_id is None else as_uuid(quantum_id, "Quantum id")
        info = quantum_info(qid, None, {}, inputs, {}, outputs, {})
        return cls(root, info, inputs, outputs, log, attempt)

    # -- properties ------------------------------------------------------

    @property
    def quantum_id(self) -> uuid.UUID:
        """Id of the quantum (`uuid.UUID`)."""
        return self._quantum_id

    @property
    def datastore(self) -> FileDatastore:
        """The datastore it reads and writes (`FileDatastore`)."""
        return self._datastore

    @property
    def log(self) -> EventLog:
        """The event log (`EventLog`)."""
        return self._log

    @property
    def events(self) -> tuple[Event, ...]:
        """The events appended so far (`tuple` [`Event`, ...])."""
        return self._log.events

    @property
    def finished(self) -> bool:
        """Whether ``quantum_finished`` was recorded (`bool`)."""
        return self._finished

    def _check_open(self) -> None:
        if self._finished:
            raise ButlerClosedError(
                f"Quantum {self._quantum_id} has finished; its butler no longer reads or writes."
            )

    def _record(
        self,
        kind: EventKind,
        payload: dict[str, Any],
        rule: Callable[..., None] | None = None,
        *args: Any,
    ) -> None:
        # One event, then its rule, under one lock: the running state is the
        # fold of the log even when a task calls the butler from threads.
        with self._lock:
            self._log.append(kind, payload)
            if rule is not None:
                rule(*args)

    def _resolve(self, ref: DatasetRef) -> DatasetRef:
        # The id names the dataset: an existence check of a predicted id looks
        # where the quantum's own ref says, whatever definition the caller holds,
        # so the answer recorded for that id is true of that id.
        return self._inputs.get(ref.id) or self._outputs.get(ref.id) or ref

    def _mismatch(self, ref: DatasetRef, predicted: DatasetRef | None) -> str | None:
        # A ref with a predicted id but another definition is a wrong request.
        if predicted is None or predicted is ref or predicted == ref:
            return None
        if predicted.dataset_type.storage_class != ref.dataset_type.storage_class:
            return (
                f"Dataset {ref.id} has storage class {predicted.dataset_type.storage_class!r} in "
                f"the quantum, not {ref.dataset_type.storage_class!r}."
            )
        return f"Ref {ref!r} does not match the quantum's {predicted!r}."

    # -- reading ---------------------------------------------------------

    def get(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: str | None = None,
    ) -> Any:
        """Read a dataset, recording ``input_read``.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters (``columns`` for ``arrow``).
        storageClass : `str`, optional
            Storage class expected; it must be the dataset type's.

        Returns
        -------
        obj : `object`
            The dataset.

        Raises
        ------
        BadReadRequestError
            Unknown parameter, wrong storage class, a ref that contradicts the
            quantum, or a path outside the root (a `ValueError`; the input is
            not marked unavailable).
        ArtifactNotFoundError, UnreadableArtifactError, OSError
            The artifact is missing or unreadable; a predicted input becomes
            unavailable.
        ButlerClosedError
            If the quantum has finished.
        """
        return self._read(_check_ref(ref), parameters, storageClass, "input_read")

    def _read(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None,
        storage_class: str | None,
        kind: Literal["input_read", "deferred_loaded"],
    ) -> Any:
        self._check_open()
        dataset_id = ref.id
        start = time.perf_counter_ns()
        try:
            predicted = self._resolve(ref)
            if predicted is not ref:  # the common case skips the comparison
                mismatch = self._mismatch(ref, predicted)
                if mismatch is not None:
                    raise BadReadRequestError(mismatch)
            obj, nbytes = self._datastore.read(
                ref, parameters=parameters, storage_class=storage_class
            )
        except Exception as err:
            if isinstance(err, BadReadRequestError | PathEscapeError | InvalidDefinitionError):
                category = "bad_request"
            elif isinstance(err, OSError | LookupError):
                category = "missing"
            else:
                category = "error"
            payload = {
                "dataset_id": dataset_id,
                "ok": False,
                "failure": {**error_info(err), "category": category},
                "bytes_read": 0,
                "duration_ns": time.perf_counter_ns() - start,
            }
            self._record(kind, payload, self._reducer.read, dataset_id, category)
            raise
        payload = {
            "dataset_id": dataset_id,
            "ok": True,
            "failure": None,
            "bytes_read": nbytes,
            "duration_ns": time.perf_counter_ns() - start,
        }
        self._record(kind, payload, self._reducer.read, dataset_id, None)
        return obj

    def getDeferred(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: str | None = None,
    ) -> DeferredDatasetHandle:
        """Return a handle that reads the dataset later; record ``deferred_requested``.

        No I/O is done. A predicted input counts as used at once, since the
        handle may be read by code the butler never sees.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters for the later load.
        storageClass : `str`, optional
            Storage class expected by the later load.

        Returns
        -------
        handle : `DeferredDatasetHandle`
            Its ``get()`` reads the dataset and records ``deferred_loaded``.

        Raises
        ------
        ButlerClosedError
            If the quantum has finished.
        """
        ref = _check_ref(ref)
        self._check_open()
        self._record("deferred_requested", {"dataset_id": ref.id}, self._reducer.deferred, ref.id)
        return DeferredDatasetHandle(self, ref, parameters, storageClass)

    # -- existence -------------------------------------------------------

    def stored(self, ref: DatasetRef) -> bool:
        """Return whether a dataset's artifact is stored; record ``existence_checked``.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        stored : `bool`
            Whether the artifact exists. A predicted input becomes available
            or unavailable accordingly. For a predicted id the quantum's own
            ref is checked, so the answer is true of the dataset that id names.

        Raises
        ------
        ButlerClosedError
            If the quantum has finished.
        """
        ref = _check_ref(ref)
        self._check_open()
        found = self._datastore.exists(self._resolve(ref))
        ids, results = [ref.id], [found]
        payload = {"dataset_ids": ids, "results": results}
        self._record("existence_checked", payload, self._reducer.existence, ids, results)
        return found

    def exists(self, ref: DatasetRef) -> bool:
        """Return whether a dataset's artifact is stored: the same as `stored`.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        stored : `bool`
            Whether the artifact exists.
        """
        return self.stored(ref)

    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Check many datasets at once, recording one ``existence_checked`` event.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            The datasets.

        Returns
        -------
        stored : `dict` [`DatasetRef`, `bool`]
            Whether each artifact exists.

        Raises
        ------
        ButlerClosedError
            If the quantum has finished.
        """
        refs = [_check_ref(ref) for ref in refs]
        self._check_open()
        exists, resolve = self._datastore.exists, self._resolve
        results = {ref: exists(resolve(ref)) for ref in refs}
        ids = [ref.id for ref in results]
        found = list(results.values())
        payload = {"dataset_ids": ids, "results": found}
        self._record("existence_checked", payload, self._reducer.existence, ids, found)
        return results

    def markInputUnused(self, ref: DatasetRef | uuid.UUID) -> None:
        """Record that the task did not use an input after all.

        A later successful read marks it used again. Never raises: on a
        finished butler, when the log cannot be written, or for an argument
        that names no dataset, the call is ignored with a logged warning (the
        input then stays used: provenance errs towards over-reporting use).

        Parameters
        ----------
        ref : `DatasetRef` or `uuid.UUID`
            The input, or its id.
        """
        if isinstance(ref, DatasetRef):
            dataset_id = ref.id
        elif isinstance(ref, uuid.UUID):
            dataset_id = ref
        else:
            _log.warning(
                "mark_input_unused_not_recorded",
                quantum_id=str(self._quantum_id),
                reason=f"expected a DatasetRef, got {type(ref).__name__}",
            )
            return
        try:
            self._record(
                "input_marked_unused", {"dataset_id": dataset_id}, self._reducer.unused, dataset_id
            )
        except (LogSealedError, LogClosedError, LogWriteError, LogConflictError) as err:
            _log.warning(
                "mark_input_unused_not_recorded",
                quantum_id=str(self._quantum_id),
                dataset_id=str(dataset_id),
                reason=str(err),
            )

    # -- writing ---------------------------------------------------------

    def put(self, obj: Any, ref: DatasetRef, /) -> DatasetRef:
        """Write a predicted output, recording ``output_written`` or ``output_rejected``.

        Parameters
        ----------
        obj : `object`
            The object; it must fit the dataset type's storage class.
        ref : `DatasetRef`
            The output.

        Returns
        -------
        ref : `DatasetRef`
            The ref written.

        Raises
        ------
        OutputNotPredictedError
            If ``ref`` is not a predicted output (a `RuntimeError`).
        OutputAlreadyStoredError
            If its artifact is still stored (a `RuntimeError`); the artifact
            and its record are left intact.
        StorageClassError
            If the object does not fit the storage class (a `TypeError`).
        PathEscapeError
            If the ref's path would leave the datastore root.
        DatastoreWriteError
            If the disk refuses the write (an `OSError`).
        ButlerClosedError
            If the quantum has finished.
        """
        ref = _check_ref(ref)
        self._check_open()
        start = time.perf_counter_ns()
        try:
            if ref.id not in self._outputs:
                raise OutputNotPredictedError(
                    f"Cannot put {ref!r}: it is not a predicted output of quantum "
                    f"{self._quantum_id}."
                )
            predicted = self._outputs[ref.id]
            if predicted is not ref:  # the common case skips the comparison
                mismatch = self._mismatch(ref, predicted)
                if mismatch is not None:
                    raise OutputNotPredictedError(f"Cannot put: {mismatch}")
            record = self._datastore.put(obj, ref)
        except Exception as err:
            payload = {
                "dataset_id": ref.id,
                "reason": rejection_reason(err),
                "error": error_info(err),
            }
            self._record("output_rejected", payload)
            raise
        payload = {
            "dataset_id": ref.id,
            "record": record,
            "duration_ns": time.perf_counter_ns() - start,
        }
        try:
            self._record("output_written", payload, self._reducer.written, ref.id, record)
        except BaseException:
            # An artifact the log does not record would be an orphan nobody
            # transfers: the write is undone, and the put fails as a whole.
            with contextlib.suppress(OSError):
                self._datastore.remove(ref)
            raise
        return ref

    def pruneDatasets(
        self,
        refs: Iterable[DatasetRef],
        *,
        disassociate: bool = True,
        unstore: bool = False,
        tags: Iterable[str] = (),
        purge: bool = False,
    ) -> None:
        """Remove outputs of this quantum; record ``datasets_pruned``.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            Predicted outputs of this quantum.
        disassociate : `bool`, optional
            Must be `True` exactly when ``purge`` is.
        unstore : `bool`, optional
            Delete the artifacts; the outputs stay actual (without records)
            and may be written again.
        tags : `~collections.abc.Iterable` [`str`], optional
            Must be empty: this butler has no tagged collections.
        purge : `bool`, optional
            Also drop the refs from the actual outputs; needs ``disassociate``
            and ``unstore``.

        Raises
        ------
        PruneArgumentError
            If the flags break the reference's rules (a `TypeError`): purge
            without disassociate or unstore, disassociate without purge, or tags.
        PruneNotOwnedError
            If a ref is not a predicted output of this quantum; nothing is deleted.
        ButlerClosedError
            If the quantum has finished.
        """
        refs = [_check_ref(ref) for ref in refs]
        for name, flag in (("disassociate", disassociate), ("unstore", unstore), ("purge", purge)):
            if not isinstance(flag, bool):
                raise ArgumentTypeError(f"{name} must be a bool, got {flag!r}.")
        tags = [tags] if isinstance(tags, str) else list(tags)
        self._check_open()
        removed: list[uuid.UUID] = []
        error: Exception | None = None
        try:
            if purge:
                if not disassociate:
                    raise PruneArgumentError("Cannot pass purge=True without disassociate=True.")
                if not unstore:
                    raise PruneArgumentError("Cannot pass purge=True without unstore=True.")
            elif disassociate:
                raise PruneArgumentError("Cannot pass disassociate=True without purge=True.")
            if tags:
                raise PruneArgumentError(f"This butler has no tagged collections; got {tags}.")
            not_owned = [
                ref
                for ref in refs
                if ref.id not in self._outputs or self._mismatch(ref, self._outputs[ref.id])
            ]
            if not_owned:
                raise PruneNotOwnedError(
                    f"Refusing to prune {len(not_owned)} dataset(s) that are not predicted "
                    f"outputs of quantum {self._quantum_id}, e.g. {not_owned[0]!r}; "
                    "nothing was deleted."
                )
            if unstore:
                for ref in refs:
                    if self._datastore.remove(ref):
                        removed.append(ref.id)
        except Exception as err:
            error = err
        ids = [ref.id for ref in refs]
        payload = {
            "dataset_ids": ids,
            "disassociate": disassociate,
            "unstore": unstore,
            "purge": purge,
            "removed": removed,
            "error": None if error is None else error_info(error),
        }
        self._record(
            "datasets_pruned", payload, self._reducer.pruned, ids, removed, purge and error is None
        )
        if error is not None:
            raise error

    # -- finishing -------------------------------------------------------

    def finish(
        self,
        status: Status = "succeeded",
        exception: BaseException | None = None,
        *,
        caveats: Iterable[str] = (),
        traceback: str | None = None,
        record_process: bool = False,
    ) -> None:
        """Record ``quantum_finished`` and seal the log.

        Parameters
        ----------
        status : `str`, optional
            ``succeeded``, ``failed``, ``no_work`` or ``blocked`` (a required
            input was missing, so the task never ran).
        exception : `BaseException`, optional
            The exception that ended the quantum, if any.
        caveats : `~collections.abc.Iterable` [`str`], optional
            Success caveats (``no_work``, ``any_outputs_missing``,
            ``all_outputs_missing``, ``partial_outputs_error``).
        traceback : `str`, optional
            The formatted traceback of ``exception``.
        record_process : `bool`, optional
            Also record the host and process id (the executor harness does).

        Raises
        ------
        ButlerClosedError
            If the quantum has already finished.
        InvalidDefinitionError
            If ``status`` or a caveat is not one of those above.
        """
        if status not in ("succeeded", "failed", "no_work", "blocked"):
            raise InvalidDefinitionError(
                f"status must be 'succeeded', 'failed', 'no_work' or 'blocked', not {status!r}."
            )
        caveats = list(caveats)
        unknown = set(caveats) - set(get_args(Caveat))
        if unknown:
            raise InvalidDefinitionError(f"unknown caveats {sorted(unknown)}.")
        self._check_open()
        payload: dict[str, Any] = {
            "status": status,
            "exception": None if exception is None else error_info(exception),
            "wall_ns": time.perf_counter_ns() - self._wall0,
            "cpu_ns": time.process_time_ns() - self._cpu0,
            "peak_rss_bytes": peak_rss_bytes(),
        }
        # Only what was given is stored, so a plain butler's seal is unchanged.
        if caveats:
            payload["caveats"] = caveats
        if traceback is not None:
            payload["traceback"] = traceback
        if record_process:
            payload["host"] = HOST
            payload["pid"] = os.getpid()
        self._record("quantum_finished", payload, self._reducer.finished, status)
        self._finished = True

    def close(self) -> None:
        """Finish the quantum as succeeded unless already finished, and close the log.

        Idempotent; the events and provenance stay readable.
        """
        try:
            if not self._finished:
                self.finish("succeeded")
        finally:
            self._log.close()

    def __enter__(self) -> QuantumBackedButler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None and not self._finished:
                self.finish("failed", exc)
        finally:
            self.close()

    # -- provenance ------------------------------------------------------

    def extract_provenance_data(self) -> QuantumProvenanceData:
        """Return the provenance of the calls so far: ``fold(self.events)``.

        A pure read: extracting twice gives equal results and logs the same
        warnings (``inputs_used_but_missing``, ``unchecked_predicted_inputs``).

        Returns
        -------
        provenance : `QuantumProvenanceData`
            Predicted, available, actual inputs and outputs, records, warnings.
        """
        provenance = self._reducer.result()
        for warning in provenance.warnings:
            _log.warning(
                warning.tag,
                quantum_id=str(self._quantum_id),
                dataset_ids=[str(i) for i in warning.dataset_ids],
                message=warning.message,
            )
        return provenance

    def __repr__(self) -> str:
        return f"QuantumBackedButler(quantum={self._quantum_id}, datastore={self._datastore!r})"
