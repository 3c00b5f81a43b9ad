"""qbb-replay verify: integrity, re-fold against stored accounts, artifacts, parallel workers."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from replay_support import tamper
from replay_support.cli import invoke, one_line_error, shaped
from replay_support.runs import Run
from support import postgres

from qbb_events import (
    QuantumProvenanceData,
    Registry,
    SqliteEventStore,
    copy_logs,
    export_parquet,
    transfer_run,
    write_provenance,
)


def _sound_isr(run: Run, index: int = 0) -> Path:
    """The log of the index-th isr quantum that succeeded at its first attempt."""
    paths = [
        path
        for (qid, attempt), path in sorted(run.log_paths.items())
        if run.quanta[qid].task_label == "isr"
        and attempt == 0
        and qid not in run.failed + run.killed
    ]
    return paths[index]


def test_verify_a_sound_run_exits_0(clean_run: Run) -> None:
    result = invoke("verify", clean_run.logs, "--check-files", clean_run.repo, "--jobs", 1)
    assert result.exit_code == 0, result.output
    document = shaped(invoke("verify", clean_run.logs, "--json"), "verify")
    assert document["ok"] is True
    assert document["logs"] == len(clean_run.log_paths)
    assert all(r["verified"] and not r["findings"] for r in document["results"])


def test_verify_names_the_killed_quantum_and_its_seq(run: Run) -> None:
    result = invoke("verify", run.logs)
    assert result.exit_code == 1
    (killed,) = run.killed
    path = run.log_paths[(killed, 0)]
    events = len(path.read_bytes().splitlines())
    assert f"FAIL quantum {killed} attempt 0 seq {events}: unsealed" in result.stdout
    assert str(path) in result.stdout
    document = shaped(invoke("verify", run.logs, "--json"), "verify")
    bad = [r for r in document["results"] if r["findings"]]
    assert [(r["quantum_id"], r["attempt"], r["status"]) for r in bad] == [(killed, 0, "aborted")]
    # The failed first attempts and their retries are sound logs.
    statuses = {(r["quantum_id"], r["attempt"]): r["status"] for r in document["results"]}
    for qid in run.failed:
        assert statuses[(qid, 0)] == "failed"
        assert statuses[(qid, 1)] == "succeeded"


def test_verify_with_two_jobs_gives_the_same_results(run: Run) -> None:
    one = shaped(invoke("verify", run.logs, "--json", "--jobs", 1), "verify")
    two = shaped(invoke("verify", run.logs, "--json", "--jobs", 2), "verify")
    assert one == two


_TAMPERINGS: dict[str, tuple[Callable[[Path, int], None], int, str]] = {
    "flipped byte": (tamper.flip_byte, 3, "tampered"),
    "edited, hash recomputed": (tamper.edit_and_rehash, 3, "tampered"),
    "deleted": (tamper.delete, 3, "missing"),
    "swapped": (tamper.swap, 3, "reordered"),
    "duplicated": (tamper.duplicate, 3, "duplicated"),
    "truncated": (tamper.truncate, 8, "truncated"),
    "after the seal": (tamper.after_seal, 9, "after_seal"),
}


@pytest.mark.parametrize("how", [*_TAMPERINGS, "spliced"])
def test_verify_names_the_seq_of_each_tampering(clean_run: Run, how: str) -> None:
    target = _sound_isr(clean_run)
    assert len(target.read_bytes().splitlines()) == 9
    if how == "spliced":
        damage, seq, kind = (
            functools.partial(tamper.splice, other=_sound_isr(clean_run, 1)),
            3,
            "spliced",
        )
    else:
        damage, seq, kind = _TAMPERINGS[how]
    damage(target, seq)
    result = invoke("verify", clean_run.logs)
    assert result.exit_code == 1
    assert f"seq {seq}: {kind}" in result.stdout, result.stdout
    document = shaped(invoke("verify", clean_run.logs, "--json"), "verify")
    (bad,) = [r for r in document["results"] if r["findings"]]
    assert bad["location"] == str(target)
    assert (kind, seq) in {(f["kind"], f["seq"]) for f in bad["findings"]}


def test_verify_finds_a_provenance_document_that_disagrees(clean_run: Run) -> None:
    target = _sound_isr(clean_run)
    document_path = target.with_name(target.name.removesuffix(".jsonl") + ".provenance.json")
    stored = QuantumProvenanceData.model_validate_json(document_path.read_text())
    (dropped,) = stored.actual_outputs
    edited = stored.model_copy(update={"actual_outputs": frozenset()})
    document_path.write_text(edited.model_dump_json())
    result = invoke("verify", clean_run.logs)
    assert result.exit_code == 1
    assert "account_mismatch" in result.stdout
    assert f"actual_output: only in the log: {dropped}" in result.stdout
    assert str(document_path) in result.stdout


def _export(run: Run, dest: Path) -> Path:
    export_parquet([run.logs], dest)
    write_provenance(dest)
    return dest


def test_verify_reads_an_export_and_compares_its_provenance_table(
    clean_run: Run, tmp_path: Path
) -> None:
    dest = _export(clean_run, tmp_path / "export")
    sound = invoke("verify", dest, "--json")
    assert sound.exit_code == 0, sound.output
    assert shaped(sound, "verify")["logs"] == len(clean_run.log_paths)
    # Drop one actual_input row from the stored provenance table.
    (part,) = sorted((dest / "provenance").rglob("*.parquet"))
    table = pq.read_table(part)
    roles = table.column("role").to_pylist()
    drop = roles.index("actual_input")
    kept = table.take([i for i in range(len(roles)) if i != drop])
    pq.write_table(kept, part)
    result = invoke("verify", dest)
    assert result.exit_code == 1
    assert "the export's provenance table disagrees with the log on actual_input" in result.stdout


def test_verify_reads_an_sqlite_store(clean_run: Run, tmp_path: Path) -> None:
    db = tmp_path / "run.sqlite"
    copy_logs([clean_run.logs], db)
    document = shaped(invoke("verify", db, "--json", "--jobs", 2), "verify")
    assert document["ok"]
    assert document["logs"] == len(clean_run.log_paths)
    with SqliteEventStore(db) as store:
        assert len(list(store.logs())) == len(clean_run.log_paths)


def test_check_files_finds_missing_and_changed_artifacts(clean_run: Run) -> None:
    artifacts = sorted(p for p in (clean_run.repo / "run" / "a" / "calexp").rglob("*.json"))
    artifacts[0].unlink()
    artifacts[1].write_text(artifacts[1].read_text() + " ")
    result = invoke("verify", clean_run.logs, "--check-files", clean_run.repo, "--json")
    assert result.exit_code == 1
    document = shaped(result, "verify")
    findings = [f for r in document["results"] for f in r["findings"]]
    kinds = sorted(f["kind"] for f in findings)
    assert kinds == ["artifact_changed", "artifact_missing"]
    # Each names the seq of the output_written event that recorded the artifact.
    assert all(f["seq"] is not None for f in findings)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new registry's URL: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "registry.sqlite")
        return
    url = postgres.create_database("qbb_replay")
    try:
        yield url
    finally:
        postgres.drop_database(url)


def _drop_one_provenance_row(url: str) -> uuid.UUID:
    """Delete one provenance row behind the registry's back; return its quantum."""
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}", poolclass=sa.NullPool)
    # The first row by primary key, deleted through bound parameters (the
    # table has no rowid on SQLite).
    key = "quantum_id, attempt, role, dataset_id"
    try:
        with engine.begin() as conn:
            row = conn.exec_driver_sql(f"SELECT {key} FROM provenance ORDER BY {key} LIMIT 1").one()
            conn.execute(
                sa.text(
                    "DELETE FROM provenance WHERE quantum_id = :q AND attempt = :a"
                    " AND role = :r AND dataset_id = :d"
                ),
                {"q": row[0], "a": row[1], "r": row[2], "d": row[3]},
            )
            quantum = row[0]
    finally:
        engine.dispose()
    if isinstance(quantum, uuid.UUID):
        return quantum
    return uuid.UUID(bytes=quantum) if isinstance(quantum, bytes) else uuid.UUID(str(quantum))


def test_verify_compares_the_registry_with_the_logs(clean_run: Run, registry_url: str) -> None:
    url = registry_url
    with Registry.create(url) as registry:
        transfer_run(registry, [clean_run.logs])
    sound = invoke("verify", clean_run.logs, "--registry", url, "--json")
    assert sound.exit_code == 0, sound.output
    document = shaped(sound, "verify")
    # Every log was re-folded against its registry rows (the fold fills these in).
    assert all(r["task_label"] is not None for r in document["results"])
    dropped = _drop_one_provenance_row(url)
    result = invoke("verify", clean_run.logs, "--registry", url, "--json")
    assert result.exit_code == 1
    (bad,) = [r for r in shaped(result, "verify")["results"] if r["findings"]]
    assert uuid.UUID(bad["quantum_id"]) == dropped
    (finding,) = bad["findings"]
    assert finding["kind"] == "account_mismatch"
    assert f"the registry {url} disagrees with the log" in finding["message"]


def test_verify_refuses_a_registry_that_does_not_exist(clean_run: Run, tmp_path: Path) -> None:
    line = one_line_error(invoke("verify", clean_run.logs, "--registry", tmp_path / "none.db"))
    assert "cannot open the registry" in line


def test_verify_flags_a_log_stored_twice_whatever_the_jobs(clean_run: Run) -> None:
    original = _sound_isr(clean_run)
    twin = clean_run.logs / "zz-copy.jsonl"
    twin.write_bytes(original.read_bytes())
    for jobs in (1, 2):
        result = invoke("verify", clean_run.logs, "--json", "--jobs", jobs)
        assert result.exit_code == 1
        (bad,) = [r for r in shaped(result, "verify")["results"] if r["findings"]]
        ((finding),) = bad["findings"]
        assert finding["kind"] == "duplicated"
        assert {bad["location"], str(original)} == {str(twin), str(original)}


def test_a_terminal_gets_a_counted_bar_and_the_same_answer(
    pristine_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = invoke("verify", pristine_run.logs, "--json")
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    drawn = invoke("verify", pristine_run.logs, "--json")
    assert drawn.exit_code == plain.exit_code == 1
    assert shaped(drawn, "verify") == shaped(plain, "verify")
    assert "verifying" in drawn.stderr
    assert f"/{len(pristine_run.log_paths)}" in drawn.stderr


def test_verify_reads_a_postgresql_event_store(clean_run: Run) -> None:
    url = postgres.create_database("qbb_replay_store")
    try:
        copy_logs([clean_run.logs], url)
        from_files = shaped(invoke("verify", clean_run.logs, "--json"), "verify")
        result = invoke("verify", url, "--json")
        assert result.exit_code == 0, result.output
        from_store = shaped(result, "verify")
        assert len(from_store["results"]) == len(from_files["results"])
        assert {(r["quantum_id"], r["attempt"]) for r in from_store["results"]} == {
            (r["quantum_id"], r["attempt"]) for r in from_files["results"]
        }
    finally:
        postgres.drop_database(url)
