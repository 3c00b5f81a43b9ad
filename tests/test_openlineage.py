"""OpenLineage export: RunEvents validated against the pinned spec and read by the client."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from openlineage.client import event_v2
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    parent_run,
)
from openlineage.client.serde import Serde
from referencing import Registry, Resource
from support.lineage import LineageRun, generate_run
from support.strategies import Scenario, scenarios
from test_properties import run_scenario

from qbb_events import InMemoryEventLog, LineageReport, export_lineage, fold, openlineage_events

PINNED = Path(__file__).parent / "fixtures" / "openlineage"
OURS = Path(__file__).parents[1] / "docs" / "schemas" / "openlineage-facets.schema.json"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _registry() -> Registry:
    resources = []
    for path in [*sorted(PINNED.glob("*.json")), OURS]:
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _validate(instance: Any, url: str) -> None:
    validator = jsonschema.Draft202012Validator(
        {"$ref": url}, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(instance)


def _facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(event["run"]["facets"].values())
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        found.extend(dataset["facets"].values())
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LineageRun:
    return generate_run(tmp_path_factory.mktemp("openlineage"), groups=2)


@pytest.fixture(scope="module")
def events(run: LineageRun) -> list[dict[str, Any]]:
    return list(openlineage_events(run.logs))


def _attempt_of(event: dict[str, Any]) -> tuple[str, int]:
    qbb = event["run"]["facets"]["qbb"]
    return qbb["quantum_id"], qbb["attempt"]


def test_every_event_and_facet_validates_against_the_pinned_spec(
    events: list[dict[str, Any]],
) -> None:
    assert events
    for event in events:
        assert event["schemaURL"] == RUN_EVENT
        _validate(event, RUN_EVENT)
        for facet in _facets(event):
            # Each facet against the very schema its _schemaURL names.
            _validate(facet, facet["_schemaURL"])


def test_one_start_and_one_terminal_event_per_attempt(
    run: LineageRun, events: list[dict[str, Any]]
) -> None:
    by_attempt: dict[tuple[str, int], list[str]] = {}
    for event in events:
        by_attempt.setdefault(_attempt_of(event), []).append(event["eventType"])
    assert set(by_attempt) == set(run.statuses)
    expected = {"succeeded": "COMPLETE", "no_work": "COMPLETE", "failed": "FAIL"}
    for key, types in by_attempt.items():
        assert types == ["START", expected.get(run.statuses[key], "ABORT")], key
    assert Counter(t for types in by_attempt.values() for t in types[1:]) == {
        "COMPLETE": 6,
        "FAIL": 2,
        "ABORT": 2,
    }
    # The spec: one START and one terminal event per run id.
    per_run = Counter((e["run"]["runId"], e["eventType"]) for e in events)
    assert set(per_run.values()) == {1}


def test_run_job_and_parent_mapping(run: LineageRun, events: list[dict[str, Any]]) -> None:
    for event in events:
        quantum_id, attempt = _attempt_of(event)
        run_id = uuid.UUID(event["run"]["runId"])
        if attempt == 0:
            assert run_id == uuid.UUID(quantum_id)
        else:
            assert run_id == uuid.uuid5(uuid.UUID(quantum_id), f"attempt/{attempt}")
        assert event["job"]["namespace"] == "u/tester/run 1"
        assert event["job"]["name"] in {"isr", "calibrate", "coadd"}
        parent = event["run"]["facets"]["parent"]
        assert parent["job"] == {"namespace": "u/tester/run 1", "name": "u/tester/run 1"}
        assert parent["run"]["runId"] == events[0]["run"]["facets"]["parent"]["run"]["runId"]
        assert event["producer"].startswith("https://pypi.org/project/qbb-events/")


def test_datasets_are_the_actual_inputs_and_outputs(
    run: LineageRun, events: list[dict[str, Any]]
) -> None:
    terminal = [e for e in events if e["eventType"] != "START"]
    for event in terminal:
        p = run.provenance[_attempt_of(event)]
        inputs = {uuid.UUID(d["facets"]["version"]["datasetVersion"]) for d in event["inputs"]}
        outputs = {uuid.UUID(d["facets"]["version"]["datasetVersion"]) for d in event["outputs"]}
        assert inputs == p.actual_inputs
        assert outputs == p.actual_outputs
        records = {r.dataset_id: r for rs in p.datastore_records.values() for r in rs}
        for dataset in event["outputs"]:
            status = dataset["facets"]["qbb_provenance"]
            record = records[uuid.UUID(status["dataset_id"])]
            assert status["record"]["checksum"] == record.checksum
            assert status["record"]["size"] == record.file_size
            assert status["predicted"]
            assert status["actual"]
        for dataset in event["inputs"]:
            status = dataset["facets"]["qbb_provenance"]
            assert status["available"] == (uuid.UUID(status["dataset_id"]) in p.available_inputs)
    assert any(e["outputs"] for e in terminal)
    assert any(e["inputs"] for e in terminal)


def test_failures_carry_an_error_message(events: list[dict[str, Any]]) -> None:
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert failed
    for event in failed:
        error = event["run"]["facets"]["errorMessage"]
        assert error["programmingLanguage"] == "python"
        assert error["message"].startswith("ArtifactNotFoundError: ")
    others = [e for e in events if e["eventType"] != "FAIL"]
    assert all("errorMessage" not in e["run"]["facets"] for e in others)


def _client_event(event: dict[str, Any]) -> event_v2.RunEvent:
    """Rebuild the event with the openlineage-python client's models (standard facets)."""
    facets = event["run"]["facets"]
    run_facets: dict[str, Any] = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=facets["parent"]["run"]["runId"]),
            job=parent_run.Job(**facets["parent"]["job"]),
            producer=event["producer"],
        )
    }
    if "errorMessage" in facets:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=facets["errorMessage"]["message"],
            programmingLanguage=facets["errorMessage"]["programmingLanguage"],
            producer=event["producer"],
        )

    def version(dataset: dict[str, Any]) -> dict[str, Any]:
        value = dataset["facets"]["version"]["datasetVersion"]
        facet = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=value, producer=event["producer"]
        )
        return {"version": facet}

    return event_v2.RunEvent(
        eventType=event_v2.RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=event_v2.Run(runId=event["run"]["runId"], facets=run_facets),
        job=event_v2.Job(**event["job"]),
        inputs=[
            event_v2.InputDataset(d["namespace"], d["name"], facets=version(d))
            for d in event.get("inputs", [])
        ],
        outputs=[
            event_v2.OutputDataset(d["namespace"], d["name"], facets=version(d))
            for d in event.get("outputs", [])
        ],
        producer=event["producer"],
    )


def _standard(event: dict[str, Any]) -> dict[str, Any]:
    """The event without our custom facets."""
    data = json.loads(json.dumps(event))
    del data["run"]["facets"]["qbb"]
    for dataset in [*data.get("inputs", []), *data.get("outputs", [])]:
        del dataset["facets"]["qbb_provenance"]
    if data["eventType"] == "START":
        data["inputs"], data["outputs"] = [], []
    return data


_FACET_KEYS = frozenset({"facets", "inputFacets", "outputFacets"})


def _without_empty_facets(value: Any) -> Any:
    """The client writes ``"facets": {}`` where we write nothing; the spec makes them equal."""
    if isinstance(value, dict):
        return {
            k: _without_empty_facets(v)
            for k, v in value.items()
            if not (k in _FACET_KEYS and v == {})
        }
    if isinstance(value, list):
        return [_without_empty_facets(v) for v in value]
    return value


def test_the_openlineage_client_models_accept_every_event(events: list[dict[str, Any]]) -> None:
    for event in events:
        rebuilt = _without_empty_facets(Serde.to_dict(_client_event(event)))
        assert rebuilt == _standard(event)


def test_export_writes_ndjson_of_the_same_events(
    run: LineageRun, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "lineage.ndjson"
    report = export_lineage(run.logs, out)
    assert isinstance(report, LineageReport)
    lines = out.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == events
    assert report.attempts == len(run.statuses)
    assert report.events == len(events) == 2 * len(run.statuses)
    assert report.bytes_written == out.stat().st_size
    assert report.refused == ()
    assert not list(tmp_path.glob(".*.tmp"))


# Fewer examples than the fold's own properties: each one is a whole export.
@settings(max_examples=30)
@given(scenarios())
def test_any_call_sequence_gives_valid_events_of_the_folds_sets(sc: Scenario) -> None:
    """Whatever a task does: two valid events, datasets equal to the fold's actual sets."""
    with tempfile.TemporaryDirectory() as tmp:
        log = InMemoryEventLog()
        butler = run_scenario(Path(tmp), sc, log=log).butler
        p = fold(butler.events)
        start, end = openlineage_events(log)
    for event in (start, end):
        _validate(event, RUN_EVENT)
    assert start["eventType"] == "START"
    assert end["eventType"] == {None: "ABORT", "failed": "FAIL"}.get(p.status, "COMPLETE")
    versions = [
        {uuid.UUID(d["facets"]["version"]["datasetVersion"]) for d in end[k]}
        for k in ("inputs", "outputs")
    ]
    assert versions == [p.actual_inputs, p.actual_outputs]
