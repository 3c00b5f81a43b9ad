"""The store contract: what every backend holding many logs offers.

`EventStore` is the protocol the memory, JSON Lines directory, SQLite and
PostgreSQL stores implement, and that `qbb_events.testing.LogStoreContract`
checks each of them against: open a quantum attempt's log for appending,
list the logs held, stream one stored log's records, append records
idempotently (the merge rule of `qbb_events.logs._merge`), and close.
`LogStore` is the reading half, all that `verify_logs` and the other
readers need.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ._base import EventLog
from ._records import StoredLog
from ._sync import SyncPolicy

__all__ = ["EventStore", "LogStore"]


@runtime_checkable
class LogStore(Protocol):
    """A store holding many logs, as readers see it (`SqliteEventStore`, ...)."""

    def logs(self) -> Iterator[StoredLog]:
        """Yield each stored log."""
        ...


@runtime_checkable
class EventStore(LogStore, Protocol):
    """A store holding the logs of many quantum attempts: the contract of every backend.

    Notes
    -----
    Implemented by `InMemoryEventStore`, `JsonLinesEventStore`,
    `SqliteEventStore` and `PostgresEventStore`; each passes
    `qbb_events.testing.LogStoreContract`.
    """

    def open_log(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> EventLog:
        """Return the log of a quantum attempt, to append to.

        A log the store holds is resumed (appends continue after its stored
        events; a sealed one refuses them); otherwise a new log bound to the
        quantum attempt is returned, and its first event claims it.
        """
        ...

    def quanta(self) -> list[tuple[uuid.UUID, int]]:
        """List the quantum attempts the store holds a log of, sorted."""
        ...

    def stored_log(self, quantum_id: uuid.UUID, attempt: int) -> StoredLog:
        """Return one quantum attempt's stored records (none if it is not held)."""
        ...

    def append_records(self, records: Iterable[bytes]) -> int:
        """Append the records the store does not hold yet; return how many were new."""
        ...

    def close(self) -> None:
        """Close the store's open logs and release it."""
        ...

    def __enter__(self) -> Self:
        """Return the store."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        ...
