"""The registry: creation, versions, collect_and_transfer, queries; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.registry_db import dump
from support.registry_runs import three_task_run

from qbb_events import (
    DatasetRef,
    DatasetType,
    FileDatastore,
    InvalidDefinitionError,
    NotRegisteredError,
    Quantum,
    QuantumBackedButler,
    QuantumProvenanceData,
    Registry,
    RegistryExistsError,
    RegistryNotFoundError,
    RegistryVersionError,
    fold,
    read_log,
    transfer_run,
)

pytest_plugins = ("support.registry_fixtures",)

ROLES = {
    "predicted_input": "predicted_inputs",
    "available_input": "available_inputs",
    "unavailable_input": "unavailable_inputs",
    "actual_input": "actual_inputs",
    "predicted_output": "predicted_outputs",
    "actual_output": "actual_outputs",
}


def _engine_url(url: str) -> str:
    return url if "://" in url else f"sqlite:///{url}"


# -- life cycle ----------------------------------------------------------------


def test_create_then_open(registry_url: str) -> None:
    with Registry.create(registry_url) as created:
        assert created.dialect in ("sqlite", "postgresql")
    with Registry.open(registry_url) as opened:
        assert opened.quanta() == []


def test_create_refuses_an_existing_registry(registry_url: str) -> None:
    Registry.create(registry_url).close()
    with pytest.raises(RegistryExistsError, match="already holds registry tables"):
        Registry.create(registry_url)


def test_open_refuses_a_missing_sqlite_file_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    with pytest.raises(RegistryNotFoundError):
        Registry.open(path)
    assert not path.exists()


def test_open_refuses_a_database_without_a_registry(registry_url: str) -> None:
    engine = sa.create_engine(_engine_url(registry_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other_app (x INTEGER)")
    engine.dispose()
    with pytest.raises(RegistryNotFoundError, match="No registry"):
        Registry.open(registry_url)


def test_another_schema_version_is_refused_naming_both(registry_url: str) -> None:
    Registry.create(registry_url).close()
    engine = sa.create_engine(_engine_url(registry_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE registry_meta SET value = '99' WHERE key = 'schema_version'")
    engine.dispose()
    with pytest.raises(RegistryVersionError, match=r"version '99'.*version '1'"):
        Registry.open(registry_url)


# -- collect_and_transfer: the reference's two-quantum scenario ---------------


def _two_quanta(root: Path) -> tuple[FileDatastore, list[Quantum], list[QuantumProvenanceData]]:
    datastore = FileDatastore(root / "repo", create=True)
    raw_type = DatasetType("raw", "json", ("visit",))
    calexp_type = DatasetType("calexp", "json", ("visit",))
    summary_type = DatasetType("summary", "json", ())
    raws = [DatasetRef(raw_type, {"visit": v}, "ref/raw") for v in (1, 2)]
    for visit, ref in zip((1, 2), raws, strict=True):
        datastore.put({"visit": visit}, ref)
    calexps = [DatasetRef(calexp_type, {"visit": v}, "ref/run") for v in (1, 2)]
    summary = DatasetRef(summary_type, {}, "ref/run")
    first = Quantum("calibrate", {}, raws, calexps)
    second = Quantum("summarize", {}, calexps, [summary])
    provenance = []
    with QuantumBackedButler.initialize(datastore, first) as butler:
        for raw, calexp in zip(raws, calexps, strict=True):
            butler.put({"calibrated": butler.get(raw)["visit"]}, calexp)
    provenance.append(butler.extract_provenance_data())
    with QuantumBackedButler.initialize(datastore, second) as butler:
        total = sum(butler.get(ref)["calibrated"] for ref in calexps)
        butler.put({"total": total}, summary)
    provenance.append(butler.extract_provenance_data())
    return datastore, [first, second], provenance


def test_collect_and_transfer_two_quanta(registry_url: str, tmp_path: Path) -> None:
    datastore, quanta, provenance = _two_quanta(tmp_path)
    with Registry.create(registry_url) as registry:
        # Single-pass iterables, as the reference accepts.
        report = QuantumProvenanceData.collect_and_transfer(
            registry, iter(quanta), iter(provenance)
        )
        assert (report.quanta_new, report.datasets_new, report.records_new) == (2, 3, 3)
        assert report.ok
        for quantum, prov in zip(quanta, provenance, strict=True):
            for ref in quantum.outputs:
                found = registry.find_dataset(ref.dataset_type.name, dict(ref.data_id), ref.run)
                assert found == ref
                assert registry.get_dataset(ref.id) == ref
                assert datastore.get(found) is not None
                producer = registry.producer(ref.id)
                assert producer is not None
                assert producer.id == quantum.id
            sets = registry.provenance(quantum.id)
            for role, field in ROLES.items():
                assert sets[role] == getattr(prov, field)
        records = registry.datastore_records(ref.id for q in quanta for ref in q.outputs)
        expected = {
            name: sorted(group, key=lambda r: r.dataset_id)
            for name, group in {
                name: [r for p in provenance for r in p.datastore_records.get(name, [])]
                for name in {n for p in provenance for n in p.datastore_records}
            }.items()
        }
        assert records == expected
        # The summary's upstream is what the second quantum read, then the raws.
        upstream = registry.upstream(quanta[1].outputs[0].id)
        assert {(s.dataset_id, s.depth) for s in upstream} == {
            *((ref.id, 1) for ref in quanta[0].outputs),
            *((ref.id, 2) for ref in quanta[0].inputs),
        }
        before = dump(registry_url)
        again = QuantumProvenanceData.collect_and_transfer(registry, quanta, provenance)
        assert (again.quanta_new, again.datasets_new, again.provenance_rows_new) == (0, 0, 0)
        assert again.quanta_existing == 2
        assert dump(registry_url) == before


def test_collect_and_transfer_refuses_unequal_lengths(registry_url: str, tmp_path: Path) -> None:
    _, quanta, provenance = _two_quanta(tmp_path)
    with Registry.create(registry_url) as registry:
        with pytest.raises(InvalidDefinitionError, match="Fewer provenance"):
            registry.collect_and_transfer(quanta, provenance[:1])
        with pytest.raises(InvalidDefinitionError, match="More provenance"):
            registry.collect_and_transfer(quanta[:1], provenance)
        with pytest.raises(InvalidDefinitionError, match="paired with quantum"):
            registry.collect_and_transfer(quanta, provenance[::-1])


# -- names and values that SQL could misread -----------------------------------

TRICKY = [
    'it\'s "quoted"',
    "100% _under_ back",
    "Zürich ✓ 東京 🚀",
    "'; DROP TABLE dataset; --",
    "x' OR '1'='1",
    "%_%",
]


def test_tricky_names_and_values_round_trip(registry_url: str, tmp_path: Path) -> None:
    datastore = FileDatastore(tmp_path / "repo", create=True)
    quanta, provenance, refs = [], [], []
    for index, value in enumerate(TRICKY):
        dataset_type = DatasetType(f"t_{index}.under_score__x", "json", ("band", "n"))
        ref = DatasetRef(dataset_type, {"band": value, "n": index}, f"run/{value}")
        quantum = Quantum(f"task {value} \\ ", {"band": value}, [], [ref])
        with QuantumBackedButler.initialize(datastore, quantum) as butler:
            butler.put({"value": value}, ref)
        quanta.append(quantum)
        provenance.append(butler.extract_provenance_data())
        refs.append(ref)
    # An int and a str of the same digits are different data IDs.
    number_type = DatasetType("n_typed", "json", ("n",))
    as_int = DatasetRef(number_type, {"n": 1}, "run/typed")
    as_str = DatasetRef(number_type, {"n": "1"}, "run/typed")
    quantum = Quantum("typed", {}, [], [as_int, as_str])
    with QuantumBackedButler.initialize(datastore, quantum) as butler:
        butler.put({"v": 1}, as_int)
        butler.put({"v": "1"}, as_str)
    quanta.append(quantum)
    provenance.append(butler.extract_provenance_data())
    refs += [as_int, as_str]
    with Registry.create(registry_url) as registry:
        report = registry.collect_and_transfer(quanta, provenance)
        assert report.ok
        assert report.datasets_new == len(refs)
        for ref in refs:
            found = registry.find_dataset(ref.dataset_type.name, dict(ref.data_id), ref.run)
            assert found == ref
            assert found is not None
            assert dict(found.data_id) == dict(ref.data_id)
            assert datastore.get(found) is not None
        # A LIKE-looking value matches only itself.
        assert registry.find_dataset("t_5.under_score__x", {"band": "%", "n": 5}, "run/%_%") is None
        labels = {q.task_label for q in registry.quanta()}
        assert labels == {q.task_label for q in quanta}
        assert [q.task_label for q in registry.quanta(task_label=f"task {TRICKY[3]} \\ ")] == [
            f"task {TRICKY[3]} \\ "
        ]
        assert [q.run for q in registry.quanta(run="run/%_%")] == ["run/%_%"]


# -- lineage against a brute-force answer from the logs -------------------------


def _brute_force(logs: list[Path]) -> tuple[dict[uuid.UUID, tuple], dict[tuple, frozenset]]:
    producers, used = {}, {}
    for path in logs:
        prov = fold(read_log(path))
        key = (prov.quantum_id, 0)
        used[key] = prov.actual_inputs
        for dataset_id in prov.actual_outputs:
            producers[dataset_id] = key
    return producers, used


def _upstream(dataset_id, producers, used, depth=None) -> set[tuple]:
    found: dict[tuple, int] = {}
    queue = deque([(dataset_id, 0)])
    while queue:
        current, level = queue.popleft()
        if current not in producers or (depth is not None and level >= depth):
            continue
        key = producers[current]
        for input_id in used[key]:
            edge = (input_id, key)
            if edge not in found:
                found[edge] = level + 1
                queue.append((input_id, level + 1))
    return {(d, q[0], q[1], level) for (d, q), level in found.items()}


def _downstream(dataset_id, producers, used, depth=None) -> set[tuple]:
    outputs: dict[tuple, list] = {}
    for output, key in producers.items():
        outputs.setdefault(key, []).append(output)
    found: dict[tuple, int] = {}
    queue = deque([(dataset_id, 0)])
    while queue:
        current, level = queue.popleft()
        if depth is not None and level >= depth:
            continue
        for key, inputs in used.items():
            if current in inputs and (current, key) not in found:
                found[current, key] = level + 1
                for output in outputs.get(key, []):
                    queue.append((output, level + 1))
    return {(d, q[0], q[1], level) for (d, q), level in found.items()}


def test_upstream_and_downstream_match_brute_force(registry_url: str, tmp_path: Path) -> None:
    run = three_task_run(tmp_path, exposures=7, seed=3)
    producers, used = _brute_force(run.logs)
    datasets = {ref.id for q in run.quanta for ref in (*q.inputs, *q.outputs)}
    with Registry.create(registry_url) as registry:
        assert transfer_run(registry, run.log_dir).ok
        walked = 0
        for dataset_id in sorted(datasets):
            for depth in (None, 1, 2):
                up = {
                    (s.dataset_id, s.quantum_id, s.attempt, s.depth)
                    for s in registry.upstream(dataset_id, depth)
                }
                assert up == _upstream(dataset_id, producers, used, depth)
                down = {
                    (s.dataset_id, s.quantum_id, s.attempt, s.depth)
                    for s in registry.downstream(dataset_id, depth)
                }
                assert down == _downstream(dataset_id, producers, used, depth)
                walked += bool(up) + bool(down)
        assert walked > 20  # the run has real chains, not only empty answers
        frame = registry.upstream(run.quanta[-1].outputs[0].id, as_frame=True)
        assert list(frame.columns) == ["dataset_id", "quantum_id", "attempt", "depth"]
        assert frame["depth"].max() == 3


def test_queries_of_unknown_ids(registry_url: str) -> None:
    unknown = uuid.uuid4()
    with Registry.create(registry_url) as registry:
        assert registry.get_dataset(unknown) is None
        assert registry.producer(unknown) is None
        assert registry.upstream(unknown) == []
        assert registry.downstream(unknown) == []
        assert registry.datastore_records([unknown]) == {}
        with pytest.raises(NotRegisteredError):
            registry.provenance(unknown)
        with pytest.raises(InvalidDefinitionError, match="depth"):
            registry.upstream(unknown, 0)


def test_quanta_filters(registry_url: str, tmp_path: Path) -> None:
    run = three_task_run(tmp_path, exposures=4)
    with Registry.create(registry_url) as registry:
        transfer_run(registry, run.log_dir)
        everything = registry.quanta()
        assert len(everything) == len(run.quanta)
        assert {q.task_label for q in registry.quanta(task_label="warp")} == {"warp"}
        failed = registry.quanta(status="failed")
        expected = {p.quantum_id for p in run.provenance if p.status == "failed"}
        assert {q.id for q in failed} == expected
        assert expected
        assert registry.quanta(run="gen/run", task_label="coadd")[0].data_id == {"patch": 0}
        frame = registry.quanta(as_frame=True)
        assert len(frame) == len(run.quanta)


def test_create_refuses_another_applications_database(registry_url: str) -> None:
    engine = sa.create_engine(
        registry_url if "://" in registry_url else f"sqlite:///{registry_url}",
        poolclass=sa.NullPool,
    )
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE customers (name TEXT)")
            conn.exec_driver_sql("INSERT INTO customers VALUES ('ours')")
        with pytest.raises(RegistryExistsError, match="other tables"):
            Registry.create(registry_url)
        with engine.begin() as conn:
            assert set(sa.inspect(conn).get_table_names()) == {"customers"}
            assert conn.exec_driver_sql("SELECT name FROM customers").scalars().all() == ["ours"]
    finally:
        engine.dispose()
