"""Reusable hypothesis strategies for qbb_events.

Building blocks (`dataset_types`, `data_ids`, `runs`, `dataset_refs`), a random
quantum (`quanta`), a random initial datastore state (`datastore_states`) and
random sequences of butler calls (`call_sequences`), tied together by
`scenarios`, which draws all of them consistently.

Calls are plain frozen dataclasses holding refs, so a failing example prints
as a readable script. `apply_initial_state` writes a `DatastoreState` into a
real `FileDatastore`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from hypothesis import strategies as st

from qbb_events import STORAGE_CLASSES, DatasetRef, DatasetType, FileDatastore, Quantum

__all__ = [
    "BAD_READS",
    "CORRUPT_BYTES",
    "RESTORED_SALT",
    "SC_NAMES",
    "Call",
    "DatastoreState",
    "DeleteArtifact",
    "Exists",
    "Get",
    "GetDeferred",
    "HandleGet",
    "MarkInputUnused",
    "Prune",
    "Put",
    "ReadRequest",
    "RestoreArtifact",
    "Scenario",
    "Stored",
    "StoredMany",
    "apply_initial_state",
    "call_sequences",
    "data_ids",
    "dataset_refs",
    "dataset_types",
    "datastore_states",
    "good_object",
    "quanta",
    "runs",
    "scenarios",
]

SC_NAMES = sorted(STORAGE_CLASSES)
DIMENSIONS = ("instrument", "visit", "detector", "band")

# How a read request is spoiled (or not):
#   None            a plain read;
#   "columns"       parameters={"columns": ["a"]}: valid for ``arrow``, an unknown
#                   parameter (bad request) for the other storage classes;
#   "unknown_param" parameters={"no_such_parameter": 1}: always a bad request;
#   "storage_class" storageClass set to another storage class: always a bad request.
ReadRequest = Literal["columns", "unknown_param", "storage_class"] | None
BAD_READS: tuple[ReadRequest, ...] = (None, "columns", "unknown_param", "storage_class")

# Contents written over an artifact to make it unreadable (``json`` and
# ``arrow`` cannot decode it; ``bytes`` reads anything).
CORRUPT_BYTES = b"\x00\x01 not json, not parquet \xff"

_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,4})?", fullmatch=True)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=5)


# -- building blocks ----------------------------------------------------------


def dataset_types() -> st.SearchStrategy[DatasetType]:
    """Draw a valid dataset type: dotted name, known storage class, 0-3 dimensions."""
    return st.builds(
        DatasetType,
        name=_names,
        storage_class=st.sampled_from(SC_NAMES),
        dimensions=st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=3).map(tuple),
    )


def data_ids(dimensions: tuple[str, ...]) -> st.SearchStrategy[dict[str, int | str]]:
    """Draw a data ID with exactly the given keys (int or short path-safe str values)."""
    value = st.one_of(st.integers(min_value=0, max_value=50), _words)
    return st.fixed_dictionaries({dim: value for dim in dimensions})


def runs() -> st.SearchStrategy[str]:
    """Draw a RUN name, sometimes with ``/``-separated components."""
    return st.lists(_words, min_size=1, max_size=3).map("/".join)


@st.composite
def dataset_refs(
    draw: st.DrawFn,
    dataset_type: DatasetType | None = None,
    run: str | None = None,
) -> DatasetRef:
    """Draw a ref (with a hypothesis-chosen, hence reproducible, UUID)."""
    if dataset_type is None:
        dataset_type = draw(dataset_types())
    if run is None:
        run = draw(runs())
    data_id = draw(data_ids(dataset_type.dimensions))
    return DatasetRef(dataset_type, data_id, run, id=draw(st.uuids()))


def _path_key(ref: DatasetRef) -> tuple[Any, ...]:
    # Two refs sharing run, type name and rendered data ID would share an
    # artifact path; a quantum never holds such refs, so keep them apart.
    data_id = tuple(sorted((k, str(v)) for k, v in ref.data_id.items()))
    return (ref.run, ref.dataset_type.name, data_id)


@st.composite
def _ref_pool(draw: st.DrawFn, n: int) -> list[DatasetRef]:
    types = draw(st.lists(dataset_types(), min_size=1, max_size=4, unique_by=lambda t: t.name))
    run_pool = draw(st.lists(runs(), min_size=1, max_size=3, unique=True))
    refs: list[DatasetRef] = []
    seen_paths: set[tuple[Any, ...]] = set()
    seen_ids: set[uuid.UUID] = set()
    for _ in range(n * 3):
        if len(refs) == n:
            break
        candidate = draw(
            dataset_refs(
                dataset_type=draw(st.sampled_from(types)), run=draw(st.sampled_from(run_pool))
            )
        )
        key = _path_key(candidate)
        if key in seen_paths or candidate.id in seen_ids:
            continue
        seen_paths.add(key)
        seen_ids.add(candidate.id)
        refs.append(candidate)
    return refs


@st.composite
def quanta(
    draw: st.DrawFn, max_inputs: int = 8, max_init_inputs: int = 8, max_outputs: int = 8
) -> tuple[Quantum, list[DatasetRef]]:
    """Draw a quantum and a few extra refs that lie outside it.

    Returns
    -------
    quantum : `Quantum`
        Inputs (0-``max_inputs``), init-inputs (0-``max_init_inputs``) and
        outputs (0-``max_outputs``), all with distinct ids and paths.
    outside : `list` [`DatasetRef`]
        0-3 refs that are neither inputs nor outputs of the quantum.
    """
    n_in = draw(st.integers(0, max_inputs))
    n_init = draw(st.integers(0, max_init_inputs))
    n_out = draw(st.integers(0, max_outputs))
    n_outside = draw(st.integers(0, 3))
    pool = draw(_ref_pool(n_in + n_init + n_out + n_outside))
    # The pool may come out short when paths collide; split what we got.
    inputs = pool[:n_in]
    init_inputs = pool[n_in : n_in + n_init]
    outputs = pool[n_in + n_init : n_in + n_init + n_out]
    outside = pool[n_in + n_init + n_out :]
    quantum = Quantum(
        task_label=draw(_names),
        data_id=draw(data_ids(("instrument", "visit"))),
        inputs=inputs,
        outputs=outputs,
        init_inputs=init_inputs,
        id=draw(st.uuids()),
    )
    return quantum, outside


# -- initial datastore state ----------------------------------------------------


@dataclass(frozen=True)
class DatastoreState:
    """Which artifacts exist before the quantum runs.

    Attributes
    ----------
    present : `frozenset` [`uuid.UUID`]
        Ids of inputs (and outside refs) whose artifact is written.
    corrupt : `uuid.UUID` or `None`
        One present dataset whose artifact is overwritten with garbage.
    """

    present: frozenset[uuid.UUID]
    corrupt: uuid.UUID | None = None


@st.composite
def datastore_states(
    draw: st.DrawFn, readable: list[DatasetRef], stale: list[DatasetRef] = ()
) -> DatastoreState:
    """Draw which of ``readable`` have artifacts (mostly yes), maybe one corrupt.

    Each of ``stale`` (predicted outputs) rarely has an artifact left over
    from an earlier attempt, which a ``put`` must refuse.
    """
    present = frozenset(
        ref.id for ref in readable if draw(st.sampled_from([True, True, True, False]))
    ) | frozenset(ref.id for ref in stale if draw(st.sampled_from([True] + [False] * 15)))
    corrupt = None
    if present and draw(st.booleans()):
        corrupt = draw(st.sampled_from(sorted(present)))
    return DatastoreState(present=present, corrupt=corrupt)


def good_object(dataset_type: DatasetType, salt: int = 0) -> Any:
    """Return an object that fits the storage class (``arrow`` tables have a column ``a``)."""
    if dataset_type.storage_class == "json":
        return {"salt": salt, "values": [1, 2, 3]}
    if dataset_type.storage_class == "bytes":
        return b"payload-%d" % salt
    if dataset_type.storage_class == "arrow":
        return pa.table({"a": [salt, 1, 2], "b": ["x", "y", "z"]})
    raise AssertionError(dataset_type.storage_class)


def apply_initial_state(datastore: FileDatastore, refs: list[DatasetRef], state: DatastoreState):
    """Write the artifacts of ``state`` for ``refs`` into ``datastore``."""
    for salt, ref in enumerate(refs):
        if ref.id in state.present:
            datastore.put(good_object(ref.dataset_type, salt), ref)
            if ref.id == state.corrupt:
                datastore.path(ref).write_bytes(CORRUPT_BYTES)


# -- calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class Get:
    """``butler.get(ref, ...)`` with a possibly spoiled request."""

    ref: DatasetRef
    request: ReadRequest = None


@dataclass(frozen=True)
class GetDeferred:
    """``butler.getDeferred(ref, ...)``; the handle is kept for a later `HandleGet`."""

    ref: DatasetRef
    request: ReadRequest = None


@dataclass(frozen=True)
class HandleGet:
    """``handle.get()`` on the ``index % n``-th handle made so far (skipped if none)."""

    index: int


@dataclass(frozen=True)
class Stored:
    """``butler.stored(ref)``."""

    ref: DatasetRef


@dataclass(frozen=True)
class Exists:
    """``butler.exists(ref)``."""

    ref: DatasetRef


@dataclass(frozen=True)
class StoredMany:
    """``butler.stored_many(refs)``."""

    refs: tuple[DatasetRef, ...]


@dataclass(frozen=True)
class MarkInputUnused:
    """``butler.markInputUnused(ref)``."""

    ref: DatasetRef


@dataclass(frozen=True)
class Put:
    """``butler.put(obj, ref)``; ``bad_object`` puts an object no storage class accepts."""

    ref: DatasetRef
    bad_object: bool = False
    salt: int = 0


@dataclass(frozen=True)
class Prune:
    """``butler.pruneDatasets(refs, disassociate=..., unstore=..., purge=...)``."""

    refs: tuple[DatasetRef, ...]
    disassociate: bool
    unstore: bool
    purge: bool


@dataclass(frozen=True)
class DeleteArtifact:
    """Not a butler call: an input's file vanishes behind the butler's back."""

    ref: DatasetRef


@dataclass(frozen=True)
class RestoreArtifact:
    """Not a butler call: an input's file appears late (written by someone else)."""

    ref: DatasetRef


RESTORED_SALT = 1000
"""Salt of the object `RestoreArtifact` writes (see `good_object`)."""


Call = (
    Get
    | GetDeferred
    | HandleGet
    | Stored
    | Exists
    | StoredMany
    | MarkInputUnused
    | Put
    | Prune
    | DeleteArtifact
    | RestoreArtifact
)


def _weighted(*groups: list[DatasetRef]) -> st.SearchStrategy[DatasetRef]:
    # one_of picks its branches about evenly: listing a group twice doubles its weight.
    branches = [st.sampled_from(g) for g in groups if g]
    return st.one_of(branches)


def call_sequences(
    inputs: list[DatasetRef],
    outputs: list[DatasetRef],
    outside: list[DatasetRef],
    max_size: int = 40,
) -> st.SearchStrategy[list[Call]]:
    """Draw a random sequence of butler calls over the given refs.

    Parameters
    ----------
    inputs : `list` [`DatasetRef`]
        Predicted inputs and init-inputs.
    outputs : `list` [`DatasetRef`]
        Predicted outputs.
    outside : `list` [`DatasetRef`]
        Refs outside the quantum.
    max_size : `int`
        Longest sequence.
    """
    everything = [*inputs, *outputs, *outside]
    if not everything:
        return st.lists(st.builds(HandleGet, st.integers(0, 5)), max_size=2)
    # A small "hot" subset of the inputs draws many of the calls, so that one
    # input sees long histories (deferred, found missing, appears, read...).
    # Likewise a hot output sees puts, prunes and puts again.
    hot = inputs[:2]
    hot_out = outputs[:1]
    any_ref = _weighted(hot, inputs, outputs, outside)
    read_ref = _weighted(hot, hot, inputs, inputs, outputs, outside)
    put_ref = _weighted(hot_out, hot_out, outputs, everything)
    prune_ref = _weighted(hot_out, hot_out, outputs, outputs, everything)
    # Mostly plain reads, sometimes a spoiled request.
    request = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(BAD_READS))
    flags = st.one_of(
        # The valid combinations, most of the time...
        st.just((False, False, False)),
        st.just((False, True, False)),
        st.just((True, True, True)),
        # ...and any combination, defaults included.
        st.tuples(st.booleans(), st.booleans(), st.booleans()),
    )
    put = st.builds(Put, put_ref, st.sampled_from([False] * 5 + [True]), st.integers(0, 3))
    prune = st.builds(
        lambda refs, f: Prune(refs, *f), st.lists(prune_ref, max_size=2).map(tuple), flags
    )
    weighted: list[tuple[int, st.SearchStrategy[Any]]] = [
        (4, st.builds(Get, read_ref, request)),
        (2, st.builds(GetDeferred, read_ref, request)),
        (2, st.builds(HandleGet, st.integers(0, 5))),
        (2, st.builds(Stored, any_ref)),
        (1, st.builds(Exists, any_ref)),
        (2, st.builds(StoredMany, st.lists(any_ref, max_size=5).map(tuple))),
        (2, st.builds(MarkInputUnused, any_ref)),
        (5, put),
        (3, prune),
    ]
    if inputs:
        weighted.append((2, st.builds(DeleteArtifact, _weighted(hot, hot, inputs))))
        weighted.append((1, st.builds(RestoreArtifact, _weighted(hot, inputs))))
    one_call = st.sampled_from([s for w, s in weighted for _ in range(w)]).flatmap(lambda s: s)
    # Spread the length over the whole range: the interesting histories
    # (missing, then read; written, pruned, rewritten) need length, and
    # st.integers favours small values where sampled_from draws more evenly.
    length = st.sampled_from(range(max_size + 1))
    return length.flatmap(lambda n: st.lists(one_call, min_size=n, max_size=n))


# -- everything at once -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A quantum, its initial datastore, a call sequence and how to run it.

    The quantum's refs are fields (not a `Quantum`, whose repr only counts
    them) so that a failing example prints every ref in full.
    """

    quantum_id: uuid.UUID
    inputs: tuple[DatasetRef, ...]
    init_inputs: tuple[DatasetRef, ...]
    outputs: tuple[DatasetRef, ...]
    outside: tuple[DatasetRef, ...]
    state: DatastoreState
    calls: tuple[Call, ...]
    from_predicted: bool = False
    close_at_end: bool = False

    @property
    def quantum(self) -> Quantum:
        """The quantum (task ``task``, data ID ``{"visit": 0}``)."""
        return Quantum(
            "task",
            {"visit": 0},
            inputs=self.inputs,
            outputs=self.outputs,
            init_inputs=self.init_inputs,
            id=self.quantum_id,
        )

    @property
    def predicted_inputs(self) -> list[DatasetRef]:
        """Predicted inputs, init-inputs included."""
        return [*self.inputs, *self.init_inputs]

    @property
    def all_refs(self) -> list[DatasetRef]:
        """Every ref, in the order `apply_initial_state` takes them (salts follow it)."""
        return [*self.inputs, *self.init_inputs, *self.outside, *self.outputs]


@st.composite
def scenarios(draw: st.DrawFn, max_calls: int = 40) -> Scenario:
    """Draw a whole scenario: quantum, outside refs, initial state and calls."""
    quantum, outside = draw(quanta())
    inputs = [*quantum.inputs, *quantum.init_inputs]
    state = draw(datastore_states([*inputs, *outside], stale=list(quantum.outputs)))
    calls = draw(call_sequences(inputs, list(quantum.outputs), outside, max_size=max_calls))
    return Scenario(
        quantum_id=quantum.id,
        inputs=quantum.inputs,
        init_inputs=quantum.init_inputs,
        outputs=quantum.outputs,
        outside=tuple(outside),
        state=state,
        calls=tuple(calls),
        from_predicted=draw(st.booleans()),
        close_at_end=draw(st.booleans()),
    )
