"""The SQLite event store's tables, statements and the helpers its store and logs share."""

from __future__ import annotations

import errno
import os
import socket
import uuid
from typing import Final, NamedTuple, TypeVar, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..errors import (
    LogConflictError,
    LogCorruptedError,
    LogWriteError,
)
from ..events import chain_hash
from ._records import hashed_part

__all__ = ["STORE_FORMAT"]

STORE_FORMAT: Final = "1"
"""Version of the tables this library writes, kept in ``qbb_meta``."""

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
# Primary SQLite result codes that have an errno of the same meaning.
_ERRNO_OF_SQLITE = {
    3: errno.EACCES,  # SQLITE_PERM
    5: errno.EBUSY,  # SQLITE_BUSY
    6: errno.EBUSY,  # SQLITE_LOCKED
    8: errno.EROFS,  # SQLITE_READONLY
    10: errno.EIO,  # SQLITE_IOERR
    13: errno.ENOSPC,  # SQLITE_FULL
    14: errno.ENOENT,  # SQLITE_CANTOPEN
}

_metadata = sa.MetaData()

_meta = sa.Table(
    "qbb_meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

_logs = sa.Table(
    "qbb_logs",
    _metadata,
    sa.Column("quantum_id", sa.CHAR(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("last_hash", sa.CHAR(64), nullable=False),
    sa.Column("sealed", sa.Boolean, nullable=False),
    sa.Column("writer", sa.Text, nullable=False),
    sa.Column("created_ns", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("quantum_id", "attempt", name="qbb_logs_key"),
)

_events = sa.Table(
    "qbb_events",
    _metadata,
    sa.Column("quantum_id", sa.CHAR(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("timestamp_ns", sa.Integer, nullable=False),
    sa.Column("hash", sa.CHAR(64), nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),
    # The key is the optimistic-concurrency guard: a second row at the same
    # seq (a duplicate, or a writer that lost a race) is refused by SQLite.
    sa.PrimaryKeyConstraint("quantum_id", "attempt", "seq", name="qbb_events_key"),
)

_Row = tuple[str, int, int, str, int, str, bytes]
"""A ``qbb_events`` row in column order."""

_Stored = tuple[int, str, str, bytes]
"""What reading a log selects of a row: seq, kind, hash, record."""

# The hot insert goes to the driver as positional tuples: SQLAlchemy Core's
# per-row parameter processing for ``execute(insert, list_of_dicts)`` costs
# more than SQLite's own insert (measured: 14 us/row against 8). The SQL is
# still compiled from the table, so it cannot drift from the schema.
_INSERT_EVENTS: Final = str(_events.insert().compile(dialect=sqlite_dialect()))

# The claim row moves only from the state its writer last left it in: that
# is the optimistic check against a second writer. Built once, so a commit
# pays no statement construction.
_ADVANCE: Final = (
    _logs.update()
    .where(
        _logs.c.quantum_id == sa.bindparam("key_quantum_id"),
        _logs.c.attempt == sa.bindparam("key_attempt"),
        _logs.c.events == sa.bindparam("old_events"),
        _logs.c.last_hash == sa.bindparam("old_last_hash"),
        _logs.c.sealed.is_(False),
    )
    .values(
        events=sa.bindparam("new_events"),
        last_hash=sa.bindparam("new_last_hash"),
        sealed=sa.bindparam("new_sealed", type_=sa.Boolean),
        writer=sa.bindparam("new_writer"),
    )
)

_T = TypeVar("_T")


def _writer() -> str:
    # Read at each use: a forked child writes under its own pid.
    return f"{socket.gethostname()}:{os.getpid()}"


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    # A hyphenated string is accepted too: it is how the ids are stored.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _sqlite_code(err: SQLAlchemyError) -> int | None:
    code = getattr(getattr(err, "orig", None), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_busy(err: OperationalError) -> bool:
    code = _sqlite_code(err)
    if code is not None:
        return code in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(err.orig).lower()
    return "locked" in text or "busy" in text


def _again(err: LogWriteError | LogConflictError) -> LogWriteError | LogConflictError:
    """Return a fresh copy of a kept failure, to raise once more."""
    copy: LogWriteError | LogConflictError
    if isinstance(err, LogWriteError):
        copy = LogWriteError(err.errno, err.strerror, err.filename)
    else:
        copy = LogConflictError(*err.args)
    copy.__cause__ = err
    return copy


class _Claim(NamedTuple):
    events: int
    last_hash: str
    sealed: bool


class _Incoming(NamedTuple):
    """A record given to `SqliteEventStore.append_records`, with its envelope."""

    quantum_id: str
    attempt: int
    seq: int
    kind: str
    timestamp_ns: int
    prev_hash: str
    hash: str
    record: bytes

    def row(self) -> _Row:
        return (
            self.quantum_id,
            self.attempt,
            self.seq,
            self.kind,
            self.timestamp_ns,
            self.hash,
            self.record,
        )


def _parse_incoming(record: bytes) -> _Incoming:
    record = bytes(record)
    try:
        raw = orjson.loads(record)
    except orjson.JSONDecodeError as err:
        raise LogCorruptedError(f"a record to append is not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise LogCorruptedError("a record to append is not a JSON object")
    numbers = [raw.get("seq"), raw.get("attempt"), raw.get("timestamp_ns")]
    where = numbers[0] if isinstance(numbers[0], int) else None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in numbers):
        raise LogCorruptedError(
            "a record to append lacks a valid attempt, seq or timestamp_ns", seq=where
        )
    seq, attempt, ts = cast(list[int], numbers)
    quantum_id, kind = raw.get("quantum_id"), raw.get("kind")
    prev_hash, digest = raw.get("prev_hash"), raw.get("hash")
    if not (
        isinstance(quantum_id, str)
        and isinstance(kind, str)
        and isinstance(prev_hash, str)
        and isinstance(digest, str)
    ):
        raise LogCorruptedError(
            "a record to append lacks its quantum_id, kind, prev_hash or hash", seq=where
        )
    try:
        key = str(uuid.UUID(quantum_id))
    except ValueError:
        raise LogCorruptedError(f"quantum_id {quantum_id!r} is not a UUID", seq=where) from None
    # Only the bytes are checked here, not every field: a copy must keep the
    # exact bytes its hash covers, and the full check is `read`'s.
    parts = hashed_part(record)
    if parts is None or parts[1] != digest.encode() or chain_hash(prev_hash, parts[0]) != digest:
        raise LogCorruptedError(
            f"the record of quantum {key} attempt {attempt} does not match its hash "
            "(altered, or not in the stored record layout)",
            seq=where,
        )
    return _Incoming(key, attempt, seq, kind, ts, prev_hash, digest, record)


def _on_begin(conn: Connection) -> None:
    # Writers take the write lock at BEGIN, where SQLite's busy handler waits
    # for it; a deferred BEGIN would fail at once ("database is locked") when
    # its read lock cannot be upgraded. Readers take no write lock at all.
    immediate = not conn.get_execution_options().get("qbb_read", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
