"""The domain model: dataset types, data IDs and dataset refs.

All of them are immutable, hashable and validated when constructed, so an
invalid definition fails where it is written rather than deep inside a run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from .errors import InvalidDataIdError, InvalidDefinitionError
from .ids import as_uuid, deterministic_uuid, uuid7

__all__ = [
    "STORAGE_CLASSES",
    "DataId",
    "DataIdValue",
    "DatasetRef",
    "DatasetType",
    "deterministic_dataset_id",
]

STORAGE_CLASSES: Final = frozenset({"json", "arrow", "bytes"})
"""Storage classes a `FileDatastore` can write: JSON values, Arrow tables, raw bytes."""

DataIdValue = int | str
"""Type of a data ID value."""

# \Z, not $: "$" also matches before a trailing newline.
_DATASET_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Lone surrogates cannot be encoded as UTF-8, so no event could record them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def check_text(
    value: object, what: str, error: type[InvalidDefinitionError] = InvalidDefinitionError
) -> str:
    """Return ``value`` if it is a non-empty string without control characters.

    Parameters
    ----------
    value : `object`
        The value to check.
    what : `str`
        What it is, for the message.
    error : `type`
        The error class to raise.

    Returns
    -------
    value : `str`
        The value, unchanged.

    Raises
    ------
    InvalidDefinitionError
        Or ``error``, if the value does not qualify.
    """
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise error(
            f"{what} must be a non-empty string without control characters or lone "
            f"surrogates, got {value!r}."
        )
    return value


class DataId(Mapping[str, DataIdValue]):
    """An immutable, hashable mapping of dimension name to ``int`` or ``str``.

    Parameters
    ----------
    values : `~collections.abc.Mapping` [`str`, `int` | `str`], optional
        The data ID. Keys keep the order given.

    Raises
    ------
    InvalidDataIdError
        If a key is not an identifier or a value is not an ``int`` or ``str``
        (``bool`` is refused although it is an ``int``).
    """

    __slots__ = ("_hash", "_items")

    _items: dict[str, DataIdValue]
    _hash: int

    def __init__(self, values: Mapping[str, DataIdValue] | None = None) -> None:
        if isinstance(values, DataId):
            self._items, self._hash = values._items, values._hash
            return
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise InvalidDataIdError(f"A data ID must be a mapping, got {values!r}.")
        items: dict[str, DataIdValue] = {}
        for key, value in values.items():
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                raise InvalidDataIdError(f"Data ID key {key!r} is not a valid dimension name.")
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise InvalidDataIdError(
                    f"Data ID value for {key!r} must be an int or a str, "
                    f"got {type(value).__name__} {value!r}."
                )
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                # Events store data IDs as JSON integers, which are limited to 64 bits.
                raise InvalidDataIdError(
                    f"Data ID value for {key!r} must fit in a signed 64-bit integer, got {value!r}."
                )
            # Subclasses (enums) are stored as their plain value, so equality,
            # hashing, ids and paths all see the same thing.
            if isinstance(value, str):
                value = str.__str__(value)
                check_text(value, f"Data ID value for {key!r}", InvalidDataIdError)
            else:
                value = int(value)
            items[key] = value
        self._items = items
        self._hash = hash(frozenset(items.items()))

    def __getitem__(self, key: str) -> DataIdValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataId):
            return self._hash == other._hash and self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"DataId({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through the constructor: cached hashes of strings differ
        # between processes, so they must never travel in a pickle.
        return (DataId, (self._items,))

    def to_dict(self) -> dict[str, DataIdValue]:
        """Return the data ID as a new plain `dict`.

        Returns
        -------
        data_id : `dict` [`str`, `int` | `str`]
            A copy, safe to mutate.
        """
        return dict(self._items)


class DatasetType:
    """A named kind of dataset: its storage class and data-ID dimensions.

    Parameters
    ----------
    name : `str`
        Dotted identifier, e.g. ``calexp`` or ``calexp.wcs``.
    storage_class : `str`
        One of `STORAGE_CLASSES`.
    dimensions : `~collections.abc.Iterable` [`str`], optional
        Names of the data-ID keys of its datasets, in path order.

    Raises
    ------
    InvalidDefinitionError
        If the name, storage class or a dimension name is invalid, or a
        dimension is repeated.
    """

    __slots__ = ("_dimensions", "_hash", "_name", "_storage_class")

    def __init__(self, name: str, storage_class: str, dimensions: Iterable[str] = ()) -> None:
        if not isinstance(name, str) or not _DATASET_TYPE_NAME.match(name):
            raise InvalidDefinitionError(
                f"Dataset type name {name!r} is not a dotted identifier "
                "(letters, digits and underscores, not starting with a digit)."
            )
        if storage_class not in STORAGE_CLASSES:
            raise InvalidDefinitionError(
                f"Unknown storage class {storage_class!r} for dataset type {name!r}; "
                f"known: {sorted(STORAGE_CLASSES)}."
            )
        if isinstance(dimensions, str):
            raise InvalidDefinitionError(
                f"Dimensions of {name!r} must be an iterable of names, not the string "
                f"{dimensions!r}."
            )
        dims = tuple(dimensions)
        for dim in dims:
            if not isinstance(dim, str) or not _IDENTIFIER.match(dim):
                raise InvalidDefinitionError(f"Dimension name {dim!r} of {name!r} is invalid.")
        if len(set(dims)) != len(dims):
            raise InvalidDefinitionError(f"Dataset type {name!r} repeats a dimension: {dims}.")
        self._name = name
        self._storage_class = storage_class
        self._dimensions = dims
        self._hash = hash((name, storage_class, dims))

    @property
    def name(self) -> str:
        """Name of the dataset type (`str`)."""
        return self._name

    @property
    def storage_class(self) -> str:
        """Storage class of its datasets (`str`)."""
        return self._storage_class

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Names of its data-ID keys (`tuple` [`str`, ...])."""
        return self._dimensions

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetType):
            return NotImplemented
        return self is other or (
            self._name == other._name
            and self._storage_class == other._storage_class
            and self._dimensions == other._dimensions
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"DatasetType({self._name!r}, {self._storage_class!r}, {self._dimensions!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (DatasetType, (self._name, self._storage_class, self._dimensions))


class DatasetRef:
    """One dataset: its id, dataset type, data ID and RUN collection.

    Parameters
    ----------
    dataset_type : `DatasetType`
        The dataset's type.
    data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
        Its data ID; the keys must be exactly the dataset type's dimensions.
    run : `str`
        Name of the RUN collection it belongs to.
    id : `uuid.UUID` or `str`, optional
        Its id; `None` makes a new time-ordered UUIDv7.

    Raises
    ------
    InvalidDefinitionError
        If an argument has the wrong type, the run name is empty, or the id is
        not a UUID.
    InvalidDataIdError
        If the data ID does not match the dataset type's dimensions.
    """

    __slots__ = ("_data_id", "_dataset_type", "_id", "_run")

    def __init__(
        self,
        dataset_type: DatasetType,
        data_id: Mapping[str, DataIdValue],
        run: str,
        id: uuid.UUID | str | None = None,
    ) -> None:
        if not isinstance(dataset_type, DatasetType):
            raise InvalidDefinitionError(
                f"dataset_type must be a DatasetType, got {type(dataset_type).__name__}."
            )
        data_id = DataId(data_id)
        if set(data_id) != set(dataset_type.dimensions):
            raise InvalidDataIdError(
                f"Data ID keys {sorted(data_id)} of a {dataset_type.name!r} dataset do not "
                f"match its dimensions {sorted(dataset_type.dimensions)}."
            )
        self._dataset_type = dataset_type
        # Keys in dimension order: refs equal by value render equal paths.
        if tuple(data_id) != dataset_type.dimensions:
            data_id = DataId({key: data_id[key] for key in dataset_type.dimensions})
        self._data_id = data_id
        self._run = check_text(run, "RUN name")
        self._id = uuid7() if id is None else as_uuid(id, "Dataset id")

    @classmethod
    def deterministic(
        cls, dataset_type: DatasetType, data_id: Mapping[str, DataIdValue], run: str
    ) -> DatasetRef:
        """Make a ref whose id is derived from (run, dataset type, data ID).

        Parameters
        ----------
        dataset_type : `DatasetType`
            The dataset's type.
        data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
            Its data ID.
        run : `str`
            Its RUN collection.

        Returns
        -------
        ref : `DatasetRef`
            A ref whose id is the same wherever and whenever it is made.
        """
        data_id = DataId(data_id)
        return cls(dataset_type, data_id, run, deterministic_dataset_id(dataset_type, data_id, run))

    @property
    def id(self) -> uuid.UUID:
        """Dataset id (`uuid.UUID`)."""
        return self._id

    @property
    def dataset_type(self) -> DatasetType:
        """Dataset type (`DatasetType`)."""
        return self._dataset_type

    @property
    def datasetType(self) -> DatasetType:
        """Dataset type, under the reference's camelCase name (`DatasetType`)."""
        return self._dataset_type

    @property
    def data_id(self) -> DataId:
        """Data ID (`DataId`)."""
        return self._data_id

    @property
    def dataId(self) -> DataId:
        """Data ID, under the reference's camelCase name (`DataId`)."""
        return self._data_id

    @property
    def run(self) -> str:
        """RUN collection name (`str`)."""
        return self._run

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetRef):
            return NotImplemented
        return self is other or (
            self._id == other._id
            and self._run == other._run
            and self._dataset_type == other._dataset_type
            and self._data_id == other._data_id
        )

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DatasetRef, (self._dataset_type, self._data_id, self._run, self._id))

    def __repr__(self) -> str:
        return (
            f"DatasetRef({self._dataset_type.name!r}, {self._data_id.to_dict()!r}, "
            f"run={self._run!r}, id={self._id})"
        )


def deterministic_dataset_id(
    dataset_type: DatasetType, data_id: Mapping[str, DataIdValue], run: str
) -> uuid.UUID:
    """Return the deterministic id of the dataset (run, dataset type, data ID).

    Parameters
    ----------
    dataset_type : `DatasetType`
        The dataset's type; only its name is used.
    data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
        Its data ID; key order does not matter, and ``1`` and ``"1"`` differ.
    run : `str`
        Its RUN collection.

    Returns
    -------
    id : `uuid.UUID`
        A UUIDv5, equal for equal inputs on every machine.
    """
    # Validate as DatasetRef does: a float 1.0 must not share the id of "1.0",
    # and a NUL in the run would make the joined parts ambiguous.
    data_id = DataId(data_id)
    parts = [check_text(run, "RUN name"), dataset_type.name]
    for key in sorted(data_id):
        value = data_id[key]
        parts.append(f"{key}={'i' if isinstance(value, int) else 's'}:{value}")
    return deterministic_uuid(parts)
