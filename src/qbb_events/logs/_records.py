"""The stored form of one event, shared by every durable store.

A record is the canonical JSON of the event's body (keys sorted, no spaces,
UTF-8) with ``"hash"`` appended as its last member: the bytes before the
hash are exactly the bytes the hash covers. The file log writes one record
per line; the SQLite store keeps one record per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["HASH_SUFFIX_LEN", "RecordSource", "StoredLog", "encode_record", "hashed_part"]

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
