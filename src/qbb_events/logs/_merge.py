"""The one merge rule of every store: append the missing suffix, refuse another history.

Copying a log into a store that may already hold some of it (a second copy,
a copy cut short, the writer's own store) must store each event once and
never two histories of one quantum attempt. `missing_suffix` decides, for
one quantum attempt, which incoming records are new, from what the store
holds (`Tail`) and the hash it holds at a given ``seq``; the stores only
read their tail and write what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..errors import LogConflictError, LogCorruptedError, LogSealedError
from ..events import GENESIS_HASH
from ._records import Envelope

__all__ = ["EMPTY", "Tail", "missing_suffix"]


class Tail(NamedTuple):
    """What a store holds of one quantum attempt's log: its end."""

    events: int
    last_hash: str
    sealed: bool

    @classmethod
    def after(cls, events: int, last: Envelope) -> Tail:
        """Return the tail of a log of ``events`` records ending in ``last``."""
        return cls(events, last.hash, last.kind == "quantum_finished")


EMPTY = Tail(0, GENESIS_HASH, False)
"""The tail of a log the store does not hold."""


def missing_suffix(
    label: str,
    tail: Tail,
    held_hash: Callable[[int], str | None],
    items: Iterable[Envelope],
) -> list[Envelope]:
    """Return the records a store must append to hold ``items`` as well.

    Parameters
    ----------
    label : `str`
        The quantum attempt and the store, for messages.
    tail : `Tail`
        What the store holds of the log.
    held_hash : `~collections.abc.Callable`
        The hash the store holds at a ``seq`` below ``tail.events``.
    items : `~collections.abc.Iterable` [`Envelope`]
        Records of this quantum attempt, in ``seq`` order.

    Returns
    -------
    new : `list` [`Envelope`]
        The records that continue the stored log, in order; empty if the
        store holds them all.

    Raises
    ------
    LogConflictError
        If a record holds another event than the store at its ``seq``, or
        does not continue the stored log (a gap, or a ``prev_hash`` that is
        not the stored last hash).
    LogSealedError
        If a new record follows a stored ``quantum_finished``.
    LogCorruptedError
        If a log would start with anything but ``quantum_started``.
    """
    stored, last_hash, sealed = tail
    new: list[Envelope] = []
    for item in items:
        count = stored + len(new)
        if item.seq < count:
            held = held_hash(item.seq) if item.seq < stored else new[item.seq - stored].hash
            if held != item.hash:
                raise LogConflictError(
                    f"{label} holds another event at seq {item.seq} "
                    f"(hash {held}, not {item.hash}): the histories diverge"
                )
            continue
        if sealed:
            raise LogSealedError(
                f"{label} is sealed by quantum_finished at seq {count - 1}; "
                f"cannot append seq {item.seq}"
            )
        if item.seq != count:
            raise LogConflictError(
                f"{label}: seq {item.seq} does not continue the log, which ends "
                f"with {count} events; seq {count} is missing"
            )
        if item.prev_hash != last_hash:
            raise LogConflictError(
                f"{label}: seq {item.seq} names prev_hash {item.prev_hash}, but the "
                f"stored log ends in {last_hash}"
            )
        if count == 0 and item.kind != "quantum_started":
            raise LogCorruptedError(
                f"a log must start with quantum_started, not {item.kind}", seq=0
            )
        new.append(item)
        last_hash = item.hash
        sealed = item.kind == "quantum_finished"
    return new
