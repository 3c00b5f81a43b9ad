"""The SQL event stores' tables, statements and the helpers their store and logs share.

One layout for SQLite and PostgreSQL: ``qbb_meta`` (key, value) holds the
store format; ``qbb_logs`` one claim row per quantum attempt; ``qbb_events``
one row per event, keyed ``(quantum_id, attempt, seq)``. The quantum id is
the hyphenated text on SQLite (the layout of format 1 files) and a native
``uuid`` on PostgreSQL; `key_of` gives the value each dialect binds.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Final, NamedTuple

import sqlalchemy as sa

from .._sql import Dialect, Uuid
from ..errors import LogConflictError, LogWriteError

__all__ = ["STORE_FORMAT", "Tables", "key_of", "make_tables"]

STORE_FORMAT: Final = "1"
"""Version of the tables this library writes, kept in ``qbb_meta``."""


class Tables(NamedTuple):
    """The three tables of an event store, and its statements, for one dialect."""

    metadata: sa.MetaData
    meta: sa.Table
    logs: sa.Table
    events: sa.Table
    advance: sa.Update
    """Moves a claim row on, only from the state its writer last left it in."""


def make_tables(dialect: Dialect) -> Tables:
    """Return the tables and statements of an event store in ``dialect``."""
    quantum_type: Any = sa.CHAR(36) if dialect == "sqlite" else Uuid(as_uuid=True)
    metadata = sa.MetaData()
    meta = sa.Table(
        "qbb_meta",
        metadata,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    logs = sa.Table(
        "qbb_logs",
        metadata,
        sa.Column("quantum_id", quantum_type, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.CHAR(64), nullable=False),
        sa.Column("sealed", sa.Boolean, nullable=False),
        sa.Column("writer", sa.Text, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("quantum_id", "attempt", name="qbb_logs_key"),
    )
    events = sa.Table(
        "qbb_events",
        metadata,
        sa.Column("quantum_id", quantum_type, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.CHAR(64), nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
        # The key is the optimistic-concurrency guard: a second row at the same
        # seq (a duplicate, or a writer that lost a race) is refused.
        sa.PrimaryKeyConstraint("quantum_id", "attempt", "seq", name="qbb_events_key"),
    )
    advance = (
        logs.update()
        .where(
            logs.c.quantum_id == sa.bindparam("key_quantum_id"),
            logs.c.attempt == sa.bindparam("key_attempt"),
            logs.c.events == sa.bindparam("old_events"),
            logs.c.last_hash == sa.bindparam("old_last_hash"),
            logs.c.sealed.is_(False),
        )
        .values(
            events=sa.bindparam("new_events"),
            last_hash=sa.bindparam("new_last_hash"),
            sealed=sa.bindparam("new_sealed", type_=sa.Boolean),
            writer=sa.bindparam("new_writer"),
        )
    )
    return Tables(metadata, meta, logs, events, advance)


def key_of(dialect: Dialect, quantum_id: uuid.UUID) -> object:
    """Return the value a dialect binds for a quantum id: text on SQLite, a UUID on PostgreSQL."""
    return str(quantum_id) if dialect == "sqlite" else quantum_id


_Row = tuple[Any, int, int, str, int, str, bytes]
"""A ``qbb_events`` row in column order (the quantum id as `key_of` gives it)."""

_Stored = tuple[int, str, str, bytes]
"""What reading a log selects of a row: seq, kind, hash, record."""


def _writer() -> str:
    # Read at each use: a forked child writes under its own pid.
    return f"{socket.gethostname()}:{os.getpid()}"


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    # A hyphenated string is accepted too: it is how the ids are stored.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


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
