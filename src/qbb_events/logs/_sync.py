"""Durability policies: when a log makes its events survive a power loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SyncMode", "SyncPolicy"]

SyncMode = Literal["every_event", "group", "on_close"]

# A group held longer than a day is no group commit; the bound also keeps the
# timer within what a thread can wait for.
_MAX_DELAY_MS = 86_400_000.0


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """When a durable log forces its events to stable storage.

    The file log hands each event to the operating system as it is appended,
    so a killed process loses nothing that `EventLog.append` acknowledged,
    whatever the policy; the policy decides what survives a power loss or a
    kernel crash. The SQLite store holds a batch in memory until it commits,
    so for it the policy also bounds what a killed process loses.

    Parameters
    ----------
    mode : {"every_event", "group", "on_close"}
        ``every_event``: each append returns only once its event is on
        stable storage; nothing acknowledged is ever lost, at the price of one
        ``fdatasync`` (or SQLite commit) per event.
        ``group`` (the default): events are synced in groups, by a background
        thread, once ``max_events`` are pending or ``max_delay_ms`` after the
        first pending event, whichever comes first; the writer waits for the
        disk only when ``2 * max_events`` are pending, so a power loss loses
        fewer than ``2 * max_events`` events, and none older than about
        ``max_delay_ms``.
        ``on_close``: synced only when the log is sealed or closed.
        Under every mode, ``quantum_finished`` and ``close()`` always sync.
    max_events : `int`, optional
        ``group`` only: sync once this many events are pending.
    max_delay_ms : `float`, optional
        ``group`` only: sync at most this long after the first pending event
        (at most a day).

    Raises
    ------
    ValueError
        If ``mode`` is unknown or a bound is not positive.
    """

    mode: SyncMode = "group"
    max_events: int = 1000
    max_delay_ms: float = 50.0

    def __post_init__(self) -> None:
        if self.mode not in ("every_event", "group", "on_close"):
            raise ValueError(
                f"unknown sync mode {self.mode!r}; use 'every_event', 'group' or 'on_close'"
            )
        if isinstance(self.max_events, bool) or not isinstance(self.max_events, int):
            raise ValueError(f"max_events must be an int, not {self.max_events!r}")
        if self.max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {self.max_events}")
        if not 0 < self.max_delay_ms <= _MAX_DELAY_MS:
            raise ValueError(
                f"max_delay_ms must be positive and at most {_MAX_DELAY_MS:,} (a day), "
                f"not {self.max_delay_ms!r}"
            )

    @classmethod
    def every_event(cls) -> SyncPolicy:
        """Sync each event before `append` returns.

        Returns
        -------
        policy : `SyncPolicy`
            The ``every_event`` policy.
        """
        return cls("every_event")

    @classmethod
    def group(cls, max_events: int = 1000, max_delay_ms: float = 50.0) -> SyncPolicy:
        """Sync in groups of at most ``max_events`` or ``max_delay_ms`` (the default).

        Parameters
        ----------
        max_events : `int`, optional
            Sync once this many events are pending.
        max_delay_ms : `float`, optional
            Sync at most this long after the first pending event.

        Returns
        -------
        policy : `SyncPolicy`
            A ``group`` policy.
        """
        return cls("group", max_events, max_delay_ms)

    @classmethod
    def on_close(cls) -> SyncPolicy:
        """Sync only when the log is sealed or closed.

        Returns
        -------
        policy : `SyncPolicy`
            The ``on_close`` policy.
        """
        return cls("on_close")

    @classmethod
    def parse(cls, text: str) -> SyncPolicy:
        """Read a policy from its command-line spelling.

        Parameters
        ----------
        text : `str`
            ``every_event``, ``on_close``, ``group`` or
            ``group:<max_events>:<max_delay_ms>``.

        Returns
        -------
        policy : `SyncPolicy`
            The policy.

        Raises
        ------
        ValueError
            If ``text`` names no policy.
        """
        mode, _, rest = text.partition(":")
        if mode != "group" or not rest:
            if rest:
                raise ValueError(f"only the group policy takes bounds: {text!r}")
            return cls(mode)  # type: ignore[arg-type]  # checked in __post_init__
        events, _, delay = rest.partition(":")
        try:
            return cls.group(int(events), float(delay) if delay else 50.0)
        except ValueError as err:
            raise ValueError(f"bad group policy {text!r}: {err}") from None
