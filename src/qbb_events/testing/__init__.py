"""Helpers for testing tasks, executors and log stores against qbb_events.

Import them from here (``from qbb_events.testing import ...``); they are not
re-exported by the package. They depend on no test framework: a failed check
raises a plain `AssertionError`, which pytest, unittest and others all report.

- `make_quantum_butler` stores a task's inputs and returns a butler for them;
  `MISSING` marks an input that must not be stored.
- `event_kinds` lists the kinds of the events recorded so far.
- `assert_provenance` compares provenance with what the test expects and
  names each dataset that is missing or unexpected, e.g. ``raw(visit=1)``.
- `EventLogContract` and `LogStoreContract` are the contract every event-log
  backend passes: subclass one in a test module (``class TestMyStore(
  LogStoreContract)``), implement its factory, and the test runner runs
  every case (each takes pytest's ``tmp_path``).
"""

from ._contracts import EventLogContract, LogStoreContract
from ._helpers import MISSING, assert_provenance, event_kinds, make_quantum_butler

__all__ = [
    "MISSING",
    "EventLogContract",
    "LogStoreContract",
    "assert_provenance",
    "event_kinds",
    "make_quantum_butler",
]
