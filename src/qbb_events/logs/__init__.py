"""Event logs: the interface, the in-memory and JSON Lines stores, and reading back."""

from .base import EventLog
from .jsonl import JsonLinesEventLog
from .memory import InMemoryEventLog
from .reading import check_chain, iter_log, read_log

__all__ = [
    "EventLog",
    "InMemoryEventLog",
    "JsonLinesEventLog",
    "check_chain",
    "iter_log",
    "read_log",
]
