"""`DeferredDatasetHandle`: a read put off until the task asks for it, and recorded then."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .model import DatasetRef

__all__ = ["DeferredDatasetHandle", "DeferredLoader"]

DeferredLoader = Callable[[DatasetRef, Mapping[str, Any] | None, str | None], Any]
"""What a handle calls to load its dataset: ``loader(ref, parameters, storage_class)``.

The butler hands its own recording read in, so this module needs no butler.
"""


class DeferredDatasetHandle:
    """A handle that reads its dataset when asked, recording the load.

    Parameters
    ----------
    loader : `DeferredLoader`
        Reads the dataset and records ``deferred_loaded``; the butler's.
    ref : `DatasetRef`
        The dataset.
    parameters : `~collections.abc.Mapping`, optional
        Read parameters given to ``getDeferred``.
    storage_class : `str`, optional
        Storage class given to ``getDeferred``.
    """

    __slots__ = ("_loader", "_parameters", "_ref", "_storage_class")

    def __init__(
        self,
        loader: DeferredLoader,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None,
        storage_class: str | None,
    ) -> None:
        self._loader = loader
        self._ref = ref
        # Kept as given: a malformed value is refused, and recorded, by the load.
        self._parameters = dict(parameters) if isinstance(parameters, Mapping) else parameters
        self._storage_class = storage_class

    @property
    def ref(self) -> DatasetRef:
        """The dataset (`DatasetRef`)."""
        return self._ref

    @property
    def dataId(self) -> Mapping[str, int | str]:
        """The dataset's data ID (`~collections.abc.Mapping`)."""
        return self._ref.data_id

    @property
    def parameters(self) -> Mapping[str, Any] | None:
        """Read parameters given to ``getDeferred`` (`~collections.abc.Mapping` or `None`)."""
        return self._parameters

    def get(
        self, *, parameters: Mapping[str, Any] | None = None, storageClass: str | None = None
    ) -> Any:
        """Read the dataset, as `QuantumBackedButler.get` does, logging ``deferred_loaded``.

        Parameters
        ----------
        parameters : `~collections.abc.Mapping`, optional
            Read parameters, merged over those given to ``getDeferred``.
        storageClass : `str`, optional
            Storage class expected; defaults to the one given to ``getDeferred``.

        Returns
        -------
        obj : `object`
            The dataset.

        Raises
        ------
        BadReadRequestError, ArtifactNotFoundError, UnreadableArtifactError, ButlerClosedError
            As `QuantumBackedButler.get`.
        """
        given = self._parameters
        merged: Any
        if parameters is None or given is None:
            merged = given if parameters is None else parameters
        elif isinstance(given, Mapping) and isinstance(parameters, Mapping):
            merged = {**given, **parameters}
        else:  # a malformed one is passed on, to be refused and recorded
            merged = given if not isinstance(given, Mapping) else parameters
        return self._loader(self._ref, merged or None, storageClass or self._storage_class)

    def __repr__(self) -> str:
        return f"DeferredDatasetHandle({self._ref!r})"
