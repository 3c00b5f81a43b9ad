"""Fixtures of registry URLs, one parametrized over SQLite and PostgreSQL (a pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .registry_db import RegistryUrls


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryUrls]:
    """A factory of empty registry URLs, for SQLite and for PostgreSQL."""
    urls = RegistryUrls(request.param, tmp_path)
    try:
        yield urls
    finally:
        urls.cleanup()


@pytest.fixture
def registry_url(registry_urls: RegistryUrls) -> str:
    """One empty registry URL of each dialect."""
    return registry_urls.new()
