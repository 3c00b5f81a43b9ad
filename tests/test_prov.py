"""W3C PROV export: the prov library reads it back, and it says what the fold says."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import prov.model as pm
import pytest
from hypothesis import given, settings
from prov.constants import (
    PROV_ATTR_ACTIVITY,
    PROV_ATTR_ENTITY,
    PROV_ATTR_GENERATED_ENTITY,
    PROV_ATTR_TIME,
    PROV_ATTR_USED_ENTITY,
)
from support.lineage import RUN, LineageRun, generate_run
from support.strategies import Scenario, scenarios
from test_properties import run_scenario

from qbb_events import InMemoryEventLog, export_lineage, fold, prov_document

Ids = set[uuid.UUID]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LineageRun:
    return generate_run(tmp_path_factory.mktemp("prov"), groups=2)


def _read(document: dict[str, Any]) -> pm.ProvDocument:
    return pm.ProvDocument.deserialize(content=json.dumps(document), format="json")


def _uuid(name: pm.QualifiedName) -> uuid.UUID:
    assert name.uri.startswith("urn:uuid:")
    return uuid.UUID(name.uri.removeprefix("urn:uuid:"))


def _attempt(activity: pm.QualifiedName) -> tuple[str, int]:
    quantum, attempt = activity.uri.removeprefix("urn:qbb-events:quantum:").rsplit(".", 1)
    return quantum, int(attempt)


def _relations(bundle: pm.ProvBundle, kind: type, target: Any) -> dict[tuple[str, int], Ids]:
    found: dict[tuple[str, int], Ids] = {}
    for record in bundle.get_records(kind):
        attributes = dict(record.formal_attributes)
        assert attributes[PROV_ATTR_TIME] is not None
        key = _attempt(attributes[PROV_ATTR_ACTIVITY])
        found.setdefault(key, set()).add(_uuid(attributes[target]))
    return found


def _bundle(document: pm.ProvDocument) -> pm.ProvBundle:
    (bundle,) = document.bundles
    assert bundle.identifier.uri == "urn:qbb-events:run:" + RUN.replace("/", "%2F").replace(
        " ", "%20"
    )
    return bundle


def test_used_and_generated_equal_the_folds_actual_sets(run: LineageRun) -> None:
    bundle = _bundle(_read(prov_document(run.logs)))
    used = _relations(bundle, pm.ProvUsage, PROV_ATTR_ENTITY)
    generated = _relations(bundle, pm.ProvGeneration, PROV_ATTR_ENTITY)
    for key, p in run.provenance.items():
        assert used.get(key, set()) == p.actual_inputs, key
        assert generated.get(key, set()) == p.actual_outputs, key
    assert any(p.actual_inputs for p in run.provenance.values())
    assert any(p.actual_outputs for p in run.provenance.values())


def test_activities_carry_times_status_and_the_qbb_attributes(run: LineageRun) -> None:
    bundle = _bundle(_read(prov_document(run.logs)))
    activities = {_attempt(a.identifier): a for a in bundle.get_records(pm.ProvActivity)}
    assert set(activities) == set(run.provenance)
    for key, activity in activities.items():
        p = run.provenance[key]
        assert activity.get_startTime() <= activity.get_endTime()
        assert activity.get_attribute("qbb:status") == {run.statuses[key]}
        missing = {
            uuid.UUID(v.removeprefix("urn:uuid:"))
            for v in activity.get_attribute("qbb:missing_inputs")
        }
        assert missing == p.unavailable_inputs
    retried = [k for k in activities if k[1] == 1]
    assert retried
    for key in retried:
        unused = activities[key].get_attribute("qbb:unused_inputs")
        assert len(unused) == 1
        (value,) = unused
        marked = uuid.UUID(value.removeprefix("urn:uuid:"))
        assert marked in run.provenance[key].available_inputs - run.provenance[key].actual_inputs


def test_pruned_outputs_are_invalidated(run: LineageRun) -> None:
    bundle = _bundle(_read(prov_document(run.logs)))
    invalidated = _relations(bundle, pm.ProvInvalidation, PROV_ATTR_ENTITY)
    assert invalidated
    for key, ids in invalidated.items():
        p = run.provenance[key]
        assert ids <= p.predicted_outputs - p.actual_outputs


def test_entities_are_urn_uuids_with_their_records(run: LineageRun) -> None:
    bundle = _bundle(_read(prov_document(run.logs)))
    records = {
        r.dataset_id: r
        for p in run.provenance.values()
        for rs in p.datastore_records.values()
        for r in rs
    }
    entities = list(bundle.get_records(pm.ProvEntity))
    assert entities
    for entity in entities:
        dataset_id = _uuid(entity.identifier)
        if dataset_id in records:
            assert entity.get_attribute("qbb:checksum") == {records[dataset_id].checksum}
            assert entity.get_attribute("qbb:file_size") == {records[dataset_id].file_size}


def test_derivations_only_on_request_and_as_the_product(run: LineageRun) -> None:
    assert not list(_bundle(_read(prov_document(run.logs))).get_records(pm.ProvDerivation))
    bundle = _bundle(_read(prov_document(run.logs, derivations=True)))
    pairs: dict[tuple[str, int], set[tuple[uuid.UUID, uuid.UUID]]] = {}
    for record in bundle.get_records(pm.ProvDerivation):
        attributes = dict(record.formal_attributes)
        key = _attempt(attributes[PROV_ATTR_ACTIVITY])
        pair = (
            _uuid(attributes[PROV_ATTR_GENERATED_ENTITY]),
            _uuid(attributes[PROV_ATTR_USED_ENTITY]),
        )
        pairs.setdefault(key, set()).add(pair)
    for key, p in run.provenance.items():
        expected = {(o, i) for o in p.actual_outputs for i in p.actual_inputs}
        assert pairs.get(key, set()) == expected


def test_prov_n_is_the_same_document(run: LineageRun, tmp_path: Path) -> None:
    out = tmp_path / "run.provn"
    report = export_lineage(run.logs, out, format="prov-n")
    assert report.attempts == len(run.provenance)
    text = out.read_text()
    expected = _read(prov_document(run.logs)).get_provn()
    assert text == expected + "\n"
    assert text.count("used(") == sum(len(p.actual_inputs) for p in run.provenance.values())


def test_prov_json_file_equals_the_document(run: LineageRun, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    report = export_lineage(run.logs, out, format="prov-json")
    assert json.loads(out.read_text()) == prov_document(run.logs)
    assert report.bytes_written == out.stat().st_size
    assert report.events == 0


# Fewer examples than the fold's own properties: each one is a whole export.
@settings(max_examples=30)
@given(scenarios())
def test_any_call_sequence_exports_the_folds_sets(sc: Scenario) -> None:
    """Whatever a task does, PROV says what the fold says: used and generated sets."""
    with tempfile.TemporaryDirectory() as tmp:
        log = InMemoryEventLog()
        butler = run_scenario(Path(tmp), sc, log=log).butler
        p = fold(butler.events)
        document = _read(prov_document(log))
    used: Ids = set()
    generated: Ids = set()
    for bundle in document.bundles:
        used |= {
            i for ids in _relations(bundle, pm.ProvUsage, PROV_ATTR_ENTITY).values() for i in ids
        }
        generated |= {
            i
            for ids in _relations(bundle, pm.ProvGeneration, PROV_ATTR_ENTITY).values()
            for i in ids
        }
    assert used == p.actual_inputs
    assert generated == p.actual_outputs
