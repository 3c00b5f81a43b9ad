"""Property-based tests: the butler against an independent model, and the laws of the fold.

The model (`Model` below) is written from SPEC sections 4-6 with plain sets;
it does not share code with ``qbb_events.fold``. Each random scenario (see
``strategies.scenarios``) runs on a real `QuantumBackedButler` over a
temporary directory.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from structlog.testing import capture_logs
from support.scenarios import BAD_OBJECT, Step, run_scenario
from support.strategies import (
    CORRUPT_BYTES,
    RESTORED_SALT,
    Call,
    DatastoreState,
    DeleteArtifact,
    Exists,
    Get,
    GetDeferred,
    HandleGet,
    MarkInputUnused,
    Prune,
    Put,
    ReadRequest,
    RestoreArtifact,
    Scenario,
    Stored,
    StoredMany,
    good_object,
    scenarios,
)

from qbb_events import (
    ArtifactNotFoundError,
    BadReadRequestError,
    ButlerClosedError,
    DatasetRef,
    DatasetType,
    OutputAlreadyStoredError,
    OutputNotPredictedError,
    ProvenanceReducer,
    PruneArgumentError,
    PruneNotOwnedError,
    QuantumProvenanceData,
    StorageClassError,
    UnreadableArtifactError,
    check_chain,
    fold,
    read_log,
)

# -- the independent model (SPEC sections 4, 5 and 6) ----------------------------------


class Model:
    """Plain-set model of what the SPEC says a butler's provenance must be."""

    def __init__(self, sc: Scenario) -> None:
        self.refs = {ref.id: ref for ref in (*sc.predicted_inputs, *sc.outputs, *sc.outside)}
        self.inputs = {ref.id for ref in sc.predicted_inputs}
        self.outputs = {ref.id for ref in sc.outputs}
        # The datastore: what is stored, what of it cannot be decoded, and its content.
        self.content: dict[uuid.UUID, Any] = {}
        for salt, ref in enumerate(sc.all_refs):
            if ref.id in sc.state.present:
                self.content[ref.id] = good_object(ref.dataset_type, salt)
        self.unreadable: set[uuid.UUID] = set()
        corrupt = sc.state.corrupt
        if corrupt is not None:
            if self.refs[corrupt].dataset_type.storage_class == "bytes":
                self.content[corrupt] = CORRUPT_BYTES  # bytes read anything back
            else:
                self.unreadable.add(corrupt)
        # Provenance state.
        self.available: set[uuid.UUID] = set()
        self.unavailable: set[uuid.UUID] = set()
        self.used: set[uuid.UUID] = set()
        self.read_ok: set[uuid.UUID] = set()
        self.written: set[uuid.UUID] = set()
        self.status: str | None = None
        self.notes: set[str] = set()  # what happened, for the test statistics

    # Each call returns (acceptable exception types, or () for success; expected value).

    def read(self, ref: DatasetRef, request: ReadRequest) -> tuple[tuple[type, ...], Any]:
        sc = ref.dataset_type.storage_class
        bad = request in ("unknown_param", "storage_class") or (
            request == "columns" and sc != "arrow"
        )
        if bad:
            # SPEC 6.3: a ValueError subclass; the input is not marked unavailable.
            return (BadReadRequestError,), None
        if ref.id not in self.content:
            failure: tuple[type, ...] = (ArtifactNotFoundError,)
        elif ref.id in self.unreadable:
            failure = (UnreadableArtifactError,)
        else:
            failure = ()
        if ref.id in self.inputs:
            if failure:
                self.unavailable.add(ref.id)
            else:
                self.available.add(ref.id)
                self.used.add(ref.id)
                self.read_ok.add(ref.id)
        if failure:
            return failure, None
        value = self.content[ref.id]
        if request == "columns":
            value = value.select(["a"])
        return (), value

    def deferred(self, ref: DatasetRef) -> None:
        if ref.id in self.inputs:
            self.used.add(ref.id)

    def check(self, ref: DatasetRef) -> bool:
        found = ref.id in self.content
        if ref.id in self.inputs:
            (self.available if found else self.unavailable).add(ref.id)
        return found

    def unused(self, ref: DatasetRef) -> None:
        self.used.discard(ref.id)

    def put(self, ref: DatasetRef, obj: Any) -> tuple[type, ...]:
        if ref.id not in self.outputs:
            return (OutputNotPredictedError,)
        errors: tuple[type, ...] = ()
        if ref.id in self.content:
            errors += (OutputAlreadyStoredError,)
        if obj is BAD_OBJECT:
            errors += (StorageClassError,)
        if not errors:
            if ref.id in self.written:
                self.notes.add("rewrote an unstored output")
            self.content[ref.id] = obj
            self.written.add(ref.id)
        return errors

    def prune(
        self, refs: tuple[DatasetRef, ...], disassociate: bool, unstore: bool, purge: bool
    ) -> tuple[type, ...]:
        errors: tuple[type, ...] = ()
        if (purge and not (disassociate and unstore)) or (disassociate and not purge):
            errors += (PruneArgumentError,)
        if any(ref.id not in self.outputs for ref in refs):
            errors += (PruneNotOwnedError,)
        if errors:
            return errors  # nothing is deleted
        if unstore:
            for ref in refs:
                if ref.id in self.written and ref.id in self.content:
                    self.notes.add("unstored a written output")
                self.content.pop(ref.id, None)
                self.unreadable.discard(ref.id)
        if purge:
            if self.written & {ref.id for ref in refs}:
                self.notes.add("purged a written output")
            self.written -= {ref.id for ref in refs}
        return ()

    def vanish(self, ref: DatasetRef) -> None:
        self.content.pop(ref.id, None)
        self.unreadable.discard(ref.id)

    def appear(self, ref: DatasetRef) -> None:
        if ref.id not in self.content:
            self.content[ref.id] = good_object(ref.dataset_type, RESTORED_SALT)
            self.unreadable.discard(ref.id)

    # -- the prediction -------------------------------------------------------

    def expected(self) -> dict[str, Any]:
        dropped = self.used & (self.unavailable - self.read_ok)
        warnings = {}
        if dropped:
            warnings["inputs_used_but_missing"] = dropped
        unchecked = self.inputs - self.available - self.unavailable
        if unchecked:
            warnings["unchecked_predicted_inputs"] = unchecked
        return {
            "predicted_inputs": self.inputs,
            "available_inputs": self.available,
            "unavailable_inputs": self.unavailable,
            "actual_inputs": self.used - dropped,
            "predicted_outputs": self.outputs,
            "actual_outputs": self.written,
            # Records of the actual outputs whose artifact is still stored.
            "record_ids": {i for i in self.written if i in self.content},
            "warnings": warnings,
            "status": self.status,
        }


def observed(p: QuantumProvenanceData) -> dict[str, Any]:
    tags = [w.tag for w in p.warnings]
    assert len(tags) == len(set(tags)), f"a warning tag is repeated: {tags}"
    for w in p.warnings:
        assert list(w.dataset_ids) == sorted(w.dataset_ids)
    records = [r for group in p.datastore_records.values() for r in group]
    record_ids = [r.dataset_id for r in records]
    assert len(record_ids) == len(set(record_ids)), "an output has two records"
    return {
        "predicted_inputs": set(p.predicted_inputs),
        "available_inputs": set(p.available_inputs),
        "unavailable_inputs": set(p.unavailable_inputs),
        "actual_inputs": set(p.actual_inputs),
        "predicted_outputs": set(p.predicted_outputs),
        "actual_outputs": set(p.actual_outputs),
        "record_ids": set(record_ids),
        "warnings": {w.tag: set(w.dataset_ids) for w in p.warnings},
        "status": p.status,
    }


def _same_value(got: Any, want: Any) -> bool:
    if isinstance(want, pa.Table):
        return isinstance(got, pa.Table) and got.equals(want)
    return bool(got == want)


# -- properties ----------------------------------------------------------------------


# The central law gets three times the profile's examples: the histories that
# tell the SPEC from the reference (found missing, then read; written, pruned,
# rewritten) need long sequences, which are a minority of draws.
@settings(max_examples=3 * settings.default.max_examples)
@given(scenarios())
def test_butler_matches_independent_model(sc: Scenario) -> None:
    """Every call raises what the SPEC says, returns what it says, and the provenance agrees."""
    model = Model(sc)

    def before(call: Call | str, request: ReadRequest) -> Any:
        # Feed the model first; it answers what the butler must do.
        match call:
            case Get(ref, request):
                return model.read(ref, request)
            case GetDeferred(ref, _):
                model.deferred(ref)
                return (), None
            case HandleGet(_):
                # Resolved to the handle's ref in ``after``: it needs the handle.
                return "handle", request
            case Stored(ref) | Exists(ref):
                return (), model.check(ref)
            case StoredMany(refs):
                return (), {ref: model.check(ref) for ref in refs}
            case MarkInputUnused(ref):
                model.unused(ref)
                return (), None
            case Put(ref, bad_object, salt):
                obj = BAD_OBJECT if bad_object else good_object(ref.dataset_type, 100 + salt)
                return model.put(ref, obj), ref
            case Prune(refs, disassociate, unstore, purge):
                return model.prune(refs, disassociate, unstore, purge), None
            case DeleteArtifact(ref):
                model.vanish(ref)
                return None
            case RestoreArtifact(ref):
                model.appear(ref)
                return None
            case "close":
                model.status = "succeeded"
                return (), None
        raise AssertionError(call)

    handle_refs: list[DatasetRef] = []

    def after(token: Any, step: Step) -> None:
        call = step.call
        if isinstance(call, GetDeferred) and step.error is None:
            handle_refs.append(call.ref)
            assert step.result.ref == call.ref
        if token[0] == "handle":
            assert isinstance(call, HandleGet)
            token = model.read(handle_refs[call.index], token[1])
        errors, value = token
        if errors:
            assert step.error is not None, f"{call} should raise one of {errors}"
            assert isinstance(step.error, errors), f"{call} raised {step.error!r}, not {errors}"
        else:
            assert step.error is None, f"{call} raised {step.error!r}"
            if isinstance(call, Put):
                assert step.result == call.ref
            elif isinstance(call, Get | HandleGet):
                assert _same_value(step.result, value), f"{call} read {step.result!r}"
            elif not isinstance(call, GetDeferred):
                assert step.result == value, f"{call} returned {step.result!r}, not {value!r}"
        # The builtin families the SPEC promises.
        if isinstance(step.error, OutputNotPredictedError | OutputAlreadyStoredError):
            assert isinstance(step.error, RuntimeError)
        if isinstance(step.error, PruneArgumentError):
            assert isinstance(step.error, TypeError)
        if isinstance(step.error, BadReadRequestError):
            assert isinstance(step.error, ValueError)
        if isinstance(step.error, ArtifactNotFoundError | UnreadableArtifactError):
            assert isinstance(step.error, OSError | LookupError)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = run_scenario(root, sc, before=before, after=after)
        provenance = run.butler.extract_provenance_data()
        assert observed(provenance) == model.expected()
        # Coverage notes for --hypothesis-show-statistics.
        for step in run.steps:
            if step.error is not None:
                event(f"raised {type(step.error).__name__}")
        for warning in provenance.warnings:
            event(f"warning {warning.tag}")
        for note in model.notes:
            event(note)
        if sc.state.present & model.outputs:
            event("stale output artifact")
        if model.read_ok & model.unavailable:
            event("input both missing and read (SPEC 6.1)")
        if model.used & model.read_ok & model.unavailable:
            event("input missing yet actual (SPEC 6.1)")
        if any(r.file_size for g in provenance.datastore_records.values() for r in g):
            event("has output records")
        # Every record names its stored artifact, with its true size and checksum.
        for name, records in provenance.datastore_records.items():
            assert name == run.datastore.name
            for record in records:
                data = (root / record.path).read_bytes()
                assert record.file_size == len(data)
                assert record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
                assert record.path == run.datastore.relative_path(model.refs[record.dataset_id])


@given(scenarios())
def test_extract_is_fold_of_events_and_pure(sc: Scenario) -> None:
    """``extract_provenance_data() == fold(butler.events)``, and extracting twice is equal."""
    with tempfile.TemporaryDirectory() as tmp:
        butler = run_scenario(Path(tmp), sc).butler
        events = butler.events
        with capture_logs() as first_logs:
            first = butler.extract_provenance_data()
        assert first == fold(events)
        with capture_logs() as second_logs:
            second = butler.extract_provenance_data()
        assert second == first
        assert second.warnings == first.warnings
        # The same warnings are logged each time, with their tags and dataset ids.
        assert first_logs == second_logs
        logged = [(e["event"], e["dataset_ids"]) for e in first_logs if e["log_level"] == "warning"]
        assert logged == [(w.tag, [str(i) for i in w.dataset_ids]) for w in first.warnings]
        assert butler.events == events  # extraction appends nothing
        assert fold(events) == fold(list(events))  # deterministic


@given(scenarios())
def test_fold_of_prefix_then_rest_equals_whole(sc: Scenario) -> None:
    """For every split point, folding a prefix then the rest equals folding it whole."""
    with tempfile.TemporaryDirectory() as tmp:
        events = list(run_scenario(Path(tmp), sc).butler.events)
    whole = fold(events)
    for k in range(len(events) + 1):
        head, tail = events[:k], events[k:]
        assert ProvenanceReducer().update(head).update(tail).result() == whole
        prefix = ProvenanceReducer().update(head)
        before = prefix.result()
        branch = prefix.copy()
        assert branch.update(tail).result() == whole
        # The copy is independent: the prefix is unchanged by the branch's folding.
        assert prefix.result() == before == fold(head)


@given(scenarios())
def test_provenance_json_round_trip(sc: Scenario) -> None:
    """Provenance JSON round-trips exactly, and a second trip gives the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        provenance = run_scenario(Path(tmp), sc).butler.extract_provenance_data()
    text = provenance.model_dump_json()
    back = QuantumProvenanceData.model_validate_json(text)
    assert back == provenance
    assert back.model_dump_json() == text
    assert QuantumProvenanceData.model_validate_json(back.model_dump_json()) == provenance


@given(scenarios())
def test_disk_log_reads_back_to_the_same_events(sc: Scenario) -> None:
    """A JSON Lines log reads back to the butler's events and folds to its provenance."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs" / "quantum.jsonl"
        butler = run_scenario(Path(tmp) / "disk", sc, log=path).butler
        # Readable as it is written, before the quantum finishes.
        events = read_log(path)
        assert events == list(butler.events)
        assert fold(events) == butler.extract_provenance_data()
        butler.close()
        events = read_log(path)
        assert events == list(butler.events)
        disk = butler.extract_provenance_data()
        assert fold(events) == disk
        assert disk.status == "succeeded"
        # The same workflow with an in-memory log gives the same provenance.
        memory_butler = run_scenario(Path(tmp) / "memory", sc).butler
        memory_butler.close()
        assert memory_butler.extract_provenance_data() == disk


EXPECTED_KINDS: dict[type | str, set[str]] = {
    Get: {"input_read"},
    GetDeferred: {"deferred_requested"},
    HandleGet: {"deferred_loaded"},
    Stored: {"existence_checked"},
    Exists: {"existence_checked"},
    StoredMany: {"existence_checked"},
    MarkInputUnused: {"input_marked_unused"},
    Put: {"output_written", "output_rejected"},
    Prune: {"datasets_pruned"},
    "close": {"quantum_finished"},
}


@given(scenarios())
def test_every_call_appends_exactly_one_event(sc: Scenario) -> None:
    """Each call, raising or not, appends one event of its kind; seq has no gaps; chain holds."""
    with tempfile.TemporaryDirectory() as tmp:
        run = run_scenario(Path(tmp), sc)
    for step in run.steps:
        assert len(step.new_events) == 1, f"{step.call} appended {len(step.new_events)} events"
        event = step.new_events[0]
        key = step.call if isinstance(step.call, str) else type(step.call)
        assert event.kind in EXPECTED_KINDS[key]
        call = step.call
        if isinstance(call, Put):
            assert event.kind == ("output_rejected" if step.error else "output_written")
        if isinstance(call, Get | GetDeferred | MarkInputUnused | Put):
            assert event.dataset_id == call.ref.id
        if isinstance(call, Stored | Exists):
            assert (list(event.dataset_ids), list(event.results)) == ([call.ref.id], [step.result])
        if isinstance(call, StoredMany):
            assert dict(zip(event.dataset_ids, event.results, strict=True)) == {
                ref.id: found for ref, found in step.result.items()
            }
        if isinstance(call, Prune):
            assert list(event.dataset_ids) == [ref.id for ref in call.refs]
            assert (event.error is None) == (step.error is None)
        if event.kind in ("input_read", "deferred_loaded"):
            assert event.ok == (step.error is None)
            if step.error is not None:
                # SPEC 3: the failure says whether it was missing or a bad request.
                bad = isinstance(step.error, BadReadRequestError)
                assert event.failure.category == ("bad_request" if bad else "missing")
    events = run.butler.events
    assert events[0].kind == "quantum_started"
    assert len(events) == 1 + len(run.steps)
    assert [e.seq for e in events] == list(range(len(events)))
    check_chain(events)
    if sc.close_at_end:
        # Sealed: markInputUnused still never raises, and nothing more is appended.
        assert events[-1].kind == "quantum_finished"
        for ref in [*sc.predicted_inputs, *sc.outputs][:2]:
            run.butler.markInputUnused(ref)
            with pytest.raises(ButlerClosedError):
                run.butler.stored(ref)
        assert run.butler.events == events


def test_model_sanity_on_a_fixed_scenario() -> None:
    """The model itself: a deferred input found missing and never read is dropped."""
    t = DatasetType("raw", "json", ("visit",))
    a, b = DatasetRef(t, {"visit": 1}, "r"), DatasetRef(t, {"visit": 2}, "r")
    out = DatasetRef(DatasetType("calexp", "json", ("visit",)), {"visit": 1}, "r")
    sc = Scenario(
        quantum_id=uuid.uuid4(),
        inputs=(a,),
        init_inputs=(b,),
        outputs=(out,),
        outside=(),
        state=DatastoreState(frozenset({b.id})),
        calls=(GetDeferred(a), Stored(a), Put(out)),
    )
    model = Model(sc)
    model.deferred(a)
    assert model.check(a) is False
    assert model.put(out, {"x": 1}) == ()
    want = model.expected()
    assert want["actual_inputs"] == set()
    assert want["warnings"] == {
        "inputs_used_but_missing": {a.id},
        "unchecked_predicted_inputs": {b.id},
    }
    with tempfile.TemporaryDirectory() as tmp:
        butler = run_scenario(Path(tmp), sc).butler
        assert observed(butler.extract_provenance_data()) == want
