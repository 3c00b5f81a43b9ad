"""Tests of `FileDatastore`: round trips, records, trust mode, refusals and atomic writes."""

from __future__ import annotations

import enum
import errno
import hashlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbb_events import (
    ArtifactNotFoundError,
    BadReadRequestError,
    DatasetRef,
    DatasetType,
    DatastoreWriteError,
    FileDatastore,
    FileRecord,
    InvalidDefinitionError,
    OutputAlreadyStoredError,
    PathEscapeError,
    PathTemplate,
    QbbEventsError,
    StorageClassError,
    UnreadableArtifactError,
)

RUN = "ds/run"
DIMS = ("visit", "detector")
FORMATTER_NAMES = {"json": "json", "arrow": "parquet", "bytes": "bytes"}

# -- helpers and fixtures -------------------------------------------------


def _type(storage_class: str, name: str | None = None) -> DatasetType:
    return DatasetType(name or f"thing_{storage_class}", storage_class, DIMS)


def _ref(
    storage_class: str = "json", visit: int | str = 1, detector: int | str = 2, run: str = RUN
) -> DatasetRef:
    return DatasetRef(_type(storage_class), {"visit": visit, "detector": detector}, run)


def _snapshot(path: Path) -> dict[str, bytes | None]:
    """Everything under ``path``: relative name -> file bytes (None for directories)."""
    return {
        str(p.relative_to(path)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(path.rglob("*"))
    }


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


def _temp_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.name.startswith(".") and p.name.endswith(".tmp")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def store(root: Path) -> FileDatastore:
    return FileDatastore(root, create=True)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> FileDatastore:
    # For property tests: one datastore for every example, one path per dataset id.
    return FileDatastore(tmp_path_factory.mktemp("shared"), template="{run}/{dataset_type}/{id}")


def _table() -> pa.Table:
    return pa.table(
        {"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, 1.5, -1.0]},
        metadata={"origin": "test"},
    )


# -- round trips ----------------------------------------------------------

JSON_VALUES = [
    {"a": 1, "b": [1, 2.5, "x"], "c": {"d": None, "e": True}},
    {},
    [],
    [1, "two", 3.0, None, False, {"x": []}],
    0,
    -(2**63),
    2**64 - 1,
    3.25,
    -0.0,
    1e308,
    'text with ünïcödé and "quotes" and \n newline',
    "",
    True,
    False,
    None,
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_json_round_trip(store: FileDatastore, value: Any) -> None:
    ref = _ref("json")
    assert not store.exists(ref)
    store.put(value, ref)
    assert store.exists(ref)
    result = store.get(ref)
    assert result == value
    assert type(result) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, result) == math.copysign(1.0, value)


def test_json_tuple_reads_back_as_list(store: FileDatastore) -> None:
    ref = _ref("json")
    store.put({"t": (1, 2)}, ref)
    assert store.get(ref) == {"t": [1, 2]}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(value=json_values)
def test_json_round_trip_law(shared_store: FileDatastore, value: Any) -> None:
    ref = _ref("json")
    record = shared_store.put(value, ref)
    assert shared_store.get(ref) == value
    assert record.file_size == shared_store.path(ref).stat().st_size


any_text = st.text(st.characters(exclude_categories=[]), max_size=4)
wild_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            any_text | st.integers() | st.none() | st.booleans() | st.floats(), children, max_size=4
        )
    ),
    max_leaves=12,
)


@given(value=wild_json)
def test_json_put_refuses_or_round_trips(shared_store: FileDatastore, value: Any) -> None:
    # Whatever is accepted reads back equal: nothing is silently changed on the way.
    ref = _ref("json")
    try:
        shared_store.put(value, ref)
    except StorageClassError:
        assert not shared_store.exists(ref)
        return
    assert shared_store.get(ref) == value


def test_json_artifact_is_utf8_json(store: FileDatastore) -> None:
    import json

    ref = _ref("json")
    value = {"emoji": "😀", "accents": "ünïcödé", "cjk": "漢字"}
    store.put(value, ref)
    data = store.path(ref).read_bytes()
    assert json.loads(data.decode("utf-8")) == value
    assert store.get(ref) == value


@pytest.mark.parametrize(
    "value",
    [
        pa.table({"a": [1, 2, 3], "b": ["x", "y", None]}),
        pa.table({"a": pa.array([], pa.int64())}),
        pa.table({"ts": pa.array([1, 2], pa.timestamp("ns")), "f": [1.5, 2.5]}),
    ],
)
def test_arrow_table_round_trip(store: FileDatastore, value: pa.Table) -> None:
    ref = _ref("arrow")
    store.put(value, ref)
    result = store.get(ref)
    assert isinstance(result, pa.Table)
    assert result.equals(value)


def test_arrow_table_keeps_schema_metadata_and_nan(store: FileDatastore) -> None:
    ref = _ref("arrow")
    table = pa.table({"c": [0.5, float("nan")]}, metadata={"origin": "test"})
    store.put(table, ref)
    result = store.get(ref)
    assert result.schema.metadata[b"origin"] == b"test"
    assert result.column_names == ["c"]
    values = result.column("c").to_pylist()
    assert values[0] == 0.5
    assert math.isnan(values[1])


def test_arrow_record_batch(store: FileDatastore) -> None:
    ref = _ref("arrow")
    batch = pa.record_batch({"a": [1, 2]})
    store.put(batch, ref)
    assert store.get(ref).equals(pa.Table.from_batches([batch]))


def test_arrow_pandas_round_trip(store: FileDatastore) -> None:
    ref = _ref("arrow")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.1, 0.2, 0.3]})
    store.put(frame, ref)
    result = store.get(ref)
    assert isinstance(result, pa.Table)
    pd.testing.assert_frame_equal(result.to_pandas(), frame)


def test_arrow_pandas_with_index_round_trip(store: FileDatastore) -> None:
    ref = _ref("arrow")
    frame = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["r1", "r2"], name="row"))
    store.put(frame, ref)
    pd.testing.assert_frame_equal(store.get(ref).to_pandas(), frame)


@pytest.mark.parametrize("columns", [["a"], ("c", "a"), ["b"]])
def test_arrow_columns_parameter(store: FileDatastore, columns: Any) -> None:
    ref = _ref("arrow")
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, 1.5, -1.0]})
    store.put(table, ref)
    result = store.get(ref, parameters={"columns": columns})
    assert result.column_names == list(columns)
    for name in columns:
        assert result.column(name).equals(table.column(name))


def test_arrow_columns_parameter_on_pandas(store: FileDatastore) -> None:
    ref = _ref("arrow")
    store.put(pd.DataFrame({"a": [1, 2], "b": [3, 4]}), ref)
    result = store.get(ref, parameters={"columns": ["b"]})
    assert result.column_names == ["b"]
    assert result.column("b").to_pylist() == [3, 4]


@pytest.mark.parametrize("columns", [["nope"], ["a", "nope"]])
def test_arrow_unknown_column(store: FileDatastore, columns: list[str]) -> None:
    ref = _ref("arrow")
    store.put(_table(), ref)
    with pytest.raises(BadReadRequestError, match="Unknown column") as info:
        store.get(ref, parameters={"columns": columns})
    assert "nope" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("columns", ["a", [1], 5, {"a": 1}])
def test_arrow_malformed_columns(store: FileDatastore, columns: Any) -> None:
    ref = _ref("arrow")
    store.put(_table(), ref)
    with pytest.raises(BadReadRequestError, match="'columns' must be a list"):
        store.get(ref, parameters={"columns": columns})


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01\x02\xff", b"x" * 100_000, bytearray(b"abc"), memoryview(b"defg")],
    ids=["empty", "binary", "large", "bytearray", "memoryview"],
)
def test_bytes_round_trip(store: FileDatastore, value: Any) -> None:
    ref = _ref("bytes")
    record = store.put(value, ref)
    result = store.get(ref)
    assert isinstance(result, bytes)
    assert result == bytes(value)
    assert record.file_size == len(bytes(value))


def test_bytes_from_non_byte_memoryview(store: FileDatastore) -> None:
    import array

    ref = _ref("bytes")
    values = array.array("i", [1, 2, 3])
    store.put(memoryview(values), ref)
    assert store.get(ref) == values.tobytes()


def test_read_reports_size(store: FileDatastore) -> None:
    ref = _ref("bytes")
    store.put(b"12345", ref)
    assert store.read(ref) == (b"12345", 5)


# -- objects that do not fit ----------------------------------------------

_cycle: list[Any] = []
_cycle.append(_cycle)


@dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    ("storage_class", "value"),
    [
        ("json", {1, 2}),
        ("json", object()),
        ("json", float("nan")),
        ("json", float("inf")),
        ("json", [1.0, float("-inf")]),
        ("json", {"a": {"b": float("nan")}}),
        ("json", {"a": {1, 2}}),
        ("json", b"bytes"),
        ("json", uuid.uuid4()),
        ("json", _Point(1)),
        ("json", _cycle),
        ("json", {1: "int key"}),
        ("json", {"a": {None: 1}}),
        ("json", {(1, 2): "tuple key"}),
        ("json", 2**64),
        ("json", -(2**63) - 1),
        ("json", [1, 2**100]),
        ("json", "lone surrogate \ud800"),
        ("json", {"\udfff": 1}),
        ("bytes", "a str"),
        ("bytes", 5),
        ("bytes", [1, 2]),
        ("bytes", None),
        ("arrow", {"a": [1, 2]}),
        ("arrow", [1, 2]),
        ("arrow", "table"),
        ("arrow", pa.array([1, 2])),
        ("arrow", None),
    ],
    ids=repr,
)
def test_object_does_not_fit_storage_class(
    store: FileDatastore, root: Path, storage_class: str, value: Any
) -> None:
    ref = _ref(storage_class)
    with pytest.raises(StorageClassError, match=repr(storage_class)) as info:
        store.put(value, ref)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, QbbEventsError)
    assert not store.exists(ref)
    assert _files(root) == []


# -- bad read requests ----------------------------------------------------


@pytest.mark.parametrize(
    ("storage_class", "value", "parameters"),
    [
        ("json", {"a": 1}, {"columns": ["a"]}),
        ("json", {"a": 1}, {"bogus": 1}),
        ("bytes", b"x", {"columns": ["a"]}),
        ("arrow", _table(), {"bogus": 1}),
        ("arrow", _table(), {"columns": ["a"], "rows": 2}),
    ],
)
def test_unknown_read_parameter(
    store: FileDatastore, storage_class: str, value: Any, parameters: dict[str, Any]
) -> None:
    ref = _ref(storage_class)
    store.put(value, ref)
    with pytest.raises(BadReadRequestError, match="Unknown read parameter") as info:
        store.get(ref, parameters=parameters)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, LookupError | OSError)
    assert repr(storage_class) in str(info.value)
    # A bad request says nothing about the artifact, which is still there.
    assert store.exists(ref)


def test_parameters_must_be_a_mapping(store: FileDatastore) -> None:
    ref = _ref("arrow")
    store.put(_table(), ref)
    with pytest.raises(BadReadRequestError, match="must be a mapping"):
        store.get(ref, parameters=["columns"])  # type: ignore[arg-type]


def test_empty_parameters_are_fine(store: FileDatastore) -> None:
    ref = _ref("json")
    store.put([1], ref)
    assert store.get(ref, parameters={}) == [1]
    assert store.get(ref, parameters=None) == [1]


@pytest.mark.parametrize(
    ("storage_class", "asked"), [("json", "arrow"), ("arrow", "bytes"), ("bytes", "nonsense")]
)
def test_storage_class_mismatch(store: FileDatastore, storage_class: str, asked: str) -> None:
    ref = _ref(storage_class)
    store.put({"json": [1], "arrow": _table(), "bytes": b"b"}[storage_class], ref)
    with pytest.raises(BadReadRequestError, match="storage class") as info:
        store.get(ref, storage_class=asked)
    assert repr(storage_class) in str(info.value)
    assert repr(asked) in str(info.value)
    assert store.get(ref, storage_class=storage_class) is not None


def test_bad_request_wins_over_missing(store: FileDatastore) -> None:
    ref = _ref("json")
    with pytest.raises(BadReadRequestError):
        store.get(ref, parameters={"bogus": 1})
    with pytest.raises(BadReadRequestError):
        store.get(ref, storage_class="bytes")


# -- missing and unreadable -----------------------------------------------


@pytest.mark.parametrize("storage_class", ["json", "arrow", "bytes"])
def test_missing_artifact(store: FileDatastore, storage_class: str) -> None:
    ref = _ref(storage_class)
    assert not store.exists(ref)
    with pytest.raises(ArtifactNotFoundError) as info:
        store.get(ref)
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, LookupError)
    assert isinstance(error, QbbEventsError)
    assert error.errno == errno.ENOENT
    assert str(ref.id) in str(error)
    assert error.filename == str(store.path(ref))
    with pytest.raises(ArtifactNotFoundError):
        store.read(ref)


def test_remove(store: FileDatastore) -> None:
    ref = _ref("json")
    store.put({"v": 1}, ref)
    assert store.remove(ref) is True
    assert not store.exists(ref)
    assert not store.path(ref).exists()
    with pytest.raises(ArtifactNotFoundError):
        store.get(ref)
    assert store.remove(ref) is False
    store.put({"v": 2}, ref)
    assert store.get(ref) == {"v": 2}


@pytest.mark.parametrize(
    ("storage_class", "value", "garbage"),
    [
        ("json", {"a": 1}, b"{not json"),
        ("json", {"a": 1}, b""),
        ("json", {"a": 1}, b"\xff\xfe\x00"),
        ("json", {"a": 1}, b"NaN"),
        ("arrow", _table(), b"PAR1 this is not parquet PAR1"),
        ("arrow", _table(), b""),
        ("arrow", _table(), None),  # truncated
    ],
)
def test_corrupted_artifact(
    store: FileDatastore, storage_class: str, value: Any, garbage: bytes | None
) -> None:
    ref = _ref(storage_class)
    store.put(value, ref)
    path = store.path(ref)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2] if garbage is None else garbage)
    with pytest.raises(UnreadableArtifactError) as info:
        store.get(ref)
    assert isinstance(info.value, OSError)
    assert not isinstance(info.value, FileNotFoundError | LookupError)
    # With a columns parameter too.
    if storage_class == "arrow":
        with pytest.raises(UnreadableArtifactError):
            store.get(ref, parameters={"columns": ["a"]})


# -- records --------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_class", "value"),
    [("json", {"a": [1, 2, 3]}), ("arrow", _table()), ("bytes", b"\x00" * 1234)],
)
def test_record(store: FileDatastore, root: Path, storage_class: str, value: Any) -> None:
    ref = _ref(storage_class)
    record = store.put(value, ref)
    assert isinstance(record, FileRecord)
    path = store.path(ref)
    data = path.read_bytes()
    assert record.dataset_id == ref.id
    assert record.datastore_name == "FileDatastore" == store.name
    assert record.formatter == FORMATTER_NAMES[storage_class]
    assert record.storage_class == storage_class
    assert record.file_size == len(data) == path.stat().st_size
    assert record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert not os.path.isabs(record.path)
    assert "\\" not in record.path
    assert ".." not in record.path.split("/")
    assert root / record.path == path
    assert (root / record.path).resolve().is_relative_to(root.resolve())
    assert record.path == store.relative_path(ref)
    assert record.path.startswith(f"{RUN}/{ref.dataset_type.name}/")
    # Nothing else was written: no temporary file is left behind.
    assert _files(root) == [path]


def test_record_names_its_datastore(root: Path) -> None:
    store = FileDatastore(root, name="main", create=True)
    record = store.put([1], _ref("json"))
    assert record.datastore_name == "main"


def test_record_of_empty_bytes(store: FileDatastore) -> None:
    record = store.put(b"", _ref("bytes"))
    assert record.file_size == 0
    assert record.checksum == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_record_checksum_of_large_artifact(store: FileDatastore) -> None:
    # Larger than one write chunk, so the digest is built over several chunks.
    data = os.urandom(1 << 20) * 20
    ref = _ref("bytes")
    record = store.put(data, ref)
    assert record.file_size == len(data)
    assert record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.get(ref) == data


def test_default_layout(store: FileDatastore) -> None:
    ref = _ref("json", visit=1, detector="S01")
    assert store.relative_path(ref) == f"{RUN}/thing_json/visit=1/detector=S01.json"
    config = DatasetRef(DatasetType("config", "json"), {}, "r")
    assert store.relative_path(config) == "r/config/_.json"
    assert store.relative_path(_ref("arrow")).endswith(".parquet")
    assert store.relative_path(_ref("bytes")).endswith(".bin")


# -- trust mode -----------------------------------------------------------


def test_trust_mode(root: Path) -> None:
    writer = FileDatastore(root, create=True)
    refs = {
        "json": (_ref("json"), {"a": 1}),
        "arrow": (_ref("arrow"), _table()),
        "bytes": (_ref("bytes"), b"raw"),
    }
    for ref, value in refs.values():
        writer.put(value, ref)
    reader = FileDatastore(root)
    for ref, value in refs.values():
        # The reader has no records: the path comes from the ref alone, and an
        # equal ref built independently finds the same artifact.
        twin = DatasetRef(
            DatasetType(ref.dataset_type.name, ref.dataset_type.storage_class, DIMS),
            dict(ref.data_id),
            ref.run,
            id=str(ref.id),
        )
        assert reader.exists(twin)
        result = reader.get(twin)
        if isinstance(value, pa.Table):
            assert result.equals(value)
        else:
            assert result == value
    # Removal through one instance is seen by the other.
    json_ref = refs["json"][0]
    assert reader.remove(json_ref)
    assert not writer.exists(json_ref)


def test_trust_mode_with_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    writer = FileDatastore("relative_repo", create=True)
    ref = _ref("json")
    writer.put([1, 2], ref)
    assert writer.root == tmp_path / "relative_repo"
    assert FileDatastore(tmp_path / "relative_repo").get(ref) == [1, 2]


# -- second put -----------------------------------------------------------


@pytest.mark.parametrize("fresh_instance", [False, True])
def test_second_put_refused(store: FileDatastore, root: Path, fresh_instance: bool) -> None:
    ref = _ref("bytes")
    first = store.put(b"first", ref)
    path = store.path(ref)
    before = path.stat()
    second_store = FileDatastore(root) if fresh_instance else store
    with pytest.raises(OutputAlreadyStoredError) as info:
        second_store.put(b"second, longer", ref)
    assert isinstance(info.value, RuntimeError)
    assert str(ref.id) in str(info.value)
    assert path.read_bytes() == b"first"
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert first.checksum == "sha256:" + hashlib.sha256(b"first").hexdigest()
    assert store.get(ref) == b"first"
    assert _temp_files(root) == []


def test_second_put_of_an_equal_path_refused(store: FileDatastore) -> None:
    # With the default template the path comes from (run, type, data ID): a
    # different id for the same data ID cannot overwrite the first artifact.
    ref = _ref("json")
    store.put({"n": 1}, ref)
    other = DatasetRef(ref.dataset_type, ref.data_id, ref.run)
    with pytest.raises(OutputAlreadyStoredError):
        store.put({"n": 2}, other)
    assert store.get(ref) == {"n": 1}


def test_put_race_lost_at_publication(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer publishes between our existence check and our link.
    ref = _ref("bytes")
    real_link = os.link

    def racing_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        Path(dst).write_bytes(b"the other writer")
        real_link(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "link", racing_link)
        with pytest.raises(OutputAlreadyStoredError):
            store.put(b"ours", ref)
    assert store.get(ref) == b"the other writer"
    assert _temp_files(root) == []


@pytest.mark.parametrize("link_errno", [errno.EPERM, errno.EXDEV, errno.ENOTSUP])
def test_put_without_hard_links(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch, link_errno: int
) -> None:
    ref = _ref("bytes")

    def no_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(link_errno, os.strerror(link_errno))

    with monkeypatch.context() as m:
        m.setattr(os, "link", no_link)
        record = store.put(b"renamed", ref)
        with pytest.raises(OutputAlreadyStoredError):
            store.put(b"again", ref)
    assert store.get(ref) == b"renamed"
    assert record.checksum == "sha256:" + hashlib.sha256(b"renamed").hexdigest()
    assert _files(root) == [store.path(ref)]


def test_put_after_directory_removed(store: FileDatastore, root: Path) -> None:
    import shutil

    first, second = _ref("json", detector=1), _ref("json", detector=2)
    store.put(1, first)
    shutil.rmtree(root / RUN.split("/")[0])
    store.put(2, second)
    assert store.get(second) == 2
    assert not store.exists(first)


def test_fsync(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    FileDatastore(root, fsync=True, create=True).put(b"durable", _ref("bytes"))
    assert len(calls) >= 1
    calls.clear()
    FileDatastore(root).put(b"fast", _ref("bytes", detector=3))
    assert calls == []


# -- path escapes ---------------------------------------------------------

ESCAPING_VALUES = ["../x", "..", ".", "a/b", "/etc/passwd", "..\\x", "../../../../tmp/x"]
ESCAPING_RUNS = ["../escape", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", "run\\..\\x"]
ESCAPE_TEMPLATES = ["{run}/{dataset_type}/{data_id}", "{visit}/{run}/{dataset_type}/{id}"]


def _assert_refused(store: FileDatastore, tmp_path: Path, ref: DatasetRef) -> None:
    before = _snapshot(tmp_path)
    passwd = Path("/etc/passwd")
    passwd_before = passwd.read_bytes() if passwd.exists() else None
    payload = {"json": {"a": 1}, "arrow": _table(), "bytes": b"payload"}[
        ref.dataset_type.storage_class
    ]
    with pytest.raises(PathEscapeError) as info:
        store.put(payload, ref)
    assert isinstance(info.value, ValueError)
    with pytest.raises(PathEscapeError):
        store.get(ref)
    with pytest.raises(PathEscapeError):
        store.read(ref)
    with pytest.raises(PathEscapeError):
        store.path(ref)
    with pytest.raises(PathEscapeError):
        store.remove(ref)
    assert store.exists(ref) is False
    # Nothing was created, inside the root or beside it.
    assert _snapshot(tmp_path) == before
    assert not Path("/abs").exists() or Path("/abs").is_dir()
    if passwd_before is not None:
        assert passwd.read_bytes() == passwd_before


@pytest.mark.parametrize("template", ESCAPE_TEMPLATES)
@pytest.mark.parametrize("value", ESCAPING_VALUES)
@pytest.mark.parametrize("storage_class", ["json", "bytes"])
def test_data_id_value_escape_refused(
    tmp_path: Path, root: Path, template: str, value: str, storage_class: str
) -> None:
    store = FileDatastore(root, template=template, create=True)
    ref = _ref(storage_class, visit=value)
    _assert_refused(store, tmp_path, ref)
    with pytest.raises(PathEscapeError, match="Data ID value for 'visit'"):
        store.put(b"x", ref)


@pytest.mark.parametrize("template", ESCAPE_TEMPLATES)
@pytest.mark.parametrize("run", ESCAPING_RUNS)
def test_run_escape_refused(tmp_path: Path, root: Path, template: str, run: str) -> None:
    store = FileDatastore(root, template=template, create=True)
    ref = _ref("bytes", run=run)
    _assert_refused(store, tmp_path, ref)
    with pytest.raises(PathEscapeError, match="RUN name"):
        store.get(ref)


def test_escape_attempt_in_a_populated_datastore(tmp_path: Path, store: FileDatastore) -> None:
    good = _ref("json")
    store.put({"ok": True}, good)
    _assert_refused(store, tmp_path, _ref("json", visit=".."))
    _assert_refused(store, tmp_path, _ref("json", run="../escape"))
    assert store.get(good) == {"ok": True}


@pytest.mark.parametrize("run", ["u/someone/run1", "a.b", "..a", "a..", ".hidden", "x y"])
def test_unusual_but_safe_runs(store: FileDatastore, root: Path, run: str) -> None:
    ref = _ref("json", run=run)
    store.put([run], ref)
    assert store.get(ref) == [run]
    assert store.path(ref).resolve().is_relative_to(root.resolve())


@pytest.mark.parametrize("value", ["..a", "a..", "...", ".hidden", "with space", "ü"])
def test_unusual_but_safe_values(root: Path, value: str) -> None:
    store = FileDatastore(root, template="{run}/{dataset_type}/{visit}/{id}", create=True)
    ref = _ref("json", visit=value)
    store.put([value], ref)
    assert store.get(ref) == [value]
    assert store.path(ref).resolve().is_relative_to(root.resolve())


# -- templates ------------------------------------------------------------


def test_template_with_id(root: Path) -> None:
    store = FileDatastore(root, template="{run}/{dataset_type}/{id}", create=True)
    ref = _ref("json")
    assert store.relative_path(ref) == f"{RUN}/thing_json/{ref.id}.json"
    store.put({"x": 1}, ref)
    assert (root / RUN / "thing_json" / f"{ref.id}.json").is_file()
    # Another dataset with the same data ID gets its own path.
    twin = DatasetRef(ref.dataset_type, ref.data_id, ref.run)
    store.put({"x": 2}, twin)
    assert store.get(ref) == {"x": 1}
    assert store.get(twin) == {"x": 2}
    # Trust mode needs the same template.
    assert FileDatastore(root, template="{run}/{dataset_type}/{id}").get(ref) == {"x": 1}
    assert not FileDatastore(root).exists(ref)


def test_template_with_dimension_names(root: Path) -> None:
    template = "{run}/{dataset_type}/v{visit}/{detector}_{id}"
    store = FileDatastore(root, template=template, create=True)
    ref = _ref("bytes", visit=42, detector="S01")
    assert store.relative_path(ref) == f"{RUN}/thing_bytes/v42/S01_{ref.id}.bin"
    record = store.put(b"data", ref)
    assert record.path == f"{RUN}/thing_bytes/v42/S01_{ref.id}.bin"
    assert FileDatastore(root, template=template).get(ref) == b"data"
    assert PathTemplate(template).template == template
    assert PathTemplate(template).format(ref, ".bin") == record.path


def test_template_with_data_id_and_dimension(root: Path) -> None:
    store = FileDatastore(root, template="{run}/{visit}/{dataset_type}/{data_id}", create=True)
    ref = _ref("json", visit=7, detector=3)
    assert store.relative_path(ref) == f"{RUN}/7/thing_json/visit=7/detector=3.json"


def test_template_naming_a_missing_dimension(root: Path) -> None:
    store = FileDatastore(root, template="{run}/{dataset_type}/{band}/{id}", create=True)
    ref = _ref("json")
    with pytest.raises(InvalidDefinitionError, match="band"):
        store.put({"a": 1}, ref)
    with pytest.raises(InvalidDefinitionError, match="band"):
        store.get(ref)
    assert store.exists(ref) is False
    assert _files(root) == []


@pytest.mark.parametrize(
    "template",
    [
        "{dataset_type}/{data_id}",
        "{dataset_type}/{id}",
        "{run}/{data_id}",
        "{run}/{dataset_type}",
        "{run}/{dataset_type}/{visit}",
        "",
        "fixed/path",
        "{run}/{dataset_type}/{id",
        "{run}/{dataset_type}/{id}}",
        "/{run}/{dataset_type}/{id}",
        "{run}/{dataset_type}/{0}/{id}",
        "{run}/{dataset_type}/{}/{id}",
        "{run}/{dataset_type}/{id.hex}",
        "{run}/{dataset_type}/{visit[0]}/{id}",
        "{run}/../{dataset_type}/{id}",
        "../{run}/{dataset_type}/{id}",
        "{run}/{dataset_type}/{id}/..",
        "{run}/{dataset_type}/./{id}",
    ],
)
def test_malformed_template(root: Path, template: str) -> None:
    with pytest.raises(InvalidDefinitionError) as info:
        PathTemplate(template)
    assert repr(template) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidDefinitionError):
        FileDatastore(root, template=template)


def test_missing_run_message(root: Path) -> None:
    with pytest.raises(InvalidDefinitionError, match=r"must use \{run\}"):
        FileDatastore(root, template="{dataset_type}/{data_id}")


# -- write errors ---------------------------------------------------------


def _no_space(fd: int, data: Any) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("storage_class", ["json", "arrow", "bytes"])
def test_disk_full(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch, storage_class: str
) -> None:
    ref = _ref(storage_class)
    value = {"json": {"a": 1}, "arrow": _table(), "bytes": b"x" * 1000}[storage_class]
    with monkeypatch.context() as m:
        m.setattr(os, "write", _no_space)
        with pytest.raises(DatastoreWriteError) as info:
            store.put(value, ref)
    error = info.value
    assert isinstance(error, OSError)
    assert isinstance(error, QbbEventsError)
    assert error.errno == errno.ENOSPC
    assert str(ref.id) in str(error)
    assert not store.path(ref).exists()
    assert not store.exists(ref)
    assert _files(root) == []
    # Once the disk has room again the same dataset can be written.
    store.put(value, ref)
    assert store.exists(ref)
    assert _temp_files(root) == []


def test_disk_full_after_a_partial_write(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _ref("bytes")
    real_write = os.write
    calls: list[int] = []

    def half_then_full(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", half_then_full)
        with pytest.raises(DatastoreWriteError) as info:
            store.put(b"0123456789" * 100, ref)
    assert info.value.errno == errno.ENOSPC
    assert len(calls) == 2
    assert not store.path(ref).exists()
    assert _files(root) == []


def test_io_error_at_publication(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _ref("bytes")

    def broken_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as m:
        m.setattr(os, "link", broken_link)
        with pytest.raises(DatastoreWriteError) as info:
            store.put(b"data", ref)
    assert info.value.errno == errno.EIO
    assert not store.exists(ref)
    assert _files(root) == []


def test_interrupted_write_leaves_nothing(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _ref("bytes")

    def interrupted(fd: int, data: Any) -> int:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "write", interrupted)
        with pytest.raises(KeyboardInterrupt):
            store.put(b"data", ref)
    assert not store.exists(ref)
    assert _files(root) == []


# -- a killed writer ------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from qbb_events import DatasetRef, DatasetType, FileDatastore

    root, dataset_id = sys.argv[1], sys.argv[2]
    ref = DatasetRef(DatasetType("blob", "bytes", ("n",)), {"n": 1}, "run", id=dataset_id)
    payload = bytes(300 << 20)
    real_write = os.write

    def steady_write(fd, data):
        # Pace the chunks so that the parent reliably catches us mid-write.
        time.sleep(0.05)
        return real_write(fd, data)

    os.write = steady_write
    FileDatastore(root).put(payload, ref)
    print("finished", flush=True)
    """
)


def _hidden_temp_files(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [directory / n for n in names if n.startswith(".") and n.endswith(".tmp")]


@pytest.fixture
def popen_cleanup() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_killed_writer_publishes_nothing(
    root: Path, popen_cleanup: list[subprocess.Popen[bytes]]
) -> None:
    ref = DatasetRef(DatasetType("blob", "bytes", ("n",)), {"n": 1}, "run")
    store = FileDatastore(root, create=True)
    final = store.path(ref)
    directory = final.parent
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root), str(ref.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    popen_cleanup.append(writer)
    deadline = time.monotonic() + 30
    temp: Path | None = None
    while temp is None:
        if writer.poll() is not None:
            _, stderr = writer.communicate()
            pytest.fail(f"writer exited ({writer.returncode}) before it was killed: {stderr!r}")
        if time.monotonic() > deadline:
            pytest.fail("writer never created its temporary file")
        for candidate in _hidden_temp_files(directory):
            try:
                if candidate.stat().st_size > 0:
                    temp = candidate
            except FileNotFoundError:
                pass
        time.sleep(0.002)
    assert not final.exists(), "artifact published while its temporary file was being written"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    assert writer.stdout is not None
    assert b"finished" not in writer.stdout.read()

    # No artifact at the final path: only the hidden temporary file is left.
    assert not os.path.lexists(final)
    assert not store.exists(ref)
    assert not FileDatastore(root).exists(ref)
    with pytest.raises(ArtifactNotFoundError):
        store.get(ref)
    leftovers = os.listdir(directory)
    assert leftovers
    assert all(n.startswith(".") and n.endswith(".tmp") for n in leftovers)
    assert 0 < temp.stat().st_size < 300 << 20

    # The dataset can be written afresh, by this process or another instance.
    record = FileDatastore(root).put(b"second attempt", ref)
    assert store.get(ref) == b"second attempt"
    assert record.file_size == len(b"second attempt")
    assert final.read_bytes() == b"second attempt"


# -- regression: one dataset, one path; int and str values never share one ---------


def test_equal_refs_with_reordered_data_ids_share_a_path(root: Path) -> None:
    dataset_type = _type("json")
    dataset_id = uuid.uuid4()
    forward = DatasetRef(dataset_type, {"visit": 1, "detector": 2}, RUN, id=dataset_id)
    backward = DatasetRef(dataset_type, {"detector": 2, "visit": 1}, RUN, id=dataset_id)
    assert forward == backward
    writer = FileDatastore(root, create=True)
    assert writer.relative_path(forward) == writer.relative_path(backward)
    assert writer.relative_path(backward) == f"{RUN}/thing_json/visit=1/detector=2.json"
    writer.put({"x": 1}, forward)
    # A fresh instance (no cache, no records) finds the artifact through either ordering.
    for ref in (forward, backward):
        reader = FileDatastore(root)
        assert reader.relative_path(ref) == writer.relative_path(forward)
        assert reader.exists(ref)
        assert reader.get(ref) == {"x": 1}
    # Written through the other ordering, it is the same artifact: a second put is refused.
    with pytest.raises(OutputAlreadyStoredError):
        FileDatastore(root).put({"x": 2}, backward)
    assert _files(root) == [root / writer.relative_path(forward)]


INT_STR_TEMPLATES = [
    "{run}/{dataset_type}/{data_id}",
    "{run}/{visit}/{dataset_type}/{data_id}",
    "{run}/v{visit}/{dataset_type}/{data_id}",
]


@pytest.mark.parametrize("template", INT_STR_TEMPLATES)
@pytest.mark.parametrize(("as_int", "as_str"), [(1, "1"), (-7, "-7"), (0, "0"), (12, "+12")])
def test_int_and_str_data_id_values_never_share_an_artifact(
    root: Path, template: str, as_int: int, as_str: str
) -> None:
    dataset_type = _type("json")
    number = DatasetRef.deterministic(dataset_type, {"visit": as_int, "detector": 2}, RUN)
    text = DatasetRef.deterministic(dataset_type, {"visit": as_str, "detector": 2}, RUN)
    assert number != text
    store = FileDatastore(root, template=template, create=True)
    assert store.relative_path(number) != store.relative_path(text)
    store.put({"who": "number"}, number)
    # Reading the other never returns this one's data.
    assert not store.exists(text)
    with pytest.raises(ArtifactNotFoundError):
        store.get(text)
    assert not FileDatastore(root, template=template).exists(text)
    store.put({"who": "text"}, text)
    for reader in (store, FileDatastore(root, template=template)):
        assert reader.get(number) == {"who": "number"}
        assert reader.get(text) == {"who": "text"}
    assert len(_files(root)) == 2


@pytest.mark.parametrize(("as_int", "as_str"), [(1, "1"), (-7, "-7")])
def test_int_and_str_data_id_values_render_differently_as_fields(
    root: Path, as_int: int, as_str: str
) -> None:
    store = FileDatastore(root, template="{run}/{dataset_type}/{visit}/{id}", create=True)
    dataset_id = uuid.uuid4()
    number = DatasetRef(_type("json"), {"visit": as_int, "detector": 2}, RUN, id=dataset_id)
    text = DatasetRef(_type("json"), {"visit": as_str, "detector": 2}, RUN, id=dataset_id)
    # Same id: only the rendering of the value can tell the two apart.
    assert store.relative_path(number).split("/")[-2] == str(as_int)
    assert store.relative_path(text).split("/")[-2] != str(as_int)
    assert store.relative_path(number) != store.relative_path(text)


def test_plain_values_keep_their_plain_paths(store: FileDatastore) -> None:
    # Only a string that reads as an integer is marked; other values render as they are.
    assert store.relative_path(_ref("json", visit=1, detector="S01")) == (
        f"{RUN}/thing_json/visit=1/detector=S01.json"
    )
    assert store.relative_path(_ref("json", visit="1a", detector="-")) == (
        f"{RUN}/thing_json/visit=1a/detector=-.json"
    )


def test_str_values_that_look_quoted_never_share_an_artifact(store: FileDatastore) -> None:
    dataset_type = _type("json")
    plain = DatasetRef.deterministic(dataset_type, {"visit": "1", "detector": 2}, RUN)
    quoted = DatasetRef.deterministic(dataset_type, {"visit": "'1'", "detector": 2}, RUN)
    assert plain != quoted
    store.put({"who": "plain"}, plain)
    assert not store.exists(quoted)
    assert store.relative_path(plain) != store.relative_path(quoted)


# A str mix-in, not StrEnum, on purpose: its str() is "_Band.G", not "g".
class _Band(str, enum.Enum):  # noqa: UP042
    G = "g"


class _Detector(enum.IntEnum):
    TWO = 2


def test_enum_data_id_values_render_like_plain_values(root: Path) -> None:
    dataset_type = DatasetType("thing_json", "json", ("band", "detector"))
    dataset_id = uuid.uuid4()
    enums = DatasetRef(
        dataset_type, {"band": _Band.G, "detector": _Detector.TWO}, RUN, id=dataset_id
    )
    plain = DatasetRef(dataset_type, {"band": "g", "detector": 2}, RUN, id=dataset_id)
    assert type(enums.data_id["band"]) is str
    assert type(enums.data_id["detector"]) is int
    assert enums == plain
    for template in (
        "{run}/{dataset_type}/{data_id}",
        "{run}/{band}/{dataset_type}/{detector}/{id}",
    ):
        store = FileDatastore(root, template=template, create=True)
        assert store.relative_path(enums) == store.relative_path(plain)
        assert "_Band" not in store.relative_path(enums)
        assert "'" not in store.relative_path(enums)
    store = FileDatastore(root)
    assert store.relative_path(enums) == f"{RUN}/thing_json/band=g/detector=2.json"
    store.put({"x": 1}, enums)
    assert FileDatastore(root).get(plain) == {"x": 1}
    with pytest.raises(OutputAlreadyStoredError):
        store.put({"x": 2}, plain)


FORMAT_SPEC_TEMPLATES = [
    "{run}/{dataset_type}/{id:.4}",
    "{run!r}/{dataset_type}/{id}",
    "{run}/{dataset_type}/{data_id!s}",
    "{run}/{dataset_type}/{visit:>8}/{id}",
    "{run}/{dataset_type}/{visit!a}/{id}",
    "{id:.0}../{run}/{dataset_type}/{data_id}",
    "{run:.0}/../{dataset_type}/{id}",
]


@pytest.mark.parametrize("template", FORMAT_SPEC_TEMPLATES)
def test_template_format_specs_and_conversions_refused(tmp_path: Path, template: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(InvalidDefinitionError, match="format specs or conversions") as info:
        PathTemplate(template)
    assert repr(template) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidDefinitionError):
        FileDatastore(root, template=template)
    # Nothing was written, inside the root or beside it.
    assert _snapshot(tmp_path) == before


def test_a_temporary_name_left_after_publication_does_not_fail_the_put(
    store: FileDatastore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _ref("bytes")
    real_unlink = os.unlink

    def unlink_fails_for_temporaries(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path).endswith(".tmp"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_unlink(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "unlink", unlink_fails_for_temporaries)
        record = store.put(b"data", ref)
    # The artifact was published, so the put succeeded; only a hidden temporary remains.
    assert record.path == store.relative_path(ref)
    assert store.get(ref) == b"data"
    assert FileDatastore(root).get(ref) == b"data"
    assert [p for p in _files(root) if p not in _temp_files(root)] == [store.path(ref)]
