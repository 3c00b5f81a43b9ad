"""Input that cannot be read at all: exit 2 and one line naming it, for every subcommand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from replay_support import tamper
from replay_support.cli import invoke, one_line_error
from replay_support.runs import Run


def _empty(tmp: Path, run: Run) -> Path:
    path = tmp / "empty.jsonl"
    path.write_bytes(b"")
    return path


def _binary(tmp: Path, run: Run) -> Path:
    path = tmp / "garbage.jsonl"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _foreign(tmp: Path, run: Run) -> Path:
    path = tmp / "other-tool.jsonl"
    path.write_bytes(b'{"level": "info", "msg": "started"}\n{"level": "warn", "msg": "x"}\n')
    return path


def _newer(tmp: Path, run: Run) -> Path:
    source = next(iter(run.log_paths.values()))
    path = tmp / "newer.jsonl"
    content = []
    prev = "0" * 64
    for line in tamper.lines(source):
        body = {**orjson.loads(line), "schema_version": 99}
        record = tamper.record(body, prev)
        prev = orjson.loads(record)["hash"]
        content.append(record)
    tamper.write(path, content)
    return path


def _no_logs(tmp: Path, run: Run) -> Path:
    path = tmp / "nothing-here"
    path.mkdir()
    (path / "README.txt").write_text("no logs\n")
    return path


def _nowhere(tmp: Path, run: Run) -> Path:
    return tmp / "does-not-exist"


CASES: dict[str, tuple[Callable[[Path, Run], Path], str]] = {
    "empty file": (_empty, "empty file"),
    "binary garbage": (_binary, "not a log"),
    "another tool's JSON Lines": (_foreign, "not a log"),
    "a newer schema version": (_newer, "schema version 99"),
    "a directory with no logs": (_no_logs, "holds no log"),
    "a path that does not exist": (_nowhere, "no such file"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["verify", "stats", "report", "show", "diff"])
def test_unreadable_input_exits_2_with_one_line(
    pristine_clean_run: Run, tmp_path: Path, case: str, command: str
) -> None:
    make, words = CASES[case]
    bad = make(tmp_path, pristine_clean_run)
    if command == "report":
        args: list[object] = ["report", bad, "-o", tmp_path / "r.html"]
    elif command == "show":
        args = ["show", bad]
    elif command == "diff":
        args = ["diff", bad, next(iter(pristine_clean_run.log_paths.values()))]
    else:
        args = [command, bad]
    line = one_line_error(invoke(*args))
    assert words in line
    assert str(bad) in line
    assert not (tmp_path / "r.html").exists()


def test_a_bad_log_among_good_ones_is_named(pristine_clean_run: Run, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in list(pristine_clean_run.log_paths.values())[:2]:
        (logs / path.name).write_bytes(path.read_bytes())
    (logs / "zz.jsonl").write_bytes(b"")
    line = one_line_error(invoke("verify", logs))
    assert str(logs / "zz.jsonl") in line


def test_a_foreign_sqlite_database_exits_2(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = db.read_bytes()
    line = one_line_error(invoke("verify", db))
    assert str(db) in line
    assert db.read_bytes() == before


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    result = invoke("--debug", "verify", db)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert str(db) in result.stderr.splitlines()[-1]


def test_a_log_whose_first_event_is_megabytes_long_is_a_log(tmp_path: Path) -> None:
    from qbb_events import (
        DatasetRef,
        DatasetType,
        FileDatastore,
        JsonLinesEventLog,
        Quantum,
        QuantumBackedButler,
    )

    raw = DatasetType("raw", "json", ("exposure",))
    inputs = [DatasetRef(raw, {"exposure": e}, "raw/big") for e in range(40_000)]
    quantum = Quantum("big", {"exposure": 0}, inputs, [])
    (tmp_path / "repo").mkdir()
    log = tmp_path / "big.jsonl"
    butler = QuantumBackedButler.initialize(
        FileDatastore(tmp_path / "repo"), quantum, log=JsonLinesEventLog(log)
    )
    butler.close()
    assert len(log.read_bytes().split(b"\n", 1)[0]) > 1 << 22
    result = invoke("verify", log)
    assert result.exit_code == 0, result.output
