"""transfer_run: idempotent, resumable, parallel-safe and strict; SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.registry_db import RegistryUrls, dump
from support.registry_runs import GeneratedRun, three_task_run

from qbb_events import (
    ArgumentTypeError,
    DatasetRef,
    DatasetType,
    FileDatastore,
    InvalidDefinitionError,
    Quantum,
    QuantumBackedButler,
    Registry,
    export_parquet,
    fold,
    read_log,
    transfer_run,
)
from qbb_events.parquet import PROVENANCE_ROLES, provenance_rows_scalar

pytest_plugins = ("support.registry_fixtures",)

WORKER = Path(__file__).parent / "support" / "transfer_worker.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> GeneratedRun:
    return three_task_run(tmp_path_factory.mktemp("run"), exposures=12, seed=7)


def _clean(urls: RegistryUrls, sources: object) -> dict[str, list[tuple]]:
    url = urls.new()
    with Registry.create(url) as registry:
        assert transfer_run(registry, sources).ok
    return dump(url)


def _provenance_rows(url: str) -> set[tuple]:
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT quantum_id, attempt, role, dataset_id, seq FROM provenance"
        ).all()
    engine.dispose()
    return {
        (uuid.UUID(str(q)), a, PROVENANCE_ROLES[r], uuid.UUID(str(d)), s) for q, a, r, d, s in rows
    }


def test_transfer_matches_the_fold_and_its_seqs(registry_url: str, run: GeneratedRun) -> None:
    with Registry.create(registry_url) as registry:
        report = transfer_run(registry, run.log_dir, progress=False)
        assert report.ok
        assert report.logs == report.quanta_new == len(run.logs)
        assert report.datasets_new == sum(len(p.actual_outputs) for p in run.provenance)
        expected = set()
        for path in run.logs:
            events = read_log(path)
            prov = fold(events)
            sets = registry.provenance(prov.quantum_id)
            assert sets["actual_input"] == prov.actual_inputs
            assert sets["available_input"] == prov.available_inputs
            assert sets["unavailable_input"] == prov.unavailable_inputs
            assert sets["predicted_input"] == prov.predicted_inputs
            assert sets["predicted_output"] == prov.predicted_outputs
            assert sets["actual_output"] == prov.actual_outputs
            for row in provenance_rows_scalar(events).to_pylist():
                expected.add(
                    (
                        uuid.UUID(bytes=row["quantum_id"]),
                        row["attempt"],
                        row["role"],
                        uuid.UUID(bytes=row["dataset_id"]),
                        row["seq"],
                    )
                )
        assert _provenance_rows(registry_url) == expected
        assert report.provenance_rows_new == len(expected)
        quantum = registry.quanta(task_label="coadd")[0]
        assert quantum.verified
        assert quantum.status == "succeeded"
        assert quantum.final_hash


def test_transfer_twice_changes_nothing(registry_url: str, run: GeneratedRun) -> None:
    with Registry.create(registry_url) as registry:
        first = transfer_run(registry, run.log_dir, batch_size=3)
        assert first.batches > 1
        before = dump(registry_url)
        again = transfer_run(registry, run.log_dir, batch_size=3)
        assert (again.quanta_new, again.datasets_new, again.records_new) == (0, 0, 0)
        assert again.provenance_rows_new == 0
        assert again.batches == 0
        assert again.quanta_existing == len(run.logs)
        assert again.ok
        assert dump(registry_url) == before


def test_workers_and_parquet_exports_give_the_same_registry(
    registry_urls: RegistryUrls, run: GeneratedRun, tmp_path: Path
) -> None:
    clean = _clean(registry_urls, run.log_dir)
    url = registry_urls.new()
    with Registry.create(url) as registry:
        report = transfer_run(registry, [str(run.log_dir)], workers=2, batch_size=4)
        assert report.ok
        assert report.quanta_new == len(run.logs)
    assert dump(url) == clean
    export_parquet(run.log_dir, tmp_path / "export", progress=False)
    assert _clean(registry_urls, tmp_path / "export") == clean


def test_arguments_are_checked(registry_url: str, run: GeneratedRun) -> None:
    with Registry.create(registry_url) as registry:
        with pytest.raises(ArgumentTypeError, match="workers"):
            transfer_run(registry, run.log_dir, workers=0)
        with pytest.raises(ArgumentTypeError, match="batch_size"):
            transfer_run(registry, run.log_dir, batch_size=True)
        with pytest.raises(InvalidDefinitionError, match="datastore_root"):
            transfer_run(registry, run.log_dir, check_artifacts=True)
        with pytest.raises(FileNotFoundError):
            transfer_run(registry, run.root / "absent")


# -- resumable -----------------------------------------------------------------


def _batches(url: str) -> int:
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM transfer_batch").scalar() or 0)
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def test_sigkill_mid_transfer_then_resume_equals_a_clean_transfer(
    registry_urls: RegistryUrls, run: GeneratedRun
) -> None:
    clean = _clean(registry_urls, run.log_dir)
    logs = [str(path) for path in sorted(run.logs)]
    rng = random.Random(11)
    for kill_after in (1, 4, 9):
        url = registry_urls.new()
        Registry.create(url).close()
        process = subprocess.Popen([sys.executable, str(WORKER), url, "1", *logs])
        deadline = time.monotonic() + 60
        while _batches(url) < kill_after and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # Somewhere inside a later batch, or between two.
        time.sleep(rng.random() * 0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        committed = _batches(url)
        assert committed >= kill_after
        with Registry.open(url) as registry:
            resumed = transfer_run(registry, logs, batch_size=5)
        assert resumed.ok
        assert resumed.quanta_existing + resumed.quanta_new == len(logs)
        assert resumed.quanta_existing >= kill_after
        assert dump(url) == clean


# -- parallel-safe ---------------------------------------------------------------


def test_four_processes_overlapping_give_the_clean_registry(
    registry_urls: RegistryUrls, run: GeneratedRun, tmp_path: Path
) -> None:
    clean = _clean(registry_urls, run.log_dir)
    url = registry_urls.new()
    Registry.create(url).close()
    logs = [str(path) for path in sorted(run.logs)]
    n = len(logs)
    # Each process takes 60% of the logs, starting at a different place and
    # in a different order, so every log is transferred by 2 or 3 at once.
    shares = []
    for k in range(4):
        start = k * n // 4
        share = [logs[(start + i) % n] for i in range(int(n * 0.6) + 1)]
        shares.append(share if k % 2 == 0 else share[::-1])
    go = tmp_path / "go"
    env = {**os.environ, "QBB_TEST_START_FILE": str(go)}
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, "2", *share],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for share in shares
    ]
    time.sleep(1.5)  # every worker has imported the library and is waiting
    go.touch()
    outputs = [process.communicate(timeout=120)[0].split() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0]
    new = sum(int(out[0]) for out in outputs)
    assert new == n  # every quantum attempt was added exactly once
    assert dump(url) == clean


# -- strict ----------------------------------------------------------------------


def _tamper(path: Path, out: Path) -> Path:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"existence_checked"', b'"existence_checkeD"', 1)
    out.write_bytes(b"".join(lines))
    return out


def test_unverified_logs_are_refused_unless_forced(
    registry_url: str, run: GeneratedRun, tmp_path: Path
) -> None:
    good = run.logs[1]
    bad = _tamper(run.logs[0], tmp_path / "tampered.jsonl")
    with Registry.create(registry_url) as registry:
        report = transfer_run(registry, [good, bad])
        assert not report.ok
        assert [r.location for r in report.refused] == [str(bad)]
        assert "tampered" in report.refused[0].problems[0]
        assert report.quanta_new == 1
        forced = transfer_run(registry, [good, bad], force_unverified=True)
        assert forced.unverified == [str(bad)]
        assert forced.quanta_new == 1
        quantum_id = fold(read_log(run.logs[0])).quantum_id
        (held,) = [q for q in registry.quanta() if q.id == quantum_id]
        assert not held.verified


def test_unsealed_logs_are_aborted_without_outputs(
    registry_url: str, run: GeneratedRun, tmp_path: Path
) -> None:
    path = next(p for p, prov in zip(run.logs, run.provenance, strict=True) if prov.actual_outputs)
    lines = path.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "killed.jsonl"
    # The quantum was killed while writing quantum_finished: a torn last record.
    cut.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])
    prov = fold(read_log(path))
    with Registry.create(registry_url) as registry:
        report = transfer_run(registry, cut)
        assert report.ok
        assert report.aborted == [f"{prov.quantum_id}/0"]
        assert report.datasets_new == 0
        (held,) = registry.quanta()
        assert held.status == "aborted"
        assert held.end_ns is None
        assert held.verified
        for dataset_id in prov.actual_outputs:
            assert registry.get_dataset(dataset_id) is None
            assert registry.producer(dataset_id) is None
        assert registry.provenance(prov.quantum_id)["actual_output"] == prov.actual_outputs


def test_artifact_checks_catch_missing_and_changed_files(registry_url: str, tmp_path: Path) -> None:
    run = three_task_run(tmp_path, exposures=4)
    isr = [(q, p) for q, p in zip(run.quanta, run.provenance, strict=True) if q.task_label == "isr"]
    missing_ref, changed_ref = isr[0][0].outputs[0], isr[1][0].outputs[0]
    run.datastore.path(missing_ref).unlink()
    changed = run.datastore.path(changed_ref)
    data = changed.read_bytes()
    changed.chmod(0o644)
    changed.write_bytes(data.replace(b"0", b"9") if b"0" in data else data[::-1])
    with Registry.create(registry_url) as registry:
        report = transfer_run(
            registry, run.log_dir, check_artifacts=True, datastore_root=run.root / "repo"
        )
        assert not report.ok
        problems = {p.dataset_id: p.message for p in report.artifact_problems}
        assert set(problems) == {missing_ref.id, changed_ref.id}
        assert "missing" in problems[missing_ref.id]
        assert "checksum" in problems[changed_ref.id] or "size" in problems[changed_ref.id]
        assert registry.get_dataset(missing_ref.id) is None
        assert registry.get_dataset(changed_ref.id) is None
        assert registry.get_dataset(isr[2][0].outputs[0].id) == isr[2][0].outputs[0]


def _one_output(
    datastore: FileDatastore, ref: DatasetRef, value: object, quantum_id: uuid.UUID | None = None
) -> tuple[Quantum, object]:
    quantum = Quantum("writer", {}, [], [ref], id=quantum_id)
    with QuantumBackedButler.initialize(datastore, quantum) as butler:
        butler.put(value, ref)
    return quantum, butler.extract_provenance_data()


def test_conflicts_are_reported_and_nothing_is_overwritten(
    registry_url: str, tmp_path: Path
) -> None:
    calexp = DatasetType("calexp", "json", ("visit",))
    first = DatasetRef(calexp, {"visit": 1}, "c/run")
    same_id_other_data_id = DatasetRef(calexp, {"visit": 2}, "c/run", id=first.id)
    same_key_other_id = DatasetRef(calexp, {"visit": 1}, "c/run")
    other_type = DatasetRef(DatasetType("calexp", "bytes", ("visit",)), {"visit": 3}, "c/run")
    with Registry.create(registry_url) as registry:
        q, p = _one_output(FileDatastore(tmp_path / "a"), first, {"v": 1})
        assert registry.collect_and_transfer([q], [p]).datasets_new == 1
        before = dump(registry_url)
        records = registry.datastore_records([first.id])
        for root, ref, value in (
            ("b", same_id_other_data_id, {"v": 2}),
            ("c", same_key_other_id, {"v": 1}),
            ("d", other_type, b"x"),
            ("e", first, {"v": "another artifact"}),
        ):
            q2, p2 = _one_output(FileDatastore(tmp_path / root), ref, value)
            report = registry.collect_and_transfer([q2], [p2])
            assert not report.ok
            assert report.datasets_new == 0
            (conflict,) = report.conflicts
            kind = {"d": "dataset_type", "e": "record"}.get(root, "dataset")
            assert conflict.kind == kind
            assert conflict.key == (calexp.name if kind == "dataset_type" else str(ref.id))
        assert registry.get_dataset(first.id) == first
        assert registry.datastore_records([first.id]) == records
        rows = dump(registry_url)
        for table in ("dataset_type", "run", "dataset", "datastore_record"):
            assert rows[table] == before[table]


def test_a_quantum_attempt_from_another_log_is_a_conflict(
    registry_url: str, tmp_path: Path
) -> None:
    calexp = DatasetType("calexp", "json", ("visit",))
    quantum_id = uuid.uuid4()
    logs = []
    for name in ("one", "two"):
        ref = DatasetRef(calexp, {"visit": 1}, f"{name}/run")
        quantum = Quantum("writer", {}, [], [ref], id=quantum_id)
        path = tmp_path / f"{name}.jsonl"
        with QuantumBackedButler.initialize(FileDatastore(tmp_path / name), quantum, log=path) as b:
            b.put({"v": name}, ref)
        logs.append(path)
    with Registry.create(registry_url) as registry:
        assert transfer_run(registry, logs[0]).quanta_new == 1
        report = transfer_run(registry, logs[1])
        (conflict,) = report.conflicts
        assert conflict.kind == "quantum"
        assert conflict.key == f"{quantum_id}/0"
        assert report.quanta_new == 0
        assert report.datasets_new == 0
        assert registry.find_dataset("calexp", {"visit": 1}, "two/run") is None
