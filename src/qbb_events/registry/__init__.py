"""The central registry: a run's datasets, datastore records, quanta and provenance.

`Registry` (SQLite or PostgreSQL), the bulk `transfer_run`, the lineage
queries and `find_orphans`. See ``docs/registry.md``.
"""

from ._orphans import find_orphans
from ._queries import LineageStep, RegisteredQuantum
from ._registry import Registry
from ._report import RefusedLog, TransferConflict, TransferReport
from ._rows import ArtifactProblem
from ._schema import ROLES, SCHEMA_VERSION
from ._transfer import transfer_run

__all__ = [
    "ROLES",
    "SCHEMA_VERSION",
    "ArtifactProblem",
    "LineageStep",
    "RefusedLog",
    "RegisteredQuantum",
    "Registry",
    "TransferConflict",
    "TransferReport",
    "find_orphans",
    "transfer_run",
]
