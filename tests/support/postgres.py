"""A fresh PostgreSQL database per test, from ``QBB_TEST_POSTGRES_URL``.

Without the variable the tests that need a server skip, naming it; under
``CI=true`` a missing variable or an unreachable server fails them instead.
Each database is named after the process id and a random suffix (several
engineers' test runs share one server) and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

ENV = "QBB_TEST_POSTGRES_URL"


def server_url() -> sa.URL:
    """The server's URL, or skip (fail under CI) when there is none."""
    text = os.environ.get(ENV)
    if not text:
        reason = f"{ENV} is not set: no PostgreSQL server to test against"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sa.make_url(text)


def _admin(url: sa.URL) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def create_database(prefix: str = "qbb") -> str:
    """Create a uniquely named database; return its URL (with the password)."""
    url = server_url()
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the PostgreSQL server at {url.host}:{url.port} is not reachable: {err}")
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    """Drop a database made by `create_database`, ending its open sessions."""
    url = sa.make_url(database_url)
    engine = _admin(url.set(database=server_url().database))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database's URL, dropped after the test."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)
