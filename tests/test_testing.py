"""The public testing helpers of `qbb_events.testing`, through their public API."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

import qbb_events
import qbb_events.testing
from qbb_events import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    DatasetRef,
    DatasetType,
    FileDatastore,
    InMemoryEventLog,
    InvalidDefinitionError,
    OutputAlreadyStoredError,
    QuantumBackedButler,
    QuantumProvenanceData,
    StorageClassError,
    fold,
    read_log,
)
from qbb_events.testing import MISSING, assert_provenance, event_kinds, make_quantum_butler

RUN = "test/run"
RAW = DatasetType("raw", "json", ("visit",))
CALEXP = DatasetType("calexp", "json", ("visit",))
CONFIG = DatasetType("config", "json", ())


# Deterministic ids: raw(1) names the same dataset wherever a test writes it.
def raw(visit: int, run: str = RUN) -> DatasetRef:
    return DatasetRef.deterministic(RAW, {"visit": visit}, run)


def calexp(visit: int) -> DatasetRef:
    return DatasetRef.deterministic(CALEXP, {"visit": visit}, RUN)


def failure(call) -> str:
    """Run ``call``, which must raise AssertionError, and return its message."""
    with pytest.raises(AssertionError) as info:
        call()
    return str(info.value)


# -- the module's surface --------------------------------------------------


def test_names_stay_in_the_testing_module() -> None:
    assert qbb_events.testing.__all__ == sorted(
        qbb_events.testing.__all__, key=lambda n: (not n.isupper(), n)
    )
    for name in qbb_events.testing.__all__:
        assert name not in qbb_events.__all__
        value = getattr(qbb_events.testing, name)
        if callable(value):
            assert value.__doc__, name
    assert repr(MISSING) == "MISSING"


# -- make_quantum_butler ---------------------------------------------------


def test_make_quantum_butler_stores_inputs_and_starts_the_quantum(tmp_path: Path) -> None:
    r1, r2, out = raw(1), raw(2), calexp(1)
    config = DatasetRef(CONFIG, {}, RUN)
    butler = make_quantum_butler(
        tmp_path,
        inputs={r1: {"v": 1}, r2: [2, 3]},
        init_inputs={config: {"threshold": 5}},
        outputs=[out],
        data_id={"visit": 1},
    )
    assert isinstance(butler, QuantumBackedButler)
    assert event_kinds(butler) == ["quantum_started"]
    (started,) = butler.events
    quantum = started.quantum
    assert quantum.task_label == "test_task"
    assert dict(quantum.data_id) == {"visit": 1}
    assert [r.id for r in quantum.inputs] == [r1.id, r2.id]
    assert [r.id for r in quantum.init_inputs] == [config.id]
    assert [r.id for r in quantum.outputs] == [out.id]
    (records,) = quantum.input_records.values()
    assert {r.dataset_id for r in records} == {r1.id, r2.id, config.id}
    # The objects were written where the butler reads them.
    assert butler.get(r1) == {"v": 1}
    assert butler.get(r2) == [2, 3]
    assert butler.get(config) == {"threshold": 5}
    assert FileDatastore(tmp_path).get(r2) == [2, 3]
    assert not FileDatastore(tmp_path).exists(out)
    butler.put({"done": True}, out)
    assert_provenance(
        butler,
        available=[r1, r2, config],
        actual_inputs=[r1, r2, config],
        unavailable=[],
        actual_outputs=[out],
        warnings=set(),
    )


def test_missing_sentinel_leaves_a_predicted_input_unstored(tmp_path: Path) -> None:
    present, absent = raw(1), raw(2)
    butler = make_quantum_butler(
        tmp_path, inputs={present: {"v": 1}, absent: MISSING}, outputs=[calexp(1)]
    )
    started = butler.events[0]
    assert {r.id for r in started.quantum.inputs} == {present.id, absent.id}
    assert butler.stored_many([present, absent]) == {present: True, absent: False}
    with pytest.raises(ArtifactNotFoundError):
        butler.get(absent)
    assert event_kinds(butler) == ["quantum_started", "existence_checked", "input_read"]
    assert_provenance(
        butler, available=[present], unavailable=[absent], actual_inputs=[], actual_outputs=[]
    )


def test_missing_init_input(tmp_path: Path) -> None:
    config = DatasetRef(CONFIG, {}, RUN)
    butler = make_quantum_butler(tmp_path, inputs={}, init_inputs={config: MISSING}, outputs=[])
    assert butler.stored(config) is False
    assert_provenance(butler, unavailable=[config], warnings=set())


def test_make_quantum_butler_options(tmp_path: Path) -> None:
    datastore = FileDatastore(tmp_path / "repo", name="MyStore", create=True)
    log = tmp_path / "logs" / "q.jsonl"
    r1 = raw(1)
    butler = make_quantum_butler(
        datastore, inputs={r1: {"v": 1}}, outputs=[], task_label="isr", log=log
    )
    assert butler.datastore is datastore
    butler.get(r1)
    butler.close()
    events = read_log(log)
    assert event_kinds(events) == ["quantum_started", "input_read", "quantum_finished"]
    assert events[0].quantum.task_label == "isr"
    assert list(events[0].quantum.input_records) == ["MyStore"]
    assert_provenance(events, actual_inputs=[r1])
    memory = InMemoryEventLog()
    butler = make_quantum_butler(tmp_path / "other", inputs={}, outputs=[], log=memory)
    assert butler.log is memory


def test_make_quantum_butler_validates_before_writing(tmp_path: Path) -> None:
    r1 = raw(1)
    with pytest.raises(ArgumentTypeError) as info:
        make_quantum_butler(tmp_path, inputs=[r1], outputs=[])  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidDefinitionError, match="both as inputs and as init_inputs"):
        make_quantum_butler(tmp_path, inputs={r1: 1}, init_inputs={r1: 1}, outputs=[])
    with pytest.raises(InvalidDefinitionError, match="both as inputs and as outputs"):
        make_quantum_butler(tmp_path, inputs={r1: 1}, outputs=[r1])
    assert not FileDatastore(tmp_path).exists(r1)


def test_make_quantum_butler_reports_store_errors(tmp_path: Path) -> None:
    blob = DatasetRef(DatasetType("blob", "bytes", ()), {}, RUN)
    with pytest.raises(StorageClassError):
        make_quantum_butler(tmp_path, inputs={blob: {"not": "bytes"}}, outputs=[])
    r1 = raw(1)
    make_quantum_butler(tmp_path, inputs={r1: 1}, outputs=[])
    with pytest.raises(OutputAlreadyStoredError):
        make_quantum_butler(tmp_path, inputs={r1: 1}, outputs=[])


# -- event_kinds -----------------------------------------------------------


def test_event_kinds_of_a_butler_and_of_events(tmp_path: Path) -> None:
    r1, out = raw(1), calexp(1)
    butler = make_quantum_butler(tmp_path, inputs={r1: 1}, outputs=[out])
    handle = butler.getDeferred(r1)
    handle.get()
    butler.markInputUnused(r1)
    butler.put(2, out)
    with pytest.raises(qbb_events.OutputNotPredictedError):
        butler.put(3, calexp(2))
    butler.close()
    expected = [
        "quantum_started",
        "deferred_requested",
        "deferred_loaded",
        "input_marked_unused",
        "output_written",
        "output_rejected",
        "quantum_finished",
    ]
    assert event_kinds(butler) == expected
    assert event_kinds(butler.events) == expected
    assert event_kinds(iter(butler.events)) == expected
    assert event_kinds([]) == []


# -- assert_provenance: passing --------------------------------------------


@pytest.fixture
def scenario(tmp_path: Path) -> tuple[QuantumBackedButler, list[DatasetRef], DatasetRef]:
    """Inputs raw(1) read, raw(2) missing, raw(3) never checked; output written."""
    r1, r2, r3, out = raw(1), raw(2), raw(3), calexp(1)
    butler = make_quantum_butler(
        tmp_path, inputs={r1: 1, r2: MISSING, r3: 3}, outputs=[out, calexp(2)]
    )
    butler.get(r1)
    butler.stored(r2)
    butler.put(10, out)
    return butler, [r1, r2, r3], out


def test_passes_on_correct_expectations(scenario) -> None:
    butler, (r1, r2, _r3), out = scenario
    expected = {
        "available": [r1],
        "actual_inputs": [r1],
        "unavailable": [r2],
        "actual_outputs": [out],
        "warnings": {"unchecked_predicted_inputs"},
    }
    assert_provenance(butler, **expected)
    # The same, as UUIDs, from a generator, from the provenance and from the events.
    assert_provenance(butler, available=(ref.id for ref in [r1]), actual_outputs={out.id})
    assert_provenance(butler.extract_provenance_data(), **expected)
    assert_provenance(butler.events, **expected)
    # Nothing asked, nothing checked.
    assert_provenance(butler)


# -- assert_provenance: failing --------------------------------------------


def test_failure_names_missing_and_unexpected_datasets(scenario) -> None:
    butler, (r1, _r2, r3), _out = scenario
    message = failure(lambda: assert_provenance(butler, actual_inputs=[r3]))
    assert message == (
        "provenance does not match the expectations:\n"
        "  actual_inputs: missing raw(visit=3); unexpected raw(visit=1)"
    )
    assert str(r1.id) not in message


def test_failure_lists_every_wrong_field(scenario) -> None:
    butler, (r1, r2, _r3), out = scenario
    message = failure(
        lambda: assert_provenance(
            butler,
            available=[r1, r2],
            unavailable=[],
            actual_outputs=[out, calexp(2)],
            warnings={"inputs_used_but_missing"},
        )
    )
    lines = message.splitlines()
    assert lines[0] == "provenance does not match the expectations:"
    assert lines[1:] == [
        "  available_inputs: missing raw(visit=2)",
        "  unavailable_inputs: unexpected raw(visit=2)",
        "  actual_outputs: missing calexp(visit=2)",
        "  warnings: missing 'inputs_used_but_missing'; "
        "unexpected 'unchecked_predicted_inputs' (raw(visit=3))",
    ]


def test_failure_on_provenance_names_given_refs_and_uuids_of_others(scenario) -> None:
    butler, (r1, r2, _r3), _out = scenario
    provenance = butler.extract_provenance_data()
    # No log to learn names from: a ref given is named, an unexpected id is a UUID.
    message = failure(lambda: assert_provenance(provenance, available=[r2]))
    assert "missing raw(visit=2)" in message
    assert f"unexpected {r1.id}" in message
    # A dataset outside the quantum, given as a bare UUID, is named by its UUID.
    stranger = uuid.uuid4()
    message = failure(lambda: assert_provenance(butler, actual_inputs=[r1, stranger]))
    assert message.endswith(f"actual_inputs: missing {stranger}")


def test_failure_on_events_names_datasets_from_quantum_started(scenario) -> None:
    butler, (_r1, _r2, _r3), _out = scenario
    message = failure(lambda: assert_provenance(list(butler.events), actual_inputs=[]))
    assert message.endswith("actual_inputs: unexpected raw(visit=1)")


def test_failure_names_string_data_ids_and_tells_equal_labels_apart(tmp_path: Path) -> None:
    flat = DatasetType("flat", "json", ("band", "detector"))
    r_band = DatasetRef(flat, {"band": "r", "detector": 1}, RUN)
    a, b = raw(1, "run/a"), raw(1, "run/b")
    butler = make_quantum_butler(tmp_path, inputs={r_band: 1, a: 1, b: 2}, outputs=[])
    butler.get(a)
    message = failure(lambda: assert_provenance(butler, actual_inputs=[r_band, b]))
    assert f"missing flat(band='r', detector=1), raw(visit=1) {b.id}" in message
    assert f"unexpected raw(visit=1) {a.id}" in message


def test_failure_when_extraction_differs_from_the_fold(tmp_path: Path) -> None:
    class DriftingButler(QuantumBackedButler):
        def extract_provenance_data(self) -> QuantumProvenanceData:
            result = super().extract_provenance_data()
            return result.model_copy(update={"actual_inputs": frozenset()})

    r1 = raw(1)
    make_quantum_butler(tmp_path, inputs={r1: 1}, outputs=[])  # stores r1
    butler = DriftingButler.from_predicted(tmp_path, [r1], [])
    butler.get(r1)
    message = failure(lambda: assert_provenance(butler))
    assert "extract_provenance_data() differs from fold(butler.events) in ['actual_inputs']" in (
        message
    )
    assert fold(butler.events).actual_inputs == {r1.id}


# -- assert_provenance: wrong arguments ------------------------------------


def test_wrong_expectations_are_type_errors_not_failures(scenario) -> None:
    butler, (r1, _r2, _r3), _out = scenario
    wrong = [
        {"actual_inputs": r1},
        {"actual_inputs": [str(r1.id)]},
        {"available": "raw"},
        {"warnings": "unchecked_predicted_inputs"},
    ]
    for kwargs in wrong:
        with pytest.raises(ArgumentTypeError) as info:
            assert_provenance(butler, **kwargs)
        assert isinstance(info.value, TypeError)
    with pytest.raises(ArgumentTypeError, match="QuantumProvenanceData"):
        assert_provenance(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinitionError, match=re.escape("'unchecked_inputs'")):
        assert_provenance(butler, warnings={"unchecked_inputs"})


# -- the documentation's example runs --------------------------------------


def test_docs_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/testing.md", "exec"), namespace)
    namespace["test_sum_task_skips_missing_inputs"](tmp_path)  # type: ignore[operator]
