"""Event logs: in-memory, JSON Lines, SQLite and PostgreSQL stores; reading, verifying, copying.

Each backend is one subpackage (`memory`, `jsonl`, `sqlite`, `postgres`);
what they share (the record format, the chain check, the store contract,
verification and copying) is in the private modules beside them. Only the
names below are the package's interface; `encode_record`,
`logs_or_failures` and `verify_stored_logs` are for the other layers of the
library (Parquet).
"""

from ._base import EventLog
from ._copying import CopyReport, copy_logs, log_file_name
from ._reading import check_chain, iter_log, read_log
from ._records import StoredLog, encode_record
from ._sources import (
    LogSource,
    SourceKind,
    logs_or_failures,
    source_kind,
    stored_logs,
    verify_logs,
)
from ._store import EventStore, LogStore
from ._sync import SyncPolicy
from ._verification import (
    LogVerification,
    Problem,
    ProblemKind,
    VerificationReport,
    run_digest,
    verify_stored_logs,
)
from .jsonl import JsonLinesEventLog, JsonLinesEventStore
from .memory import InMemoryEventLog, InMemoryEventStore
from .postgres import PostgresEventLog, PostgresEventStore
from .sqlite import SqliteEventLog, SqliteEventStore

__all__ = [
    "CopyReport",
    "EventLog",
    "EventStore",
    "InMemoryEventLog",
    "InMemoryEventStore",
    "JsonLinesEventLog",
    "JsonLinesEventStore",
    "LogSource",
    "LogStore",
    "LogVerification",
    "PostgresEventLog",
    "PostgresEventStore",
    "Problem",
    "ProblemKind",
    "SourceKind",
    "SqliteEventLog",
    "SqliteEventStore",
    "StoredLog",
    "SyncPolicy",
    "VerificationReport",
    "check_chain",
    "copy_logs",
    "encode_record",
    "iter_log",
    "log_file_name",
    "logs_or_failures",
    "read_log",
    "run_digest",
    "source_kind",
    "stored_logs",
    "verify_logs",
    "verify_stored_logs",
]
