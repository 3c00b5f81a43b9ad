"""The registry's tables, on SQLAlchemy Core, the same for SQLite and PostgreSQL.

Ids are `sqlalchemy.Uuid`: native ``uuid`` on PostgreSQL, 32 hex characters on
SQLite. Data IDs are stored as canonical JSON text (keys sorted, no spaces),
so equal data IDs are equal strings and ``UNIQUE(dataset_type, run, data_id)``
is an ordinary index; JSON functions of either database query them by key.
Roles are small integers (`ROLES` gives the names) so the provenance relation,
by far the largest table, stays narrow.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

__all__ = [
    "ROLES",
    "ROLE_CODES",
    "SCHEMA_VERSION",
    "batches",
    "dataset_types",
    "datasets",
    "metadata",
    "provenance",
    "quanta",
    "records",
    "registry_meta",
    "runs",
]

SCHEMA_VERSION: Final = 1
"""Version of the registry schema; a registry of another version is refused."""

ROLES: Final = (
    "predicted_input",
    "available_input",
    "unavailable_input",
    "actual_input",
    "predicted_output",
    "actual_output",
)
"""The roles of a provenance row, in code order (code = index)."""

ROLE_CODES: Final = {name: code for code, name in enumerate(ROLES)}
"""Role name -> its stored small integer."""

metadata = sa.MetaData()

registry_meta = sa.Table(
    "registry_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

dataset_types = sa.Table(
    "dataset_type",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("storage_class", sa.Text, nullable=False),
    # Canonical JSON list of dimension names, in path order.
    sa.Column("dimensions", sa.Text, nullable=False),
)

runs = sa.Table("run", metadata, sa.Column("name", sa.Text, primary_key=True))

datasets = sa.Table(
    "dataset",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("dataset_type", sa.Text, sa.ForeignKey("dataset_type.name"), nullable=False),
    sa.Column("run", sa.Text, sa.ForeignKey("run.name"), nullable=False),
    sa.Column("data_id", sa.Text, nullable=False),
    sa.UniqueConstraint("dataset_type", "run", "data_id", name="dataset_natural_key"),
)

records = sa.Table(
    "datastore_record",
    metadata,
    sa.Column("dataset_id", sa.Uuid, sa.ForeignKey("dataset.id"), primary_key=True),
    sa.Column("datastore_name", sa.Text, primary_key=True),
    sa.Column("record_type", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("formatter", sa.Text, nullable=False),
    sa.Column("storage_class", sa.Text, nullable=False),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.Text, nullable=False),
)

batches = sa.Table(
    "transfer_batch",
    metadata,
    # The transfer journal: one row per committed batch, written in the
    # batch's own transaction, so a batch is either journaled and whole or
    # absent altogether.
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("committed_ns", sa.BigInteger, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("quanta", sa.Integer, nullable=False),
    sa.Column("datasets", sa.Integer, nullable=False),
    sa.Column("provenance_rows", sa.Integer, nullable=False),
)

quanta = sa.Table(
    "quantum",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("task_label", sa.Text, nullable=True),
    sa.Column("data_id", sa.Text, nullable=False),
    sa.Column("run", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=True),
    sa.Column("end_ns", sa.BigInteger, nullable=True),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("final_hash", sa.String(64), nullable=True),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("batch_id", sa.Uuid, sa.ForeignKey("transfer_batch.id"), nullable=False),
    sa.Index("quantum_by_run_task", "run", "task_label"),
    sa.Index("quantum_by_task", "task_label"),
    sa.Index("quantum_by_status", "status"),
)

provenance = sa.Table(
    "provenance",
    metadata,
    sa.Column("quantum_id", sa.Uuid, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("role", sa.SmallInteger, primary_key=True),
    sa.Column("dataset_id", sa.Uuid, primary_key=True),
    # The seq of the event from which an actual input is used for good, or
    # of the write of an actual output; null for the other roles.
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.ForeignKeyConstraint(["quantum_id", "attempt"], ["quantum.id", "quantum.attempt"]),
    # producer(), downstream() and the recursive lineage walk start from a
    # dataset: this index makes each step a lookup.
    sa.Index("provenance_by_dataset", "dataset_id", "role"),
)
