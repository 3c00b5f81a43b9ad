"""Registry URLs for tests: an SQLite file, or a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ENV = "QBB_TEST_POSTGRES_URL"
# Tables compared row for row; the journal (transfer_batch) and the batch id
# of each quantum row say *when* rows came, not what they are.
TABLES = ("dataset_type", "run", "dataset", "datastore_record", "quantum", "provenance")
VOLATILE = {"quantum": {"batch_id"}}


def _server() -> sa.URL:
    text = os.environ.get(ENV)
    if not text:
        reason = f"{ENV} is not set: no PostgreSQL server to test the registry against"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sa.make_url(text)


def _admin(url: sa.URL) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def new_postgres_database() -> str:
    """Create a uniquely named database (pid + random suffix); return its URL."""
    url = _server()
    name = f"qbb_registry_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(database_url: str) -> None:
    """Drop a database made by `new_postgres_database`, ending its sessions."""
    url = sa.make_url(database_url)
    engine = _admin(url.set(database=_server().database))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        engine.dispose()


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
        url = new_postgres_database()
        self._made.append(url)
        return url

    def cleanup(self) -> None:
        if self.dialect == "postgresql":
            for url in self._made:
                drop_postgres_database(url)


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
