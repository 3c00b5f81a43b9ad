"""Copying artifacts out of a datastore, with an index that lets them be ingested elsewhere.

Retrieval runs in two phases so that a refusal leaves the destination as it
was (but for empty directories): every artifact is first *staged* and checked
against its datastore record (a copy is written under a hidden temporary name
beside its target while it is hashed; for a link the source is hashed), and
only when all are checked is each one published under its name (renamed, or
linked), and the index written last.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Final, Literal, NamedTuple, get_args

import orjson

from ..errors import (
    ArtifactChecksumError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    InvalidDefinitionError,
    PathEscapeError,
)
from ..model import DatasetRef
from ..records import FileRecord
from .file_datastore import _NO_LINK_ERRNOS, FileDatastore, _unlink_quietly, file_digest

__all__ = [
    "INDEX_NAME",
    "TRANSFER_MODES",
    "TransferMode",
    "retrieve_artifacts",
    "retrieve_artifacts_zip",
]

TransferMode = Literal["auto", "copy", "hardlink", "symlink", "relsymlink"]
"""How `retrieve_artifacts` places each artifact; ``auto`` means ``copy``."""

TRANSFER_MODES: Final = frozenset(get_args(TransferMode))
"""Every transfer mode `retrieve_artifacts` accepts."""

INDEX_NAME: Final = "_index.json"
"""Name of the index written in the destination directory, or inside the zip."""

INDEX_FORMAT: Final = "qbb_events.artifact_index"
"""``format`` field of every index, so a reader can tell it from other JSON."""

_CHUNK = 8 << 20
_tmp_counter = itertools.count()


class _Planned(NamedTuple):
    ref: DatasetRef
    source: str
    name: str  # relative, "/"-separated, inside the destination


class _Staged(NamedTuple):
    planned: _Planned
    tmp: str
    target: Path
    record: FileRecord


def _safe_name(name: str, ref: DatasetRef) -> str:
    # Names come from refs (data): none may be absolute or climb out.
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or "\\" in name or any(p in ("..", ".") for p in parts):
        raise PathEscapeError(
            f"Artifact path {name!r} of dataset {ref.id} would leave the destination."
        )
    return name


def _plan(
    datastore: FileDatastore, refs: Iterable[DatasetRef], preserve_path: bool
) -> list[_Planned]:
    planned: list[_Planned] = []
    by_name: dict[str, DatasetRef] = {}
    seen: set[uuid.UUID] = set()
    for ref in refs:
        if ref.id in seen:
            continue
        seen.add(ref.id)
        rel = datastore.relative_path(ref)
        name = _safe_name(rel if preserve_path else PurePosixPath(rel).name, ref)
        other = by_name.setdefault(name, ref)
        if other is not ref:
            raise ArtifactExistsError(
                errno.EEXIST,
                f"Datasets {other.id} and {ref.id} would both be retrieved as {name!r}; "
                "use preserve_path=True",
                name,
            )
        planned.append(_Planned(ref, str(datastore.path(ref)), name))
    return planned


def _index(staged: Sequence[tuple[DatasetRef, str, FileRecord]]) -> bytes:
    artifacts = [
        {
            "id": str(ref.id),
            "dataset_type": {
                "name": ref.dataset_type.name,
                "storage_class": ref.dataset_type.storage_class,
                "dimensions": list(ref.dataset_type.dimensions),
            },
            "data_id": ref.data_id.to_dict(),
            "run": ref.run,
            "path": name,
            "file_size": record.file_size,
            "checksum": record.checksum,
            "record": record.model_dump(mode="json"),
        }
        for ref, name, record in staged
    ]
    document = {"format": INDEX_FORMAT, "version": 1, "artifacts": artifacts}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def _checked(
    datastore: FileDatastore,
    ref: DatasetRef,
    known: FileRecord | None,
    size: int,
    checksum: str,
    source: str,
) -> FileRecord:
    """Return the record for the index, after comparing the bytes with the known record."""
    if known is None or known.predicted:
        # Trust mode: no record says what the bytes should be; the index
        # carries what was read.
        record = datastore.predicted_record(ref)
        return record.model_copy(update={"file_size": size, "checksum": checksum})
    if known.file_size != size or known.checksum != checksum:
        raise ArtifactChecksumError(
            errno.EIO,
            f"Artifact of dataset {ref.dataset_type.name} {ref.id} does not match its datastore "
            f"record (size {size}, {checksum}; the record says size {known.file_size}, "
            f"{known.checksum}); nothing was retrieved",
            source,
        )
    return known


def _missing(ref: DatasetRef, source: str) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(
        errno.ENOENT, f"No artifact for {ref.dataset_type.name} {ref.id} to retrieve", source
    )


def _tmp_beside(target: Path) -> str:
    return f"{target.parent}/.{target.name}.{os.getpid()}.{next(_tmp_counter)}.tmp"


def _copy_stream(src: BinaryIO, dst: IO[bytes]) -> tuple[int, str]:
    # One pass: the bytes checked are the bytes written.
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    return size, "sha256:" + digest.hexdigest()


def _copy_hashing(source: str, tmp: str) -> tuple[int, str]:
    with open(source, "rb") as src, open(tmp, "xb") as dst:
        return _copy_stream(src, dst)


def _stage(
    datastore: FileDatastore,
    planned: _Planned,
    known: FileRecord | None,
    destination: Path,
    mode: str,
) -> _Staged:
    # A copy is staged under a temporary name; a link needs no staging, since
    # what is checked is the source itself: it is made at publication.
    target = destination / planned.name
    source = planned.source
    tmp = _tmp_beside(target) if mode == "copy" else ""
    try:
        if mode == "copy":
            size, checksum = _copy_hashing(source, tmp)
        else:
            size, checksum = file_digest(source)
    except FileNotFoundError:
        if tmp:
            _unlink_quietly(tmp)
        if not os.path.isfile(source):
            raise _missing(planned.ref, source) from None
        raise
    try:
        record = _checked(datastore, planned.ref, known, size, checksum, source)
    except BaseException:
        if tmp:
            _unlink_quietly(tmp)
        raise
    return _Staged(planned, tmp, target, record)


def _link(mode: str, source: str, at: str, directory: Path) -> None:
    if mode == "hardlink":
        os.link(source, at)
    else:
        os.symlink(source if mode == "symlink" else os.path.relpath(source, directory), at)


def _publish_link(mode: str, staged: _Staged, overwrite: bool) -> None:
    target, source = staged.target, staged.planned.source
    if not overwrite:
        try:  # link() and symlink() never replace: atomic refusal
            _link(mode, source, str(target), target.parent)
        except FileExistsError:
            raise _exists(target) from None
        return
    tmp = _tmp_beside(target)
    try:
        _link(mode, source, tmp, target.parent)
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _publish(tmp: str, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    # Never replace: a hard link fails if the name exists, atomically.
    try:
        os.link(tmp, target, follow_symlinks=False)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as err:
        if err.errno not in _NO_LINK_ERRNOS:
            raise
        if os.path.lexists(target):
            raise _exists(target) from None
        os.rename(tmp, target)
        return
    _unlink_quietly(tmp)


def _exists(target: Path) -> ArtifactExistsError:
    return ArtifactExistsError(
        errno.EEXIST, f"{target} exists and overwrite=False; nothing was replaced", str(target)
    )


def _refuse_existing(paths: Iterable[Path]) -> None:
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        raise ArtifactExistsError(
            errno.EEXIST,
            f"{len(existing)} file(s) already exist in the destination, e.g. {existing[0]}, "
            "and overwrite=False; nothing was retrieved",
            str(existing[0]),
        )


def _write_file(path: Path, data: bytes, overwrite: bool) -> None:
    tmp = _tmp_beside(path)
    try:
        with open(tmp, "xb") as stream:
            stream.write(data)
        _publish(tmp, path, overwrite)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _outside_root(datastore: FileDatastore, dest: Path) -> None:
    # Retrieving into the datastore could replace the very artifacts being
    # retrieved (a symlink to itself, with overwrite=True): it is refused.
    root = os.path.realpath(datastore.root)
    where = os.path.realpath(dest)
    if where == root or where.startswith(root + os.sep):
        raise InvalidDefinitionError(
            f"Cannot retrieve artifacts into {dest}: it is inside the datastore root {root}."
        )


def resolve_mode(transfer: object) -> str:
    """Return the transfer mode to use for a requested one.

    Parameters
    ----------
    transfer : `str`
        One of `TRANSFER_MODES`.

    Returns
    -------
    mode : `str`
        ``copy``, ``hardlink``, ``symlink`` or ``relsymlink`` (``auto`` is ``copy``).

    Raises
    ------
    InvalidDefinitionError
        If the mode is unknown (a `ValueError`).
    """
    if not isinstance(transfer, str) or transfer not in TRANSFER_MODES:
        raise InvalidDefinitionError(
            f"Unknown transfer mode {transfer!r}; known: {sorted(TRANSFER_MODES)}."
        )
    # A copy is the only mode whose result is independent of the datastore:
    # a hard link shares bytes (editing it edits the artifact), a symlink breaks
    # when the datastore moves.
    return "copy" if transfer == "auto" else transfer


def retrieve_artifacts(
    datastore: FileDatastore,
    refs: Iterable[DatasetRef],
    known: Mapping[uuid.UUID, FileRecord],
    destination: str | os.PathLike[str],
    *,
    transfer: str,
    preserve_path: bool,
    overwrite: bool,
) -> tuple[list[Path], list[str]]:
    """Place the artifacts of ``refs`` in a directory and write its index.

    Parameters
    ----------
    datastore : `FileDatastore`
        Where the artifacts are.
    refs : `~collections.abc.Iterable` [`DatasetRef`]
        The datasets; repeated ids are retrieved once.
    known : `~collections.abc.Mapping` [`uuid.UUID`, `FileRecord`]
        Records the bytes must match (outputs written, inputs described).
    destination : `str` or `os.PathLike`
        Directory; created if absent.
    transfer : `str`
        One of `TRANSFER_MODES`.
    preserve_path : `bool`
        Keep each artifact's path relative to the datastore root, or only its file name.
    overwrite : `bool`
        Whether existing files (artifacts and index) may be replaced.

    Returns
    -------
    paths : `list` [`pathlib.Path`]
        The retrieved artifacts, in the order of ``refs``.
    names : `list` [`str`]
        The same, relative to ``destination``.

    Raises
    ------
    ArtifactNotFoundError, ArtifactChecksumError, ArtifactExistsError, PathEscapeError
        Before anything is published in ``destination``.
    InvalidDefinitionError
        For an unknown transfer mode, or a destination inside the datastore root.
    """
    mode = resolve_mode(transfer)
    dest = Path(destination).absolute()
    _outside_root(datastore, dest)
    planned = _plan(datastore, refs, preserve_path)
    index_path = dest / INDEX_NAME
    if not overwrite:
        _refuse_existing([index_path, *(dest / p.name for p in planned)])
    dest.mkdir(parents=True, exist_ok=True)
    staged: list[_Staged] = []
    made: set[Path] = set()
    try:
        for item in planned:
            directory = (dest / item.name).parent
            if directory not in made:
                directory.mkdir(parents=True, exist_ok=True)
                made.add(directory)
            staged.append(_stage(datastore, item, known.get(item.ref.id), dest, mode))
        for done in staged:
            if mode == "copy":
                _publish(done.tmp, done.target, overwrite)
            else:
                _publish_link(mode, done, overwrite)
    finally:
        for done in staged:
            if done.tmp:
                _unlink_quietly(done.tmp)  # a no-op for those published
    entries = [(s.planned.ref, s.planned.name, s.record) for s in staged]
    _write_file(index_path, _index(entries), overwrite)
    return [s.target for s in staged], [s.planned.name for s in staged]


def zip_name(refs: Iterable[DatasetRef]) -> str:
    """Return the file name of the zip of some datasets: the same for the same ids.

    Parameters
    ----------
    refs : `~collections.abc.Iterable` [`DatasetRef`]
        The datasets.

    Returns
    -------
    name : `str`
        A UUIDv5 of the sorted ids, with ``.zip``.
    """
    ids = ",".join(sorted({str(ref.id) for ref in refs}))
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, 'qbb_events:artifacts:' + ids)}.zip"


def retrieve_artifacts_zip(
    datastore: FileDatastore,
    refs: Sequence[DatasetRef],
    known: Mapping[uuid.UUID, FileRecord],
    destination: str | os.PathLike[str],
    *,
    overwrite: bool,
) -> tuple[Path, list[str]]:
    """Write the artifacts of ``refs`` and their index into one zip file.

    Parameters
    ----------
    datastore : `FileDatastore`
        Where the artifacts are.
    refs : `~collections.abc.Sequence` [`DatasetRef`]
        The datasets.
    known : `~collections.abc.Mapping` [`uuid.UUID`, `FileRecord`]
        Records the bytes must match.
    destination : `str` or `os.PathLike`
        Directory of the zip; created if absent.
    overwrite : `bool`
        Whether an existing zip of the same name may be replaced.

    Returns
    -------
    path : `pathlib.Path`
        The zip, named by `zip_name`.
    names : `list` [`str`]
        Its artifact members, each the artifact's path relative to the datastore root.

    Raises
    ------
    ArtifactNotFoundError, ArtifactChecksumError, ArtifactExistsError, PathEscapeError
        Before the zip is published.
    InvalidDefinitionError
        If the destination is inside the datastore root.
    """
    dest = Path(destination).absolute()
    _outside_root(datastore, dest)
    planned = _plan(datastore, refs, preserve_path=True)
    target = dest / zip_name(p.ref for p in planned)
    if not overwrite:
        _refuse_existing([target])
    dest.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    entries: list[tuple[DatasetRef, str, FileRecord]] = []
    try:
        # Artifacts are stored, not deflated: Parquet and most science formats
        # are compressed already, and a stored member can be read in place.
        with zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for item in planned:
                size, checksum = _zip_member(zf, item)
                record = _checked(
                    datastore, item.ref, known.get(item.ref.id), size, checksum, item.source
                )
                entries.append((item.ref, item.name, record))
            zf.writestr(INDEX_NAME, _index(entries))
        _publish(tmp, target, overwrite)
    finally:
        _unlink_quietly(tmp)
    return target, [name for _, name, _ in entries]


def _zip_member(zf: zipfile.ZipFile, item: _Planned) -> tuple[int, str]:
    try:
        src = open(item.source, "rb")  # noqa: SIM115 -- closed below, after the member
    except FileNotFoundError:
        raise _missing(item.ref, item.source) from None
    with src, zf.open(item.name, "w", force_zip64=True) as member:
        return _copy_stream(src, member)
