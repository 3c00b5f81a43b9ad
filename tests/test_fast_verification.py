"""The fast path of verification gives exactly the full checker's reports.

`verify_logs` proves perfect JSON Lines files so in bulk (blocks of whole
lines, a columnar parse, SHA-256 chained on the stored hashes) and hands
every other log to the full checker. Each test verifies the same logs twice,
once as `verify_logs` does and once with the fast path switched off, and the
reports must be equal; the fast path must also have judged the perfect logs
itself, and given up on every damaged one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scenarios import run_scenario
from support.strategies import Scenario, scenarios
from support.workflows import lines_of, rehash, run_workflow, write_lines

import qbb_events.logs._fast_verification as fast_module
from qbb_events import VerificationReport, export_parquet, verify_logs


def full_report(source: Any) -> VerificationReport:
    """The report of the full checker alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_module, "fast_verdict", lambda path: None)
        patch.setattr(
            fast_module, "PARALLEL_FROM", 10**9
        )  # no workers: they would not see the patch
        return verify_logs(source)


def assert_same_reports(path: Path, *, fast: bool) -> VerificationReport:
    report = verify_logs(path)
    assert report == full_report(path)
    assert (fast_module.fast_verdict(str(path.resolve())) is not None) is fast
    return report


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_calls=20))
def test_random_logs_get_the_same_report(sc: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quantum.jsonl"
        butler = run_scenario(Path(tmp) / "repo", sc, log=path).butler
        butler.close()
        report = verify_logs(path)
        assert report == full_report(path)
        # A sealed log the butler wrote is perfect: the fast path judged it.
        assert report.ok
        assert fast_module.fast_verdict(str(path)) is not None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_calls=12), st.integers(0, 10**9), st.integers(1, 255))
def test_random_damage_gets_the_same_report(sc: Scenario, where: int, flip: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quantum.jsonl"
        butler = run_scenario(Path(tmp) / "repo", sc, log=path).butler
        butler.close()
        raw = bytearray(path.read_bytes())
        # A position drawn independently of the log's length (timestamps vary it).
        raw[where % len(raw)] ^= flip
        path.write_bytes(bytes(raw))
        report = verify_logs(path)
        assert report == full_report(path)
        if not report.ok:
            assert fast_module.fast_verdict(str(path)) is None


def _edit(
    index: int, change: Callable[[dict[str, Any]], None]
) -> Callable[[list[bytes]], list[bytes]]:
    def edit(lines: list[bytes]) -> list[bytes]:
        data = orjson.loads(lines[index])
        change(data)
        return [*lines[:index], rehash(data), *lines[index + 1 :]]

    return edit


DAMAGE: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "flipped byte": lambda lines: [
        *lines[:3],
        lines[3].replace(b'"seq":3', b'"seq":4'),
        *lines[4:],
    ],
    "edit with hash recomputed": _edit(4, lambda d: d.update(bytes_read=999)),
    "deleted event": lambda lines: [*lines[:3], *lines[4:]],
    "swapped events": lambda lines: [*lines[:3], lines[4], lines[3], *lines[5:]],
    "duplicated event": lambda lines: [*lines[:4], lines[3], *lines[4:]],
    "unsealed": lambda lines: lines[:-1],
    "event after the seal": lambda lines: [*lines, lines[-1]],
    "blank line inside": lambda lines: [*lines[:2], b"", *lines[2:]],
    "crlf line ending": lambda lines: [lines[0] + b"\r", *lines[1:]],
    "spaced json": lambda lines: [*lines[:2], lines[2].replace(b'","', b'", "', 1), *lines[3:]],
    "two objects on a line": lambda lines: [lines[0] + lines[1], *lines[2:]],
    "time reversed": _edit(2, lambda d: d.update(timestamp_ns=1)),
    "nan in a payload": lambda lines: [
        *lines[:4],
        lines[4].replace(b'"bytes_read":', b'"bytes_read":NaN,"x":', 1),
        *lines[5:],
    ],
    "newer schema version": _edit(0, lambda d: d.update(schema_version=99)),
    "another quantum's event": _edit(
        3, lambda d: d.update(quantum_id="01a2355e-3df4-7285-b020-b617fe483228")
    ),
    "lone surrogate": _edit(1, lambda d: d.update(extra="\\ud800")),
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_logs_get_the_full_checkers_report(tmp_path: Path, how: str) -> None:
    path = tmp_path / "q.jsonl"
    run_workflow(tmp_path / "repo", path)
    write_lines(path, DAMAGE[how](lines_of(path)))
    if how == "lone surrogate":  # a forger's escape the writer never makes
        path.write_bytes(path.read_bytes().replace(b"\\\\ud800", b"\\ud800"))
    report = assert_same_reports(path, fast=False)
    assert not report.ok


def test_a_torn_last_record_gets_the_full_checkers_report(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    run_workflow(tmp_path / "repo", path)
    path.write_bytes(path.read_bytes()[:-40])
    assert assert_same_reports(path, fast=False).logs[0].problems[0].kind == "truncated"


def rechained(lines: list[bytes], change: Callable[[dict[str, Any]], None]) -> list[bytes]:
    """Apply ``change`` to every event and rebuild the whole chain: a perfect log again."""
    prev = "0" * 64
    out = []
    for line in lines:
        data = orjson.loads(line)
        data["prev_hash"] = prev
        change(data)
        record = rehash(data)
        prev = orjson.loads(record)["hash"]
        out.append(record)
    return out


def test_escaped_strings_are_judged_fast(tmp_path: Path) -> None:
    """Quotes, backslashes, controls and non-ASCII text in payloads: a perfect log all the same."""
    path = tmp_path / "q.jsonl"
    run_workflow(tmp_path / "repo", path)

    def escape(data: dict[str, Any]) -> None:
        if data.get("failure"):
            data["failure"]["message"] = 'a "quote", a \\ backslash, \t\n\x00 and é ✓ 𝄞'

    write_lines(path, rechained(lines_of(path), escape))
    assert b"\\u0000" in path.read_bytes()
    report = assert_same_reports(path, fast=True)
    assert report.ok


def test_an_envelope_key_inside_a_payload_is_payload(tmp_path: Path) -> None:
    """A data-ID key named like an envelope field: the fast path parses, so it is not fooled."""
    path = tmp_path / "q.jsonl"
    run_workflow(tmp_path / "repo", path)

    def nest(data: dict[str, Any]) -> None:
        if data["seq"] == 0:
            data["quantum"]["data_id"] = {**data["quantum"]["data_id"], "seq": 7}

    write_lines(path, rechained(lines_of(path), nest))
    assert b'"seq":7' in path.read_bytes()
    assert assert_same_reports(path, fast=True).ok


def test_many_logs_are_checked_on_every_core(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for k in range(fast_module.PARALLEL_FROM + 2):
        run_workflow(tmp_path / f"repo{k}", logs / f"q{k}.jsonl")
    bad = logs / "q3.jsonl"
    write_lines(bad, DAMAGE["deleted event"](lines_of(bad)))
    report = verify_logs(logs)
    assert report == full_report(logs)
    assert [v.ok for v in report.logs].count(False) == 1


def test_a_quantum_id_with_a_trailing_newline_goes_to_the_full_checker(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    run_workflow(tmp_path / "repo", path)

    def newline(data: dict[str, Any]) -> None:
        data["quantum_id"] += "\n"
        if data["seq"] == 0:
            data["quantum"]["id"] = data["quantum_id"]

    write_lines(path, rechained(lines_of(path), newline))
    assert not assert_same_reports(path, fast=False).ok


def test_exports_are_byte_identical_whichever_path_verified(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for k in range(3):
        run_workflow(tmp_path / f"repo{k}", logs / f"q{k}.jsonl")
    bad = logs / "q1.jsonl"
    write_lines(bad, DAMAGE["unsealed"](lines_of(bad)))
    export_parquet(logs, tmp_path / "fast")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_module, "fast_verdict", lambda path: None)
        export_parquet(logs, tmp_path / "full")

    def files(root: Path) -> dict[Path, bytes]:
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*.parquet")}

    assert files(tmp_path / "fast") == files(tmp_path / "full")
    assert len(files(tmp_path / "fast")) == 3
