"""Event logs: in-memory, JSON Lines and SQLite stores, reading, verifying and copying."""

from .base import EventLog
from .copying import CopyReport, copy_logs, log_file_name
from .jsonl import JsonLinesEventLog
from .memory import InMemoryEventLog
from .reading import check_chain, iter_log, read_log
from .sources import LogSource, LogStore, stored_logs, verify_logs
from .sqlite import SqliteEventLog, SqliteEventStore
from .stored import StoredLog
from .sync import SyncPolicy
from .verification import (
    LogVerification,
    Problem,
    ProblemKind,
    VerificationReport,
    run_digest,
)

__all__ = [
    "CopyReport",
    "EventLog",
    "InMemoryEventLog",
    "JsonLinesEventLog",
    "LogSource",
    "LogStore",
    "LogVerification",
    "Problem",
    "ProblemKind",
    "SqliteEventLog",
    "SqliteEventStore",
    "StoredLog",
    "SyncPolicy",
    "VerificationReport",
    "check_chain",
    "copy_logs",
    "iter_log",
    "log_file_name",
    "read_log",
    "run_digest",
    "stored_logs",
    "verify_logs",
]
