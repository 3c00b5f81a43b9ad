"""The JSON Lines event log: one record per line, written as it happens, synced by policy."""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path
from typing import Any

from ...errors import LogClosedError, LogExistsError, LogWriteError, TornLogWarning
from .._base import EventLog
from .._flusher import GroupFlusher
from .._reading import scan_log
from .._sync import SyncPolicy

__all__ = ["JsonLinesEventLog"]


def _sync_fd(fd: int) -> None:
    # fdatasync skips the inode's timestamps, which a log never needs back.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS and Windows
        os.fsync(fd)


class JsonLinesEventLog(EventLog):
    """An append-only file holding one event per line.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The log file. It is created, with its missing parent directories; an
        existing empty file is reused.
    sync : `SyncPolicy`, optional
        When events are forced to stable storage; the default is group commit
        (`SyncPolicy.group`).
    resume : `bool`, optional
        Open an existing log to append after its events. Its events are
        checked first; a torn last line (its writer was killed mid-write) is
        reported with a `TornLogWarning` and cut off, and appending continues
        after the last whole event. Without ``resume``, a file holding events
        is refused.

    Raises
    ------
    LogExistsError
        If ``path`` holds events and ``resume`` is false, or another writer
        (in this process or another) holds the file.
    LogCorruptedError
        If ``resume`` finds a log that fails its checks anywhere but in a
        torn last line; the file is left as it was.
    LogWriteError
        If the file cannot be created, cut back or synced.

    Warns
    -----
    TornLogWarning
        If ``resume`` cut a torn last line off.

    Notes
    -----
    Each line is an event's record: its canonical JSON with ``hash`` as the
    last member (see `docs/event-log.md`), written with a single ``write`` on
    a file opened in append mode, so the operating system holds every event
    once `append` returns and a killed process loses nothing. The sync
    policy decides what survives a power loss. A write that fails is cut back
    and raises `LogWriteError`, leaving the log whole. Under ``every_event`` a
    failed sync cuts its event back the same way. Under the other policies a
    failed sync is raised by the next `append` or `close`, and the log then
    refuses every append: after a failed ``fsync`` the kernel may have
    dropped pages it reported written, so only a fresh check of the file
    (``resume``) can say what it holds. The file is locked (``flock``)
    while open, so two writers never append to the same log.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: SyncPolicy | None = None,
        resume: bool = False,
    ) -> None:
        super().__init__()
        self._path = Path(path)
        self._policy = sync if sync is not None else SyncPolicy()
        self._fd: int | None = None
        self._size = 0
        self._pending = 0
        self._failure: OSError | None = None
        self._flusher: GroupFlusher | None = None
        self._cut = 0
        fd = self._open()
        try:
            size = os.fstat(fd).st_size
            if size and not resume:
                raise LogExistsError(
                    f"{self._path} already holds events; each quantum attempt needs its own "
                    "log (open it with resume=True to append after them)."
                )
            if size:
                self._recover(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self._policy.mode == "group":
            self._flusher = GroupFlusher(
                self._flush_in_background,
                self._policy.max_delay_ms / 1000,
                name=f"qbb-sync:{self._path.name}",
            )

    def _open(self) -> int:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LogWriteError(err.errno, f"Cannot create the log's directory: {err}") from err
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self._path, flags | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                fd = os.open(self._path, flags, 0o644)
                created = False
        except OSError as err:
            raise LogWriteError(
                err.errno, f"Cannot open the log: {err.strerror}", str(self._path)
            ) from err
        # An exclusive lock, then the emptiness check: two processes can never
        # both take the same file, even an empty one.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogExistsError(f"{self._path} is in use by another log writer.") from None
        if created:
            # The new name must survive a power loss too, or a synced log
            # could vanish with its directory entry.
            try:
                sync_directory(self._path.parent)
            except OSError as err:
                os.close(fd)
                raise LogWriteError(err.errno, f"Cannot sync {self._path.parent}: {err}") from err
        return fd

    def _recover(self, fd: int, size: int) -> None:
        scan = scan_log(self._path)
        if scan.end < size:
            warnings.warn(
                f"{self._path}: cut {size - scan.end} bytes after the last whole event "
                f"(seq {len(scan.events) - 1}): a line torn by a writer killed mid-write, "
                "or blank lines.",
                TornLogWarning,
                stacklevel=3,
            )
        try:
            if scan.end < size:
                os.ftruncate(fd, scan.end)
            if scan.needs_newline:
                os.write(fd, b"\n")
            if scan.end < size or scan.needs_newline:
                _sync_fd(fd)
        except OSError as err:
            raise LogWriteError(err.errno, f"Cannot repair the log's tail: {err}") from err
        self._cut = size - scan.end
        self._size = scan.end + scan.needs_newline
        self._restore(scan.events, scan.records)

    @property
    def path(self) -> Path:
        """The log file (`pathlib.Path`)."""
        return self._path

    @property
    def sync_policy(self) -> SyncPolicy:
        """When this log syncs its events (`SyncPolicy`)."""
        return self._policy

    @property
    def bytes_cut(self) -> int:
        """How many bytes of a torn tail ``resume`` cut off (`int`)."""
        return self._cut

    def _store(self, entry: tuple[int, int, str, dict[str, Any]]) -> bytes:
        if self._fd is None:
            raise LogClosedError(f"The log {self._path} is closed; cannot append.")
        if self._failure is not None:
            what = f"cannot append seq {entry[0]}: an earlier sync failed"
            raise self._error(self._failure, what)
        record, digest = self._encode(entry)
        line = record + b"\n"
        try:
            written = os.write(self._fd, line)
            if written < len(line):
                # A short write (a signal, a nearly full disk): finish or fail.
                view = memoryview(line)[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
            if self._policy.mode == "every_event":
                _sync_fd(self._fd)
        except OSError as err:
            # Cut back any part of the line that reached the file, so the log
            # stays whole lines and later appends are not glued to a fragment.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise self._error(err, f"appending seq {entry[0]} failed") from err
        self._size += len(line)
        self._hashes.append(digest)
        if self._flusher is not None:
            self._pending += 1
            pending, group = self._pending, self._policy.max_events
            if pending == group:
                # A full group is synced by the flusher thread while this
                # writer goes on; fdatasync releases the GIL.
                self._flusher.kick()
            elif pending >= 2 * group:
                # The disk cannot keep up: hold the writer back, so no more
                # than two groups are ever unsynced. This event is in the
                # file whatever the sync does; a failure is raised by the
                # next append or close().
                with contextlib.suppress(LogWriteError):
                    self._sync_pending()
            elif pending == 1:
                self._flusher.arm()
        return record

    def _sync_pending(self) -> None:
        """Sync the pending group; the caller holds the lock and owns the fd."""
        assert self._fd is not None
        self._pending = 0
        if self._flusher is not None:
            self._flusher.disarm()
        try:
            _sync_fd(self._fd)
        except OSError as err:
            self._failure = err
            raise self._error(err, "syncing the log failed") from err

    def _flush_in_background(self) -> None:
        with self._lock:
            if self._fd is None or not self._pending or self._failure is not None:
                return
            fd, self._pending = self._fd, 0
        # Synced outside the lock, so the writer keeps appending meanwhile;
        # close() stops this thread before it closes the file.
        try:
            _sync_fd(fd)
        except OSError as err:
            # Kept for the next append or close(), whose caller can act on it.
            with self._lock:
                self._failure = self._failure or err

    def _on_seal(self) -> None:
        # quantum_finished is already in the file: a failed sync must not make
        # the append look refused. It is kept and raised by close().
        if self._fd is not None and self._policy.mode != "every_event":
            self._pending = 0
            try:
                _sync_fd(self._fd)
            except OSError as err:
                self._failure = err

    def close(self) -> None:
        """Sync and close the file; the events stay readable through `events`.

        Raises
        ------
        LogWriteError
            If the file could not be synced (now, in the background, or when
            the log was sealed); the file is closed all the same.
        """
        if self._flusher is not None:
            self._flusher.stop()
        with self._lock:
            if self._fd is None:
                return
            try:
                _sync_fd(self._fd)
            except OSError as err:
                self._failure = self._failure or err
            finally:
                os.close(self._fd)
                self._fd = None
            failure, self._failure = self._failure, None
            if failure is not None:
                raise self._error(failure, "syncing the log failed") from failure

    def _error(self, err: OSError, what: str) -> LogWriteError:
        return LogWriteError(err.errno, f"{what}: {err.strerror or err}", str(self._path))

    def __repr__(self) -> str:
        return f"JsonLinesEventLog({str(self._path)!r}, events={len(self)})"


def sync_directory(path: Path) -> None:
    """Sync a directory, so the names of files just created in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
