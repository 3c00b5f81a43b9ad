"""The in-memory event store: many logs held for the life of the process."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self

import orjson

from ...errors import LogConflictError, LogCorruptedError
from ...events import Event
from .._merge import EMPTY, Tail, missing_suffix
from .._reading import _ChainChecker
from .._records import Envelope, StoredLog, parse_envelope
from .._sync import SyncPolicy
from ._log import InMemoryEventLog

__all__ = ["InMemoryEventStore"]

_Key = tuple[uuid.UUID, int]


class InMemoryEventStore:
    """Event logs of many quantum attempts, held in memory: the reference store.

    Notes
    -----
    Each log's records are kept as the durable stores keep them, so copying
    to and from any store is byte for byte. Thread-safe; nothing survives
    the process. Sync policies have nothing to sync and are accepted as
    they are.
    """

    def __init__(self) -> None:
        self._records: dict[_Key, list[bytes]] = {}
        self._lock = threading.Lock()

    def open_log(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> InMemoryEventLog:
        """Return the log of a quantum attempt, resumed if the store holds it.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.
        sync : `SyncPolicy`, optional
            Accepted for the contract; memory has nothing to sync.

        Returns
        -------
        log : `InMemoryEventLog`
            Its events go into this store as they are appended.
        """
        key = (quantum_id, attempt)
        log = _StoreLog(self, key)
        with self._lock:
            held = list(self._records.get(key, ()))
        if held:
            log._restore(_checked(held, f"quantum {quantum_id} attempt {attempt}"), held)
        else:
            log.bind(quantum_id, attempt)
        return log

    def quanta(self) -> list[_Key]:
        """List the quantum attempts held, sorted."""
        with self._lock:
            return sorted(key for key, records in self._records.items() if records)

    def stored_log(self, quantum_id: uuid.UUID, attempt: int) -> StoredLog:
        """Return one quantum attempt's records, as they are when read."""
        key = (quantum_id, attempt)

        def records() -> Iterator[tuple[int, bytes, bool]]:
            with self._lock:
                held = list(self._records.get(key, ()))
            for position, record in enumerate(held, start=1):
                yield position, record, True

        return StoredLog(f"memory quantum {quantum_id} attempt {attempt}", records)

    def logs(self) -> Iterator[StoredLog]:
        """Yield every stored log, in the order of `quanta`."""
        for quantum_id, attempt in self.quanta():
            yield self.stored_log(quantum_id, attempt)

    def append_records(self, records: Iterable[bytes]) -> int:
        """Append the records not held yet (see `qbb_events.logs.EventStore`).

        Parameters
        ----------
        records : `~collections.abc.Iterable` [`bytes`]
            Records of any quantum attempts, each attempt's in ``seq`` order.

        Returns
        -------
        inserted : `int`
            How many were new.

        Raises
        ------
        LogConflictError, LogSealedError, LogCorruptedError
            As `SqliteEventStore.append_records`.
        """
        groups: dict[_Key, list[Envelope]] = {}
        for record in records:
            item = parse_envelope(record)
            groups.setdefault((uuid.UUID(item.quantum_id), item.attempt), []).append(item)
        inserted = 0
        with self._lock:
            for key, items in groups.items():
                held = self._records.setdefault(key, [])
                tail = _tail(held)
                new = missing_suffix(
                    f"quantum {key[0]} attempt {key[1]} in memory",
                    tail,
                    lambda seq, held=held: orjson.loads(held[seq])["hash"],  # type: ignore[misc]
                    items,
                )
                held.extend(item.record for item in new)
                inserted += len(new)
        return inserted

    def close(self) -> None:
        """Do nothing: memory holds nothing to release, and the store stays usable.

        The logs stay readable for the life of the object, as an
        `InMemoryEventLog` does after its ``close``.
        """

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"InMemoryEventStore({len(self._records)} logs)"

    def _keep(self, key: _Key, seq: int, record: bytes) -> None:
        """Store one appended record; the first claims the quantum attempt."""
        with self._lock:
            held = self._records.setdefault(key, [])
            if len(held) != seq:
                raise LogConflictError(
                    f"quantum {key[0]} attempt {key[1]} in memory holds {len(held)} events; "
                    f"seq {seq} cannot be appended by this log: another writer holds it"
                )
            held.append(record)


class _StoreLog(InMemoryEventLog):
    """An in-memory log whose records go into an `InMemoryEventStore` as appended."""

    def __init__(self, store: InMemoryEventStore, key: _Key) -> None:
        super().__init__()
        self._owner = store
        self._key = key

    def _store(self, entry: tuple[int, int, str, dict[str, Any]]) -> bytes:  # type: ignore[override]
        record, digest = self._encode(entry)
        self._owner._keep(self._key, entry[0], record)
        self._hashes.append(digest)
        return record


def _tail(held: list[bytes]) -> Tail:
    if not held:
        return EMPTY
    last = orjson.loads(held[-1])
    return Tail(len(held), last["hash"], last["kind"] == "quantum_finished")


def _checked(records: list[bytes], label: str) -> list[Event]:
    checker = _ChainChecker()
    events = []
    for position, record in enumerate(records, start=1):
        raw = orjson.loads(record)
        if not isinstance(raw, dict):
            raise LogCorruptedError(f"{label}: an event must be a JSON object", line=position)
        events.append(checker.check(raw, position, record))
    return events
