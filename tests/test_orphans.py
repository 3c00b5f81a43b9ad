"""find_orphans: artifacts no registry record and no log accounts for."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from support.registry_runs import three_task_run

from qbb_events import Registry, find_orphans, transfer_run
from qbb_events.cli import main

pytest_plugins = ("support.registry_fixtures",)


def test_orphans_are_files_nothing_accounts_for(registry_url: str, tmp_path: Path) -> None:
    run = three_task_run(tmp_path, exposures=4)
    repo = run.root / "repo"
    stray = repo / "gen" / "stray.json"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("{}")
    debris = repo / ".killed-writer.tmp"
    debris.write_text("half")
    with Registry.create(registry_url) as registry:
        # Nothing transferred yet: every artifact is an orphan, unless the
        # logs account for it.
        everything = find_orphans(repo, registry)
        with_logs = find_orphans(repo, registry, logs=run.log_dir)
        transfer_run(registry, run.log_dir)
        after = find_orphans(repo, registry)
    outputs = {
        run.datastore.relative_path(ref)
        for q, p in zip(run.quanta, run.provenance, strict=True)
        for ref in q.outputs
        if ref.id in p.actual_outputs
    }
    raws = {run.datastore.relative_path(ref) for q in run.quanta[:3] for ref in q.inputs}
    assert set(everything) == outputs | raws | {"gen/stray.json", ".killed-writer.tmp"}
    assert set(with_logs) == raws | {"gen/stray.json", ".killed-writer.tmp"}
    # The raws were inputs, registered by no transfer of this run.
    assert set(after) == raws | {"gen/stray.json", ".killed-writer.tmp"}
    assert after == sorted(after)
    assert stray.exists()  # nothing deleted


def test_orphans_of_a_missing_root(registry_url: str, tmp_path: Path) -> None:
    import pytest

    with Registry.create(registry_url) as registry, pytest.raises(FileNotFoundError):
        find_orphans(tmp_path / "absent", registry)


def test_a_run_directory_is_not_a_datastore_and_nothing_is_deleted(
    registry_url: str, tmp_path: Path
) -> None:
    import pytest

    from qbb_events import NotADatastoreError

    run = three_task_run(tmp_path, exposures=2)
    with Registry.create(registry_url) as registry:
        transfer_run(registry, run.log_dir)
        # The run's folder holds the datastore beside its logs: not a datastore.
        with pytest.raises(NotADatastoreError, match="is not a datastore root"):
            find_orphans(run.root, registry)
    before = sorted(p for p in run.root.rglob("*") if p.is_file())
    result = CliRunner().invoke(
        main, ["orphans", str(run.root), "--registry", registry_url, "--delete"]
    )
    assert result.exit_code == 2, result.output
    assert sorted(p for p in run.root.rglob("*") if p.is_file()) == before


def test_delete_refuses_a_folder_nothing_accounts_for(registry_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.txt").write_text("mine")
    Registry.create(registry_url).close()
    result = CliRunner().invoke(
        main, ["orphans", str(folder), "--registry", registry_url, "--delete"]
    )
    assert result.exit_code == 2, result.output
    assert (folder / "a.txt").read_text() == "mine"


def test_logs_that_are_no_logs_are_refused(registry_url: str, tmp_path: Path) -> None:
    import pytest

    from qbb_events import LogCorruptedError

    run = three_task_run(tmp_path, exposures=2)
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"not": "a log"}\n')
    with Registry.create(registry_url) as registry, pytest.raises(LogCorruptedError):
        find_orphans(run.root / "repo", registry, logs=notes)
