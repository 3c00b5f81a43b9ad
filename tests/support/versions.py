"""The version 1 fixture log, and pretending this library writes a newer schema version."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import qbb_events.events as events_module

FIXTURES = Path(__file__).parent.parent / "fixtures" / "v1"
V1_LOG = FIXTURES / "workflow.jsonl"


def set_version(monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """Set the version this library writes and reads, wherever a module imported it."""
    for name, module in list(sys.modules.items()):
        if name.startswith("qbb_events") and hasattr(module, "SCHEMA_VERSION"):
            monkeypatch.setattr(module, "SCHEMA_VERSION", version)


def as_version_2(monkeypatch: pytest.MonkeyPatch, seen: list[int]) -> None:
    """Pretend this library writes version 2, with an upcaster from version 1."""

    def v1_to_v2(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body["seq"])
        return {**body, "schema_version": 2}

    set_version(monkeypatch, 2)
    monkeypatch.setattr(events_module, "_UPCASTERS", {1: v1_to_v2})
