"""The SQL layer: opening, settings, retries, idempotent inserts, versions, errors."""

from __future__ import annotations

import errno
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.readonly import frozen

from qbb_events import DatabaseError, DatabaseIntegrityError, SchemaVersionError
from qbb_events._sql import (
    Database,
    Uuid,
    check_schema_version,
    insert_missing,
    is_database_url,
    open_database,
)

_metadata = sa.MetaData()
_items = sa.Table(
    "items",
    _metadata,
    sa.Column("id", Uuid, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)
_meta = sa.Table(
    "meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = open_database(tmp_path / "sub" / "db.sqlite")
    else:
        db = open_database(request.getfixturevalue("postgres_url"))
    db.transact(lambda conn: _metadata.create_all(conn), "creating tables")
    try:
        yield db
    finally:
        db.dispose()


def test_urls_and_paths_are_told_apart(tmp_path: Path) -> None:
    assert is_database_url("postgresql+psycopg://u@h:5432/db")
    assert is_database_url("postgresql://u@h/db")
    assert is_database_url("sqlite:///x.db")
    assert not is_database_url(str(tmp_path / "x.sqlite"))
    assert not is_database_url(tmp_path)
    assert not is_database_url("http://example.org/x")
    assert open_database(tmp_path / "a.db").dialect == "sqlite"
    assert open_database(f"sqlite:///{tmp_path / 'b.db'}").dialect == "sqlite"
    assert open_database("postgresql://u@127.0.0.1:1/db").engine.url.drivername == (
        "postgresql+psycopg"
    )


def test_a_password_never_reaches_messages() -> None:
    db = open_database("postgresql+psycopg://u:secret@127.0.0.1:1/db", timeout_s=1)
    assert "secret" not in db.location
    with pytest.raises(DatabaseError) as caught:
        db.transact(lambda conn: conn.exec_driver_sql("SELECT 1"), "connecting")
    assert "secret" not in str(caught.value)
    assert caught.value.errno == errno.ECONNREFUSED
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)


def test_insert_missing_is_idempotent_and_counts_new_rows(database: Database) -> None:
    ids = [uuid.uuid4() for _ in range(2500)]
    rows = [{"id": i, "n": k} for k, i in enumerate(ids)]
    assert database.transact(lambda c: insert_missing(c, _items, rows[:1000], ["id"]), "x") == 1000
    assert database.transact(lambda c: insert_missing(c, _items, rows, ["id"]), "x") == 1500
    assert database.transact(lambda c: insert_missing(c, _items, rows, ["id"]), "x") == 0
    assert database.transact(lambda c: insert_missing(c, _items, [], ["id"]), "x") == 0
    stored = database.transact(
        lambda c: dict(c.execute(sa.select(_items.c.id, _items.c.n)).all()), "r", read=True
    )
    # Native UUIDs come back as uuid.UUID on both dialects.
    assert stored == {i: k for k, i in enumerate(ids)}


def test_a_duplicate_key_is_a_library_integrity_error(database: Database) -> None:
    row = {"id": uuid.uuid4(), "n": 1}
    database.transact(lambda c: c.execute(_items.insert(), [row]), "insert")
    with pytest.raises(DatabaseIntegrityError) as caught:
        database.transact(lambda c: c.execute(_items.insert(), [row]), "inserting twice")
    assert isinstance(caught.value, ValueError)
    assert "inserting twice" in str(caught.value)
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)


def test_a_library_error_inside_work_passes_unchanged_and_rolls_back(
    database: Database,
) -> None:
    def work(conn: sa.Connection) -> None:
        conn.execute(_items.insert(), [{"id": uuid.uuid4(), "n": 1}])
        raise SchemaVersionError("refused inside the transaction")

    with pytest.raises(SchemaVersionError, match="refused inside"):
        database.transact(work, "work")
    count = database.transact(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(_items)).scalar(), "n"
    )
    assert count == 0


def test_schema_version_is_checked_naming_both(database: Database) -> None:
    database.transact(
        lambda c: c.execute(_meta.insert(), [{"key": "format", "value": "7"}]), "version"
    )
    database.transact(
        lambda c: check_schema_version(c, _meta, "7", where="here"), "check", read=True
    )
    with pytest.raises(SchemaVersionError) as caught:
        database.transact(
            lambda c: check_schema_version(c, _meta, "8", where="here", what="registry"),
            "check",
            read=True,
        )
    assert "'7'" in str(caught.value)
    assert "'8'" in str(caught.value)
    assert "registry" in str(caught.value)


def test_sqlite_settings_wal_full_sync(tmp_path: Path) -> None:
    db = open_database(tmp_path / "s.db")
    modes = db.transact(
        lambda c: (
            c.exec_driver_sql("PRAGMA journal_mode").scalar(),
            c.exec_driver_sql("PRAGMA synchronous").scalar(),
            c.exec_driver_sql("PRAGMA busy_timeout").scalar(),
        ),
        "pragmas",
    )
    assert modes == ("wal", 2, 60_000)


def test_sqlite_busy_writer_is_retried_until_the_lock_is_released(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = open_database(path, timeout_s=10)
    db.transact(lambda c: _metadata.create_all(c), "tables")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, holder.rollback)
    timer.start()
    try:
        db.transact(lambda c: c.execute(_items.insert(), [{"id": uuid.uuid4(), "n": 1}]), "w")
    finally:
        timer.join()
        holder.close()


def test_sqlite_busy_for_the_whole_timeout_is_ebusy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = open_database(path, timeout_s=0.2)
    db.transact(lambda c: _metadata.create_all(c), "tables")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError) as caught:
            db.transact(lambda c: c.execute(_items.insert(), [{"id": uuid.uuid4(), "n": 1}]), "w")
    finally:
        holder.close()
    assert caught.value.errno == errno.EBUSY


def test_sqlite_readonly_needs_no_write_access(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    db = open_database(folder / "ro.db")
    db.transact(lambda c: _metadata.create_all(c), "tables")
    db.transact(lambda c: c.execute(_items.insert(), [{"id": uuid.uuid4(), "n": 3}]), "w")
    db.dispose()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with frozen(folder):
        ro = open_database(folder / "ro.db", readonly=True)
        total = ro.transact(
            lambda c: c.execute(sa.select(sa.func.sum(_items.c.n))).scalar(), "r", read=True
        )
        assert total == 3
        with pytest.raises(DatabaseError) as caught:
            ro.transact(lambda c: c.execute(_items.delete()), "delete")
        assert caught.value.errno == errno.EROFS
        ro.dispose()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_sqlite_readonly_of_a_missing_file_is_enoent(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as caught:
        open_database(tmp_path / "none.db", readonly=True)
    assert caught.value.errno == errno.ENOENT
    assert not (tmp_path / "none.db").exists()


def test_a_file_that_is_not_a_database_is_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "text.db"
    path.write_bytes(b"not a database at all, just some text that is long enough" * 20)
    before = path.read_bytes()
    db = open_database(path, readonly=True)
    with pytest.raises(DatabaseError) as caught:
        db.transact(lambda c: db.has_tables(c), "listing tables", read=True)
    assert "listing tables" in str(caught.value)
    assert path.read_bytes() == before


def test_postgres_serialization_failures_are_retried(postgres_url: str) -> None:
    db = open_database(postgres_url)
    db.transact(lambda c: _metadata.create_all(c), "tables")
    key = uuid.uuid4()
    db.transact(lambda c: c.execute(_items.insert(), [{"id": key, "n": 0}]), "w")
    serializable = Database(
        db.engine.execution_options(isolation_level="SERIALIZABLE"),
        "postgresql",
        db.location,
        readonly=False,
        timeout_s=30,
        path=None,
    )
    barrier = threading.Barrier(4)

    def increment() -> None:
        def work(conn: sa.Connection) -> None:
            n = conn.execute(sa.select(_items.c.n).where(_items.c.id == key)).scalar_one()
            barrier_wait()
            conn.execute(_items.update().where(_items.c.id == key).values(n=n + 1))

        serializable.transact(work, "increment")

    waited: set[int] = set()

    def barrier_wait() -> None:
        # Only the first round waits for all four: retries run on their own.
        me = threading.get_ident()
        if me not in waited:
            waited.add(me)
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = db.transact(
        lambda c: c.execute(sa.select(_items.c.n).where(_items.c.id == key)).scalar_one(), "r"
    )
    assert final == 4
    db.dispose()
