"""The qbb-events command line: verify, copy and export, their messages and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.durable import cli, rehashed, said, sealed_log
from support.workflows import run_workflow

# -- the command line -------------------------------------------------------------------------


def test_cli_verify_and_copy_exit_codes(tmp_path: Path) -> None:
    # PIN (correct, untested): verify exits 0 on sound logs and 1 on a bad
    # one, 2 with a usage message on a missing path; copy is idempotent and
    # exits 1 when it refuses a log.
    source = sealed_log(tmp_path / "src")
    assert cli("verify", source).exit_code == 0
    missing = cli("verify", tmp_path / "nope")
    assert missing.exit_code == 2
    assert "does not exist" in said(missing)
    first = cli("copy", source, tmp_path / "run.sqlite")
    assert first.exit_code == 0
    assert "13 events added" in said(first)
    second = cli("copy", source, tmp_path / "run.sqlite")
    assert second.exit_code == 0
    assert "0 events added, 13 already there" in said(second)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a log\n")
    # A file that is no log at all is unusable input (the CLI contract: exit 2).
    assert cli("verify", junk).exit_code == 2
    refused = cli("copy", junk, tmp_path / "out")
    assert refused.exit_code == 2
    assert "refused" in said(refused)


def test_cli_verify_of_a_directory_without_logs_fails(tmp_path: Path) -> None:
    # BUG (judgement): `qbb-events verify DIR` on a directory holding no log
    # (a wrong path, a run whose logs went elsewhere) prints "0 of 0 logs
    # verified" and exits 0, so a CI check of a run passes vacuously. The
    # issue asks for a message and a non-zero exit on bad input.
    (tmp_path / "empty").mkdir()
    result = cli("verify", tmp_path / "empty")
    assert result.exit_code != 0


# -- sources that hold no logs (issue 8) ---------------------------------------------------------


def test_verify_reports_an_empty_log_file(tmp_path: Path) -> None:
    sealed_log(tmp_path / "logs")
    (tmp_path / "logs" / "crashed.jsonl").touch()
    result = cli("verify", tmp_path / "logs")
    assert result.exit_code == 1
    assert "not_started" in said(result)
    assert "1 of 2 logs verified" in said(result)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01garbage" * 40, b"SQLite format 3\x00" + bytes(2000)],
    ids=["empty", "garbage", "foreign"],
)
def test_export_names_what_it_could_not_export_and_writes_nothing(
    tmp_path: Path, content: bytes
) -> None:
    source = tmp_path / "thing.jsonl"
    source.write_bytes(content)
    dest = tmp_path / "export"
    result = cli("export", source, dest, "--no-progress")
    assert result.exit_code == 1, result.output
    assert "exported 0 logs (0 events)" in said(result)
    assert "0 files written; 1 sources held nothing to export" in said(result)
    assert f"not exported {source}" in said(result)
    assert not any(p.is_file() for p in dest.rglob("*")) if dest.exists() else True


def test_export_of_an_unsupported_version_leaves_no_empty_folders(tmp_path: Path) -> None:
    run_workflow(tmp_path / "repo", tmp_path / "logs" / "a.jsonl")
    lines = (tmp_path / "logs" / "a.jsonl").read_bytes().splitlines()
    data = json.loads(lines[0])
    data["schema_version"] = 99
    (tmp_path / "logs" / "b.jsonl").write_bytes(rehashed(data) + b"\n")
    dest = tmp_path / "export"
    result = cli("export", tmp_path / "logs", dest, "--no-progress")
    assert result.exit_code == 1
    assert "99" in said(result)
    # The unsupported log is named and nothing of it written; the other is exported
    # (as a tampered log would be), and every folder the export made holds its part.
    assert f"not exported {tmp_path / 'logs' / 'b.jsonl'}" in said(result)
    assert "exported 1 logs" in said(result)
    assert "1 logs not exported (unsupported schema version)" in said(result)
    folders = [p for p in dest.rglob("run=*") if p.is_dir()]
    assert folders
    assert all(any(p.glob("part-*.parquet")) for p in folders)


def test_the_cli_reads_and_copies_an_sqlite_url(tmp_path: Path) -> None:
    source = sealed_log(tmp_path / "logs")
    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    assert cli("copy", source, url).exit_code == 0
    verified = cli("verify", url)
    assert verified.exit_code == 0, verified.output
    assert "1 of 1 logs verified" in said(verified)


def test_a_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("verify", tmp_path / "none")
    assert result.exit_code == 2
    assert "does not exist" in result.output
