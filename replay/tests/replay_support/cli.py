"""Running qbb-replay in-process and checking its output against the documented contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from click.testing import CliRunner, Result
from qbb_replay.cli import main

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def invoke(*args: object) -> Result:
    """Run qbb-replay in-process; output on stdout and stderr kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args])


def shaped(result: Result, command: str) -> dict[str, Any]:
    """Parse a --json output and validate it against its documented schema."""
    document = json.loads(result.stdout)
    schema = json.loads((SCHEMAS / f"qbb-replay-{command}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert document["tool"] == "qbb-replay"
    assert document["command"] == command
    return document


def one_line_error(result: Result) -> str:
    """Assert exit 2 with a single-line message and no traceback; return it."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


Invoke = Callable[..., Result]
