"""The stored form of one event, shared by every durable store.

A record is the canonical JSON of the event's body (keys sorted, no spaces,
UTF-8) with ``"hash"`` appended as its last member: the bytes before the
hash are exactly the bytes the hash covers. The file log writes one record
per line; the SQLite store keeps one record per row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast

import orjson

from ..errors import LogCorruptedError
from ..events import chain_hash

__all__ = [
    "HASH_SUFFIX_LEN",
    "Envelope",
    "RecordSource",
    "StoredLog",
    "encode_record",
    "hashed_part",
    "parse_envelope",
]

_HASH_KEY = b',"hash":"'
HASH_SUFFIX_LEN = len(_HASH_KEY) + 64 + 2
"""Length of the ``,"hash":"<64 hex>"}`` that ends every record."""


def encode_record(canonical: bytes, digest: str) -> bytes:
    """Return the record of an event from its canonical body and hash.

    Parameters
    ----------
    canonical : `bytes`
        Canonical JSON of the event without ``hash``.
    digest : `str`
        The event's hash.

    Returns
    -------
    record : `bytes`
        The record, without a line ending.
    """
    return b'%s,"hash":"%s"}' % (canonical[:-1], digest.encode("ascii"))


def hashed_part(record: bytes) -> tuple[bytes, bytes] | None:
    """Split a record into the canonical body its hash covers and that hash.

    Parameters
    ----------
    record : `bytes`
        A record as `encode_record` makes it.

    Returns
    -------
    parts : `tuple` [`bytes`, `bytes`] or `None`
        The canonical body and the ASCII hash, or `None` if ``record`` does
        not end with a ``hash`` member in the writer's layout.
    """
    if len(record) <= HASH_SUFFIX_LEN or record[-HASH_SUFFIX_LEN:-66] != _HASH_KEY:
        return None
    if record[-2:] != b'"}':
        return None
    return record[:-HASH_SUFFIX_LEN] + b"}", record[-66:-2]


class Envelope(NamedTuple):
    """A record and the envelope fields a store keys and chains it by."""

    quantum_id: str
    attempt: int
    seq: int
    kind: str
    timestamp_ns: int
    prev_hash: str
    hash: str
    record: bytes


def parse_envelope(record: bytes) -> Envelope:
    """Read a record's envelope, checking only that its bytes match its hash.

    Parameters
    ----------
    record : `bytes`
        A record (without a line ending).

    Returns
    -------
    envelope : `Envelope`
        Its quantum id (hyphenated), attempt, ``seq``, kind, timestamp,
        ``prev_hash`` and hash, and the record itself.

    Raises
    ------
    LogCorruptedError
        If the record is not a JSON object, lacks an envelope field, or its
        bytes do not match its hash.
    """
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
    return Envelope(key, attempt, seq, kind, ts, prev_hash, digest, record)


class RecordSource(Protocol):
    """Something that reads one stored log's records in stored order."""

    def __call__(self) -> Iterator[tuple[int, bytes, bool]]:
        """Yield ``(position, record, complete)`` for each stored record."""
        ...


@dataclass(frozen=True, slots=True)
class StoredLog:
    """One quantum attempt's log as a store holds it.

    Parameters
    ----------
    location : `str`
        Where the log lives, for messages: a file path, or the database and
        the quantum for a row store.
    records : `RecordSource`
        Reads the records in stored order as ``(position, record,
        complete)``: the position is a line number (files) or a row number
        (tables); ``complete`` is `False` only for a file's last line when it
        lacks its newline (its writer may have been killed mid-write).
    """

    location: str
    records: RecordSource

    def __iter__(self) -> Iterator[tuple[int, bytes, bool]]:
        return self.records()
