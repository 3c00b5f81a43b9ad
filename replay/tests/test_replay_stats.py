"""qbb-replay stats: per run and per task figures of a generated run."""

from __future__ import annotations

from replay_support.cli import invoke, shaped
from replay_support.runs import Run

from qbb_events import fold, read_log


def test_stats_per_task(pristine_run: Run) -> None:
    result = invoke("stats", pristine_run.logs, "--json")
    # The killed attempt's log is unsealed: it fails verification, so exit 1.
    assert result.exit_code == 1
    document = shaped(result, "stats")
    assert document["logs"] == len(pristine_run.log_paths)
    assert document["failed_verification"] == 1
    (run,) = document["runs"].values()
    isr, coadd = run["tasks"]["isr"], run["tasks"]["coadd"]
    assert isr["quanta"] == 6
    assert isr["attempts_by_status"] == {
        "aborted": {"0": 1},
        "failed": {"0": 1},
        "succeeded": {"0": 4, "1": 2},
    }
    assert coadd["attempts_by_status"] == {"succeeded": {"0": 2}}
    assert isr["failed_verification"] == [str(pristine_run.log_paths[(pristine_run.killed[0], 0)])]
    # Against the fold of every log.
    folds = {key: fold(read_log(path)) for key, path in pristine_run.log_paths.items()}
    coadds = [p for (qid, _), p in folds.items() if pristine_run.quanta[qid].task_label == "coadd"]
    assert coadd["missing_inputs"] == sum(len(p.unavailable_inputs) for p in coadds) == 1
    assert coadd["unused_inputs"] == sum(len(p.available_inputs - p.actual_inputs) for p in coadds)
    assert coadd["unused_inputs"] == 2
    assert isr["unwritten_outputs"] == 2  # the failed and the killed attempts
    events = sum(
        len(read_log(p))
        for (qid, _), p in pristine_run.log_paths.items()
        if pristine_run.quanta[qid].task_label == "isr"
    )
    assert sum(isr["events_by_kind"].values()) == events
    assert isr["events_by_kind"]["quantum_started"] == 8
    assert isr["events_by_kind"]["quantum_finished"] == 7
    wall = isr["wall_ns"]
    assert wall["count"] == 7
    assert wall["min"] <= wall["median"] <= wall["p90"] <= wall["max"]
    assert run["total"]["logs"] == len(pristine_run.log_paths)


def test_stats_as_text_never_cuts_the_task_column(pristine_run: Run) -> None:
    result = invoke("stats", pristine_run.logs)
    assert result.exit_code == 1
    assert "isr" in result.stdout
    assert "coadd" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80 or all(
        str(pristine_run.logs) in line for line in result.stdout.splitlines() if len(line) > 80
    )


def test_stats_of_a_sound_run_exits_0(pristine_clean_run: Run) -> None:
    result = invoke("stats", pristine_clean_run.logs, "--json")
    assert result.exit_code == 0
    assert shaped(result, "stats")["failed_verification"] == 0
