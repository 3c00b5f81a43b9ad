"""The one CLI contract (qbb_events.cli_contract), through qbb-events' subcommands."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from qbb_events.cli import main
from qbb_events.cli_contract import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    json_document,
    one_line,
    print_table,
    progress,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def shaped(result: Result, command: str) -> dict[str, Any]:
    document = json.loads(result.stdout)
    schema = json.loads((SCHEMAS / f"qbb-events-{command}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    return document


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo") / "demo"
    result = cli("demo", "--root", root, "--json")
    assert result.exit_code == EXIT_OK, result.output
    return root, shaped(result, "demo")


def test_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_PROBLEM, EXIT_USAGE) == (0, 1, 2)


def test_demo_json(demo: tuple[Path, dict[str, Any]]) -> None:
    _root, document = demo
    assert document["version"] == 1
    assert len(document["quanta"]) == 5
    assert all(q["replayed"] for q in document["quanta"])


def test_verify_copy_export_json(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, _document = demo
    logs = root / "logs"
    verified = shaped(cli("verify", logs, "--json"), "verify")
    assert verified["ok"] is True
    assert len(verified["logs"]) == 5
    copied = cli("copy", logs, tmp_path / "run.sqlite", "--json")
    assert copied.exit_code == EXIT_OK
    assert shaped(copied, "copy")["events_added"] == verified["events"]
    exported = cli("export", logs, tmp_path / "export", "--json")
    assert exported.exit_code == EXIT_OK, exported.output
    document = shaped(exported, "export")
    assert document["logs"] == 5
    assert document["files"]


def test_a_damaged_log_is_a_problem_in_json_too(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _document = demo
    target = tmp_path / "log.jsonl"
    first = sorted((root / "logs").glob("*.jsonl"))[0]
    lines = first.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[:1] + lines[2:]))
    result = cli("verify", target, "--json")
    assert result.exit_code == EXIT_PROBLEM
    (log,) = shaped(result, "verify")["logs"]
    assert ("missing", 1) in {(p["kind"], p["seq"]) for p in log["problems"]}


def _one_line(result: Result) -> str:
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unusable_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no logs found" in _one_line(cli("verify", tmp_path / "empty"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not ours\n")
    demo_root = tmp_path / "d"
    assert cli("demo", "--root", demo_root).exit_code == EXIT_OK
    line = _one_line(cli("copy", demo_root / "logs", notes))
    assert "copy failed" in line
    assert str(notes) in line
    assert notes.read_text() == "not ours\n"


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not ours\n")
    demo_root = tmp_path / "d"
    assert cli("demo", "--root", demo_root).exit_code == EXIT_OK
    result = cli("--debug", "copy", demo_root / "logs", notes)
    assert result.exit_code == EXIT_USAGE
    assert "Traceback (most recent call last)" in result.stderr


def test_one_line_flattens_messages() -> None:
    assert one_line(ValueError("a\n  b\tc")) == "ValueError: a b c"
    assert one_line("x\ny") == "x y"


def test_json_document_is_versioned() -> None:
    assert json_document("qbb-events", "verify", {"ok": True}) == {
        "tool": "qbb-events",
        "command": "verify",
        "version": 1,
        "ok": True,
    }


def _render(rows: list[list[str]], key: int) -> str:
    stream = io.StringIO()
    console = Console(file=stream, width=80, force_terminal=False, color_system=None)
    print_table(console, ("quantum", "status", "verdict", "location"), rows, key=key)
    return stream.getvalue()


@pytest.mark.parametrize("depth", [1, 4, 12])
def test_tables_never_cut_the_key_column_at_80_columns(depth: int) -> None:
    path = "/" + "/".join(f"directory{i}" for i in range(depth)) + "/01a2-quantum.0.jsonl"
    rows = [["01a2354d-fb02-7393-a96a-32f200bac0a2", "failed", "tampered " * 6, path]] * 3
    for key, wanted in ((0, rows[0][0]), (3, path)):
        text = _render(rows, key)
        lines = text.splitlines()
        assert all(len(line) <= 80 for line in lines if wanted not in line)
        assert sum(wanted in line for line in lines) == 3, text


def test_progress_yields_everything_with_or_without_a_bar() -> None:
    assert list(progress(range(5), total=5, label="x", enabled=False)) == list(range(5))
    assert list(progress(range(5), total=5, label="x", enabled=True)) == list(range(5))
    batches = [[1, 2], [3]]
    counted = progress(batches, total=3, label="x", enabled=True, weight=len)
    assert list(counted) == batches
