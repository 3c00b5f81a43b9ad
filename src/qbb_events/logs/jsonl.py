"""The JSON Lines event log: one canonical-JSON event per line, written as it happens."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from ..errors import LogClosedError, LogExistsError, LogWriteError
from ..events import canonical_json, chain_hash
from .base import EventLog

__all__ = ["JsonLinesEventLog"]


class JsonLinesEventLog(EventLog):
    """An append-only file holding one event per line.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The log file. It is created; an existing empty file is reused, an
        existing file holding events is refused.

    Raises
    ------
    LogExistsError
        If ``path`` already holds events or another writer holds it.

    Notes
    -----
    Each line is the canonical JSON of the event's body (keys sorted, no
    spaces) with its ``hash`` appended as the last member, written with a
    single ``write`` on a file opened in append mode, so the operating system
    holds every event as soon as `append` returns. A writer killed mid-line
    leaves a torn last line, which `read_log` reports and skips; a write that
    fails is cut back and raises `LogWriteError`, leaving the log whole. The
    file is locked (``flock``) while open, and ``fsync``-ed when the log is
    sealed or closed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self._path, flags | os.O_EXCL, 0o644)
        except FileExistsError:
            fd = os.open(self._path, flags, 0o644)
        # An exclusive lock, then the emptiness check: two processes can never
        # both take the same file, even an empty one.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogExistsError(f"{self._path} is in use by another log writer.") from None
        if os.fstat(fd).st_size:
            os.close(fd)
            raise LogExistsError(
                f"{self._path} already holds events; each quantum attempt needs its own log."
            )
        self._fd: int | None = fd
        self._size = 0
        self._sync_error: OSError | None = None

    @property
    def path(self) -> Path:
        """The log file (`pathlib.Path`)."""
        return self._path

    def _store(self, entry: tuple[int, int, str, dict[str, Any]]) -> None:
        if self._fd is None:
            raise LogClosedError(f"The log {self._path} is closed; cannot append.")
        prev = self._prev_hash(entry[0])
        canonical = canonical_json(self._body(entry, prev))
        digest = chain_hash(prev, canonical)
        # The hash goes last, so the bytes before it are exactly what was hashed.
        line = b'%s,"hash":"%s"}\n' % (canonical[:-1], digest.encode())
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            # Cut back any part of the line that reached the file, so the log
            # stays whole lines and later appends are not glued to a fragment.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise LogWriteError(
                err.errno, f"Appending seq {entry[0]} failed: {err.strerror}", str(self._path)
            ) from err
        self._size += len(line)
        self._hashes.append(digest)

    def _on_seal(self) -> None:
        # quantum_finished is already in the file: a failed sync must not make
        # the append look refused. It is kept and raised by close().
        try:
            self._sync()
        except OSError as err:
            self._sync_error = err

    def _sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Sync and close the file; the events stay readable through `events`.

        Raises
        ------
        LogWriteError
            If the file could not be synced (now or when the log was sealed);
            the file is closed all the same.
        """
        with self._lock:
            if self._fd is None:
                return
            try:
                self._sync()
            except OSError as err:
                self._sync_error = err
            finally:
                os.close(self._fd)
                self._fd = None
            failure, self._sync_error = self._sync_error, None
            if failure is not None:
                raise LogWriteError(
                    failure.errno, f"Syncing the log failed: {failure.strerror}", str(self._path)
                ) from failure

    def __repr__(self) -> str:
        return f"JsonLinesEventLog({str(self._path)!r}, events={len(self)})"
