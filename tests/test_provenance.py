"""QuantumProvenanceData: JSON and the trusted ``direct`` constructor."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from qbb_events import ArgumentTypeError, QuantumBackedButler, QuantumProvenanceData


def _provenance(make_quantum: Any) -> QuantumProvenanceData:
    setup = make_quantum(n_inputs=3, n_outputs=2, missing=(2,))
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    butler.get(setup.inputs[0])
    butler.stored(setup.inputs[2])
    butler.put({"x": 1}, setup.outputs[0])
    butler.close()
    provenance = butler.extract_provenance_data()
    assert provenance.warnings
    assert provenance.datastore_records
    return provenance


def test_direct_round_trips_json_loads_of_model_dump_json(make_quantum: Any) -> None:
    provenance = _provenance(make_quantum)
    data = json.loads(provenance.model_dump_json())
    again = QuantumProvenanceData.direct(**data)
    assert again == provenance
    assert again.model_dump_json() == provenance.model_dump_json()
    assert isinstance(next(iter(again.actual_inputs)), uuid.UUID)


def test_direct_takes_uuids_and_models_as_well(make_quantum: Any) -> None:
    provenance = _provenance(make_quantum)
    fields = {name: getattr(provenance, name) for name in QuantumProvenanceData.model_fields}
    assert QuantumProvenanceData.direct(**fields) == provenance
    assert QuantumProvenanceData.direct() == QuantumProvenanceData()


def test_direct_refuses_unknown_fields() -> None:
    with pytest.raises(ArgumentTypeError, match="nonsense"):
        QuantumProvenanceData.direct(nonsense=1)
