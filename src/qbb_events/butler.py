"""`QuantumBackedButler`: a butler backed only by its quantum, recording every call.

Each public call validates its arguments, does its I/O through the
`FileDatastore`, appends exactly one event to the log, folds that event into
the running provenance, and then returns or raises. The running state is the
fold of the log by construction (`ProvenanceReducer` holds the rules), so
`extract_provenance_data` is a pure read that costs only building its result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

import structlog

from ._metrics import ButlerMetrics
from .datastore import INDEX_NAME, ArtifactURI, DatasetRefURIs, FileDatastore
from .datastore._retrieval import (
    resolve_mode,
    retrieve_artifacts,
    retrieve_artifacts_zip,
)
from .deferred import DeferredDatasetHandle
from .errors import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    BadReadRequestError,
    ButlerClosedError,
    DatasetNotPredictedError,
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
from .records import FileRecord, record_from_data

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


def _check_flags(**flags: object) -> None:
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ArgumentTypeError(f"{name} must be a bool, got {flag!r}.")


def _check_metrics(metrics: object) -> ButlerMetrics:
    if metrics is None:
        return ButlerMetrics()
    if not isinstance(metrics, ButlerMetrics):
        raise ArgumentTypeError(
            f"metrics must be a ButlerMetrics or None, not {type(metrics).__name__}."
        )
    return metrics


def _check_destination(destination: object) -> Path:
    if not isinstance(destination, str | os.PathLike):
        raise ArgumentTypeError(f"destination must be a path, not {type(destination).__name__}.")
    return Path(destination).absolute()


_READS = ("input_read", "deferred_loaded")


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
        metrics: ButlerMetrics | None = None,
    ) -> None:
        # Everything is checked before the log is opened, so a refused call
        # leaves no file behind.
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise InvalidDefinitionError(f"attempt must be an int >= 0, got {attempt!r}.")
        self._metrics = _check_metrics(metrics)
        # A root that does not exist is refused here (DatastoreRootNotFoundError):
        # a mistyped path must not make every input look unavailable.
        self._datastore = root if isinstance(root, FileDatastore) else FileDatastore(root)
        self._inputs = predicted_inputs
        self._outputs = predicted_outputs
        # Records of inputs, by id: what retrieved bytes are checked against.
        self._input_records: dict[uuid.UUID, FileRecord] = {
            record.dataset_id: record
            for group in quantum_info["input_records"].values()
            for record in group
        }
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
        metrics: ButlerMetrics | None = None,
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
        metrics : `ButlerMetrics`, optional
            Where to count reads and writes; a new one by default (see `metrics`).

        Returns
        -------
        butler : `QuantumBackedButler`
            A butler whose log holds ``quantum_started``.

        Raises
        ------
        DatastoreRootNotFoundError
            If ``root`` is a path that does not exist (a `FileNotFoundError`);
            make a new datastore with ``FileDatastore(root, create=True)``.
        ArgumentTypeError
            If ``quantum`` is not a `Quantum`, or ``log`` or ``metrics`` has a
            wrong type (a `TypeError`).
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
        return cls(
            root, info, quantum.predicted_inputs, quantum.predicted_outputs, log, attempt, metrics
        )

    @classmethod
    def from_predicted(
        cls,
        root: str | os.PathLike[str] | FileDatastore,
        predicted_inputs: Iterable[DatasetRef | uuid.UUID | str],
        predicted_outputs: Iterable[DatasetRef | uuid.UUID | str],
        *,
        datastore_records: Mapping[str, Iterable[FileRecord | Mapping[str, Any]]] | None = None,
        log: LogArg = None,
        attempt: int = 0,
        quantum_id: uuid.UUID | None = None,
        metrics: ButlerMetrics | None = None,
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
        datastore_records : `~collections.abc.Mapping` [`str`, iterable of `FileRecord`], optional
            Datastore records of the inputs keyed by datastore name, as
            `Quantum` takes them (e.g. from `FileDatastore.export_records`);
            recorded in ``quantum_started`` and used to check retrieved artifacts.
        log : `EventLog`, `str`, `os.PathLike` or `None`, optional
            Where to record events.
        attempt : `int`, optional
            Attempt number, from 0.
        quantum_id : `uuid.UUID`, optional
            Id to record for the quantum; a new UUIDv7 by default.
        metrics : `ButlerMetrics`, optional
            Where to count reads and writes; a new one by default.

        Returns
        -------
        butler : `QuantumBackedButler`
            A butler whose log holds ``quantum_started``; the task label is
            unknown and bare ids are recorded without type, run or data ID.

        Raises
        ------
        InvalidDefinitionError
            If an id is not a UUID, or a dataset is both input and output.
        RecordTypeError
            If a record names an unregistered record kind.
        DatastoreRootNotFoundError
            If ``root`` is a path that does not exist (a `FileNotFoundError`).
        """
        inputs = predicted_map(predicted_inputs, "predicted input")
        outputs = predicted_map(predicted_outputs, "predicted output")
        both = inputs.keys() & outputs.keys()
        if both:
            raise InvalidDefinitionError(
                f"Datasets {sorted(map(str, both))} are both predicted inputs and outputs."
            )
        qid = uuid7() if quantum_id is None else as_uuid(quantum_id, "Quantum id")
        records = {
            name: [record_from_data(record) for record in group]
            for name, group in (datastore_records or {}).items()
        }
        info = quantum_info(qid, None, {}, inputs, {}, outputs, records)
        return cls(root, info, inputs, outputs, log, attempt, metrics)

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
    def metrics(self) -> ButlerMetrics:
        """Counts and times of reads and writes now being recorded (`ButlerMetrics`).

        The object given to ``initialize``/``from_predicted``, or the one
        `record_metrics` swapped in while its block runs.
        """
        return self._metrics

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
            # Metrics are counted where events are appended, so they agree
            # with the log by construction.
            if kind == "output_written":
                self._metrics.increment_put(payload["duration_ns"] / 1e9)
            elif kind in _READS and payload["ok"]:
                self._metrics.increment_get(payload["duration_ns"] / 1e9)

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
        return DeferredDatasetHandle(self._load_deferred, ref, parameters, storageClass)

    def _load_deferred(
        self, ref: DatasetRef, parameters: Mapping[str, Any] | None, storage_class: str | None
    ) -> Any:
        return self._read(ref, parameters, storage_class, "deferred_loaded")

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
        _check_flags(disassociate=disassociate, unstore=unstore, purge=purge)
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

    # -- datastore surface -----------------------------------------------

    def isWriteable(self) -> bool:
        """Return whether ``put`` may be called: always `True`, as in the reference.

        Returns
        -------
        writeable : `bool`
            `True`.
        """
        return True

    def get_datastore_names(self) -> tuple[str, ...]:
        """Return the names of the datastores this butler reads and writes.

        Returns
        -------
        names : `tuple` [`str`, ...]
            The one datastore's name (``FileDatastore`` unless given another).
        """
        return (self._datastore.name,)

    def get_datastore_roots(self) -> dict[str, Path]:
        """Return the root directory of each datastore, by name.

        Returns
        -------
        roots : `dict` [`str`, `pathlib.Path`]
            ``{name: root}`` (the reference gives a ``ResourcePath``; a local
            `pathlib.Path` is what it would point at).
        """
        return {self._datastore.name: self._datastore.root}

    def getURI(self, ref: DatasetRef, /, *, predict: bool = False) -> ArtifactURI:
        """Return the URI of a dataset's artifact, recording ``uri_requested``.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        predict : `bool`, optional
            Return a predicted URI (``#predicted``) instead of raising when the
            artifact does not exist.

        Returns
        -------
        uri : `ArtifactURI`
            A ``file://`` URI that is also a local path (`os.PathLike`).

        Raises
        ------
        ArtifactNotFoundError
            If the artifact does not exist and ``predict`` is false (a
            `FileNotFoundError`).
        PathEscapeError
            If the ref's path would leave the datastore root.
        ButlerClosedError
            If the quantum has finished.

        Notes
        -----
        A URI lookup is not a read: it changes no provenance set. It is logged
        because a task that knows a path can read the file behind the butler.
        """
        return self._uris([ref], predict, False)[ref].primaryURI

    def getURIs(self, ref: DatasetRef, /, *, predict: bool = False) -> DatasetRefURIs:
        """Return the primary and component URIs of a dataset; record ``uri_requested``.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        predict : `bool`, optional
            As for `getURI`.

        Returns
        -------
        uris : `DatasetRefURIs`
            ``(primaryURI, componentURIs)``; the components are always empty,
            since datasets are never disassembled here.

        Raises
        ------
        ArtifactNotFoundError, PathEscapeError, ButlerClosedError
            As for `getURI`.
        """
        return self._uris([ref], predict, False)[ref]

    def get_many_uris(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return the URIs of many datasets, recording one ``uri_requested`` event.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            The datasets.
        predict : `bool`, optional
            Give predicted URIs for artifacts that do not exist.
        allow_missing : `bool`, optional
            Leave out datasets whose artifact does not exist instead of
            raising (``predict`` takes precedence).

        Returns
        -------
        uris : `dict` [`DatasetRef`, `DatasetRefURIs`]
            The URIs of each dataset given (less those left out).

        Raises
        ------
        ArtifactNotFoundError
            If an artifact does not exist and neither flag is set; the event
            names every missing dataset.
        PathEscapeError, ButlerClosedError
            As for `getURI`.
        """
        return self._uris(refs, predict, allow_missing)

    def _uris(
        self, refs: Iterable[DatasetRef], predict: bool, allow_missing: bool
    ) -> dict[DatasetRef, DatasetRefURIs]:
        refs = [_check_ref(ref) for ref in refs]
        _check_flags(predict=predict, allow_missing=allow_missing)
        self._check_open()
        datastore = self._datastore
        result: dict[DatasetRef, DatasetRefURIs] = {}
        missing: list[DatasetRef] = []
        error: Exception | None = None
        try:
            for ref in refs:
                target = self._resolve(ref)
                found = datastore.exists(target)
                if not found:
                    missing.append(ref)
                if found or predict:
                    result[ref] = DatasetRefURIs(datastore.uri(target, predicted=not found), {})
            if missing and not (predict or allow_missing):
                first = missing[0]
                raise ArtifactNotFoundError(
                    errno.ENOENT,
                    f"No artifact for {len(missing)} dataset(s), e.g. "
                    f"{first.dataset_type.name} {first.id}; pass predict=True for predicted URIs",
                    str(datastore.path(self._resolve(first))),
                )
        except Exception as err:
            error = err
        payload = {
            "dataset_ids": [ref.id for ref in refs],
            "predict": predict,
            "missing": [ref.id for ref in missing],
            "error": None if error is None else error_info(error),
        }
        self._record("uri_requested", payload)
        if error is not None:
            raise error
        return result

    def _known_records(self, refs: Iterable[DatasetRef]) -> dict[uuid.UUID, FileRecord]:
        # What the bytes must match: records of outputs written here, then the
        # input records the quantum came with.
        known: dict[uuid.UUID, FileRecord] = {}
        for ref in refs:
            record = self._reducer.output_record(ref.id) or self._input_records.get(ref.id)
            if record is not None:
                known[ref.id] = record
        return known

    def retrieve_artifacts(
        self,
        refs: Iterable[DatasetRef],
        destination: str | os.PathLike[str],
        transfer: str = "auto",
        preserve_path: bool = True,
        overwrite: bool = False,
    ) -> list[Path]:
        """Place datasets' artifacts in a directory with an index; record ``artifacts_retrieved``.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            The datasets; an id given twice is retrieved once.
        destination : `str` or `os.PathLike`
            Directory; created if absent.
        transfer : `str`, optional
            ``auto`` (a copy), ``copy``, ``hardlink``, ``symlink`` or ``relsymlink``.
        preserve_path : `bool`, optional
            Keep each artifact's path relative to the datastore root; if
            false, only its file name.
        overwrite : `bool`, optional
            Whether existing files may be replaced; if false, nothing is
            retrieved when any target (or the index) exists.

        Returns
        -------
        paths : `list` [`pathlib.Path`]
            The retrieved artifacts, in the order given.

        Raises
        ------
        ArtifactNotFoundError
            If an artifact does not exist.
        ArtifactChecksumError
            If an artifact's bytes do not match its datastore record (an
            `OSError` naming the dataset).
        ArtifactExistsError
            If ``overwrite`` is false and a target exists, or two datasets
            would land on one name (a `FileExistsError`).
        PathEscapeError
            If a ref's path would leave the datastore root.
        InvalidDefinitionError
            For an unknown transfer mode (refused before anything is recorded),
            or a destination inside the datastore root (recorded).
        ButlerClosedError
            If the quantum has finished.

        Notes
        -----
        The destination also gets ``_index.json``: every ref (id, dataset
        type, data ID, run) with its artifact's path, size, checksum and
        datastore record, so the files can be ingested elsewhere without this
        butler. Bytes are checked against the datastore record (of outputs
        written by this butler, or of inputs given with the quantum) before
        anything is published; in trust mode (no record) the index carries
        what was read. Retrieval changes no provenance set.
        """
        refs = [_check_ref(ref) for ref in refs]
        mode = resolve_mode(transfer)
        _check_flags(preserve_path=preserve_path, overwrite=overwrite)
        dest = _check_destination(destination)
        self._check_open()
        targets = [self._resolve(ref) for ref in refs]
        paths: list[Path] = []
        written: list[str] = []
        error: Exception | None = None
        try:
            paths, names = retrieve_artifacts(
                self._datastore,
                targets,
                self._known_records(targets),
                dest,
                transfer=mode,
                preserve_path=preserve_path,
                overwrite=overwrite,
            )
            written = [*names, INDEX_NAME]
        except Exception as err:
            error = err
        self._record_retrieval(refs, dest, mode, preserve_path, overwrite, written, error)
        return paths

    def retrieve_artifacts_zip(
        self,
        refs: Iterable[DatasetRef],
        destination: str | os.PathLike[str],
        overwrite: bool = True,
    ) -> Path:
        """Write datasets' artifacts and their index into one zip; record ``artifacts_retrieved``.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            The datasets.
        destination : `str` or `os.PathLike`
            Directory of the zip; created if absent.
        overwrite : `bool`, optional
            Whether an existing zip of the same name may be replaced.

        Returns
        -------
        path : `pathlib.Path`
            The zip, named after the datasets' ids (the same ids give the same
            name). Its members are the artifacts at their paths relative to the
            datastore root (never absolute, never with ``..``) and ``_index.json``.

        Raises
        ------
        ArtifactNotFoundError, ArtifactChecksumError, PathEscapeError, ButlerClosedError
            As for `retrieve_artifacts`; no zip is published.
        ArtifactExistsError
            If ``overwrite`` is false and the zip exists.
        """
        refs = [_check_ref(ref) for ref in refs]
        _check_flags(overwrite=overwrite)
        dest = _check_destination(destination)
        self._check_open()
        targets = [self._resolve(ref) for ref in refs]
        path = dest
        written: list[str] = []
        error: Exception | None = None
        try:
            path, _ = retrieve_artifacts_zip(
                self._datastore, targets, self._known_records(targets), dest, overwrite=overwrite
            )
            written = [path.name]
        except Exception as err:
            error = err
        self._record_retrieval(refs, dest, "zip", True, overwrite, written, error)
        return path

    def _record_retrieval(
        self,
        refs: list[DatasetRef],
        destination: Path,
        transfer: str,
        preserve_path: bool,
        overwrite: bool,
        written: list[str],
        error: Exception | None,
    ) -> None:
        payload = {
            "dataset_ids": [ref.id for ref in refs],
            "destination": str(destination),
            "transfer": transfer,
            "preserve_path": preserve_path,
            "overwrite": overwrite,
            "paths": written,
            "error": None if error is None else error_info(error),
        }
        self._record("artifacts_retrieved", payload)
        if error is not None:
            raise error

    def export_predicted_datastore_records(
        self, refs: Iterable[DatasetRef]
    ) -> dict[str, list[FileRecord]]:
        """Return the records the quantum's datasets would have, without looking at the disk.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            Predicted inputs or outputs of this quantum.

        Returns
        -------
        records : `dict` [`str`, `list` [`FileRecord`]]
            ``{datastore name: [record, ...]}`` in the order given (empty for
            no refs): path from the template, formatter and storage class, no
            size or checksum (``record.predicted``).

        Raises
        ------
        DatasetNotPredictedError
            If a ref is neither a predicted input nor a predicted output (a
            `ValueError`), or contradicts the quantum's ref of that id.
        PathEscapeError
            If a ref's path would leave the datastore root.

        Notes
        -----
        Nothing is read and no existence is checked, so no event is recorded.
        """
        records: list[FileRecord] = []
        for ref in map(_check_ref, refs):
            predicted = self._inputs.get(ref.id, self._outputs.get(ref.id, ref))
            if (ref.id not in self._inputs and ref.id not in self._outputs) or self._mismatch(
                ref, predicted
            ):
                raise DatasetNotPredictedError(
                    f"{ref!r} is neither a predicted input nor a predicted output of quantum "
                    f"{self._quantum_id}."
                )
            records.append(self._datastore.predicted_record(predicted or ref))
        return {self._datastore.name: records} if records else {}

    @contextlib.contextmanager
    def record_metrics(self, metrics: ButlerMetrics | None = None) -> Iterator[ButlerMetrics]:
        """Count reads and writes into a fresh (or given) `ButlerMetrics` within a block.

        Parameters
        ----------
        metrics : `ButlerMetrics`, optional
            Where to count; a new, zeroed one by default.

        Yields
        ------
        metrics : `ButlerMetrics`
            The object counting while the block runs.

        Notes
        -----
        As in the reference, the metrics in use before are put back when the
        block ends and see nothing of what happened inside it; blocks nest.
        """
        new = _check_metrics(metrics)
        with self._lock:
            previous, self._metrics = self._metrics, new
        try:
            yield new
        finally:
            with self._lock:
                self._metrics = previous

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
