"""The JSON Lines backend: one crash-safe file per quantum attempt, in a directory of logs."""

from ._files import LOG_SUFFIX, file_log, is_json, log_file_name, log_files, unreadable_log
from ._log import JsonLinesEventLog, sync_directory
from ._store import JsonLinesEventStore

__all__ = [
    "LOG_SUFFIX",
    "JsonLinesEventLog",
    "JsonLinesEventStore",
    "file_log",
    "is_json",
    "log_file_name",
    "log_files",
    "sync_directory",
    "unreadable_log",
]
