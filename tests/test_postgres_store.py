"""The PostgreSQL event store: many processes at once, kills, round trips, versions.

What every store does is in test_log_contract.py; these are PostgreSQL's own.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from support.store_workers import (
    existence_payload,
    kill_mid_group,
    run_writers,
)
from support.workflows import run_workflow

from qbb_events import (
    Event,
    LogCorruptedError,
    LogWriteError,
    PostgresEventStore,
    SchemaVersionError,
    SqliteEventStore,
    SyncPolicy,
    check_chain,
    copy_logs,
    verify_logs,
)
from qbb_events.cli import main


def _sql(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(statement)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_four_processes_append_to_one_database_at_once(tmp_path: Path, postgres_url: str) -> None:
    count, writers = 10_000, 4
    quanta = [str(uuid.uuid4()) for _ in range(writers)]
    run_writers(postgres_url, tmp_path, quanta, count, 1000)
    with PostgresEventStore(postgres_url) as store:
        assert sorted(str(q) for q, _ in store.quanta()) == sorted(quanta)
        for quantum_id in quanta:
            events: list[Event] = store.read(uuid.UUID(quantum_id), 0)  # checks the chain
            check_chain(events)
            assert len(events) == count + 2
            assert events[-1].kind == "quantum_finished"
        report = verify_logs(store)
        assert report.ok, list(report.problems())
    # Every event is stored once.
    assert _sql(postgres_url, "SELECT count(*) FROM qbb_events") == [(writers * (count + 2),)]
    assert _sql(
        postgres_url,
        "SELECT count(*) FROM (SELECT DISTINCT quantum_id, attempt, seq FROM qbb_events) AS k",
    ) == [(writers * (count + 2),)]


def test_a_writer_killed_mid_group_loses_only_that_group_and_resumes(
    tmp_path: Path, postgres_url: str
) -> None:
    quantum_id = str(uuid.uuid4())
    committed = 1000
    kill_mid_group(postgres_url, tmp_path / "repo", quantum_id, committed)
    key = uuid.UUID(quantum_id)
    with PostgresEventStore(postgres_url) as store:
        survived = store.read(key, 0)
        check_chain(survived)
        # Every group committed before the kill is there; the group it was
        # filling is lost, leaving whole groups only.
        assert len(survived) >= committed + 1
        assert (len(survived) - 1) % 100 == 0
        log = store.resume(key, 0, sync=SyncPolicy.group(max_events=7))
        assert log.events == tuple(survived)
        for index in range(20):
            log.append("existence_checked", existence_payload(index))
        log.append(
            "quantum_finished",
            {"status": "failed", "exception": None, "wall_ns": 0, "cpu_ns": 0, "peak_rss_bytes": 0},
        )
        log.close()
        events = store.read(key, 0)
        check_chain(events)
        assert events[: len(survived)] == survived
        assert len(events) == len(survived) + 21
        assert verify_logs(store).ok


def test_files_to_postgres_to_sqlite_to_files_byte_for_byte_and_idempotent(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "logs"
    for k in range(3):
        run_workflow(tmp_path / f"repo{k}", source / f"q{k}.jsonl")
    sqlite_path = tmp_path / "node.sqlite"
    back = tmp_path / "back"
    first = [copy_logs(source, postgres_url), copy_logs(postgres_url, sqlite_path)]
    first.append(copy_logs(sqlite_path, back))
    assert all(report.ok for report in first)
    assert all(report.events_present == 0 for report in first)
    originals = {p.read_bytes() for p in source.iterdir()}
    assert {p.read_bytes() for p in back.iterdir()} == originals
    # Once more: nothing is added anywhere, and the bytes stay the same.
    again = [
        copy_logs(source, postgres_url),
        copy_logs(postgres_url, sqlite_path),
        copy_logs(sqlite_path, back),
    ]
    assert [r.events_added for r in again] == [0, 0, 0]
    assert [r.events_present for r in again] == [r.events_added for r in first]
    assert {p.read_bytes() for p in back.iterdir()} == originals
    digests = {verify_logs(s).digest for s in (source, postgres_url, sqlite_path, back)}
    assert len(digests) == 1


def test_the_cli_copies_into_and_out_of_postgres_and_verifies_it(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "logs"
    run_workflow(tmp_path / "repo", source / "q.jsonl")
    runner = CliRunner()
    into = runner.invoke(main, ["copy", str(source), postgres_url])
    assert into.exit_code == 0, into.output
    verified = runner.invoke(main, ["verify", postgres_url])
    assert verified.exit_code == 0, verified.output
    assert "1 of 1 logs verified" in verified.output
    out = runner.invoke(main, ["copy", postgres_url, str(tmp_path / "back")])
    assert out.exit_code == 0, out.output
    assert {p.read_bytes() for p in (tmp_path / "back").iterdir()} == {
        (source / "q.jsonl").read_bytes()
    }
    exported = runner.invoke(main, ["export", postgres_url, str(tmp_path / "parquet")])
    assert exported.exit_code == 0, exported.output
    assert "exported 1 logs" in exported.output


def test_a_database_of_another_format_is_refused_naming_both(postgres_url: str) -> None:
    PostgresEventStore(postgres_url).close()
    _sql(postgres_url, "UPDATE qbb_meta SET value = '7' WHERE key = 'format'")
    with pytest.raises(SchemaVersionError) as caught:
        PostgresEventStore(postgres_url)
    assert "'7'" in str(caught.value)
    assert "'1'" in str(caught.value)


def test_a_database_of_another_application_is_refused_untouched(postgres_url: str) -> None:
    _sql(postgres_url, "CREATE TABLE accounts (id integer PRIMARY KEY)")
    with pytest.raises(LogCorruptedError, match="not a qbb_events event store"):
        PostgresEventStore(postgres_url)
    tables = _sql(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("accounts",)]


def test_a_server_that_is_not_there_is_a_write_error() -> None:
    with pytest.raises(LogWriteError) as caught:
        PostgresEventStore("postgresql+psycopg://postgres@127.0.0.1:1/none", timeout_s=2)
    assert caught.value.errno == errno.ECONNREFUSED
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        PostgresEventStore(str(tmp_path / "x.sqlite"))


def test_readonly_opening_creates_nothing(postgres_url: str) -> None:
    with pytest.raises(LogCorruptedError, match="not a qbb_events event store"):
        PostgresEventStore(postgres_url, readonly=True)
    assert _sql(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []


def test_sqlite_and_postgres_hold_the_same_records(tmp_path: Path, postgres_url: str) -> None:
    with (
        PostgresEventStore(postgres_url) as postgres,
        SqliteEventStore(tmp_path / "s.sqlite") as sqlite,
    ):
        butler = run_workflow(tmp_path / "repo", postgres.log())
        copy_logs(postgres, sqlite)
        key = (butler.quantum_id, 0)
        assert [r for _, r, _ in postgres.stored_log(*key)] == [
            r for _, r, _ in sqlite.stored_log(*key)
        ]
        assert postgres.read(*key) == sqlite.read(*key) == list(butler.events)
