"""The JSON Lines directory store: one log file per quantum attempt, in one directory tree."""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

from ...errors import LogClosedError, LogExistsError, LogWriteError
from .._merge import EMPTY, Tail, missing_suffix
from .._records import Envelope, StoredLog, parse_envelope
from .._sync import SyncPolicy
from ._files import file_log, is_json, log_file_name, log_files, unreadable_log
from ._log import JsonLinesEventLog, sync_directory

__all__ = ["JsonLinesEventStore"]

_Key = tuple[uuid.UUID, int]
_BATCH = 10_000


class JsonLinesEventStore:
    """A directory of JSON Lines logs, one file per quantum attempt.

    Parameters
    ----------
    directory : `str` or `os.PathLike`
        The directory; searched recursively for ``*.jsonl`` files. A new log
        is ``<quantum id>.<attempt>.jsonl`` (`log_file_name`) at its top; a
        log already held under another name is found by its first record
        and continued there.
    sync : `SyncPolicy`, optional
        Default policy of the logs `open_log` makes.

    Notes
    -----
    Each file is a `JsonLinesEventLog`: crash-safe, locked while a writer
    holds it. `append_records` takes each file's lock too, so a copy never
    writes into a log a writer holds (`LogExistsError`).
    """

    def __init__(self, directory: str | os.PathLike[str], *, sync: SyncPolicy | None = None):
        self._directory = Path(directory)
        self._policy = sync if sync is not None else SyncPolicy()
        self._closed = False
        self._open: list[JsonLinesEventLog] = []
        # Which file holds which quantum attempt, read once (a scan opens every
        # file), then kept up to date by this store's own writes.
        self._index: dict[_Key, Path] | None = None
        self._index_lock = threading.Lock()

    @property
    def directory(self) -> Path:
        """The directory (`pathlib.Path`)."""
        return self._directory

    def open_log(
        self, quantum_id: uuid.UUID, attempt: int, *, sync: SyncPolicy | None = None
    ) -> JsonLinesEventLog:
        """Return the log of a quantum attempt, resumed if its file holds events.

        Parameters
        ----------
        quantum_id : `uuid.UUID`
            The quantum.
        attempt : `int`
            The attempt.
        sync : `SyncPolicy`, optional
            The log's policy; the store's by default.

        Returns
        -------
        log : `JsonLinesEventLog`
            As `JsonLinesEventLog` with ``resume=True``.

        Raises
        ------
        LogExistsError
            If another writer holds the file.
        LogCorruptedError
            If the file fails its checks (a torn tail is cut, with a warning).
        """
        self._check_open()
        path = self._path_of((quantum_id, attempt), create=True)
        assert path is not None
        log = JsonLinesEventLog(path, sync=sync or self._policy, resume=True)
        if not len(log):
            log.bind(quantum_id, attempt)
        self._open.append(log)
        return log

    def quanta(self) -> list[_Key]:
        """List the quantum attempts held (by each file's first record), sorted."""
        self._check_open()
        with self._index_lock:
            self._index = self._held()
            return sorted(self._index)

    def stored_log(self, quantum_id: uuid.UUID, attempt: int) -> StoredLog:
        """Return one quantum attempt's file as a stored log (no records if none)."""
        self._check_open()
        path = self._path_of((quantum_id, attempt), create=False)
        if path is None:
            return StoredLog(str(self._directory / log_file_name(quantum_id, attempt)), _nothing)
        return file_log(path)

    def logs(self) -> Iterator[StoredLog]:
        """Yield every ``*.jsonl`` file of the directory tree, in sorted order.

        A subdirectory that cannot be listed is yielded as a log whose
        records cannot be read, so verification reports it as unreadable.
        """
        self._check_open()
        files, unreadable = log_files(self._directory)
        for err in unreadable:
            yield unreadable_log(str(err.filename), err)
        for path in files:
            yield file_log(path)

    def append_records(self, records: Iterable[bytes]) -> int:
        """Append the records not held yet, each to its quantum attempt's file.

        Parameters
        ----------
        records : `~collections.abc.Iterable` [`bytes`]
            Records of any quantum attempts, each attempt's in ``seq`` order.

        Returns
        -------
        inserted : `int`
            How many records were new.

        Raises
        ------
        LogConflictError, LogSealedError, LogCorruptedError
            As `SqliteEventStore.append_records`.
        LogExistsError
            If a writer holds a file to append to.
        LogWriteError
            If a file cannot be written; it keeps a whole prefix of its log.

        Notes
        -----
        A file's torn last line (a copy killed mid-write) is cut before the
        new records are written; the records and the file are synced, and a
        new file's directory too.
        """
        self._check_open()
        inserted = 0
        pending: dict[_Key, list[Envelope]] = {}
        count = 0
        for record in records:
            item = parse_envelope(record)
            pending.setdefault((uuid.UUID(item.quantum_id), item.attempt), []).append(item)
            count += 1
            if count >= _BATCH:
                inserted += self._append_groups(pending)
                pending, count = {}, 0
        return inserted + self._append_groups(pending)

    def close(self) -> None:
        """Close the logs `open_log` made. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for log in self._open:
            log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"JsonLinesEventStore({str(self._directory)!r}{state})"

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"The event store {self._directory} is closed.")

    def _held(self) -> dict[_Key, Path]:
        """Index the files by quantum attempt, from their first record."""
        held: dict[_Key, Path] = {}
        for path in log_files(self._directory)[0]:
            with open(path, "rb") as stream:
                first = stream.readline()
            try:
                raw = orjson.loads(first)
                key = (uuid.UUID(raw["quantum_id"]), int(raw["attempt"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # not a log a copy could continue: left alone
            held.setdefault(key, path)
        return held

    def _path_of(self, key: _Key, *, create: bool) -> Path | None:
        """Return the file of a quantum attempt: where it is held, else (``create``) its new name.

        A log already there under another name (its writer's, or the source
        of a copy into itself) is continued, never stored twice.
        """
        with self._index_lock:
            if self._index is None:
                self._index = self._held()
            path = self._index.get(key)
            if path is None:
                default = self._directory / log_file_name(*key)
                if create or default.is_file():
                    path = self._index[key] = default
            return path

    def _append_groups(self, groups: dict[_Key, list[Envelope]]) -> int:
        inserted = 0
        for key, items in groups.items():
            target = self._path_of(key, create=True)
            assert target is not None
            inserted += _append_to_file(target, items, key)
        return inserted


def _nothing() -> Iterator[tuple[int, bytes, bool]]:
    yield from ()


def _append_to_file(target: Path, items: list[Envelope], key: _Key) -> int:
    """Make ``target`` hold ``items`` too; return how many were added."""
    created = not target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise LogWriteError(err.errno, f"Cannot open {target}: {err.strerror}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogExistsError(f"{target} is in use by another log writer.") from None
        hashes: list[str] = []
        offset = 0
        needs_newline = False
        last: Envelope | None = None
        for _, record, complete in file_log(target):
            if not complete and not is_json(record):
                break  # a torn tail of an earlier, killed copy: cut below
            last = parse_envelope(record)
            hashes.append(last.hash)
            offset += len(record) + complete
            needs_newline = not complete
        tail = (
            EMPTY if last is None else Tail(len(hashes), last.hash, last.kind == "quantum_finished")
        )
        new = missing_suffix(f"{target}", tail, lambda seq: hashes[seq], items)
        try:
            if offset < os.fstat(fd).st_size:
                os.ftruncate(fd, offset)
            if needs_newline:
                os.write(fd, b"\n")
            for start in range(0, len(new), _BATCH):
                _write_all(
                    fd, b"".join(item.record + b"\n" for item in new[start : start + _BATCH])
                )
            os.fsync(fd)
            if created:
                sync_directory(target.parent)
        except OSError as err:
            raise LogWriteError(err.errno, f"Copying into {target} failed: {err.strerror}") from err
        return len(new)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
