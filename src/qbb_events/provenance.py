"""`QuantumProvenanceData`: what a quantum's log folds into, and its JSON form."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ._lsst_json import LSST_ID_SETS, lsst_document, parse_lsst_document
from .errors import ArgumentTypeError
from .quantum import Quantum
from .records import AnyRecord, FileRecord, record_from_data

__all__ = ["ProvenanceWarning", "QuantumProvenanceData", "WarningTag"]

_Report = TypeVar("_Report", covariant=True)


class _TransferTarget(Protocol[_Report]):
    """What `QuantumProvenanceData.collect_and_transfer` needs: a `Registry`."""

    def collect_and_transfer(
        self, quanta: Iterable[Quantum], provenance: Iterable[QuantumProvenanceData]
    ) -> _Report:
        """Register the quanta's outputs, records and provenance."""
        ...


def _sorted_ids(ids: frozenset[uuid.UUID]) -> list[uuid.UUID]:
    return sorted(ids)


# Sets are written sorted so that equal provenance always has equal JSON.
IdSet = Annotated[frozenset[uuid.UUID], PlainSerializer(_sorted_ids, return_type=list[uuid.UUID])]

WarningTag = Literal["inputs_used_but_missing", "unchecked_predicted_inputs"]
"""Tags of the warnings a fold can raise."""


class ProvenanceWarning(BaseModel):
    """A warning found while folding a log.

    Parameters
    ----------
    tag : `str`
        ``inputs_used_but_missing``: inputs marked as used (by a deferred
        handle) that were found missing and never read; they were dropped
        from ``actual_inputs``. ``unchecked_predicted_inputs``: predicted
        inputs never checked for existence nor read, so ``available_inputs``
        may be incomplete.
    dataset_ids : `list` [`uuid.UUID`]
        The datasets concerned, sorted.
    message : `str`
        A sentence for people.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: WarningTag
    dataset_ids: list[uuid.UUID]
    message: str


class QuantumProvenanceData(BaseModel):
    """Which datasets a quantum predicted, found, used and wrote.

    Parameters
    ----------
    predicted_inputs : `frozenset` [`uuid.UUID`]
        Inputs and init-inputs of the quantum.
    available_inputs : `frozenset` [`uuid.UUID`]
        Predicted inputs observed present (existence check or successful read).
    unavailable_inputs : `frozenset` [`uuid.UUID`]
        Predicted inputs observed missing at least once (not in the reference's
        model; kept so analytics need not re-fold).
    actual_inputs : `frozenset` [`uuid.UUID`]
        Predicted inputs actually used.
    predicted_outputs : `frozenset` [`uuid.UUID`]
        Outputs of the quantum.
    actual_outputs : `frozenset` [`uuid.UUID`]
        Outputs written and not purged.
    datastore_records : `dict` [`str`, `list` [`FileRecord`]]
        Records of the actual outputs still stored, by datastore name, sorted by
        dataset id.
    quantum_id : `uuid.UUID` or `None`
        Id of the quantum, `None` for an empty log.
    status : `str` or `None`
        Status from ``quantum_finished``; `None` while the quantum runs.
    warnings : `list` [`ProvenanceWarning`]
        Warnings of the fold, also logged by the butler.

    Notes
    -----
    JSON round-trips exactly: ``QuantumProvenanceData.model_validate_json(
    p.model_dump_json()) == p``. Records are rebuilt through an explicit
    registry of record kinds; nothing named in the data is imported.
    `to_lsst_json` and `from_lsst_json` speak the reference's own document
    (``docs/interop.md``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    predicted_inputs: IdSet = frozenset()
    available_inputs: IdSet = frozenset()
    unavailable_inputs: IdSet = frozenset()
    actual_inputs: IdSet = frozenset()
    predicted_outputs: IdSet = frozenset()
    actual_outputs: IdSet = frozenset()
    datastore_records: dict[str, list[AnyRecord]] = Field(default_factory=dict)
    quantum_id: uuid.UUID | None = None
    status: Literal["succeeded", "failed", "no_work", "blocked"] | None = None
    warnings: list[ProvenanceWarning] = Field(default_factory=list)

    def to_lsst_json(self) -> str:
        """Write the document the reference's ``QuantumProvenanceData`` reads.

        Returns
        -------
        text : `str`
            The five id sets and, per datastore, ``{"dataset_ids": [...],
            "records": {"lsst.daf.butler.datastore.stored_file_info.StoredFileInfo":
            {id hex: {"file_datastore_records": [row]}}}}``. Both the reference's
            ``model_validate_json`` and ``direct(**json.loads(text))`` accept it.

        Notes
        -----
        ``unavailable_inputs``, ``quantum_id``, ``status`` and ``warnings`` have
        no place in the reference's document and are not written; our own JSON
        (`model_dump_json`) keeps them.
        """
        return lsst_document(
            {name: getattr(self, name) for name in LSST_ID_SETS}, self.datastore_records
        )

    @classmethod
    def from_lsst_json(cls, text: str | bytes) -> QuantumProvenanceData:
        """Read a document the reference's ``QuantumProvenanceData`` wrote.

        Parameters
        ----------
        text : `str` or `bytes`
            The reference's ``model_dump_json()``, or `to_lsst_json`.

        Returns
        -------
        provenance : `QuantumProvenanceData`
            The five sets and the records; the fields the reference does not
            write keep their defaults.

        Raises
        ------
        RecordTypeError
            If a record class name is not in our explicit registry (it is
            never imported).
        InterchangeError
            If the document is not in the reference's shape or holds a record
            we cannot represent.
        """
        return cls(**parse_lsst_document(text))

    @classmethod
    def direct(cls, **kwargs: Any) -> QuantumProvenanceData:
        """Build provenance from trusted, JSON-decoded data, skipping validation.

        The counterpart of the reference's ``direct``: for data this library
        wrote, e.g. ``json.loads(p.model_dump_json())``, much faster than
        `model_validate` on many documents.

        Parameters
        ----------
        **kwargs
            The fields of `QuantumProvenanceData`: id sets as iterables of
            `uuid.UUID` or `str`, ``datastore_records`` as
            ``{name: [record or its dict]}``, ``warnings`` as models or dicts;
            a missing field takes its default.

        Returns
        -------
        provenance : `QuantumProvenanceData`
            Equal to what `model_validate` would build from the same data.

        Raises
        ------
        ArgumentTypeError
            If a keyword is not a field (a `TypeError`).
        RecordTypeError
            If a record names an unregistered ``record_type``.

        Notes
        -----
        Ids are converted, not checked beyond what `uuid.UUID` does, and the
        status is taken as given. Records still go through the explicit
        registry of record kinds: no class named in the data is imported.
        """
        unknown = kwargs.keys() - cls.model_fields.keys()
        if unknown:
            raise ArgumentTypeError(
                f"QuantumProvenanceData.direct() got unknown fields {sorted(unknown)}."
            )
        fields: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name in _ID_SET_FIELDS:
                fields[name] = frozenset(map(_as_id, value))
            elif name == "datastore_records":
                fields[name] = _records(value)
            elif name == "warnings":
                fields[name] = [_warning(w) for w in value]
            elif name == "quantum_id":
                fields[name] = None if value is None else _as_id(value)
            else:
                fields[name] = value
        return cls.model_construct(**fields)

    @classmethod
    def collect_and_transfer(
        cls,
        registry: _TransferTarget[_Report],
        quanta: Iterable[Quantum],
        provenance: Iterable[QuantumProvenanceData],
    ) -> _Report:
        """Register executed quanta's actual outputs, their records and provenance.

        The reference's entry point, with its meaning: ``quanta`` and
        ``provenance`` are zipped (same length, same order; single-pass
        iterables work), each quantum's actual outputs are registered and
        their datastore records imported. Unlike the reference, the quanta
        and their provenance rows are stored too, and a repeated transfer
        changes nothing.

        Parameters
        ----------
        registry : `Registry`
            The registry to fill (this model does no I/O itself: it
            delegates to `Registry.collect_and_transfer`).
        quanta : `~collections.abc.Iterable` [`Quantum`]
            The quanta that ran.
        provenance : `~collections.abc.Iterable` [`QuantumProvenanceData`]
            Their extracted provenance, in the same order.

        Returns
        -------
        report : `TransferReport`
            What was new.
        """
        return registry.collect_and_transfer(quanta, provenance)


_ID_SET_FIELDS = frozenset(
    {
        "predicted_inputs",
        "available_inputs",
        "unavailable_inputs",
        "actual_inputs",
        "predicted_outputs",
        "actual_outputs",
    }
)


def _as_id(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _records(value: Mapping[str, Iterable[Any]]) -> dict[str, list[FileRecord]]:
    return {name: [record_from_data(r) for r in group] for name, group in value.items()}


def _warning(value: ProvenanceWarning | Mapping[str, Any]) -> ProvenanceWarning:
    if isinstance(value, ProvenanceWarning):
        return value
    return ProvenanceWarning.model_construct(
        tag=value["tag"],
        dataset_ids=[_as_id(i) for i in value["dataset_ids"]],
        message=value["message"],
    )
