"""`ArtifactURI`: the ``file://`` URI of an artifact, usable wherever a local path is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["ArtifactURI", "DatasetRefURIs"]


class ArtifactURI(os.PathLike[str]):
    """The ``file://`` URI of an artifact: a small stand-in for ``ResourcePath``.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Local path of the artifact; made absolute.
    predicted : `bool`, optional
        Whether the artifact is only predicted (it was not found, or was not
        looked for). Its URI then ends with the ``#predicted`` fragment, as the
        reference marks predicted URIs.

    Notes
    -----
    ``str(uri)`` and `geturl` give the URI (``file:///...``); `os.fspath`
    (hence ``open(uri)`` and ``pathlib.Path(uri)``) gives the local path, so
    executor code written for ``ResourcePath.ospath`` or for plain paths
    works unchanged. Only the ``file`` scheme exists here.
    """

    __slots__ = ("_path", "_predicted")

    def __init__(self, path: str | os.PathLike[str], *, predicted: bool = False) -> None:
        self._path = Path(path).absolute()
        self._predicted = bool(predicted)

    @property
    def scheme(self) -> str:
        """URI scheme, always ``file`` (`str`)."""
        return "file"

    @property
    def ospath(self) -> str:
        """Local path of the artifact (`str`), as ``ResourcePath.ospath``."""
        return str(self._path)

    @property
    def local_path(self) -> Path:
        """Local path of the artifact (`pathlib.Path`)."""
        return self._path

    @property
    def predicted(self) -> bool:
        """Whether the artifact is only predicted (`bool`)."""
        return self._predicted

    @property
    def fragment(self) -> str:
        """``predicted`` for a predicted URI, else empty (`str`)."""
        return "predicted" if self._predicted else ""

    def geturl(self) -> str:
        """Return the URI as a string.

        Returns
        -------
        url : `str`
            ``file:///...``, with ``#predicted`` for a predicted URI.
        """
        url = self._path.as_uri()
        return url + "#predicted" if self._predicted else url

    def basename(self) -> str:
        """Return the file name of the artifact.

        Returns
        -------
        name : `str`
            The last component of the path.
        """
        return self._path.name

    def exists(self) -> bool:
        """Return whether the artifact exists now.

        Returns
        -------
        exists : `bool`
            Whether a file is at the path. This looks behind the butler's
            back: the check is not recorded.
        """
        return self._path.is_file()

    def __fspath__(self) -> str:
        return str(self._path)

    def __str__(self) -> str:
        return self.geturl()

    def __repr__(self) -> str:
        return f"ArtifactURI({self.geturl()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArtifactURI):
            return NotImplemented
        return self._path == other._path and self._predicted == other._predicted

    def __hash__(self) -> int:
        return hash((self._path, self._predicted))


class DatasetRefURIs(NamedTuple):
    """The URIs of one dataset: its primary artifact and its components.

    Parameters
    ----------
    primaryURI : `ArtifactURI`
        The artifact holding the whole dataset.
    componentURIs : `dict` [`str`, `ArtifactURI`]
        Artifacts of separately stored components; always empty here, since
        this datastore never disassembles a dataset.
    """

    primaryURI: ArtifactURI
    componentURIs: dict[str, ArtifactURI]
