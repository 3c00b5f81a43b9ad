"""`DeferredDatasetHandle`: a read put off until the task asks for it, and recorded then."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .model import DatasetRef

if TYPE_CHECKING:
    from .butler import QuantumBackedButler

__all__ = ["DeferredDatasetHandle"]


class DeferredDatasetHandle:
    """A handle that reads its dataset when asked, recording the load.

    Parameters
    ----------
    butler : `QuantumBackedButler`
        The butler that made it.
    ref : `DatasetRef`
        The dataset.
    parameters : `~collections.abc.Mapping`, optional
        Read parameters given to ``getDeferred``.
    storage_class : `str`, optional
        Storage class given to ``getDeferred``.
    """

    __slots__ = ("_butler", "_parameters", "_ref", "_storage_class")

    def __init__(
        self,
        butler: QuantumBackedButler,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None,
        storage_class: str | None,
    ) -> None:
        self._butler = butler
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
        return self._butler._read(
            self._ref, merged or None, storageClass or self._storage_class, "deferred_loaded"
        )

    def __repr__(self) -> str:
        return f"DeferredDatasetHandle({self._ref!r})"
