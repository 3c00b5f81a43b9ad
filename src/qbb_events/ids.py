"""Dataset and quantum identifiers: time-ordered UUIDv7 and deterministic UUIDv5."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable

from .errors import InvalidDefinitionError

__all__ = ["DATASET_ID_NAMESPACE", "as_uuid", "deterministic_uuid", "uuid7"]

DATASET_ID_NAMESPACE = uuid.UUID("840b31d9-05cd-5161-b2c8-00d32b280d0f")
"""Namespace of deterministic dataset ids (UUIDv5): fixed forever, ids depend on it."""

_lock = threading.Lock()
_last_ms = 0
_last_seq = 0


def uuid7() -> uuid.UUID:
    """Return a new, time-ordered UUID version 7 (RFC 9562).

    Returns
    -------
    id : `uuid.UUID`
        48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made
        in the same millisecond by this process increasing, then 62 random bits.

    Notes
    -----
    Time-ordered ids keep B-tree inserts into the central registry local,
    which is why new dataset ids use them.
    """
    global _last_ms, _last_seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _last_seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            # Same (or an earlier, after a clock step) millisecond: count on,
            # borrowing the next millisecond if the counter runs out.
            _last_seq += 1
            if _last_seq > 0xFFF:
                _last_ms += 1
                _last_seq = 0
        ms, seq = _last_ms, _last_seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def deterministic_uuid(parts: Iterable[str]) -> uuid.UUID:
    """Return a UUIDv5 in `DATASET_ID_NAMESPACE` over ``parts``.

    Parameters
    ----------
    parts : `~collections.abc.Iterable` [`str`]
        The identifying strings; they are joined with a NUL byte, which no
        validated name or data ID value may contain, so distinct inputs never
        collide by concatenation.

    Returns
    -------
    id : `uuid.UUID`
        The same id for the same parts, on every machine.
    """
    return uuid.uuid5(DATASET_ID_NAMESPACE, "\0".join(parts))


def as_uuid(value: object, what: str = "id") -> uuid.UUID:
    """Coerce ``value`` to a `uuid.UUID`.

    Parameters
    ----------
    value : `object`
        A `uuid.UUID` or its string form.
    what : `str`
        What the value is, for the error message.

    Returns
    -------
    id : `uuid.UUID`
        The parsed id.

    Raises
    ------
    InvalidDefinitionError
        If ``value`` is neither a UUID nor a string that parses as one.
    """
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidDefinitionError(f"{what} must be a UUID, got {value!r}.")
