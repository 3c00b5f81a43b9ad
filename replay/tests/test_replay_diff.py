"""qbb-replay diff: two attempts of one quantum, two quanta, and a log with itself."""

from __future__ import annotations

from replay_support.cli import invoke, shaped
from replay_support.runs import Run


def test_diff_of_a_failed_attempt_and_its_retry(pristine_run: Run) -> None:
    (qid,) = pristine_run.failed
    result = invoke("diff", f"{qid}@0", f"{qid}@1", pristine_run.logs)
    assert result.exit_code == 1
    assert "status: a failed, b succeeded" in result.stdout
    assert "timelines diverge at event 1" in result.stdout
    document = shaped(invoke("diff", f"{qid}@0", f"{qid}@1", pristine_run.logs, "--json"), "diff")
    assert document["same"] is False
    assert (document["a"]["attempt"], document["b"]["attempt"]) == (0, 1)
    raw = [name for name in document["actions"]["read"]["only_b"] if name.startswith("raw")]
    assert raw == ["raw(exposure=2)"]
    assert document["actions"]["read_failed"] == {"only_a": ["raw(exposure=2)"], "only_b": []}
    assert document["actions"]["written"] == {"only_a": [], "only_b": ["calexp(exposure=2)"]}
    assert document["provenance"]["unavailable_inputs"]["only_a"] == ["raw(exposure=2)"]
    assert document["provenance"]["actual_outputs"]["only_b"] == ["calexp(exposure=2)"]
    divergence = document["divergence"]
    assert divergence["index"] == 1
    assert divergence["a"]["outcome"] == "1 of 2 found"
    assert divergence["b"]["outcome"] == "2 of 2 found"


def test_diff_of_the_killed_attempt_and_its_retry(pristine_run: Run) -> None:
    (qid,) = pristine_run.killed
    document = shaped(invoke("diff", f"{qid}@0", f"{qid}@1", pristine_run.logs, "--json"), "diff")
    assert document["status"] == {"a": "aborted", "b": "succeeded"}
    # The killed attempt did the same as the retry until it died.
    assert document["divergence"]["a"] is None
    assert document["divergence"]["b"]["kind"] in ("existence_checked", "output_written")


def test_a_log_does_not_differ_from_itself(pristine_run: Run) -> None:
    path = next(iter(pristine_run.log_paths.values()))
    result = invoke("diff", path, path)
    assert result.exit_code == 0
    assert "did the same thing" in result.stdout
    document = shaped(invoke("diff", path, path, "--json"), "diff")
    assert document["same"] is True
    assert document["divergence"] is None


def test_diff_of_two_quanta_of_one_task_compares_by_dataset(pristine_run: Run) -> None:
    paths = [
        p
        for (qid, attempt), p in sorted(pristine_run.log_paths.items())
        if pristine_run.quanta[qid].task_label == "coadd"
    ]
    document = shaped(invoke("diff", paths[0], paths[1], "--json"), "diff")
    assert document["same"] is False
    assert document["provenance"]["predicted_outputs"] == {
        "only_a": ["coadd(patch=0)"],
        "only_b": ["coadd(patch=1)"],
    }
