"""The contract every event-log backend passes: memory (the reference), files, SQLite, PostgreSQL.

The cases are `qbb_events.testing.EventLogContract` and `LogStoreContract`,
written once; each backend subclasses them here (and, for logs, under every
sync policy).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from qbb_events import (
    EventLog,
    EventStore,
    InMemoryEventLog,
    InMemoryEventStore,
    JsonLinesEventLog,
    JsonLinesEventStore,
    PostgresEventStore,
    SqliteEventStore,
    SyncPolicy,
    log_file_name,
)
from qbb_events.testing import EventLogContract, LogStoreContract

POLICIES = {
    "every_event": SyncPolicy.every_event(),
    "group": SyncPolicy.group(),
    "on_close": SyncPolicy.on_close(),
}


@pytest.fixture(params=list(POLICIES))
def policy(request: pytest.FixtureRequest) -> SyncPolicy:
    return POLICIES[request.param]


class _ClosesStores:
    """Closes the stores a case opened."""

    stores: list[EventStore]

    @pytest.fixture(autouse=True)
    def _stores(self) -> Iterator[None]:
        self.stores = []
        yield
        for store in self.stores:
            store.close()

    def keep(self, store: EventStore) -> EventStore:
        self.stores.append(store)
        return store


# -- logs ------------------------------------------------------------------------------


class TestMemoryLog(EventLogContract):
    def make_log(self, directory: Path, name: str) -> EventLog:
        return InMemoryEventLog()


class TestJsonLinesLog(EventLogContract):
    @pytest.fixture(autouse=True)
    def _policy(self, policy: SyncPolicy) -> None:
        self.policy = policy

    def make_log(self, directory: Path, name: str) -> EventLog:
        return JsonLinesEventLog(directory / "logs" / f"{name}.jsonl", sync=self.policy)


class TestSqliteLog(_ClosesStores, EventLogContract):
    @pytest.fixture(autouse=True)
    def _policy(self, policy: SyncPolicy) -> None:
        self.policy = policy

    def make_log(self, directory: Path, name: str) -> EventLog:
        if not self.stores:
            self.keep(SqliteEventStore(directory / "logs.sqlite", sync=self.policy))
        store = self.stores[0]
        assert isinstance(store, SqliteEventStore)
        return store.log()


class TestPostgresLog(_ClosesStores, EventLogContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_log(self, directory: Path, name: str) -> EventLog:
        if not self.stores:
            self.keep(PostgresEventStore(self.url))
        store = self.stores[0]
        assert isinstance(store, PostgresEventStore)
        return store.log()


# -- stores ----------------------------------------------------------------------------


class TestMemoryStore(LogStoreContract):
    stores_by_location: ClassVar[dict[Path, InMemoryEventStore]] = {}

    def open_store(self, location: Path) -> EventStore:
        return self.stores_by_location.setdefault(location, InMemoryEventStore())


class TestJsonLinesStore(LogStoreContract):
    torn_tails = True

    def open_store(self, location: Path) -> EventStore:
        return JsonLinesEventStore(location / "logs")

    def tear_last_record(self, location: Path, quantum_id: uuid.UUID, attempt: int) -> None:
        path = location / "logs" / log_file_name(quantum_id, attempt)
        with open(path, "ab") as stream:
            stream.write(b'{"attempt":0,"dataset_ids":["0000')


class TestSqliteStore(LogStoreContract):
    def open_store(self, location: Path) -> EventStore:
        return SqliteEventStore(location / "logs.sqlite")


class TestPostgresStore(LogStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def open_store(self, location: Path) -> EventStore:
        return PostgresEventStore(self.url)
