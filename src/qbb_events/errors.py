"""The error tree of qbb_events.

Every error the library raises derives from `QbbEventsError` and also from the
builtin exception with the same meaning, so generic ``except`` clauses written
against the reference butler keep working::

    QbbEventsError
    ├── InvalidDefinitionError (ValueError)      bad name, id, ref or quantum
    │   └── InvalidDataIdError (ValueError, TypeError)  data ID value not int/str
    ├── RecordTypeError (ValueError)             unregistered datastore record kind
    ├── PathEscapeError (ValueError)             a path would leave the datastore root
    ├── StorageClassError (TypeError)            object does not fit its storage class
    ├── BadReadRequestError (ValueError)         unknown parameter, wrong storage class
    ├── DatasetNotPredictedError (ValueError)    a ref the quantum does not predict
    ├── ArtifactNotFoundError (FileNotFoundError, LookupError)
    ├── DatastoreRootNotFoundError (FileNotFoundError)  a datastore root that does not exist
    ├── NotADatastoreError (ValueError)          an orphan scan of more than a datastore
    ├── ArtifactExistsError (FileExistsError)    retrieval would replace an existing file
    ├── UnreadableArtifactError (OSError)        artifact exists but cannot be decoded
    │   └── ArtifactChecksumError (OSError)      artifact bytes differ from their record
    ├── DatastoreWriteError (OSError)            the disk refused a write
    ├── OutputNotPredictedError (RuntimeError)   put of a ref the quantum did not predict
    ├── OutputAlreadyStoredError (RuntimeError)  put of an output whose artifact exists
    ├── PruneArgumentError (TypeError)           pruneDatasets flag rules
    ├── PruneNotOwnedError (RuntimeError, ValueError)  prune of a dataset not owned
    ├── ArgumentTypeError (TypeError)            a call got an argument of the wrong type
    ├── ButlerClosedError (RuntimeError)         call on a finished butler
    ├── LogSealedError (RuntimeError)            append after ``quantum_finished``
    ├── LogExistsError (FileExistsError)         a log file that already holds events
    ├── LogInUseError (ValueError)               a log object that already holds events
    ├── LogClosedError (ValueError)              append to a closed log
    ├── LogWriteError (OSError)                  the disk refused a log append
    ├── LogConflictError (ValueError)            a store already holds other events at that seq
    ├── DatabaseError (OSError)                  a database could not be reached, read or written
    ├── DatabaseIntegrityError (ValueError)      a database constraint refused a write
    ├── FoldError (ValueError)                   events that do not form one log
    ├── ExportFormatError (ValueError)           a Parquet dataset of another export format
    ├── InterchangeError (ValueError)            a foreign document we cannot read or represent
    ├── LogCorruptedError (ValueError)           a log that fails its checks
    │   ├── UnknownEventKindError
    │   └── SchemaVersionError
    ├── QuantumNotInGraphError (KeyError)        a quantum id a graph does not hold
    ├── TaskError (RuntimeError)                 what a task raises to tell its executor
    │   ├── NoWorkFound                          nothing to do: status no_work
    │   ├── PartialOutputsError                  some outputs written, then an error
    │   ├── RepeatableQuantumError               a failure a retry will repeat (exit 20)
    │   └── InvalidQuantumError (ValueError)     the quantum itself is wrong (exit 21)
    └── RegistryError (RuntimeError)             the registry refused what was asked
        ├── RegistryNotFoundError (FileNotFoundError)  no registry at that URL
        ├── NotRegisteredError (LookupError)           no such quantum in the registry
        ├── RegistryExistsError (FileExistsError)      create() where one exists
        └── RegistryVersionError (ValueError)          a registry of another schema version

`TornLogWarning` (a `UserWarning`) is issued, not raised, when a log's last
record was cut short by a killed writer.
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "ArtifactChecksumError",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "BadReadRequestError",
    "ButlerClosedError",
    "DatabaseError",
    "DatabaseIntegrityError",
    "DatasetNotPredictedError",
    "DatastoreRootNotFoundError",
    "DatastoreWriteError",
    "ExportFormatError",
    "FoldError",
    "InterchangeError",
    "InvalidDataIdError",
    "InvalidDefinitionError",
    "InvalidQuantumError",
    "LogClosedError",
    "LogConflictError",
    "LogCorruptedError",
    "LogExistsError",
    "LogInUseError",
    "LogSealedError",
    "LogWriteError",
    "NoWorkFound",
    "NotADatastoreError",
    "NotRegisteredError",
    "OutputAlreadyStoredError",
    "OutputNotPredictedError",
    "PartialOutputsError",
    "PathEscapeError",
    "PruneArgumentError",
    "PruneNotOwnedError",
    "QbbEventsError",
    "QuantumNotInGraphError",
    "RecordTypeError",
    "RegistryError",
    "RegistryExistsError",
    "RegistryNotFoundError",
    "RegistryVersionError",
    "RepeatableQuantumError",
    "SchemaVersionError",
    "StorageClassError",
    "TaskError",
    "TornLogWarning",
    "UnknownEventKindError",
    "UnreadableArtifactError",
]


class QbbEventsError(Exception):
    """Base class of every error raised by qbb_events."""


class _PlainOSError(OSError):
    """An `OSError` whose message leaves out ``[Errno None]`` when there is no errno."""

    def __str__(self) -> str:
        if self.errno is not None or self.strerror is None:
            return super().__str__()
        return self.strerror if self.filename is None else f"{self.strerror}: {self.filename!r}"


class InvalidDefinitionError(QbbEventsError, ValueError):
    """A dataset type, ref, data ID, id or quantum failed validation."""


class InvalidDataIdError(InvalidDefinitionError, TypeError):
    """A data ID is malformed: wrong keys, or a value that is not ``int``/``str``."""


class RecordTypeError(QbbEventsError, ValueError):
    """A stored datastore record names a ``record_type`` that is not registered."""


class PathEscapeError(QbbEventsError, ValueError):
    """A path built from a ref would leave the datastore root."""


class StorageClassError(QbbEventsError, TypeError):
    """An object cannot be written with its dataset type's storage class."""


class BadReadRequestError(QbbEventsError, ValueError):
    """A read was refused because the request itself is wrong.

    Unknown or malformed parameters and a storage class that does not match
    the dataset are bad requests: they say nothing about whether the artifact
    is available, so they never mark an input unavailable.
    """


class ArtifactNotFoundError(QbbEventsError, FileNotFoundError, LookupError):
    """The datastore holds no artifact for this dataset."""


class UnreadableArtifactError(QbbEventsError, OSError):
    """The artifact exists but cannot be decoded (truncated, corrupt, wrong format)."""


class ArtifactChecksumError(UnreadableArtifactError):
    """An artifact's bytes do not match the size or checksum of its datastore record.

    Raised by artifact retrieval before anything is published at the destination.
    """


class DatasetNotPredictedError(QbbEventsError, ValueError):
    """A ref is neither a predicted input nor a predicted output of the quantum."""


class DatastoreRootNotFoundError(QbbEventsError, FileNotFoundError):
    """A datastore root that does not exist (or is not a directory) was given.

    A mistyped root would otherwise look like an empty datastore, and every
    input would be recorded as unavailable; create one explicitly with
    ``FileDatastore(root, create=True)``.
    """


class NotADatastoreError(QbbEventsError, ValueError):
    """An orphan scan was pointed at a folder that is not (only) a datastore.

    The folder holds an SQLite database (a registry or an event store), an
    event log or a Parquet file this library wrote (an export or a quantum
    graph): counting those as orphans would let ``--delete`` remove them.
    """


class ArtifactExistsError(QbbEventsError, FileExistsError):
    """Retrieving artifacts with ``overwrite=False`` would replace an existing file."""


class DatastoreWriteError(QbbEventsError, OSError):
    """The file system refused a datastore write (``ENOSPC``, ``EIO``, ...)."""


class OutputNotPredictedError(QbbEventsError, RuntimeError):
    """``put`` of a ref that is not one of the quantum's predicted outputs."""


class OutputAlreadyStoredError(QbbEventsError, RuntimeError):
    """``put`` of an output whose artifact is still stored.

    The existing artifact and its record are left untouched.
    """


class PruneArgumentError(QbbEventsError, TypeError):
    """``pruneDatasets`` flags violate the reference's argument rules."""


class PruneNotOwnedError(QbbEventsError, RuntimeError, ValueError):
    """``pruneDatasets`` named a dataset that is not a predicted output of the quantum.

    A quantum may only delete files it owns; nothing is deleted when this is raised.
    """


class ArgumentTypeError(QbbEventsError, TypeError):
    """A call got an argument of the wrong type (e.g. not a `DatasetRef`)."""


class ButlerClosedError(QbbEventsError, RuntimeError):
    """A call was made on a butler whose quantum has finished."""


class LogSealedError(QbbEventsError, RuntimeError):
    """An event was appended to a log after its ``quantum_finished`` event."""


class LogExistsError(QbbEventsError, FileExistsError):
    """A new log was asked for at a path that already holds events."""


class LogInUseError(QbbEventsError, ValueError):
    """A log object that already holds events was given to a new quantum attempt."""


class LogClosedError(QbbEventsError, ValueError):
    """An event was appended to a log whose file was closed."""


class LogWriteError(QbbEventsError, _PlainOSError):
    """The file system refused a log append; the log was cut back to whole events."""


class ExportFormatError(QbbEventsError, ValueError):
    """A Parquet dataset holds parts of another export format than the one being written.

    Engines cannot read a dataset whose parts have different layouts, so an
    export never adds parts of one format to a dataset of another.
    """


class LogConflictError(QbbEventsError, ValueError):
    """A store refused events that do not continue the log it holds.

    Another writer holds that quantum attempt, or the events are a duplicate,
    leave a gap, or name a ``prev_hash`` that is not the stored last hash.
    """


class DatabaseError(QbbEventsError, _PlainOSError):
    """A database could not be opened, reached, read or written.

    Raised for every driver error of SQLite and PostgreSQL that is not a
    refused constraint: the ``errno`` is set where one has the same meaning
    (``EBUSY`` for a database that stayed locked, ``EROFS``, ``ENOSPC``,
    ``EACCES``, ``ECONNREFUSED``) and ``filename`` names the database (a
    path, or a URL without its password).
    """


class DatabaseIntegrityError(QbbEventsError, ValueError):
    """A database constraint refused a write, such as a duplicate key.

    Nothing of the refused transaction is stored.
    """


class FoldError(QbbEventsError, ValueError):
    """The events given to `fold` do not form a single, ordered quantum log."""


class InterchangeError(QbbEventsError, ValueError):
    """A document in a foreign format (LSST provenance JSON) that cannot be read or represented."""


class LogCorruptedError(QbbEventsError, ValueError):
    """A stored log failed its checks.

    Parameters
    ----------
    message : `str`
        What is wrong.
    line : `int` or `None`
        1-based line (record) number in the stored log, when known.
    seq : `int` or `None`
        Sequence number of the offending event, when known.
    """

    def __init__(self, message: str, *, line: int | None = None, seq: int | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if seq is not None:
            where.append(f"seq {seq}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.message = message
        self.line = line
        self.seq = seq

    def at_line(self, line: int | None) -> LogCorruptedError:
        """Return the same error, placed at a stored line.

        Parameters
        ----------
        line : `int` or `None`
            1-based line (record) number.

        Returns
        -------
        error : `LogCorruptedError`
            An error of the same class naming the line as well.
        """
        return type(self)(self.message, line=line, seq=self.seq)


class UnknownEventKindError(LogCorruptedError):
    """An event names a kind this version of qbb_events does not know."""


class SchemaVersionError(LogCorruptedError):
    """An event was written with a schema version this library cannot read."""


class RegistryError(QbbEventsError, RuntimeError):
    """The registry refused what was asked of it.

    Failures of the database itself (unreachable, unwritable) are
    `DatabaseError`, as for every SQL store.
    """


class RegistryNotFoundError(RegistryError, FileNotFoundError):
    """`Registry.open` found no registry at that URL or path."""


class NotRegisteredError(RegistryError, LookupError):
    """The registry holds nothing under the id asked for."""


class RegistryExistsError(RegistryError, FileExistsError):
    """`Registry.create` found a registry (or another application's tables) there."""


class RegistryVersionError(RegistryError, ValueError):
    """The registry was written with a schema version this library does not read."""


class TornLogWarning(UserWarning):
    """A log's last record is incomplete: its writer was killed mid-write.

    The whole events before it are returned; the torn record is ignored.
    """


class QuantumNotInGraphError(QbbEventsError, KeyError):
    """A quantum graph holds no quantum with that id."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this message is a sentence.
        return str(self.args[0]) if self.args else ""


class TaskError(QbbEventsError, RuntimeError):
    """Base of the exceptions a task raises to tell its executor how it ended."""


class NoWorkFound(TaskError):  # noqa: N818 - the name LSST tasks raise
    """The task found nothing to do: the quantum ends as ``no_work``, not failed.

    Outputs it wrote before raising are kept; the harness adds the caveats
    ``no_work`` and ``any_outputs_missing`` / ``all_outputs_missing``.
    """


class PartialOutputsError(TaskError):
    """The task wrote some outputs and then hit an error it chose to report.

    The quantum ends as ``succeeded`` with the caveat ``partial_outputs_error``
    (LSST's ``AnnotatedPartialOutputsError``), so downstream quanta may use
    what was written; the error is recorded in ``quantum_finished``.
    """


class RepeatableQuantumError(TaskError):
    """A failure that will happen again on retry (process exit code 20)."""

    EXIT_CODE = 20


class InvalidQuantumError(TaskError, ValueError):
    """The quantum itself is invalid: a retry cannot help (process exit code 21)."""

    EXIT_CODE = 21
