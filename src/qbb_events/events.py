"""Event kinds, their envelope, canonical JSON and the hash chain.

Every event is a frozen pydantic model carrying the envelope (schema version,
quantum id, attempt, ``seq``, UTC timestamp in nanoseconds, ``kind``,
``prev_hash`` and ``hash``) and the fields of its kind. ``kind`` is a stable
string literal, never a class path, so renaming a module never breaks a
stored log.

``hash`` is the SHA-256 hex digest of ``prev_hash`` (its 64 ASCII hex digits)
followed by the canonical JSON of the event without its ``hash`` field
(``prev_hash`` included): keys sorted,
no spaces, UTF-8, UUIDs as their hyphenated lower-case strings. Events hold
no floats, so the canonical form is unambiguous. The first event's
``prev_hash`` is 64 zeros.

This module does no I/O.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from .errors import LogCorruptedError, SchemaVersionError, UnknownEventKindError
from .records import AnyRecord

__all__ = [
    "EVENT_KINDS",
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "ArtifactsRetrieved",
    "Caveat",
    "DatasetTypeInfo",
    "DatasetsPruned",
    "DeferredLoaded",
    "DeferredRequested",
    "ErrorInfo",
    "Event",
    "EventKind",
    "ExistenceChecked",
    "InputMarkedUnused",
    "InputRead",
    "OutputRejected",
    "OutputWritten",
    "QuantumFinished",
    "QuantumInfo",
    "QuantumStarted",
    "ReadFailure",
    "RefInfo",
    "UriRequested",
    "canonical_json",
    "chain_hash",
    "event_body",
    "parse_event",
]

SCHEMA_VERSION: Final = 1
"""Schema version written by this library."""

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first event of every log."""

EventKind = Literal[
    "quantum_started",
    "existence_checked",
    "input_read",
    "deferred_requested",
    "deferred_loaded",
    "input_marked_unused",
    "output_written",
    "output_rejected",
    "datasets_pruned",
    "uri_requested",
    "artifacts_retrieved",
    "quantum_finished",
]

_HEX64 = r"^[0-9a-f]{64}$"
_frozen = ConfigDict(frozen=True, extra="forbid")


def _freeze(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _thaw(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


# Events are immutable all the way down: sequences are tuples and mappings
# read-only views, so no caller can change an event a log holds.
DataIdDict = Annotated[
    Mapping[str, StrictInt | StrictStr],
    AfterValidator(_freeze),
    PlainSerializer(_thaw, return_type=dict[str, StrictInt | StrictStr]),
]
RecordsByDatastore = Annotated[
    Mapping[str, tuple[AnyRecord, ...]],
    AfterValidator(_freeze),
    PlainSerializer(_thaw, return_type=dict[str, tuple[AnyRecord, ...]]),
]


class ErrorInfo(BaseModel):
    """An exception, as recorded in an event.

    Parameters
    ----------
    exc_type : `str`
        Name of the exception class (never imported back).
    message : `str`
        ``str()`` of the exception.
    """

    model_config = _frozen

    exc_type: str
    message: str


class ReadFailure(ErrorInfo):
    """Why a read failed.

    Parameters
    ----------
    category : `str`
        ``missing`` (artifact absent or unreadable: the input is unavailable),
        ``bad_request`` (the call itself was wrong: says nothing of the input)
        or ``error`` (anything else, which changes no set).
    """

    category: Literal["missing", "bad_request", "error"]


class DatasetTypeInfo(BaseModel):
    """A dataset type as recorded in ``quantum_started``."""

    model_config = _frozen

    name: str
    storage_class: str
    dimensions: tuple[str, ...]


class RefInfo(BaseModel):
    """A predicted dataset as recorded in ``quantum_started``.

    The type, run and data ID are `None` only for a butler made by
    ``from_predicted`` from bare dataset ids.
    """

    model_config = _frozen

    id: uuid.UUID
    dataset_type: str | None
    run: str | None
    data_id: DataIdDict | None


class QuantumInfo(BaseModel):
    """The whole quantum, as recorded in ``quantum_started``."""

    model_config = _frozen

    id: uuid.UUID
    task_label: str | None
    data_id: DataIdDict
    dataset_types: tuple[DatasetTypeInfo, ...]
    inputs: tuple[RefInfo, ...]
    init_inputs: tuple[RefInfo, ...]
    outputs: tuple[RefInfo, ...]
    input_records: RecordsByDatastore


class _Envelope(BaseModel):
    model_config = _frozen

    schema_version: int = Field(ge=1)
    quantum_id: uuid.UUID
    attempt: int = Field(ge=0)
    seq: int = Field(ge=0)
    timestamp_ns: int = Field(ge=0)
    prev_hash: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)


class QuantumStarted(_Envelope):
    """The butler was made: the whole quantum and where it runs."""

    kind: Literal["quantum_started"] = "quantum_started"
    quantum: QuantumInfo
    host: str
    pid: int
    library_version: str


class ExistenceChecked(_Envelope):
    """``stored``/``exists``/``stored_many``: ids and whether each was found."""

    kind: Literal["existence_checked"] = "existence_checked"
    dataset_ids: tuple[uuid.UUID, ...]
    results: tuple[bool, ...]

    @model_validator(mode="after")
    def _same_length(self) -> ExistenceChecked:
        if len(self.dataset_ids) != len(self.results):
            raise ValueError("dataset_ids and results differ in length")
        return self


class _ReadOutcome(_Envelope):
    dataset_id: uuid.UUID
    ok: bool
    failure: ReadFailure | None
    bytes_read: int = Field(ge=0)
    duration_ns: int = Field(ge=0)

    @model_validator(mode="after")
    def _ok_xor_failure(self) -> _ReadOutcome:
        if self.ok == (self.failure is not None):
            raise ValueError("a read has a failure exactly when it is not ok")
        return self


class InputRead(_ReadOutcome):
    """``get``: the dataset and the outcome of the read."""

    kind: Literal["input_read"] = "input_read"


class DeferredLoaded(_ReadOutcome):
    """A deferred handle's ``get``: as `InputRead`."""

    kind: Literal["deferred_loaded"] = "deferred_loaded"


class DeferredRequested(_Envelope):
    """``getDeferred``: a handle was made; nothing was read."""

    kind: Literal["deferred_requested"] = "deferred_requested"
    dataset_id: uuid.UUID


class InputMarkedUnused(_Envelope):
    """``markInputUnused``."""

    kind: Literal["input_marked_unused"] = "input_marked_unused"
    dataset_id: uuid.UUID


class OutputWritten(_Envelope):
    """``put`` succeeded: the dataset and its datastore record."""

    kind: Literal["output_written"] = "output_written"
    dataset_id: uuid.UUID
    record: AnyRecord
    duration_ns: int = Field(ge=0)


class OutputRejected(_Envelope):
    """``put`` failed: the dataset and why."""

    kind: Literal["output_rejected"] = "output_rejected"
    dataset_id: uuid.UUID
    reason: Literal["not_predicted", "already_written", "invalid_object", "bad_path", "write_error"]
    error: ErrorInfo


class DatasetsPruned(_Envelope):
    """``pruneDatasets``: the ids, the flags, what was deleted, and any refusal."""

    kind: Literal["datasets_pruned"] = "datasets_pruned"
    dataset_ids: tuple[uuid.UUID, ...]
    disassociate: bool
    unstore: bool
    purge: bool
    removed: tuple[uuid.UUID, ...]
    error: ErrorInfo | None


Caveat = Literal["no_work", "any_outputs_missing", "all_outputs_missing", "partial_outputs_error"]
"""A success caveat, as LSST's executors report them (``QuantumSuccessCaveats``)."""

# Fields an executor harness adds to quantum_finished. They are left out of the
# canonical form while they hold their default, so a log written before they
# existed serializes (and hashes) exactly as it was written.
_HARNESS_FIELDS: Final = ("caveats", "traceback", "host", "pid")


class UriRequested(_Envelope):
    """``getURI``/``getURIs``/``get_many_uris``: the task learnt where artifacts are.

    Not a read: it changes no provenance set. It is recorded because a task
    that knows a path can read the file behind the butler's back.

    Parameters
    ----------
    dataset_ids : `tuple` [`uuid.UUID`, ...]
        The datasets asked for.
    predict : `bool`
        Whether predicted URIs were allowed for missing artifacts.
    missing : `tuple` [`uuid.UUID`, ...]
        Those whose artifact was not found (given a predicted URI, skipped, or
        the cause of ``error``).
    error : `ErrorInfo` or `None`
        Why the call raised, if it did.
    """

    kind: Literal["uri_requested"] = "uri_requested"
    dataset_ids: tuple[uuid.UUID, ...]
    predict: bool
    missing: tuple[uuid.UUID, ...]
    error: ErrorInfo | None


class ArtifactsRetrieved(_Envelope):
    """``retrieve_artifacts``/``retrieve_artifacts_zip``: artifacts copied out.

    Changes no provenance set: retrieving is not reading through the butler.

    Parameters
    ----------
    dataset_ids : `tuple` [`uuid.UUID`, ...]
        The datasets asked for.
    destination : `str`
        Absolute path of the destination directory.
    transfer : `str`
        ``copy``, ``hardlink``, ``symlink``, ``relsymlink`` (``auto`` is
        recorded as the mode it chose) or ``zip``.
    preserve_path : `bool`
        Whether paths relative to the datastore root were kept.
    overwrite : `bool`
        Whether existing files could be replaced.
    paths : `tuple` [`str`, ...]
        What was written, relative to ``destination``: the artifacts (or the
        zip), then the index; empty when the call raised.
    error : `ErrorInfo` or `None`
        Why the call raised, if it did.
    """

    kind: Literal["artifacts_retrieved"] = "artifacts_retrieved"
    dataset_ids: tuple[uuid.UUID, ...]
    destination: str
    transfer: Literal["copy", "hardlink", "symlink", "relsymlink", "zip"]
    preserve_path: bool
    overwrite: bool
    paths: tuple[str, ...]
    error: ErrorInfo | None


class QuantumFinished(_Envelope):
    """The quantum ended; the log is sealed after this event.

    ``blocked`` means a required input was missing, so the task never ran.
    ``caveats``, ``traceback``, ``host`` and ``pid`` are written by the
    executor harness (``execute_quantum``); each is omitted from the stored
    event while it holds its default.
    """

    kind: Literal["quantum_finished"] = "quantum_finished"
    status: Literal["succeeded", "failed", "no_work", "blocked"]
    exception: ErrorInfo | None
    wall_ns: int = Field(ge=0)
    cpu_ns: int = Field(ge=0)
    peak_rss_bytes: int = Field(ge=0)
    caveats: tuple[Caveat, ...] = ()
    traceback: str | None = None
    host: str | None = None
    pid: int | None = None

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _HARNESS_FIELDS:
            # None and an empty sequence (a tuple, or a list in JSON mode) are the defaults.
            if name in data and (data[name] is None or data[name] in ((), [])):
                del data[name]
        return data


Event = Annotated[
    QuantumStarted
    | ExistenceChecked
    | InputRead
    | DeferredRequested
    | DeferredLoaded
    | InputMarkedUnused
    | OutputWritten
    | OutputRejected
    | DatasetsPruned
    | UriRequested
    | ArtifactsRetrieved
    | QuantumFinished,
    Field(discriminator="kind"),
]
"""Any event: a discriminated union on ``kind``."""

EVENT_KINDS: Final = frozenset(get_args(EventKind))
"""Every kind this library reads and writes."""

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# Upcasters turn a body of version N into version N + 1. They run after the
# stored hash was checked against the stored bytes, so they may change fields.
_UPCASTERS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON of an event body.

    Parameters
    ----------
    body : `~collections.abc.Mapping`
        JSON-compatible values; UUIDs and pydantic models are allowed, floats
        are not expected.

    Returns
    -------
    data : `bytes`
        UTF-8 JSON with sorted keys and no spaces.
    """
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=_json_default)


def _json_default(value: object) -> Any:
    # Payloads may hold validated models (datastore records) until they are
    # serialized; they go out as their JSON dump, keys sorted like the rest.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable in an event")


def chain_hash(prev_hash: str, body: Mapping[str, Any] | bytes) -> str:
    """Return the hash of an event given its predecessor's hash.

    Parameters
    ----------
    prev_hash : `str`
        Hex digest of the previous event, or `GENESIS_HASH`.
    body : `~collections.abc.Mapping` or `bytes`
        The event without its ``hash`` field (``prev_hash`` included), or its
        canonical JSON already serialized (a writer that needs the bytes anyway
        need not serialize twice).

    Returns
    -------
    hash : `str`
        SHA-256 hex digest of the ASCII of ``prev_hash`` followed by ``canonical_json(body)``.
    """
    canonical = body if isinstance(body, bytes) else canonical_json(body)
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def event_body(event: Event) -> dict[str, Any]:
    """Return the JSON-compatible body of an event: all fields but ``hash``.

    Parameters
    ----------
    event : `Event`
        Any event.

    Returns
    -------
    body : `dict`
        What `chain_hash` hashes.
    """
    return event.model_dump(mode="json", exclude={"hash"})


def parse_event(data: Mapping[str, Any]) -> Event:
    """Validate a stored event, upcasting older schema versions.

    Parameters
    ----------
    data : `~collections.abc.Mapping`
        The decoded JSON object of one event.

    Returns
    -------
    event : `Event`
        The event, at the current schema version.

    Raises
    ------
    SchemaVersionError
        If the version is missing, newer than `SCHEMA_VERSION`, or has no upcaster.
    UnknownEventKindError
        If ``kind`` is not one of `EVENT_KINDS`.
    LogCorruptedError
        If the fields do not validate.
    """
    seq = data.get("seq") if isinstance(data.get("seq"), int) else None
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaVersionError(f"event has no valid schema_version ({version!r})", seq=seq)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"event was written with schema version {version}, but this qbb_events reads "
            f"versions up to {SCHEMA_VERSION}: upgrade qbb_events to read it",
            seq=seq,
        )
    # Upcasters may rewrite nested values: they work on a deep copy, so the
    # caller's data (whose hash is checked) is never changed.
    body = dict(data) if version == SCHEMA_VERSION else copy.deepcopy(dict(data))
    while body["schema_version"] < SCHEMA_VERSION:
        step = _UPCASTERS.get(body["schema_version"])
        if step is None:
            raise SchemaVersionError(
                f"no upcaster from schema version {body['schema_version']}", seq=seq
            )
        body = step(body)
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in EVENT_KINDS:
        raise UnknownEventKindError(
            f"unknown event kind {kind!r}; known kinds: {sorted(EVENT_KINDS)}", seq=seq
        )
    try:
        return _EVENT_ADAPTER.validate_python(body)
    except ValidationError as err:
        raise LogCorruptedError(f"invalid {kind} event: {err}", seq=seq) from None
