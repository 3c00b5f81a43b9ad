"""The JSON Lines backend: one crash-safe file per quantum attempt, in a directory of logs."""

from ._log import JsonLinesEventLog, sync_directory

__all__ = ["JsonLinesEventLog", "sync_directory"]
