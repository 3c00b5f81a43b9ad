"""The SQL event log: one quantum attempt's events, committed in groups to a table store."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import (
    InvalidDefinitionError,
    LogClosedError,
    LogConflictError,
    LogWriteError,
)
from ..events import Event
from ._base import EventLog
from ._flusher import GroupFlusher
from ._sql_schema import (
    _again,
    _Row,
)
from ._sync import SyncPolicy


class _Host(Protocol):
    """What a log needs of the store holding it (`SqlEventStore`), without importing it."""

    _location: str

    def _key(self, quantum_id: uuid.UUID | None) -> object: ...

    def _claim(self, row: _Row) -> None: ...

    def _commit(self, rows: list[_Row], prev_hash: str) -> None: ...

    def _opened(self, log: SqlEventLog) -> None: ...

    def _closed_log(self, log: SqlEventLog) -> None: ...


__all__ = ["SqlEventLog"]

_ON_CLOSE_LIMIT = 100_000
"""Pending events that make an ``on_close`` log commit anyway, to bound its memory."""


class SqlEventLog(EventLog):
    """One quantum attempt's log in an SQL event store (SQLite or PostgreSQL).

    Made by the store's ``log`` (a new log) or ``resume`` (a log continuing
    stored events); not meant to be made directly.

    Parameters
    ----------
    store : `SqlEventStore`
        The store holding the log.
    sync : `SyncPolicy`
        When events are committed.

    Notes
    -----
    Appending encodes the event and keeps its row; rows are committed in
    groups, one transaction each, as the sync policy says: ``every_event``
    commits each event before `append` returns; ``group`` commits once
    ``max_events`` are pending, and a background thread commits at most
    ``max_delay_ms`` after the first pending event when the writer goes
    quiet; ``on_close`` commits when the log is sealed or closed (and every
    100,000 events, to bound memory). The first event (``quantum_started``)
    is committed at once with the claim row, so two logs can never record
    the same quantum attempt, and ``quantum_finished`` is committed before
    its `append` returns, whatever the policy.

    Unlike the file log, a killed process loses its events since the last
    commit. A commit that fails refuses the event whose append triggered it
    (`LogWriteError`, or `LogConflictError` if another writer holds the
    log); if acknowledged events were lost with it, or a background commit
    failed, every later append and `close` raise that error again: the store
    holds a whole prefix of the log, which the store's ``resume`` can
    continue.
    """

    def __init__(self, store: _Host, sync: SyncPolicy) -> None:
        super().__init__()
        self._db = store
        self._policy = sync
        self._key: object = ""
        self._pending: list[_Row] = []
        self._closed = False
        self._failure: LogWriteError | LogConflictError | None = None
        self._limit = {
            "every_event": 1,
            "group": sync.max_events,
            "on_close": _ON_CLOSE_LIMIT,
        }[sync.mode]
        self._flusher: GroupFlusher | None = None
        if sync.mode == "group":
            self._flusher = GroupFlusher(
                self._flush_in_background, sync.max_delay_ms / 1000, name="qbb-sqlite-sync"
            )
        store._opened(self)

    @property
    def store(self) -> _Host:
        """The store holding the log."""
        return self._db

    @property
    def sync_policy(self) -> SyncPolicy:
        """When this log commits its events (`SyncPolicy`)."""
        return self._policy

    @property
    def pending(self) -> int:
        """Events appended but not yet committed (`int`)."""
        with self._lock:
            return len(self._pending)

    def _resume_from(self, events: Sequence[Event], records: Sequence[bytes]) -> None:
        self._restore(events, records)
        self._key = self._db._key(self._quantum_id)

    def _store(self, entry: tuple[int, int, str, dict[str, Any]]) -> bytes:
        if self._closed:
            raise LogClosedError(
                f"The log of quantum {self._quantum_id} in {self._db._location} is closed; "
                f"cannot append seq {entry[0]}."
            )
        if self._failure is not None:
            raise _again(self._failure)
        seq, ts, kind, _ = entry
        if seq == 0:
            return self._claim_with(entry)
        record, digest = self._encode(entry)
        pending = self._pending
        pending.append((self._key, self._attempt, seq, kind, ts, digest, record))
        self._hashes.append(digest)
        if len(pending) >= self._limit or kind == "quantum_finished":
            self._commit_pending(triggered=True)
        elif len(pending) == 1 and self._flusher is not None:
            self._flusher.arm()
        return record

    def _claim_with(self, entry: tuple[int, int, str, dict[str, Any]]) -> bytes:
        if self._quantum_id is None:
            raise InvalidDefinitionError(
                "Bind the log to a quantum attempt (EventLog.bind) before its first event."
            )
        self._key = self._db._key(self._quantum_id)
        record, digest = self._encode(entry)
        seq, ts, kind, _ = entry
        self._db._claim((self._key, self._attempt, seq, kind, ts, digest, record))
        self._hashes.append(digest)
        return record

    def _commit_pending(self, *, triggered: bool) -> None:
        """Commit the pending rows; the caller holds the lock.

        With ``triggered``, the last row is the event being appended: on
        failure it is taken back, so its append is refused.
        """
        pending = self._pending
        if self._flusher is not None:
            self._flusher.disarm()
        first = pending[0][2]
        try:
            self._db._commit(pending, self._hashes[first - 1])
        except (LogWriteError, LogConflictError) as err:
            if triggered:
                pending.pop()
                self._hashes.pop()
            if not pending:
                raise
            self._failure = self._lost(err, pending)
            self._pending = []
            raise _again(self._failure) from err
        self._pending = []

    def _lost(
        self, err: LogWriteError | LogConflictError, rows: list[_Row]
    ) -> LogWriteError | LogConflictError:
        what = (
            f"seq {rows[0][2]}-{rows[-1][2]} of quantum {self._quantum_id} attempt "
            f"{self._attempt} were appended but could not be committed ({err}); "
            f"{self._db._location} holds the events before seq {rows[0][2]}, and the "
            "store's resume continues from there"
        )
        if isinstance(err, LogWriteError):
            return LogWriteError(err.errno, what, err.filename)
        return LogConflictError(what)

    def _flush_in_background(self) -> None:
        with self._lock:
            if self._closed or not self._pending or self._failure is not None:
                return
            # `_commit_pending` keeps the failure for the next append or close().
            with contextlib.suppress(LogWriteError, LogConflictError):
                self._commit_pending(triggered=False)

    def _on_seal(self) -> None:
        # quantum_finished was committed by its own append; nothing is pending.
        if self._flusher is not None:
            self._flusher.disarm()

    def close(self) -> None:
        """Commit the pending events and release the log; the events stay readable.

        Idempotent; appends after it raise `LogClosedError`.

        Raises
        ------
        LogWriteError, LogConflictError
            If pending events could not be committed, now or earlier (a
            background commit, or a group whose commit failed): the store
            holds the events before them. The log is closed all the same.
        """
        # Stopped before taking the lock: the flusher may be waiting for it.
        if self._flusher is not None:
            self._flusher.stop()
        with self._lock:
            if self._closed:
                return
            try:
                if self._failure is None and self._pending:
                    # A failure is kept in self._failure, raised below.
                    with contextlib.suppress(LogWriteError, LogConflictError):
                        self._commit_pending(triggered=False)
            finally:
                self._closed = True
                self._pending = []
            failure, self._failure = self._failure, None
        self._db._closed_log(self)
        if failure is not None:
            raise _again(failure)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._db._location!r}, quantum={self._quantum_id}, "
            f"attempt={self._attempt}, events={len(self)})"
        )
