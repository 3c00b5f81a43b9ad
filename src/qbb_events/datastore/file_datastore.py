"""`FileDatastore`: a directory of artifacts with atomic writes and trust-mode reads."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import (
    ArtifactNotFoundError,
    BadReadRequestError,
    DatastoreRootNotFoundError,
    DatastoreWriteError,
    OutputAlreadyStoredError,
)
from ..model import DatasetRef
from ..records import FileRecord
from ._uri import ArtifactURI
from .formatters import FORMATTERS, Formatter, check_parameters
from .templates import DEFAULT_TEMPLATE, PathTemplate

__all__ = ["DEFAULT_DATASTORE_NAME", "FileDatastore", "file_digest"]

DEFAULT_DATASTORE_NAME = "FileDatastore"
"""Name a `FileDatastore` writes in its records unless given another."""

_CHUNK = 8 << 20
# Rendering a template costs more than the stat it leads to, so paths are
# cached per ref; the cache is dropped whole when full to bound its memory.
_PATH_CACHE_SIZE = 1 << 16
# Hard links give an atomic "create if absent"; these errors mean the file
# system has none, and we fall back to rename after an existence check.
_NO_LINK_ERRNOS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}
)


class FileDatastore:
    """A directory of files, one per dataset, at paths predicted from refs.

    Parameters
    ----------
    root : `str` or `os.PathLike`
        Root directory. It must exist unless ``create`` is true.
    name : `str`, optional
        Datastore name written in records and used as the key of record
        mappings; `DEFAULT_DATASTORE_NAME` (``"FileDatastore"``) by default, so
        records written by any process agree without configuration.
    template : `str`, optional
        Path template (see `PathTemplate`).
    fsync : `bool`, optional
        Whether to ``fsync`` each artifact before publishing it. Writes are
        atomic either way; ``fsync`` adds durability across power loss.
    create : `bool`, optional
        Create the root directory (and its parents) if it does not exist.

    Raises
    ------
    DatastoreRootNotFoundError
        If the root does not exist (and ``create`` is false) or is not a
        directory (a `FileNotFoundError`).

    Notes
    -----
    A write goes to a hidden temporary file in the target directory, is
    hashed as it is written, and is published with a hard link, which fails
    if the artifact exists: no reader ever sees a partial file, a killed
    writer leaves only a ``.*.tmp`` file behind, and an existing artifact is
    never replaced. Reads need no records ("trust mode"): the path is
    computed from the ref.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        name: str = DEFAULT_DATASTORE_NAME,
        template: str = DEFAULT_TEMPLATE,
        fsync: bool = False,
        create: bool = False,
    ) -> None:
        self._template = PathTemplate(template)  # checked before anything is created
        self._root = Path(root).absolute()
        if create:
            self._root.mkdir(parents=True, exist_ok=True)
        elif not self._root.is_dir():
            # A mistyped root must not pass for an empty datastore: every input
            # would then be recorded as unavailable, with no error.
            what = "is not a directory" if self._root.exists() else "does not exist"
            raise DatastoreRootNotFoundError(
                errno.ENOENT,
                f"Datastore root {what} (FileDatastore(root, create=True) makes a new one)",
                str(self._root),
            )
        self._prefix = str(self._root) + os.sep
        self._name = name
        self._fsync = fsync
        self._known_dirs: set[str] = set()
        self._paths: dict[DatasetRef, str] = {}
        self._tmp_counter = itertools.count()

    @property
    def root(self) -> Path:
        """Root directory (`pathlib.Path`)."""
        return self._root

    @property
    def name(self) -> str:
        """Datastore name written in records (`str`)."""
        return self._name

    def formatter(self, ref: DatasetRef) -> Formatter:
        """Return the formatter of a ref's storage class.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        formatter : `Formatter`
            The formatter that writes and reads it.
        """
        return FORMATTERS[ref.dataset_type.storage_class]

    def relative_path(self, ref: DatasetRef) -> str:
        """Return the path of a ref's artifact relative to the root.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        path : `str`
            The relative path, ``/``-separated.

        Raises
        ------
        PathEscapeError
            If the ref's run or data ID would lead outside the root.
        """
        rel = self._paths.get(ref)
        if rel is None:
            rel = self._template.format(ref, self.formatter(ref).extension)
            if len(self._paths) >= _PATH_CACHE_SIZE:
                self._paths.clear()
            self._paths[ref] = rel
        return rel

    def path(self, ref: DatasetRef) -> Path:
        """Return the absolute path of a ref's artifact.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        path : `pathlib.Path`
            Where the artifact is, or would be.
        """
        return self._root / self.relative_path(ref)

    def uri(self, ref: DatasetRef, *, predicted: bool = False) -> ArtifactURI:
        """Return the ``file://`` URI of a ref's artifact, without checking it exists.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        predicted : `bool`, optional
            Mark the URI as predicted (its artifact is not known to exist).

        Returns
        -------
        uri : `ArtifactURI`
            The artifact's URI.

        Raises
        ------
        PathEscapeError
            If the ref's path would leave the root.
        """
        return ArtifactURI(self._prefix + self.relative_path(ref), predicted=predicted)

    def predicted_record(self, ref: DatasetRef) -> FileRecord:
        """Return the record a ref's artifact would have, without touching the disk.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        record : `FileRecord`
            Path from the template, formatter and storage class; no size or
            checksum (``record.predicted`` is true).

        Raises
        ------
        PathEscapeError
            If the ref's path would leave the root.
        """
        formatter = self.formatter(ref)
        return FileRecord(
            dataset_id=ref.id,
            datastore_name=self._name,
            path=self.relative_path(ref),
            formatter=formatter.name,
            storage_class=formatter.storage_class,
        )

    def record(self, ref: DatasetRef) -> FileRecord:
        """Return the record of an artifact that exists, reading it to compute its checksum.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        record : `FileRecord`
            Path, formatter, size and checksum, as `put` would have returned.

        Raises
        ------
        ArtifactNotFoundError
            If no artifact is stored.
        PathEscapeError
            If the ref's path would leave the root.
        """
        predicted = self.predicted_record(ref)
        path = self._prefix + predicted.path
        try:
            size, checksum = file_digest(path)
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                errno.ENOENT, f"No artifact for {ref.dataset_type.name} {ref.id}", path
            ) from None
        return predicted.model_copy(update={"file_size": size, "checksum": checksum})

    def export_records(self, refs: Iterable[DatasetRef]) -> dict[str, list[FileRecord]]:
        """Return the records of the artifacts that exist, keyed by datastore name.

        Describes files written by anything (raw data, a previous run) so that
        they can be given to a `Quantum` or ``from_predicted`` as input records,
        or ingested into a registry.

        Parameters
        ----------
        refs : `~collections.abc.Iterable` [`DatasetRef`]
            The datasets.

        Returns
        -------
        records : `dict` [`str`, `list` [`FileRecord`]]
            ``{self.name: [record, ...]}`` in the order of ``refs``, one record
            per dataset whose artifact exists; datasets without an artifact are
            left out (empty dict when none exists).

        Raises
        ------
        PathEscapeError
            If a ref's path would leave the root.

        Notes
        -----
        Size and checksum are computed by reading each artifact in chunks, so
        memory stays bounded whatever the artifacts' sizes.
        """
        found: list[FileRecord] = []
        seen: set[DatasetRef] = set()
        for ref in refs:
            if ref in seen:
                continue
            seen.add(ref)
            try:
                found.append(self.record(ref))
            except ArtifactNotFoundError:
                continue
        return {self._name: found} if found else {}

    # -- existence -------------------------------------------------------

    def exists(self, ref: DatasetRef) -> bool:
        """Return whether the ref's artifact is stored.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        stored : `bool`
            `True` if its artifact exists. A ref whose path would leave the
            root cannot be stored here: `False`, without touching the disk.
        """
        try:
            rel = self.relative_path(ref)
        except ValueError:
            return False
        return os.path.isfile(self._prefix + rel)

    # -- reading ---------------------------------------------------------

    def get(
        self,
        ref: DatasetRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        storage_class: str | None = None,
    ) -> Any:
        """Read a dataset.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters (``columns`` for ``arrow``).
        storage_class : `str`, optional
            Storage class the caller expects; it must be the dataset type's.

        Returns
        -------
        obj : `object`
            The object.

        Raises
        ------
        BadReadRequestError
            For an unknown parameter or a wrong storage class.
        PathEscapeError
            If the ref's path would leave the root.
        ArtifactNotFoundError
            If no artifact is stored.
        UnreadableArtifactError
            If the artifact cannot be decoded.
        """
        return self.read(ref, parameters=parameters, storage_class=storage_class)[0]

    def read(
        self,
        ref: DatasetRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        storage_class: str | None = None,
    ) -> tuple[Any, int]:
        """Read a dataset and say how many bytes were read.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters.
        storage_class : `str`, optional
            Storage class the caller expects.

        Returns
        -------
        obj : `object`
            The object.
        nbytes : `int`
            Size of the artifact read.

        Raises
        ------
        BadReadRequestError, PathEscapeError, ArtifactNotFoundError, UnreadableArtifactError
            As for `get`.
        """
        formatter = self.formatter(ref)
        if storage_class is not None and storage_class != formatter.storage_class:
            raise BadReadRequestError(
                f"Dataset {ref.dataset_type.name!r} has storage class "
                f"{formatter.storage_class!r}, not {storage_class!r}."
            )
        check_parameters(formatter, parameters)
        path = self._prefix + self.relative_path(ref)
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                errno.ENOENT, f"No artifact for {ref.dataset_type.name} {ref.id}", path
            ) from None
        return formatter.from_bytes(data, parameters or {}), len(data)

    # -- writing ---------------------------------------------------------

    def put(self, obj: Any, ref: DatasetRef) -> FileRecord:
        """Write a dataset atomically and return its record.

        Parameters
        ----------
        obj : `object`
            The object; it must fit the dataset type's storage class.
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        record : `FileRecord`
            Path, formatter, size and checksum of the artifact.

        Raises
        ------
        StorageClassError
            If the object does not fit the storage class.
        PathEscapeError
            If the ref's path would leave the root.
        OutputAlreadyStoredError
            If the artifact exists; it is left untouched.
        DatastoreWriteError
            If the file system refuses the write; nothing is published.
        """
        formatter = self.formatter(ref)
        rel = self.relative_path(ref)
        final = self._prefix + rel
        if os.path.lexists(final):
            # Cheap early refusal; the hard link below is the race-free check.
            raise self._already_stored(ref, final)
        data = formatter.to_bytes(obj)
        size, checksum = self._write_atomic(final, data, ref)
        return FileRecord(
            dataset_id=ref.id,
            datastore_name=self._name,
            path=rel,
            formatter=formatter.name,
            storage_class=formatter.storage_class,
            file_size=size,
            checksum=checksum,
        )

    def _already_stored(self, ref: DatasetRef, path: str) -> OutputAlreadyStoredError:
        return OutputAlreadyStoredError(
            f"Dataset {ref.dataset_type.name} {ref.id} is already stored at {path}; "
            "the existing artifact was left untouched."
        )

    def _write_atomic(
        self, final: str, data: bytes | memoryview, ref: DatasetRef
    ) -> tuple[int, str]:
        directory, base = os.path.split(final)
        tmp = f"{directory}/.{base}.{os.getpid()}.{next(self._tmp_counter)}.tmp"
        digest = hashlib.sha256()
        view = memoryview(data)
        try:
            fd = self._create(directory, tmp)
            try:
                for start in range(0, max(len(view), 1), _CHUNK):
                    chunk = view[start : start + _CHUNK]
                    digest.update(chunk)
                    while chunk:
                        chunk = chunk[os.write(fd, chunk) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._publish(tmp, final, ref)
        except OSError as err:
            _unlink_quietly(tmp)
            raise DatastoreWriteError(
                err.errno, f"Writing {ref.dataset_type.name} {ref.id} failed: {err.strerror}", final
            ) from err
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return len(view), "sha256:" + digest.hexdigest()

    def _create(self, directory: str, tmp: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        if directory not in self._known_dirs:
            os.makedirs(directory, exist_ok=True)
            self._known_dirs.add(directory)
        try:
            return os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            # The directory was removed behind our back: make it again.
            os.makedirs(directory, exist_ok=True)
            return os.open(tmp, flags, 0o644)

    def _publish(self, tmp: str, final: str, ref: DatasetRef) -> None:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise self._already_stored(ref, final) from None
        except OSError as err:
            if err.errno not in _NO_LINK_ERRNOS:
                raise
            if os.path.lexists(final):
                raise self._already_stored(ref, final) from None
            os.rename(tmp, final)
            return
        # The artifact is published; a temporary name left behind is harmless.
        _unlink_quietly(tmp)

    # -- removing --------------------------------------------------------

    def remove(self, ref: DatasetRef) -> bool:
        """Delete a dataset's artifact.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        removed : `bool`
            `True` if an artifact was deleted, `False` if there was none.

        Raises
        ------
        PathEscapeError
            If the ref's path would leave the root.
        """
        try:
            os.unlink(self._prefix + self.relative_path(ref))
        except FileNotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"FileDatastore({str(self._root)!r}, name={self._name!r})"


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Return the size and the ``sha256:`` checksum of a file, read in chunks.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file.

    Returns
    -------
    size : `int`
        Its size in bytes.
    checksum : `str`
        ``sha256:`` and the hex digest of its bytes, as in a `FileRecord`.
    """
    with open(path, "rb") as stream:
        # hashlib reads the file itself, in C, with a bounded buffer.
        digest = hashlib.file_digest(stream, "sha256")
        size = stream.tell()
    return size, "sha256:" + digest.hexdigest()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
