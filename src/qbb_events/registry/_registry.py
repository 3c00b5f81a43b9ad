"""`Registry`: the central database of a run's datasets, records, quanta and provenance."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._sql import Database, check_schema_version, is_database_url, open_database
from ..errors import (
    InvalidDefinitionError,
    NotRegisteredError,
    RegistryExistsError,
    RegistryNotFoundError,
    RegistryVersionError,
)
from ..ids import as_uuid
from ..model import DataIdValue, DatasetRef
from ..provenance import QuantumProvenanceData
from ..quantum import Quantum
from ..records import FileRecord
from ._queries import LineageStep, RegisteredQuantum, queries
from ._report import TransferReport
from ._rows import QuantumRows, rows_from_provenance
from ._schema import schema as s
from ._writing import write_batch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Registry"]

_VERSION_KEY = "schema_version"
# Quanta per transaction in collect_and_transfer.
_BATCH_QUANTA = 1000


class Registry:
    """The central registry: datasets, datastore records, quanta and provenance.

    Use `Registry.create` or `Registry.open`; both return a registry usable
    as a context manager.

    Parameters
    ----------
    engine : `sqlalchemy.engine.Engine`
        An engine made by the registry's SQL layer.
    url : `str`
        The URL it was opened with, for messages and for transfer workers.

    Notes
    -----
    SQLite (a plain file path) is the embedded default; PostgreSQL
    (``postgresql+psycopg://...``) serves many transfer processes on many
    machines at once. See ``docs/registry.md`` for the schema and the
    guarantees.
    """

    def __init__(self, database: Database, url: str) -> None:
        self._database = database
        self._url = url

    # -- life cycle -------------------------------------------------------

    @classmethod
    def create(cls, url: str | os.PathLike[str]) -> Registry:
        """Create a new, empty registry.

        Parameters
        ----------
        url : `str` or `os.PathLike`
            A file path (SQLite, created with its parent directories) or a
            database URL (``sqlite:///PATH``, ``postgresql+psycopg://...``).

        Returns
        -------
        registry : `Registry`
            The open registry.

        Raises
        ------
        RegistryExistsError
            If the database already holds a registry, a table of one, or any
            other table (another application's database is left untouched).
        DatabaseError
            If the database cannot be reached or written.
        """
        database = open_database(_target(url), application="qbb_events registry")

        def work(conn: Connection) -> None:
            # Two processes creating one registry at once: one creates, the
            # other then finds the tables and is refused.
            database.lock_schema(conn)
            tables = database.table_names(conn)
            present = tables & set(s.metadata.tables)
            if present:
                raise RegistryExistsError(
                    f"{database.location} already holds registry tables "
                    f"({', '.join(sorted(present))})"
                )
            if tables:
                # Another application's database (or an event store): adding
                # our tables would change data that is not ours.
                raise RegistryExistsError(
                    f"{database.location} already holds other tables "
                    f"({', '.join(sorted(tables)[:5])}): create the registry in a new database"
                )
            s.metadata.create_all(conn)
            conn.execute(
                sa.insert(s.registry_meta), {"key": _VERSION_KEY, "value": str(s.SCHEMA_VERSION)}
            )

        try:
            database.transact(work, f"creating the registry {database.location}")
        except BaseException:
            database.dispose()
            raise
        return cls(database, _url_of(url))

    @classmethod
    def open(cls, url: str | os.PathLike[str]) -> Registry:
        """Open an existing registry.

        Parameters
        ----------
        url : `str` or `os.PathLike`
            As for `create`.

        Returns
        -------
        registry : `Registry`
            The open registry.

        Raises
        ------
        RegistryNotFoundError
            If there is no registry there (nothing is created).
        RegistryVersionError
            If the registry has another schema version; the message names both.
        DatabaseError
            If the database cannot be reached.
        """
        target = _target(url)
        if not is_database_url(target) or target.startswith("sqlite"):
            path = sa.make_url(target).database if is_database_url(target) else target
            if not (path and os.path.isfile(path)):
                raise RegistryNotFoundError(f"No registry at {path}: the file does not exist")
        database = open_database(target, application="qbb_events registry")

        def work(conn: Connection) -> None:
            if s.registry_meta.name not in database.table_names(conn):
                raise RegistryNotFoundError(f"No registry at {database.location}")
            check_schema_version(
                conn,
                s.registry_meta,
                str(s.SCHEMA_VERSION),
                where=database.location,
                what="registry",
                key=_VERSION_KEY,
                error=RegistryVersionError,
            )

        try:
            database.transact(work, f"opening the registry {database.location}", read=True)
        except BaseException:
            database.dispose()
            raise
        return cls(database, _url_of(url))

    @property
    def url(self) -> str:
        """The database URL of the registry, with its password (`str`)."""
        return self._url

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (`str`)."""
        return self._database.dialect

    def close(self) -> None:
        """Close every connection of the registry."""
        self._database.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self._database.location!r})"

    def _read(self, work: Any, what: str) -> Any:
        return self._database.transact(work, what, read=True)

    # -- writing ----------------------------------------------------------

    def _write_rows(self, batch: Iterable[QuantumRows], report: TransferReport) -> None:
        """Write quantum rows in one transaction (what every transfer path calls).

        Parameters
        ----------
        batch : `~collections.abc.Iterable` [`QuantumRows`]
            Rows of one batch.
        report : `TransferReport`
            Updated with what the batch added.
        """
        write_batch(self._database, list(batch), report)

    def collect_and_transfer(
        self, quanta: Iterable[Quantum], provenance: Iterable[QuantumProvenanceData]
    ) -> TransferReport:
        """Register the actual outputs, records, quanta and provenance of executed quanta.

        This is what `QuantumProvenanceData.collect_and_transfer` calls.

        Parameters
        ----------
        quanta : `~collections.abc.Iterable` [`Quantum`]
            The quanta that ran.
        provenance : `~collections.abc.Iterable` [`QuantumProvenanceData`]
            Their provenance, in the same order; single-pass iterables work.

        Returns
        -------
        report : `TransferReport`
            What was new; transferring the same provenance again adds nothing.

        Raises
        ------
        InvalidDefinitionError
            If the two iterables differ in length or a provenance names
            another quantum; nothing of the offending batch is written.
        """
        report = TransferReport()
        batch: list[QuantumRows] = []
        provenance_iter = iter(provenance)
        for quantum in quanta:
            item = next(provenance_iter, None)
            if item is None:
                raise InvalidDefinitionError("Fewer provenance documents than quanta were given.")
            batch.append(rows_from_provenance(quantum, item))
            report.logs += 1
            if len(batch) >= _BATCH_QUANTA:
                self._write_rows(batch, report)
                batch = []
        if next(provenance_iter, None) is not None:
            raise InvalidDefinitionError("More provenance documents than quanta were given.")
        self._write_rows(batch, report)
        return report

    # -- queries ----------------------------------------------------------

    def record_paths(self) -> set[str]:
        """Return the path of every datastore record, relative to its datastore root.

        Returns
        -------
        paths : `set` [`str`]
            What `find_orphans` counts as accounted for.
        """
        return self._read(  # type: ignore[no-any-return]
            lambda conn: set(conn.execute(sa.select(s.records.c.path)).scalars()),
            "reading record paths",
        )

    def find_dataset(
        self, dataset_type_name: str, data_id: Mapping[str, DataIdValue], run: str
    ) -> DatasetRef | None:
        """Find a dataset by dataset type, data ID and run.

        Parameters
        ----------
        dataset_type_name : `str`
            Name of its dataset type.
        data_id : `~collections.abc.Mapping` [`str`, `int` | `str`]
            Its data ID (key order does not matter; ``1`` and ``"1"`` differ).
        run : `str`
            Its RUN collection.

        Returns
        -------
        ref : `DatasetRef` or `None`
            The registered dataset, or `None`.
        """
        return self._read(  # type: ignore[no-any-return]
            lambda conn: queries.find_dataset(conn, dataset_type_name, data_id, run),
            "finding a dataset",
        )

    def get_dataset(self, id: uuid.UUID | str) -> DatasetRef | None:
        """Return a registered dataset by id.

        Parameters
        ----------
        id : `uuid.UUID` or `str`
            Dataset id.

        Returns
        -------
        ref : `DatasetRef` or `None`
            The dataset, or `None` if it is not registered.
        """
        dataset_id = as_uuid(id, "Dataset id")
        return self._read(  # type: ignore[no-any-return]
            lambda conn: queries.get_dataset(conn, dataset_id), "reading a dataset"
        )

    def datastore_records(self, ids: Iterable[uuid.UUID | str]) -> dict[str, list[FileRecord]]:
        """Return the datastore records of datasets.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID` | `str`]
            Dataset ids; unknown ids are skipped.

        Returns
        -------
        records : `dict` [`str`, `list` [`FileRecord`]]
            By datastore name, sorted by dataset id (the shape of
            `QuantumProvenanceData.datastore_records`).
        """
        wanted = [as_uuid(value, "Dataset id") for value in ids]
        return self._read(  # type: ignore[no-any-return]
            lambda conn: queries.datastore_records(conn, wanted), "reading datastore records"
        )

    def producer(self, id: uuid.UUID | str) -> RegisteredQuantum | None:
        """Return the quantum attempt that wrote a dataset.

        Parameters
        ----------
        id : `uuid.UUID` or `str`
            Dataset id.

        Returns
        -------
        quantum : `RegisteredQuantum` or `None`
            The latest attempt, not aborted, with the dataset among its
            actual outputs; `None` if none is registered.
        """
        dataset_id = as_uuid(id, "Dataset id")
        return self._read(  # type: ignore[no-any-return]
            lambda conn: queries.producer(conn, dataset_id), "finding a producer"
        )

    @overload
    def upstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: Literal[False] = False
    ) -> list[LineageStep]: ...

    @overload
    def upstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: Literal[True]
    ) -> pd.DataFrame: ...

    def upstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: bool = False
    ) -> list[LineageStep] | pd.DataFrame:
        """Return what a dataset was made from: its producer's actual inputs, recursively.

        Parameters
        ----------
        id : `uuid.UUID` or `str`
            Dataset id.
        depth : `int`, optional
            Steps to walk (1: the producer's actual inputs only); all by default.
        as_frame : `bool`, optional
            Return a `pandas.DataFrame` (needs the ``analytics`` extra).

        Returns
        -------
        steps : `list` [`LineageStep`] or `pandas.DataFrame`
            One per (input, consuming quantum attempt), at its smallest depth,
            sorted by depth then ids. One recursive SQL query.
        """
        dataset_id = as_uuid(id, "Dataset id")
        steps = self._read(
            lambda conn: queries.upstream(conn, dataset_id, _depth(depth)), "walking upstream"
        )
        return _frame(steps) if as_frame else steps

    @overload
    def downstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: Literal[False] = False
    ) -> list[LineageStep]: ...

    @overload
    def downstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: Literal[True]
    ) -> pd.DataFrame: ...

    def downstream(
        self, id: uuid.UUID | str, depth: int | None = None, *, as_frame: bool = False
    ) -> list[LineageStep] | pd.DataFrame:
        """Return which quanta actually used a dataset, and used their outputs, recursively.

        Parameters
        ----------
        id : `uuid.UUID` or `str`
            Dataset id.
        depth : `int`, optional
            Steps to walk (1: the quanta that used it directly); all by default.
        as_frame : `bool`, optional
            Return a `pandas.DataFrame` (needs the ``analytics`` extra).

        Returns
        -------
        steps : `list` [`LineageStep`] or `pandas.DataFrame`
            One per (quantum attempt, dataset it used), at its smallest depth.
            One recursive SQL query.
        """
        dataset_id = as_uuid(id, "Dataset id")
        steps = self._read(
            lambda conn: queries.downstream(conn, dataset_id, _depth(depth)), "walking downstream"
        )
        return _frame(steps) if as_frame else steps

    @overload
    def quanta(
        self,
        run: str | None = None,
        task_label: str | None = None,
        status: str | None = None,
        *,
        as_frame: Literal[False] = False,
    ) -> list[RegisteredQuantum]: ...

    @overload
    def quanta(
        self,
        run: str | None = None,
        task_label: str | None = None,
        status: str | None = None,
        *,
        as_frame: Literal[True],
    ) -> pd.DataFrame: ...

    def quanta(
        self,
        run: str | None = None,
        task_label: str | None = None,
        status: str | None = None,
        *,
        as_frame: bool = False,
    ) -> list[RegisteredQuantum] | pd.DataFrame:
        """Return the registered quantum attempts matching every filter given.

        Parameters
        ----------
        run : `str`, optional
            RUN collection.
        task_label : `str`, optional
            Task label.
        status : `str`, optional
            ``succeeded``, ``failed``, ``no_work``, ``aborted`` or ``unknown``.
        as_frame : `bool`, optional
            Return a `pandas.DataFrame` (needs the ``analytics`` extra).

        Returns
        -------
        quanta : `list` [`RegisteredQuantum`] or `pandas.DataFrame`
            Sorted by quantum id and attempt.
        """
        found = self._read(
            lambda conn: queries.quanta(conn, run, task_label, status), "listing quanta"
        )
        return _frame(found) if as_frame else found

    def provenance(
        self, quantum_id: uuid.UUID | str, attempt: int | None = None
    ) -> dict[str, frozenset[uuid.UUID]]:
        """Return the provenance sets the registry holds for a quantum attempt.

        Parameters
        ----------
        quantum_id : `uuid.UUID` or `str`
            Quantum id.
        attempt : `int`, optional
            Attempt number; the latest registered attempt by default.

        Returns
        -------
        sets : `dict` [`str`, `frozenset` [`uuid.UUID`]]
            Keyed by the six roles ``predicted_input``, ``available_input``,
            ``unavailable_input``, ``actual_input``, ``predicted_output`` and
            ``actual_output``: equal to the same sets of `fold` over the
            attempt's log.

        Raises
        ------
        NotRegisteredError
            If the registry holds no such quantum attempt (also a `LookupError`).
        """
        key = as_uuid(quantum_id, "Quantum id")
        sets = self._read(
            lambda conn: queries.provenance_sets(conn, key, attempt), "reading provenance"
        )
        if sets is None:
            shown = key if attempt is None else f"{key} attempt {attempt}"
            raise NotRegisteredError(f"The registry holds no quantum {shown}")
        return sets  # type: ignore[no-any-return]


def _depth(depth: int | None) -> int | None:
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InvalidDefinitionError(f"depth must be a positive integer or None, not {depth!r}")
    return depth


def _frame(items: list[Any]) -> pd.DataFrame:
    from dataclasses import asdict

    try:
        import pandas as pd
    except ModuleNotFoundError as err:  # pragma: no cover - pandas is in the dev extra
        raise ModuleNotFoundError(
            "as_frame=True needs pandas: pip install 'qbb-events[analytics]'"
        ) from err
    return pd.DataFrame([asdict(item) for item in items])


def _target(url: str | os.PathLike[str]) -> str:
    text = os.fspath(url)
    # A bare postgresql:// means psycopg 3, as everywhere in the library.
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):
            return "postgresql+psycopg://" + text[len(scheme) :]
    return text


def _url_of(url: str | os.PathLike[str]) -> str:
    """Return the URL other processes open the same registry with (paths made absolute)."""
    target = _target(url)
    return target if is_database_url(target) else os.path.abspath(target)
