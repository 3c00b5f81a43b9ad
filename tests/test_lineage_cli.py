"""``qbb-events export-lineage``: the CLI contract, refused logs, POSTs to a stub server."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from support.lineage import LineageRun, generate_run

from qbb_events import openlineage_events
from qbb_events.cli import main

SCHEMA = Path(__file__).parents[1] / "docs" / "schemas" / "qbb-events-export-lineage.schema.json"


class _Stub:
    """An OpenLineage HTTP endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 201
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.received.append((self.path, json.loads(body)))
                self.send_response(stub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub() -> Iterator[_Stub]:
    server = _Stub()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LineageRun:
    return generate_run(tmp_path_factory.mktemp("cli"), groups=1)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["export-lineage", *args])


def test_json_report_follows_its_schema(run: LineageRun, tmp_path: Path) -> None:
    out = tmp_path / "run.ndjson"
    result = _invoke(str(run.logs), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert document["ok"] is True
    assert document["attempts"] == len(run.statuses)
    assert document["events"] == 2 * len(run.statuses)
    assert document["bytes"] == out.stat().st_size


def test_documents_go_to_stdout_without_out(run: LineageRun) -> None:
    result = _invoke(str(run.logs))
    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.splitlines()
    assert [json.loads(line) for line in lines] == list(openlineage_events(run.logs))
    result = _invoke(str(run.logs), "--format", "prov-json")
    assert result.exit_code == 0, result.output
    assert "bundle" in json.loads(result.stdout)
    result = _invoke(str(run.logs), "--format", "prov-n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("document\n")
    assert "wasGeneratedBy(" in result.stdout


def test_a_tampered_log_is_left_out_and_exits_1(run: LineageRun, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(run.logs, logs)
    victim = sorted(logs.glob("*.jsonl"))[0]
    victim.write_bytes(victim.read_bytes().replace(b'"attempt":0', b'"attempt":7', 1))
    out = tmp_path / "out.ndjson"
    result = _invoke(str(logs), "--out", str(out), "--json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [r["location"] for r in document["refused"]] == [str(victim)]
    assert document["attempts"] == len(run.statuses) - 1
    assert len(out.read_bytes().splitlines()) == 2 * (len(run.statuses) - 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "Invalid value for '--format'"),
        (["--json"], "give --out"),
        (["--format", "prov-json", "--url", "http://127.0.0.1:9"], "needs --format openlineage"),
        (["--url", "file:///etc/passwd"], "must be http"),
    ],
)
def test_usage_errors_exit_2_on_one_line(run: LineageRun, args: list[str], message: str) -> None:
    result = _invoke(str(run.logs), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_source_exits_2(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path / "absent"))
    assert result.exit_code == 2


def test_url_posts_every_event_to_the_lineage_endpoint(
    run: LineageRun, stub: _Stub, tmp_path: Path
) -> None:
    out = tmp_path / "posted.ndjson"
    result = _invoke(str(run.logs), "--out", str(out), "--url", stub.url + "/", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["posted"] == 2 * len(run.statuses)
    assert {path for path, _ in stub.received} == {"/api/v1/lineage"}
    written = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [body for _, body in stub.received] == written


def test_a_refusing_server_is_one_line_and_exit_2(
    run: LineageRun, stub: _Stub, tmp_path: Path
) -> None:
    stub.status = 500
    out = tmp_path / "refused.ndjson"
    result = _invoke(str(run.logs), "--out", str(out), "--url", stub.url)
    assert result.exit_code == 2
    assert "refused the START event of run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(stub.received) == 1
    # A failed export leaves no partial file.
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_postgresql_event_store_is_a_source(run: LineageRun, tmp_path: Path) -> None:
    from support import postgres

    from qbb_events import copy_logs

    url = postgres.create_database("qbb_lineage")
    try:
        copy_logs([run.logs], url)
        from_files, from_store = tmp_path / "files.ndjson", tmp_path / "store.ndjson"
        assert _invoke(str(run.logs), "--out", str(from_files)).exit_code == 0
        result = _invoke(url, "--out", str(from_store), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["attempts"] == len(run.statuses)
        runs = {json.loads(line)["run"]["runId"] for line in from_files.read_text().splitlines()}
        assert {
            json.loads(line)["run"]["runId"] for line in from_store.read_text().splitlines()
        } == runs
    finally:
        postgres.drop_database(url)
