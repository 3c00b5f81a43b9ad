"""ButlerMetrics: counted where the events are appended, swapped by record_metrics."""

from __future__ import annotations

from typing import Any

import pytest

from qbb_events import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    ButlerMetrics,
    DatasetRef,
    OutputNotPredictedError,
    QuantumBackedButler,
)


def _successes(butler: QuantumBackedButler) -> tuple[int, int, float, float]:
    reads = [
        e
        for e in butler.events
        if e.kind in ("input_read", "deferred_loaded") and e.ok  # type: ignore[union-attr]
    ]
    writes = [e for e in butler.events if e.kind == "output_written"]
    return (
        len(reads),
        len(writes),
        sum(e.duration_ns for e in reads) / 1e9,  # type: ignore[union-attr]
        sum(e.duration_ns for e in writes) / 1e9,  # type: ignore[union-attr]
    )


def test_counts_match_the_events_after_gets_and_puts(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=3, missing=(2,))
    metrics = ButlerMetrics()
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, metrics=metrics)
    assert butler.metrics is metrics
    in0, in1, in2 = setup.inputs
    butler.get(in0)
    butler.get(in1)
    with pytest.raises(ArtifactNotFoundError):
        butler.get(in2)
    butler.getDeferred(in0).get()
    butler.put({"a": 1}, setup.outputs[0])
    with pytest.raises(OutputNotPredictedError):
        butler.put(
            {"a": 1},
            DatasetRef(setup.outputs[0].dataset_type, {"visit": 9, "detector": 0}, "elsewhere"),
        )
    n_get, n_put, time_get, time_put = _successes(butler)
    assert (metrics.n_get, metrics.n_put) == (n_get, n_put) == (3, 1)
    assert metrics.time_in_get == pytest.approx(time_get)
    assert metrics.time_in_put == pytest.approx(time_put)
    assert metrics.time_in_get > 0
    assert metrics.time_in_put > 0
    metrics.reset()
    assert metrics == ButlerMetrics()
    butler.get(in0)
    assert (metrics.n_get, metrics.n_put) == (1, 0)


def test_from_predicted_takes_metrics(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1, n_outputs=1)
    metrics = ButlerMetrics()
    butler = QuantumBackedButler.from_predicted(
        setup.datastore, setup.inputs, setup.outputs, metrics=metrics
    )
    butler.get(setup.inputs[0])
    butler.put([1], setup.outputs[0])
    assert (metrics.n_get, metrics.n_put) == (1, 1)


def test_a_butler_counts_into_its_own_metrics_by_default(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    butler.get(setup.inputs[0])
    assert butler.metrics.n_get == 1


def test_record_metrics_swaps_in_a_fresh_object_and_nests(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1, n_outputs=2)
    outer = ButlerMetrics()
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum, metrics=outer)
    ref = setup.inputs[0]
    butler.get(ref)
    with butler.record_metrics() as first:
        assert butler.metrics is first
        assert first == ButlerMetrics()
        butler.get(ref)
        given = ButlerMetrics(n_get=10)
        with butler.record_metrics(given) as inner:
            assert inner is given
            butler.get(ref)
            butler.put({"x": 1}, setup.outputs[0])
        assert butler.metrics is first
        butler.put({"x": 1}, setup.outputs[1])
    assert butler.metrics is outer
    assert (first.n_get, first.n_put) == (1, 1)
    assert (given.n_get, given.n_put) == (11, 1)
    assert (outer.n_get, outer.n_put) == (1, 0)


def test_record_metrics_restores_after_an_error(make_quantum: Any) -> None:
    setup = make_quantum(n_inputs=1)
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    before = butler.metrics
    with pytest.raises(RuntimeError, match="task"), butler.record_metrics():
        raise RuntimeError("task failed")
    assert butler.metrics is before


def test_metrics_of_a_wrong_type_are_refused(make_quantum: Any) -> None:
    setup = make_quantum()
    with pytest.raises(ArgumentTypeError):
        QuantumBackedButler.initialize(setup.datastore, setup.quantum, metrics={})  # type: ignore[arg-type]
    butler = QuantumBackedButler.initialize(setup.datastore, setup.quantum)
    with pytest.raises(ArgumentTypeError), butler.record_metrics(3):  # type: ignore[arg-type]
        pass
