"""Registry URLs for tests: an SQLite file, or a fresh PostgreSQL database per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .postgres import create_database, drop_database

# Tables compared row for row; the journal (transfer_batch) and the batch id
# of each quantum row say *when* rows came, not what they are.
TABLES = ("dataset_type", "run", "dataset", "datastore_record", "quantum", "provenance")
VOLATILE = {"quantum": {"batch_id"}}


class RegistryUrls:
    """Makes registry URLs of one dialect, all dropped after the test."""

    def __init__(self, dialect: str, tmp_path: Path) -> None:
        self.dialect = dialect
        self._tmp = tmp_path
        self._made: list[str] = []

    def new(self) -> str:
        if self.dialect == "sqlite":
            path = self._tmp / f"registry-{len(self._made)}.sqlite3"
            self._made.append(str(path))
            return str(path)
        url = create_database("qbb_registry")
        self._made.append(url)
        return url

    def cleanup(self) -> None:
        if self.dialect == "postgresql":
            for url in self._made:
                drop_database(url)


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every compared table, sorted, as plain tuples."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    metadata = sa.MetaData()
    result = {}
    try:
        with engine.connect() as conn:
            metadata.reflect(conn, only=TABLES)
            for name in TABLES:
                table = metadata.tables[name]
                columns = [c for c in table.columns if c.name not in VOLATILE.get(name, set())]
                rows = conn.execute(sa.select(*columns)).all()
                result[name] = sorted(tuple(str(v) for v in row) for row in rows)
    finally:
        engine.dispose()
    return result
