"""Tests of the domain model: dataset types, data IDs, refs, quanta and their ids."""

from __future__ import annotations

import enum
import itertools
import random
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbb_events import (
    STORAGE_CLASSES,
    DataId,
    DatasetRef,
    DatasetType,
    FileRecord,
    InvalidDataIdError,
    InvalidDefinitionError,
    QbbEventsError,
    Quantum,
    RecordTypeError,
    deterministic_dataset_id,
    uuid7,
)

RUN = "model/run"
DIMS = ("visit", "detector")

# -- strategies -----------------------------------------------------------

dimension_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
text_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8
)
data_id_values = st.integers(min_value=-(2**63), max_value=2**63 - 1) | text_values
data_id_dicts = st.dictionaries(dimension_names, data_id_values, max_size=5)
run_names = text_values
type_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}(\.[a-z_][a-z0-9_]{0,3})?", fullmatch=True)


def _shuffled(mapping: dict[str, Any], seed: int) -> dict[str, Any]:
    items = list(mapping.items())
    random.Random(seed).shuffle(items)
    return dict(items)


# -- fixtures -------------------------------------------------------------


@pytest.fixture
def calexp() -> DatasetType:
    return DatasetType("calexp", "json", DIMS)


@pytest.fixture
def ref(calexp: DatasetType) -> DatasetRef:
    return DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN)


def _refs(dataset_type: DatasetType, n: int, visit: int = 1) -> list[DatasetRef]:
    return [DatasetRef(dataset_type, {"visit": visit, "detector": k}, RUN) for k in range(n)]


# -- DatasetType ----------------------------------------------------------


@pytest.mark.parametrize("name", ["calexp", "_x", "a1", "calexp.wcs", "a.b_c.D9"])
def test_dataset_type_valid_names(name: str) -> None:
    dataset_type = DatasetType(name, "json")
    assert dataset_type.name == name
    assert dataset_type.storage_class == "json"
    assert dataset_type.dimensions == ()


@pytest.mark.parametrize("storage_class", sorted(STORAGE_CLASSES))
def test_dataset_type_known_storage_classes(storage_class: str) -> None:
    assert DatasetType("x", storage_class, ["visit"]).storage_class == storage_class


def test_storage_classes_cover_the_spec() -> None:
    assert {"json", "arrow", "bytes"} <= STORAGE_CLASSES


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a b", "a..b", ".a", "a.", "a/b", "calexp\n", "é", None, 3, b"calexp"],
)
def test_dataset_type_bad_name(name: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="not a dotted identifier") as info:
        DatasetType(name, "json")
    assert repr(name) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, QbbEventsError)


@pytest.mark.parametrize("storage_class", ["pickle", "JSON", "", None, "parquet"])
def test_dataset_type_unknown_storage_class(storage_class: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="Unknown storage class") as info:
        DatasetType("calexp", storage_class)
    assert repr(storage_class) in str(info.value)
    assert "calexp" in str(info.value)


@pytest.mark.parametrize(
    "dimension", ["", "1visit", "a-b", "a.b", "a b", "visit/", "visit\n", None, 7]
)
def test_dataset_type_bad_dimension_name(dimension: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="Dimension name") as info:
        DatasetType("calexp", "json", ["visit", dimension])
    assert repr(dimension) in str(info.value)


def test_dataset_type_dimensions_as_string_refused() -> None:
    with pytest.raises(InvalidDefinitionError, match="iterable of names"):
        DatasetType("calexp", "json", "visit")


def test_dataset_type_duplicate_dimension() -> None:
    with pytest.raises(InvalidDefinitionError, match="repeats a dimension") as info:
        DatasetType("calexp", "json", ["visit", "detector", "visit"])
    assert "visit" in str(info.value)


def test_dataset_type_equal_by_value_and_hashable() -> None:
    a = DatasetType("calexp", "json", ["visit", "detector"])
    b = DatasetType("calexp", "json", ("visit", "detector"))
    assert a == b
    assert a is not b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert {a: 1}[b] == 1
    assert a != DatasetType("calexp", "arrow", DIMS)
    assert a != DatasetType("calexp2", "json", DIMS)
    assert a != DatasetType("calexp", "json", ("visit",))
    assert a != "calexp"


def test_dataset_type_is_immutable() -> None:
    dims = ["visit", "detector"]
    dataset_type = DatasetType("calexp", "json", dims)
    dims.append("band")  # the caller's list is copied
    assert dataset_type.dimensions == ("visit", "detector")
    for attr, value in [("name", "x"), ("storage_class", "bytes"), ("dimensions", ())]:
        with pytest.raises(AttributeError):
            setattr(dataset_type, attr, value)
        with pytest.raises(AttributeError):
            delattr(dataset_type, attr)
    with pytest.raises(AttributeError):
        dataset_type.new_attribute = 1  # type: ignore[attr-defined]
    assert dataset_type == DatasetType("calexp", "json", DIMS)


# -- DataId ---------------------------------------------------------------


def test_data_id_is_an_immutable_mapping() -> None:
    source = {"visit": 1, "band": "r"}
    data_id = DataId(source)
    source["visit"] = 2
    assert data_id["visit"] == 1
    assert dict(data_id) == {"visit": 1, "band": "r"}
    assert list(data_id) == ["visit", "band"]
    assert len(data_id) == 2
    with pytest.raises(TypeError):
        data_id["visit"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        del data_id["visit"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        data_id.extra = 1  # type: ignore[attr-defined]
    copy = data_id.to_dict()
    copy["visit"] = 99
    assert data_id["visit"] == 1
    assert DataId(data_id) == data_id
    assert DataId() == {} == DataId(None)


def test_data_id_equality_and_hash() -> None:
    a = DataId({"visit": 1, "band": "r"})
    b = DataId({"band": "r", "visit": 1})
    assert a == b
    assert hash(a) == hash(b)
    assert a == {"band": "r", "visit": 1}
    assert a != DataId({"visit": "1", "band": "r"})
    assert a != DataId({"visit": 1})
    assert a != [("visit", 1), ("band", "r")]


@given(first=data_id_dicts, second=data_id_dicts, seed=st.integers())
def test_data_id_equality_matches_dict_equality(
    first: dict[str, Any], second: dict[str, Any], seed: int
) -> None:
    a, b = DataId(first), DataId(second)
    assert (a == b) == (first == second)
    assert (a != b) == (first != second)
    assert a == first
    if a == b:
        assert hash(a) == hash(b)
    permuted = DataId(_shuffled(first, seed))
    assert permuted == a
    assert hash(permuted) == hash(a)
    assert dict(a) == first


@pytest.mark.parametrize(
    "value", [1.0, 1.5, float("nan"), None, True, False, [1], (1,), {"a": 1}, b"1", 1j]
)
def test_data_id_value_of_wrong_type(calexp: DatasetType, value: Any) -> None:
    with pytest.raises(InvalidDataIdError, match="must be an int or a str") as info:
        DatasetRef(calexp, {"visit": value, "detector": 1}, RUN)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, TypeError)
    assert isinstance(error, InvalidDefinitionError)
    assert "'visit'" in str(error)
    assert type(value).__name__ in str(error)
    with pytest.raises(InvalidDataIdError):
        DataId({"visit": value})


@pytest.mark.parametrize("value", ["", "a\nb", "tab\there", "nul\0", "x\ud800"])
def test_data_id_string_value_without_text(value: str) -> None:
    with pytest.raises(InvalidDefinitionError, match="Data ID value for 'visit'"):
        DataId({"visit": value})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_data_id_int_outside_64_bits(value: int) -> None:
    with pytest.raises(InvalidDataIdError, match="64-bit"):
        DataId({"visit": value})
    assert DataId({"visit": 2**63 - 1})["visit"] == 2**63 - 1
    assert DataId({"visit": -(2**63)})["visit"] == -(2**63)


@pytest.mark.parametrize("key", ["", "1a", "a-b", "a.b", "visit\n", 1, None])
def test_data_id_bad_key(key: Any) -> None:
    with pytest.raises(InvalidDataIdError, match="not a valid dimension name") as info:
        DataId({key: 1})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("value", [[("visit", 1)], "visit=1", 5])
def test_data_id_not_a_mapping(value: Any) -> None:
    with pytest.raises(InvalidDataIdError, match="must be a mapping"):
        DataId(value)


@pytest.mark.parametrize(
    "data_id",
    [{"visit": 1}, {"visit": 1, "detector": 2, "band": "r"}, {}, {"visit": 1, "detectr": 2}],
)
def test_data_id_keys_must_match_dimensions(calexp: DatasetType, data_id: dict[str, Any]) -> None:
    with pytest.raises(InvalidDataIdError, match="do not match its dimensions") as info:
        DatasetRef(calexp, data_id, RUN)
    assert "calexp" in str(info.value)
    assert isinstance(info.value, ValueError)


# -- DatasetRef -----------------------------------------------------------


def test_dataset_ref_fields(calexp: DatasetType) -> None:
    data_id = {"visit": 1, "detector": "S01"}
    ref = DatasetRef(calexp, data_id, RUN)
    data_id["visit"] = 2  # the caller's dict is copied
    assert ref.dataset_type is calexp
    assert ref.datasetType is calexp
    assert ref.data_id == {"visit": 1, "detector": "S01"}
    assert ref.dataId == ref.data_id
    assert isinstance(ref.data_id, DataId)
    assert ref.run == RUN
    assert isinstance(ref.id, uuid.UUID)
    assert ref.id.version == 7
    assert "calexp" in repr(ref)
    assert str(ref.id) in repr(ref)


def test_dataset_ref_string_uuid_accepted(calexp: DatasetType) -> None:
    expected = uuid.uuid4()
    for form in (str(expected), str(expected).upper(), expected.hex, expected):
        ref = DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN, id=form)
        assert ref.id == expected
        assert isinstance(ref.id, uuid.UUID)


@pytest.mark.parametrize(
    "bad_id", ["", "not-a-uuid", "1234", 12345, 1.5, b"0" * 16, ["x"], object()]
)
def test_dataset_ref_non_uuid_id(calexp: DatasetType, bad_id: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="Dataset id must be a UUID") as info:
        DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN, id=bad_id)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("run", ["", None, 5, "a\nb", "nul\0"])
def test_dataset_ref_bad_run(calexp: DatasetType, run: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="RUN name") as info:
        DatasetRef(calexp, {"visit": 1, "detector": 2}, run)
    assert repr(run) in str(info.value)


@pytest.mark.parametrize("dataset_type", ["calexp", None, {"name": "calexp"}])
def test_dataset_ref_needs_a_dataset_type(dataset_type: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="dataset_type must be a DatasetType"):
        DatasetRef(dataset_type, {}, RUN)


def test_dataset_ref_equal_by_value_and_hashable(calexp: DatasetType, ref: DatasetRef) -> None:
    same = DatasetRef(
        DatasetType("calexp", "json", DIMS), {"detector": 2, "visit": 1}, RUN, id=str(ref.id)
    )
    assert same == ref
    assert same is not ref
    assert hash(same) == hash(ref)
    assert len({ref, same}) == 1
    assert {ref: "x"}[same] == "x"
    # Any differing part makes a different ref.
    assert ref != DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN)
    assert ref != DatasetRef(calexp, {"visit": 1, "detector": 2}, "other", id=ref.id)
    assert ref != DatasetRef(calexp, {"visit": 1, "detector": 3}, RUN, id=ref.id)
    assert ref != DatasetRef(calexp, {"visit": 1, "detector": "2"}, RUN, id=ref.id)
    assert ref != DatasetRef(DatasetType("calexp", "bytes", DIMS), ref.data_id, RUN, id=ref.id)
    assert ref != ref.id


def test_dataset_ref_is_immutable(ref: DatasetRef) -> None:
    original = (ref.id, ref.run, ref.dataset_type, ref.data_id)
    for attr in ("id", "run", "dataset_type", "datasetType", "data_id", "dataId"):
        with pytest.raises(AttributeError):
            setattr(ref, attr, None)
        with pytest.raises(AttributeError):
            delattr(ref, attr)
    with pytest.raises(AttributeError):
        ref.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        ref.data_id["visit"] = 5  # type: ignore[index]
    assert (ref.id, ref.run, ref.dataset_type, ref.data_id) == original


def test_new_ids_are_distinct(calexp: DatasetType) -> None:
    refs = [DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN) for _ in range(1000)]
    assert len({r.id for r in refs}) == 1000
    assert all(r.id.version == 7 for r in refs)


# -- UUIDv7 ---------------------------------------------------------------


def test_uuid7_layout() -> None:
    for _ in range(1000):
        value = uuid7()
        assert isinstance(value, uuid.UUID)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert (value.int >> 76) & 0xF == 7
        assert (value.int >> 62) & 0b11 == 0b10


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    # The canonical string form sorts the same way (what a database index sees).
    strings = [str(i) for i in ids]
    assert strings == sorted(strings)
    assert len(set(strings)) == len(strings)
    assert [i.bytes for i in ids] == sorted(i.bytes for i in ids)


def test_uuid7_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    timestamp_ms = value.int >> 80
    # The counter may borrow a millisecond or two under heavy use, never more.
    assert before - 5 <= timestamp_ms <= after + 1000
    assert abs(timestamp_ms - time.time() * 1000) < 5_000


def test_uuid7_order_across_calls_spanning_time() -> None:
    first = uuid7()
    time.sleep(0.005)
    second = uuid7()
    assert first < second
    assert (second.int >> 80) > (first.int >> 80)


def test_uuid7_unique_across_threads() -> None:
    results: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def work(out: list[uuid.UUID]) -> None:
        out.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == len(every)
    for out in results:
        assert all(a < b for a, b in itertools.pairwise(out))


# -- deterministic ids ----------------------------------------------------


def test_deterministic_id_basics(calexp: DatasetType) -> None:
    data_id = {"visit": 1, "detector": 2}
    expected = deterministic_dataset_id(calexp, data_id, RUN)
    assert expected.version == 5
    assert expected.variant == uuid.RFC_4122
    ref = DatasetRef.deterministic(calexp, data_id, RUN)
    assert ref.id == expected
    assert ref.data_id == data_id
    assert ref.run == RUN
    assert ref.dataset_type == calexp
    again = DatasetRef.deterministic(calexp, {"detector": 2, "visit": 1}, RUN)
    assert again == ref
    assert deterministic_dataset_id(calexp, DataId({"detector": 2, "visit": 1}), RUN) == expected


def test_deterministic_id_is_stable_across_versions() -> None:
    # Ids are stored in registries: this value must never change.
    dataset_type = DatasetType("calexp", "json", ["visit", "detector"])
    value = deterministic_dataset_id(dataset_type, {"visit": 1, "detector": 2}, "run1")
    assert value == uuid.UUID("70baa18a-4ee7-5cc0-8ec9-79e09b458a82")


def test_deterministic_id_differs_when_any_part_differs(calexp: DatasetType) -> None:
    base = deterministic_dataset_id(calexp, {"visit": 1, "detector": 2}, RUN)
    others = [
        deterministic_dataset_id(calexp, {"visit": "1", "detector": 2}, RUN),
        deterministic_dataset_id(calexp, {"visit": 1, "detector": "2"}, RUN),
        deterministic_dataset_id(calexp, {"visit": 1, "detector": 3}, RUN),
        deterministic_dataset_id(calexp, {"visit": 2, "detector": 1}, RUN),
        deterministic_dataset_id(calexp, {"visit": 1, "detector": 2}, RUN + "x"),
        deterministic_dataset_id(
            DatasetType("calexp2", "json", DIMS), {"visit": 1, "detector": 2}, RUN
        ),
        deterministic_dataset_id(
            DatasetType("calexp", "json", ("visit", "ccd")), {"visit": 1, "ccd": 2}, RUN
        ),
    ]
    assert base not in others
    assert len(set(others)) == len(others)


def test_deterministic_ref_validates(calexp: DatasetType) -> None:
    with pytest.raises(InvalidDataIdError):
        DatasetRef.deterministic(calexp, {"visit": 1.0, "detector": 2}, RUN)
    with pytest.raises(InvalidDataIdError, match="do not match"):
        DatasetRef.deterministic(calexp, {"visit": 1}, RUN)
    with pytest.raises(InvalidDefinitionError, match="RUN name"):
        DatasetRef.deterministic(calexp, {"visit": 1, "detector": 2}, "")


@pytest.mark.parametrize("value", [1.0, None, True, [1]])
def test_deterministic_id_refuses_bad_values(calexp: DatasetType, value: Any) -> None:
    # A float 1.0 must not silently share the id of the string "1.0".
    with pytest.raises(InvalidDataIdError):
        deterministic_dataset_id(calexp, {"visit": value, "detector": 2}, RUN)


@pytest.mark.parametrize("run", ["", None, "a\0b"])
def test_deterministic_id_refuses_bad_run(calexp: DatasetType, run: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="RUN name"):
        deterministic_dataset_id(calexp, {"visit": 1, "detector": 2}, run)


@given(name=type_names, data_id=data_id_dicts, run=run_names, seed=st.integers())
def test_deterministic_id_is_a_function(
    name: str, data_id: dict[str, Any], run: str, seed: int
) -> None:
    dataset_type = DatasetType(name, "json", list(data_id))
    # Equal inputs, built separately and with keys in another order.
    twin = DatasetType(name, "json", list(_shuffled(data_id, seed)))
    first = deterministic_dataset_id(dataset_type, data_id, run)
    second = deterministic_dataset_id(twin, _shuffled(data_id, seed), str(run))
    assert first == second
    assert first.version == 5
    assert DatasetRef.deterministic(dataset_type, _shuffled(data_id, seed + 1), run).id == first


@given(
    a=st.tuples(type_names, data_id_dicts, run_names),
    b=st.tuples(type_names, data_id_dicts, run_names),
)
def test_deterministic_id_is_injective(
    a: tuple[str, dict[str, Any], str], b: tuple[str, dict[str, Any], str]
) -> None:
    id_a = deterministic_dataset_id(DatasetType(a[0], "json", list(a[1])), a[1], a[2])
    id_b = deterministic_dataset_id(DatasetType(b[0], "json", list(b[1])), b[1], b[2])
    assert (id_a == id_b) == (a == b)


@given(data_id=data_id_dicts.filter(bool), run=run_names, data=st.data())
def test_deterministic_id_int_and_str_differ(
    data_id: dict[str, Any], run: str, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(sorted(data_id)))
    value = data.draw(st.integers(min_value=-(10**6), max_value=10**6))
    as_int = {**data_id, key: value}
    as_str = {**data_id, key: str(value)}
    dataset_type = DatasetType("calexp", "json", list(data_id))
    assert deterministic_dataset_id(dataset_type, as_int, run) != deterministic_dataset_id(
        dataset_type, as_str, run
    )


# -- Quantum --------------------------------------------------------------


def test_quantum_fields(calexp: DatasetType) -> None:
    raw = DatasetType("raw", "bytes", DIMS)
    config = DatasetType("config", "json")
    inputs = _refs(raw, 3)
    outputs = _refs(calexp, 2)
    init_inputs = [DatasetRef(config, {}, RUN)]
    quantum = Quantum("isr", {"visit": 1}, inputs, outputs, init_inputs=init_inputs)
    assert quantum.task_label == "isr"
    assert quantum.data_id == {"visit": 1}
    assert quantum.inputs == tuple(inputs)
    assert quantum.outputs == tuple(outputs)
    assert quantum.init_inputs == tuple(init_inputs)
    assert quantum.id.version == 7
    assert set(quantum.predicted_inputs) == {r.id for r in [*inputs, *init_inputs]}
    assert set(quantum.predicted_outputs) == {r.id for r in outputs}
    assert quantum.predicted_inputs[inputs[0].id] == inputs[0]
    assert dict(quantum.datastore_records) == {}
    assert "isr" in repr(quantum)


def test_quantum_accepts_mappings(calexp: DatasetType) -> None:
    raw = DatasetType("raw", "bytes", DIMS)
    bias = DatasetType("bias", "bytes", DIMS)
    config = DatasetType("config", "json")
    raws, biases, outputs = _refs(raw, 2), _refs(bias, 1), _refs(calexp, 2)
    init_inputs = [DatasetRef(config, {}, RUN)]
    quantum_id = uuid7()
    from_mapping = Quantum(
        "isr",
        {"visit": 1},
        inputs={"raw": raws, "bias": biases},
        outputs={calexp: outputs},
        init_inputs={"config": init_inputs},
        id=quantum_id,
    )
    from_lists = Quantum(
        "isr", {"visit": 1}, [*raws, *biases], outputs, init_inputs=init_inputs, id=quantum_id
    )
    assert from_mapping.inputs == (*raws, *biases)
    assert from_mapping.outputs == tuple(outputs)
    assert from_mapping.init_inputs == tuple(init_inputs)
    assert from_mapping == from_lists
    assert hash(from_mapping) == hash(from_lists)


def test_quantum_accepts_any_iterable(calexp: DatasetType) -> None:
    inputs = _refs(DatasetType("raw", "bytes", DIMS), 3)
    outputs = _refs(calexp, 2)
    quantum = Quantum("isr", {}, iter(inputs), (r for r in outputs), init_inputs=[])
    assert quantum.inputs == tuple(inputs)
    assert quantum.outputs == tuple(outputs)


def test_quantum_equal_by_value_and_hashable(calexp: DatasetType) -> None:
    inputs = _refs(DatasetType("raw", "bytes", DIMS), 2)
    outputs = _refs(calexp, 1)
    quantum_id = uuid7()
    a = Quantum("isr", {"visit": 1}, inputs, outputs, id=quantum_id)
    b = Quantum("isr", {"visit": 1}, list(inputs), list(outputs), id=str(quantum_id))
    assert a == b
    assert a is not b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != Quantum("isr", {"visit": 1}, inputs, outputs)
    assert a != Quantum("other", {"visit": 1}, inputs, outputs, id=quantum_id)
    assert a != Quantum("isr", {"visit": 2}, inputs, outputs, id=quantum_id)
    assert a != Quantum("isr", {"visit": 1}, inputs[:1], outputs, id=quantum_id)
    assert a != Quantum("isr", {"visit": 1}, inputs, [], id=quantum_id)
    assert a != "isr"


def test_quantum_is_immutable(calexp: DatasetType) -> None:
    inputs = _refs(DatasetType("raw", "bytes", DIMS), 2)
    outputs = _refs(calexp, 1)
    record = _record(inputs[0])
    quantum = Quantum(
        "isr", {"visit": 1}, inputs, outputs, datastore_records={"FileDatastore": [record]}
    )
    inputs.append(DatasetRef(calexp, {"visit": 9, "detector": 9}, RUN))  # copied
    assert len(quantum.inputs) == 2
    attrs = [
        "id",
        "task_label",
        "data_id",
        "inputs",
        "outputs",
        "init_inputs",
        "predicted_inputs",
        "predicted_outputs",
        "datastore_records",
    ]
    for attr in attrs:
        with pytest.raises(AttributeError):
            setattr(quantum, attr, None)
    with pytest.raises(AttributeError):
        quantum.extra = 1  # type: ignore[attr-defined]
    assert isinstance(quantum.inputs, tuple)
    assert isinstance(quantum.outputs, tuple)
    assert isinstance(quantum.init_inputs, tuple)
    stranger = DatasetRef(calexp, {"visit": 7, "detector": 7}, RUN)
    # The id maps are read-only views: a caller cannot add or drop predictions.
    with pytest.raises(TypeError):
        quantum.predicted_inputs[stranger.id] = stranger  # type: ignore[index]
    with pytest.raises(TypeError):
        quantum.predicted_outputs[stranger.id] = stranger  # type: ignore[index]
    with pytest.raises(TypeError):
        quantum.datastore_records["other"] = ()  # type: ignore[index]
    assert stranger.id not in quantum.predicted_inputs
    assert stranger.id not in quantum.predicted_outputs
    assert set(quantum.datastore_records) == {"FileDatastore"}
    with pytest.raises(TypeError):
        quantum.data_id["visit"] = 2  # type: ignore[index]


def test_quantum_duplicate_identical_refs_are_merged(calexp: DatasetType) -> None:
    raw = _refs(DatasetType("raw", "bytes", DIMS), 2)
    copy = DatasetRef(raw[0].dataset_type, dict(raw[0].data_id), RUN, id=raw[0].id)
    quantum = Quantum("isr", {}, [raw[0], raw[1], copy], _refs(calexp, 1), init_inputs=[raw[1]])
    assert quantum.inputs == (raw[0], raw[1])
    assert quantum.init_inputs == ()
    assert len(quantum.predicted_inputs) == 2


def test_quantum_ref_both_input_and_output(calexp: DatasetType) -> None:
    shared = DatasetRef(calexp, {"visit": 1, "detector": 1}, RUN)
    other = DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN)
    with pytest.raises(InvalidDefinitionError, match="both as inputs and as outputs") as info:
        Quantum("isr", {"visit": 1}, [shared], [other, shared])
    assert str(shared.id) in str(info.value)
    assert "isr" in str(info.value)
    with pytest.raises(InvalidDefinitionError, match="both as inputs and as outputs"):
        Quantum("isr", {"visit": 1}, [], [shared], init_inputs=[shared])


def test_quantum_same_id_two_definitions(calexp: DatasetType) -> None:
    first = DatasetRef(calexp, {"visit": 1, "detector": 1}, RUN)
    clash = DatasetRef(calexp, {"visit": 1, "detector": 2}, RUN, id=first.id)
    other_run = DatasetRef(calexp, {"visit": 1, "detector": 1}, "elsewhere", id=first.id)
    for inputs, outputs, init_inputs in [
        ([first, clash], [], []),
        ([first, other_run], [], []),
        ([first], [], [clash]),
        ([], [first, clash], []),
    ]:
        with pytest.raises(
            InvalidDefinitionError, match="twice with different definitions"
        ) as info:
            Quantum("isr", {}, inputs, outputs, init_inputs=init_inputs)
        assert str(first.id) in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        ["calexp"],
        [None],
        [uuid.uuid4()],
        [{"id": "x"}],
        {"calexp": ["not a ref"]},
    ],
)
def test_quantum_non_ref_objects(calexp: DatasetType, bad: Any) -> None:
    good = _refs(calexp, 1)
    for kwargs in (
        {"inputs": bad, "outputs": good},
        {"inputs": [], "outputs": bad},
        {"inputs": [], "outputs": good, "init_inputs": bad},
    ):
        with pytest.raises(InvalidDefinitionError, match="must hold DatasetRef objects"):
            Quantum("isr", {}, **kwargs)


@pytest.mark.parametrize("bad", ["refs", b"refs", None, 5])
def test_quantum_refs_not_an_iterable(calexp: DatasetType, bad: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="must be an iterable of DatasetRef"):
        Quantum("isr", {}, bad, [])
    with pytest.raises(InvalidDefinitionError, match="must be an iterable of DatasetRef"):
        Quantum("isr", {}, [], bad)


def test_quantum_single_ref_instead_of_a_collection(calexp: DatasetType) -> None:
    ref = _refs(calexp, 1)[0]
    with pytest.raises(InvalidDefinitionError, match="iterable of DatasetRef"):
        Quantum("isr", {}, ref, [])
    # A mapping whose value is a single ref rather than a collection of refs.
    with pytest.raises(InvalidDefinitionError, match="DatasetRef"):
        Quantum("isr", {}, {"calexp": ref}, [])
    with pytest.raises(InvalidDefinitionError, match="DatasetRef"):
        Quantum("isr", {}, {"calexp": 5}, [])


@pytest.mark.parametrize("label", ["", None, "a\nb"])
def test_quantum_bad_task_label(label: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="Task label"):
        Quantum(label, {}, [], [])


def test_quantum_bad_data_id() -> None:
    with pytest.raises(InvalidDataIdError, match="must be an int or a str"):
        Quantum("isr", {"visit": 1.5}, [], [])


def test_quantum_ids() -> None:
    value = uuid.uuid4()
    assert Quantum("isr", {}, [], [], id=str(value)).id == value
    assert Quantum("isr", {}, [], [], id=value).id == value
    with pytest.raises(InvalidDefinitionError, match="Quantum id must be a UUID"):
        Quantum("isr", {}, [], [], id="nope")
    with pytest.raises(InvalidDefinitionError, match="Quantum id must be a UUID"):
        Quantum("isr", {}, [], [], id=42)


def _record(ref: DatasetRef) -> FileRecord:
    return FileRecord(
        dataset_id=ref.id,
        datastore_name="FileDatastore",
        path=f"{ref.run}/{ref.dataset_type.name}/x.bin",
        formatter="bytes",
        storage_class="bytes",
        file_size=3,
        checksum="sha256:" + "0" * 64,
    )


def test_quantum_datastore_records(calexp: DatasetType) -> None:
    inputs = _refs(DatasetType("raw", "bytes", DIMS), 2)
    records = [_record(r) for r in inputs]
    as_models = Quantum("isr", {}, inputs, [], datastore_records={"FileDatastore": records})
    as_dicts = Quantum(
        "isr",
        {},
        inputs,
        [],
        id=as_models.id,
        datastore_records={"FileDatastore": [r.model_dump(mode="json") for r in records]},
    )
    assert as_models.datastore_records["FileDatastore"] == tuple(records)
    assert as_dicts == as_models
    with pytest.raises(RecordTypeError, match="Unknown datastore record type 'pickle'"):
        Quantum(
            "isr",
            {},
            inputs,
            [],
            datastore_records={
                "FileDatastore": [{**records[0].model_dump(), "record_type": "pickle"}]
            },
        )
    with pytest.raises(InvalidDefinitionError, match="Datastore name"):
        Quantum("isr", {}, inputs, [], datastore_records={"": records})


# -- regression: data IDs in dimension order, as plain values -----------------


# A str mix-in, not StrEnum, on purpose: its str() is "_Band.G", not "g".
class _Band(str, enum.Enum):  # noqa: UP042
    G = "g"
    R = "r"


class _Visit(enum.IntEnum):
    ONE = 1


class _Filter(enum.StrEnum):
    Z = "z"


def test_ref_data_id_keys_come_in_dimension_order() -> None:
    dims = ("instrument", "visit", "detector", "band")
    dataset_type = DatasetType("calexp", "json", dims)
    values = {"instrument": "HSC", "visit": 1, "detector": 2, "band": "g"}
    refs = [
        DatasetRef(dataset_type, _shuffled(values, seed), RUN, id=uuid.UUID(int=1))
        for seed in range(8)
    ]
    for ref in refs:
        assert list(ref.data_id) == list(dims)
        assert list(ref.data_id.items()) == [(key, values[key]) for key in dims]
        assert ref == refs[0]
        assert hash(ref) == hash(refs[0])
        assert repr(ref) == repr(refs[0])
    # A ref keeps its own order whatever order the given mapping or DataId had.
    given = DataId({"detector": 2, "visit": 1})
    assert list(given) == ["detector", "visit"]
    assert list(DatasetRef(DatasetType("x", "json", DIMS), given, RUN).data_id) == list(DIMS)


@pytest.mark.parametrize(
    ("value", "plain"),
    [(_Band.G, "g"), (_Filter.Z, "z"), (_Visit.ONE, 1)],
    ids=["str-mixin-enum", "str-enum", "int-enum"],
)
def test_enum_data_id_values_are_stored_as_plain_values(value: Any, plain: int | str) -> None:
    data_id = DataId({"visit": value})
    assert type(data_id["visit"]) is type(plain)
    assert data_id == DataId({"visit": plain})
    assert hash(data_id) == hash(DataId({"visit": plain}))
    assert repr(data_id) == repr(DataId({"visit": plain}))
    assert data_id.to_dict() == {"visit": plain}
    assert type(data_id.to_dict()["visit"]) is type(plain)

    dataset_type = DatasetType("calexp", "json", ("visit",))
    ref = DatasetRef(dataset_type, {"visit": value}, RUN, id=uuid.UUID(int=5))
    same = DatasetRef(dataset_type, {"visit": plain}, RUN, id=uuid.UUID(int=5))
    assert type(ref.data_id["visit"]) is type(plain)
    assert str(ref.data_id["visit"]) == str(plain)
    assert ref == same
    assert repr(ref) == repr(same)
    assert deterministic_dataset_id(dataset_type, {"visit": value}, RUN) == (
        deterministic_dataset_id(dataset_type, {"visit": plain}, RUN)
    )
    quantum = Quantum("isr", {"visit": value}, [ref], [])
    assert type(quantum.data_id["visit"]) is type(plain)
    assert quantum.data_id == {"visit": plain}


@pytest.mark.parametrize("record_type", [[1], {"a": 1}, ["file"]])
def test_unhashable_record_type_is_a_record_type_error(
    calexp: DatasetType, record_type: Any
) -> None:
    inputs = _refs(DatasetType("raw", "bytes", DIMS), 1)
    data = {**_record(inputs[0]).model_dump(mode="json"), "record_type": record_type}
    with pytest.raises(RecordTypeError, match="Unknown datastore record type") as info:
        Quantum("isr", {}, inputs, [], datastore_records={"FileDatastore": [data]})
    assert isinstance(info.value, QbbEventsError)
