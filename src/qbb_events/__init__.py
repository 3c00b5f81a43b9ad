"""qbb_events: event-sourced provenance for quantum-backed butlers.

Every call a task makes on a `QuantumBackedButler` appends an immutable,
hash-chained event to its quantum's log; `fold` turns a log into
`QuantumProvenanceData`.
"""

from importlib import metadata as _metadata

from .butler import QuantumBackedButler
from .datastore import FileDatastore, PathTemplate
from .deferred import DeferredDatasetHandle
from .errors import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    BadReadRequestError,
    ButlerClosedError,
    DatastoreWriteError,
    FoldError,
    InvalidDataIdError,
    InvalidDefinitionError,
    LogClosedError,
    LogCorruptedError,
    LogExistsError,
    LogInUseError,
    LogSealedError,
    LogWriteError,
    OutputAlreadyStoredError,
    OutputNotPredictedError,
    PathEscapeError,
    PruneArgumentError,
    PruneNotOwnedError,
    QbbEventsError,
    RecordTypeError,
    SchemaVersionError,
    StorageClassError,
    TornLogWarning,
    UnknownEventKindError,
    UnreadableArtifactError,
)
from .events import (
    EVENT_KINDS,
    GENESIS_HASH,
    SCHEMA_VERSION,
    DatasetsPruned,
    DeferredLoaded,
    DeferredRequested,
    Event,
    ExistenceChecked,
    InputMarkedUnused,
    InputRead,
    OutputRejected,
    OutputWritten,
    QuantumFinished,
    QuantumStarted,
    canonical_json,
    chain_hash,
    parse_event,
)
from .fold import ProvenanceReducer, fold
from .ids import uuid7
from .logs import (
    EventLog,
    InMemoryEventLog,
    JsonLinesEventLog,
    check_chain,
    iter_log,
    read_log,
)
from .model import (
    STORAGE_CLASSES,
    DataId,
    DatasetRef,
    DatasetType,
    deterministic_dataset_id,
)
from .provenance import ProvenanceWarning, QuantumProvenanceData
from .quantum import Quantum
from .records import FileRecord

try:
    __version__ = _metadata.version("qbb-events")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "EVENT_KINDS",
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "STORAGE_CLASSES",
    "ArgumentTypeError",
    "ArtifactNotFoundError",
    "BadReadRequestError",
    "ButlerClosedError",
    "DataId",
    "DatasetRef",
    "DatasetType",
    "DatasetsPruned",
    "DatastoreWriteError",
    "DeferredDatasetHandle",
    "DeferredLoaded",
    "DeferredRequested",
    "Event",
    "EventLog",
    "ExistenceChecked",
    "FileDatastore",
    "FileRecord",
    "FoldError",
    "InMemoryEventLog",
    "InputMarkedUnused",
    "InputRead",
    "InvalidDataIdError",
    "InvalidDefinitionError",
    "JsonLinesEventLog",
    "LogClosedError",
    "LogCorruptedError",
    "LogExistsError",
    "LogInUseError",
    "LogSealedError",
    "LogWriteError",
    "OutputAlreadyStoredError",
    "OutputNotPredictedError",
    "OutputRejected",
    "OutputWritten",
    "PathEscapeError",
    "PathTemplate",
    "ProvenanceReducer",
    "ProvenanceWarning",
    "PruneArgumentError",
    "PruneNotOwnedError",
    "QbbEventsError",
    "Quantum",
    "QuantumBackedButler",
    "QuantumFinished",
    "QuantumProvenanceData",
    "QuantumStarted",
    "RecordTypeError",
    "SchemaVersionError",
    "StorageClassError",
    "TornLogWarning",
    "UnknownEventKindError",
    "UnreadableArtifactError",
    "__version__",
    "canonical_json",
    "chain_hash",
    "check_chain",
    "deterministic_dataset_id",
    "fold",
    "iter_log",
    "parse_event",
    "read_log",
    "uuid7",
]
