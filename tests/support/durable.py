"""Helpers of the durable-log tests: a sealed log, forged records, SQLite edits, the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from qbb_events import JsonLinesEventLog, canonical_json, chain_hash, copy_logs
from qbb_events.cli import main

from .workflows import run_workflow


def sealed_log(root: Path, name: str = "writer.jsonl") -> Path:
    """A sound, sealed 13-event log written by the butler at ``root / name``."""
    root.mkdir(parents=True, exist_ok=True)
    log = JsonLinesEventLog(root / name)
    run_workflow(root.parent / f"{root.name}-repo", log)
    log.close()
    return root / name


def rehashed(data: dict[str, Any]) -> bytes:
    """The record of ``data`` with its hash recomputed (a forger's edit)."""
    body = {k: v for k, v in data.items() if k != "hash"}
    canonical = canonical_json(body)
    return canonical[:-1] + b',"hash":"%s"}' % chain_hash(body["prev_hash"], canonical).encode()


def kinds(report: Any) -> list[str]:
    return [p.kind for _, p in report.problems()]


def sqlite_copy(tmp_path: Path) -> tuple[Path, str]:
    """A store holding one sealed log (13 rows); returns its path and quantum id."""
    db = tmp_path / "run.sqlite"
    source = sealed_log(tmp_path / "src")
    assert copy_logs(source, db).ok
    quantum_id = json.loads(source.read_bytes().splitlines()[0])["quantum_id"]
    return db, quantum_id


def edit(db: Path, sql: str) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute(sql)
        connection.commit()
    finally:
        connection.close()


def cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def said(result: Any) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())
