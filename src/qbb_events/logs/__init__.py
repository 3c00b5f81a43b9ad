"""Event logs: in-memory, JSON Lines and SQLite stores, reading, verifying and copying."""

from .base import EventLog
from .jsonl import JsonLinesEventLog
from .memory import InMemoryEventLog
from .reading import check_chain, iter_log, read_log
from .sources import LogSource, LogStore, stored_logs, verify_logs
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
    "EventLog",
    "InMemoryEventLog",
    "JsonLinesEventLog",
    "LogSource",
    "LogStore",
    "LogVerification",
    "Problem",
    "ProblemKind",
    "StoredLog",
    "SyncPolicy",
    "VerificationReport",
    "check_chain",
    "iter_log",
    "read_log",
    "run_digest",
    "stored_logs",
    "verify_logs",
]
