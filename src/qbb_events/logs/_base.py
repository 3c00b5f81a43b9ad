"""The event-log interface: ordered, hash-chained, sealed after ``quantum_finished``."""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from ..errors import LogInUseError, LogSealedError
from ..events import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    Event,
    EventKind,
    canonical_json,
    chain_hash,
    parse_event,
)
from ._records import encode_record

__all__ = ["EventLog"]

# Every log of this process, so a forked child can be told that the logs it
# inherited are its parent's: a file lock is shared across fork, so without
# this both processes could append to one log.
_LIVE: weakref.WeakSet[EventLog] = weakref.WeakSet()


def _disown_inherited_logs() -> None:
    for log in list(_LIVE):
        log._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disown_inherited_logs)

_Entry = tuple[int, int, str, dict[str, Any]]
# What a log keeps of each event: its payload, or, for a store that wrote the
# event's record already, those bytes (the garbage collector never scans
# bytes, which matters for a log holding millions of events).
_Kept = tuple[int, int, str, "dict[str, Any] | bytes"]


class EventLog(ABC):
    """An append-only log of one quantum attempt.

    The butler hands `append` an event's kind and fields; the log adds the
    envelope (schema version, quantum id, attempt, ``seq``, timestamp,
    ``prev_hash``, ``hash``) and keeps it. `events` returns the frozen event
    models. After ``quantum_finished`` the log is sealed.

    Notes
    -----
    Each event's content, ``seq`` and timestamp are fixed when it is
    appended. Its hash is a deterministic function of those and of the
    previous hash, so a store that does not need it at once (the in-memory
    log) computes the chain when `events` is first read, keeping the hot path
    of every butler call short; a store that writes each event (the file log)
    computes it at once. Either way the events are the same.
    """

    def __init__(self) -> None:
        self._quantum_id: uuid.UUID | None = None
        self._attempt = 0
        self._entries: list[_Kept] = []
        self._hashes: list[str] = []
        self._events: list[Event] = []
        self._last_ts = 0
        self._sealed = False
        self._forked = False
        self._lock = threading.Lock()
        _LIVE.add(self)

    @property
    def quantum_id(self) -> uuid.UUID | None:
        """Id of the quantum this log records, once bound (`uuid.UUID` or `None`)."""
        return self._quantum_id

    @property
    def attempt(self) -> int:
        """Attempt number of the quantum execution (`int`)."""
        return self._attempt

    @property
    def sealed(self) -> bool:
        """Whether ``quantum_finished`` was appended (`bool`)."""
        return self._sealed

    def __len__(self) -> int:
        return len(self._entries)

    def bind(self, quantum_id: uuid.UUID, attempt: int) -> None:
        """Attach the log to a quantum attempt before its first event.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            Attempt number, from 0.

        Raises
        ------
        LogInUseError
            If the log already holds events.
        """
        if self._entries:
            raise LogInUseError(
                f"This log already holds {len(self._entries)} events of quantum "
                f"{self._quantum_id}; use a new log for each quantum attempt."
            )
        self._quantum_id = quantum_id
        self._attempt = attempt

    def append(self, kind: EventKind, payload: dict[str, Any]) -> int:
        """Append one event.

        Parameters
        ----------
        kind : `str`
            The event kind.
        payload : `dict`
            The fields of that kind (not the envelope); the log keeps this
            dict, so the caller must not change it afterwards.

        Returns
        -------
        seq : `int`
            The event's sequence number.

        Raises
        ------
        LogSealedError
            If ``quantum_finished`` was already appended.
        LogInUseError
            If the log was inherited from the parent of a forked process.
        """
        with self._lock:
            if self._forked:
                raise LogInUseError(
                    f"This log of quantum {self._quantum_id} belongs to the process that "
                    f"opened it, not to this forked child (pid {os.getpid()}): open a new "
                    "log in the child."
                )
            if self._sealed:
                raise LogSealedError(
                    f"The log of quantum {self._quantum_id} is sealed by quantum_finished; "
                    f"cannot append {kind}."
                )
            seq = len(self._entries)
            # Timestamps never go backwards within a log, even across a clock step.
            ts = time.time_ns()
            if ts < self._last_ts:
                ts = self._last_ts
            self._last_ts = ts
            entry = (seq, ts, kind, payload)
            record = self._store(entry)
            self._entries.append(entry if record is None else (seq, ts, kind, record))
            if kind == "quantum_finished":
                self._sealed = True
                self._on_seal()
            return seq

    @property
    def events(self) -> tuple[Event, ...]:
        """The events appended so far (`tuple` [`Event`, ...])."""
        with self._lock:
            built = self._events
            if len(built) < len(self._entries):
                self._hash_through(len(self._entries))
                for index in range(len(built), len(self._entries)):
                    entry = self._entries[index]
                    if isinstance(entry[3], bytes):
                        built.append(parse_event(orjson.loads(entry[3])))
                        continue
                    body = self._body(entry, self._prev_hash(index))
                    body["hash"] = self._hashes[index]
                    built.append(parse_event(body))
            return tuple(built)

    def records(self) -> Iterator[bytes]:
        """Yield each event's stored record, as a durable store holds it.

        Yields
        ------
        record : `bytes`
            The canonical JSON of the event with its ``hash`` last (see
            ``docs/event-log.md``). Events restored from a store are yielded
            as stored, whatever their schema version.
        """
        with self._lock:
            self._hash_through(len(self._entries))
            kept = list(self._entries)
            hashes = list(self._hashes)
        for index, entry in enumerate(kept):
            payload = entry[3]
            if isinstance(payload, bytes):
                yield payload
            else:
                body = self._body(entry, hashes[index - 1] if index else GENESIS_HASH)
                yield encode_record(canonical_json(body), hashes[index])

    @property
    def last_hash(self) -> str:
        """Hash of the last event, or `GENESIS_HASH` for an empty log (`str`)."""
        with self._lock:
            self._hash_through(len(self._entries))
            return self._hashes[-1] if self._hashes else GENESIS_HASH

    def close(self) -> None:  # noqa: B027 - a store with nothing to release keeps this.
        """Release the log's resources; the events stay readable."""

    def _body(self, entry: _Kept, prev_hash: str) -> dict[str, Any]:
        seq, ts, kind, payload = entry
        assert isinstance(payload, dict), "a store that keeps records hashes them eagerly"
        return {
            "schema_version": SCHEMA_VERSION,
            "quantum_id": self._quantum_id,
            "attempt": self._attempt,
            "seq": seq,
            "timestamp_ns": ts,
            "kind": kind,
            "prev_hash": prev_hash,
            **payload,
        }

    def _prev_hash(self, index: int) -> str:
        return self._hashes[index - 1] if index else GENESIS_HASH

    def _hash_through(self, count: int) -> None:
        hashes = self._hashes
        for index in range(len(hashes), count):
            prev = self._prev_hash(index)
            hashes.append(chain_hash(prev, self._body(self._entries[index], prev)))

    def _encode(self, entry: _Entry) -> tuple[bytes, str]:
        """Return the stored record of the next entry and its hash.

        A store that writes each event at once calls this from `_store` and,
        once the record is kept, appends the hash to ``self._hashes``.
        """
        hashes = self._hashes
        prev = hashes[-1] if hashes else GENESIS_HASH
        canonical = canonical_json(self._body(entry, prev))
        digest = chain_hash(prev, canonical)
        return encode_record(canonical, digest), digest

    def _restore(self, events: Sequence[Event], records: Sequence[bytes]) -> None:
        """Take over the events a store already holds, to append after them.

        The events must have passed the store's checks (a whole, unbroken
        chain of one quantum attempt). Their stored hashes are kept as they
        are, so a log of an older schema version continues its own chain.
        """
        if self._entries:
            raise LogInUseError("a log can only be restored before its first append")
        if not events:
            return
        first = events[0]
        self._quantum_id = first.quantum_id
        self._attempt = first.attempt
        # A restored entry is never serialized again: its event, hash and
        # (when the store gave them) stored bytes are already known.
        self._entries = [
            (e.seq, e.timestamp_ns, e.kind, r) for e, r in zip(events, records, strict=True)
        ]
        self._hashes = [e.hash for e in events]
        self._events = list(events)
        self._last_ts = max(e.timestamp_ns for e in events)
        self._sealed = events[-1].kind == "quantum_finished"

    @abstractmethod
    def _store(self, entry: _Entry) -> bytes | None:
        """Persist one entry before it joins the log; raise to refuse it.

        A store that encoded the entry (and appended its hash) returns the
        record, which the log then keeps instead of the payload.
        """

    def _on_seal(self) -> None:  # noqa: B027 - optional hook.
        """Run once ``quantum_finished`` was stored."""
