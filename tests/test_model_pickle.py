"""Domain objects travel between processes (executors use multiprocessing)."""

from __future__ import annotations

import pickle
import subprocess
import sys

from qbb_events import DataId, DatasetRef, DatasetType, FileRecord, Quantum

RAW = DatasetType("raw", "json", ("visit", "band"))


def make_quantum() -> Quantum:
    ref = DatasetRef(RAW, {"visit": 1, "band": "g"}, "run")
    out = DatasetRef(DatasetType("calexp", "bytes", ("visit", "band")), ref.data_id, "run")
    record = FileRecord(
        dataset_id=ref.id,
        datastore_name="FileDatastore",
        path="run/raw/visit=1/band=g.json",
        formatter="json",
        storage_class="json",
        file_size=2,
        checksum="sha256:" + "0" * 64,
    )
    return Quantum(
        "isr", {"band": "g"}, [ref], [out], datastore_records={"FileDatastore": [record]}
    )


def test_round_trip_in_process() -> None:
    quantum = make_quantum()
    copy = pickle.loads(pickle.dumps(quantum))
    assert copy == quantum
    assert copy.inputs[0] == quantum.inputs[0]
    assert copy.predicted_inputs.keys() == quantum.predicted_inputs.keys()
    assert copy.datastore_records == quantum.datastore_records
    assert pickle.loads(pickle.dumps(RAW)) == RAW
    assert pickle.loads(pickle.dumps(DataId({"a": 1}))) == DataId({"a": 1})


def test_equal_and_hash_equal_in_another_process() -> None:
    # String hashes are salted per process: a cached hash must not travel.
    quantum = make_quantum()
    data = pickle.dumps(quantum)
    code = (
        "import pickle, sys\n"
        "from qbb_events import DatasetRef, DatasetType\n"
        "q = pickle.loads(sys.stdin.buffer.read())\n"
        "raw = DatasetType('raw', 'json', ('visit', 'band'))\n"
        "ref = DatasetRef(raw, {'visit': 1, 'band': 'g'}, 'run', id=q.inputs[0].id)\n"
        "assert ref == q.inputs[0] and ref in {q.inputs[0]}\n"
        "assert ref.data_id in {q.inputs[0].data_id} and raw in {q.inputs[0].dataset_type}\n"
        "assert q.data_id == {'band': 'g'}\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=data,
        capture_output=True,
        check=False,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"ok"
