"""qbb-replay show: the timeline of one attempt, and the fold of every prefix with --at."""

from __future__ import annotations

import datetime as dt

import pytest
from qbb_replay import DatasetNames, provenance_state
from replay_support.cli import invoke, one_line_error, shaped
from replay_support.runs import Run

from qbb_events import fold, read_log


def _coadd_with_missing_and_unused(run: Run) -> str:
    for (qid, _attempt), path in sorted(run.log_paths.items()):
        p = fold(read_log(path))
        if run.quanta[qid].task_label == "coadd" and p.unavailable_inputs:
            assert p.available_inputs - p.actual_inputs
            return qid
    raise AssertionError("the generated run has no such coadd")


def test_show_prints_one_line_per_event(pristine_run: Run) -> None:
    (qid,) = pristine_run.failed
    result = invoke("show", qid, pristine_run.logs, "--attempt", 0)
    assert result.exit_code == 0, result.output
    events = read_log(pristine_run.log_paths[(qid, 0)])
    for event in events:
        assert event.kind in result.stdout
    assert "missing: ArtifactNotFoundError" in result.stdout
    document = shaped(invoke("show", qid, pristine_run.logs, "--attempt", 0, "--json"), "show")
    assert [r["seq"] for r in document["timeline"]] == [e.seq for e in events]
    assert [r["kind"] for r in document["timeline"]] == [e.kind for e in events]
    assert document["timeline"][0]["offset_ns"] == 0
    assert document["timeline"][-1]["outcome"].startswith("failed")
    assert document["state"] is None


def test_show_takes_the_last_attempt_a_prefix_and_a_log_path(pristine_run: Run) -> None:
    (qid,) = pristine_run.failed
    last = shaped(invoke("show", qid[:-2], pristine_run.logs, "--json"), "show")
    assert last["attempt"] == 1
    assert last["timeline"][-1]["outcome"] == "succeeded"
    by_path = shaped(invoke("show", pristine_run.log_paths[(qid, 0)], "--json"), "show")
    assert by_path["attempt"] == 0
    assert by_path["quantum_id"] == qid
    at = shaped(invoke("show", f"{qid}@0", pristine_run.logs, "--json"), "show")
    assert at["attempt"] == 0


def test_show_of_the_killed_quantum_ends_unsealed(pristine_run: Run) -> None:
    (qid,) = pristine_run.killed
    document = shaped(invoke("show", f"{qid}@0", pristine_run.logs, "--json"), "show")
    assert "quantum_finished" not in [r["kind"] for r in document["timeline"]]
    state = shaped(invoke("show", f"{qid}@0", pristine_run.logs, "--json", "--at", 2), "show")[
        "state"
    ]
    assert state["status"] is None


@pytest.mark.parametrize("which", ["failed isr", "coadd"])
def test_show_at_each_seq_is_the_fold_of_that_prefix(pristine_run: Run, which: str) -> None:
    qid = (
        pristine_run.failed[0]
        if which == "failed isr"
        else _coadd_with_missing_and_unused(pristine_run)
    )
    path = pristine_run.log_paths[(qid, 0)]
    events = read_log(path)
    names = DatasetNames(events)
    seen = set()
    for seq in range(len(events)):
        state = shaped(invoke("show", path, "--at", seq, "--json"), "show")["state"]
        expected = fold(events[: seq + 1])
        assert state["events"] == seq + 1
        assert state["last_seq"] == seq
        assert state["sets"] == provenance_state(expected, names)
        assert state["status"] == expected.status
        assert state["warnings"] == [w.tag for w in expected.warnings]
        seen.add(str(state["sets"]))
    # The state really changes along the log: the test steps through it.
    assert len(seen) >= 3
    text = invoke("show", path, "--at", len(events) - 1)
    assert text.exit_code == 0
    assert "actual_inputs:" in text.stdout


def test_show_at_a_time_folds_the_events_before_it(pristine_run: Run) -> None:
    qid = _coadd_with_missing_and_unused(pristine_run)
    path = pristine_run.log_paths[(qid, 0)]
    events = read_log(path)
    names = DatasetNames(events)
    for k in range(len(events) - 1):
        middle = (events[k].timestamp_ns + events[k + 1].timestamp_ns) // 2
        if middle // 1000 * 1000 <= events[k].timestamp_ns:
            continue  # too close to tell apart in microseconds
        moment = dt.datetime.fromtimestamp(middle // 1000 / 1e6, tz=dt.UTC).isoformat()
        state = shaped(invoke("show", path, "--at", moment, "--json"), "show")["state"]
        assert state["events"] == k + 1
        assert state["sets"] == provenance_state(fold(events[: k + 1]), names)
    offset = (events[-1].timestamp_ns - events[0].timestamp_ns) / 1e9 + 1
    whole = shaped(invoke("show", path, "--at", f"+{offset}s", "--json"), "show")["state"]
    assert whole["events"] == len(events)


def test_show_refuses_bad_arguments_in_one_line(pristine_run: Run) -> None:
    (qid,) = pristine_run.failed
    path = pristine_run.log_paths[(qid, 0)]
    assert "the log holds seqs 0 to" in one_line_error(invoke("show", path, "--at", 999))
    assert "neither a seq" in one_line_error(invoke("show", path, "--at", "yesterday"))
    assert "no log of quantum" in one_line_error(invoke("show", "ffff", pristine_run.logs))
    assert "has no attempt 7" in one_line_error(
        invoke("show", qid, pristine_run.logs, "--attempt", 7)
    )
    assert "names" in one_line_error(invoke("show", "0", pristine_run.logs))
