"""Group commit: a thread that syncs a log at most a delay after its first pending event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["GroupFlusher"]


class GroupFlusher:
    """Calls ``flush`` at most ``delay_s`` after `arm` while the writer is idle.

    The writer counts its own pending events and syncs inline once a group is
    full; this thread covers the other half of the group-commit promise, so a
    writer that goes quiet still has its events synced within the delay.

    Parameters
    ----------
    flush : `~collections.abc.Callable`
        Syncs whatever is pending; called from the flusher thread. It must
        take the log's own lock and must not raise (it keeps its error for
        the writer to report).
    delay_s : `float`
        The longest an event may wait for its sync.
    name : `str`
        Thread name, for debugging.
    """

    def __init__(self, flush: Callable[[], None], delay_s: float, name: str) -> None:
        self._flush = flush
        self._delay_s = delay_s
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._deadline: float | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None

    def arm(self) -> None:
        """Start the clock for the first pending event, unless it already runs."""
        with self._cond:
            if self._deadline is None and not self._stopped:
                self._wake(time.monotonic() + self._delay_s)

    def kick(self) -> None:
        """Sync as soon as the thread can: a group is full."""
        with self._cond:
            if not self._stopped:
                self._wake(time.monotonic())

    def _wake(self, deadline: float) -> None:
        # The caller holds the condition's lock.
        self._deadline = deadline
        if self._thread is None:
            # Started on first use: a log that syncs inline never pays for a thread.
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        else:
            self._cond.notify()

    def disarm(self) -> None:
        """Forget the clock: the writer synced everything itself."""
        with self._cond:
            self._deadline = None

    def stop(self) -> None:
        """Stop the thread and wait for it; pending events are the caller's to sync."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._deadline is None:
                        self._cond.wait()
                        continue
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopped:
                    return
                self._deadline = None
            # Outside our lock: flush takes the log's lock, and an append
            # holding that lock may be calling arm() at this very moment.
            self._flush()
