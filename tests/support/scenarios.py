"""Running a generated scenario against a real butler, recording what each call did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbb_events import DatasetRef, FileDatastore, QuantumBackedButler

from .strategies import (
    RESTORED_SALT,
    SC_NAMES,
    Call,
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
    apply_initial_state,
    good_object,
)

BAD_OBJECT = object()


# -- running a scenario -----------------------------------------------------------


def _read_kwargs(ref: DatasetRef, request: ReadRequest) -> dict[str, Any]:
    if request is None:
        return {}
    if request == "columns":
        return {"parameters": {"columns": ["a"]}}
    if request == "unknown_param":
        return {"parameters": {"no_such_parameter": 1}}
    if request == "storage_class":
        other = next(sc for sc in SC_NAMES if sc != ref.dataset_type.storage_class)
        return {"storageClass": other}
    raise AssertionError(request)


@dataclass
class Step:
    """What one butler call did."""

    call: Call | str
    result: Any = None
    error: BaseException | None = None
    new_events: tuple[Any, ...] = ()


@dataclass
class Run:
    """A finished scenario run."""

    butler: QuantumBackedButler
    datastore: FileDatastore
    steps: list[Step] = field(default_factory=list)


def run_scenario(
    root: Path,
    sc: Scenario,
    *,
    log: Any = None,
    before: Callable[[Call | str, ReadRequest], Any] | None = None,
    after: Callable[[Any, Step], None] | None = None,
) -> Run:
    """Set up the datastore, make the butler and make every call, recording each step."""
    datastore = FileDatastore(root)
    apply_initial_state(datastore, sc.all_refs, sc.state)
    if sc.from_predicted:
        butler = QuantumBackedButler.from_predicted(
            str(root), sc.predicted_inputs, sc.outputs, log=log, quantum_id=sc.quantum_id
        )
    else:
        butler = QuantumBackedButler.initialize(str(root), sc.quantum, log=log)
    run = Run(butler, datastore)
    handles: list[tuple[Any, ReadRequest]] = []

    def do(
        call: Call | str, request: ReadRequest, action: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        token = before(call, request) if before else None
        n0 = len(butler.events)
        step = Step(call)
        try:
            step.result = action(*args, **kw)
        except Exception as err:
            step.error = err
        step.new_events = butler.events[n0:]
        run.steps.append(step)
        if after:
            after(token, step)
        return step.result

    for call in sc.calls:
        match call:
            case Get(ref, request):
                do(call, request, butler.get, ref, **_read_kwargs(ref, request))
            case GetDeferred(ref, request):
                handle = do(call, request, butler.getDeferred, ref, **_read_kwargs(ref, request))
                if handle is not None:
                    handles.append((handle, request))
            case HandleGet(index):
                if not handles:
                    continue  # no handle yet: nothing to call
                handle, request = handles[index % len(handles)]
                do(HandleGet(index % len(handles)), request, handle.get)
            case Stored(ref):
                do(call, None, butler.stored, ref)
            case Exists(ref):
                do(call, None, butler.exists, ref)
            case StoredMany(refs):
                do(call, None, butler.stored_many, refs)
            case MarkInputUnused(ref):
                do(call, None, butler.markInputUnused, ref)
            case Put(ref, bad_object, salt):
                obj = BAD_OBJECT if bad_object else good_object(ref.dataset_type, 100 + salt)
                do(call, None, butler.put, obj, ref)
            case Prune(refs, disassociate, unstore, purge):
                do(
                    call,
                    None,
                    butler.pruneDatasets,
                    refs,
                    disassociate=disassociate,
                    unstore=unstore,
                    purge=purge,
                )
            case DeleteArtifact(ref):
                # Not a butler call: the file vanishes behind the butler's back.
                datastore.path(ref).unlink(missing_ok=True)
                if before:
                    before(call, None)
            case RestoreArtifact(ref):
                # Not a butler call: the file appears late, written by someone else.
                if not datastore.exists(ref):
                    datastore.put(good_object(ref.dataset_type, RESTORED_SALT), ref)
                if before:
                    before(call, None)
            case _:
                raise AssertionError(call)
    if sc.close_at_end:
        do("close", None, butler.close)
    return run
