"""The fast path of verification: a whole JSON Lines log checked in bulk, or not at all.

`fast_verdict` reads a log file in large blocks of whole lines and proves,
with C-backed work only (one columnar JSON parse of each block by pyarrow, SHA-256 of each stored
line chained on the previous stored hash, vectorized comparisons), that the
log has no problem at all. If it cannot prove that, for any reason, it
returns `None` and the caller runs the full checker, which then finds and
words every problem: so a perfect log gets the same verdict either way
(no problems), and an imperfect one gets the checker's own report.

What it proves is every check the checker makes: each line is a JSON object
in the writer's layout whose hash covers its bytes and whose ``prev_hash`` is
the previous line's hash (the first the genesis hash); seqs are 0, 1, 2, ...;
one quantum and attempt (a canonical UUID); one ``quantum_started``, first,
describing the same quantum; one ``quantum_finished``, last; the current
schema version; timestamps never going back; every written or pruned
dataset a predicted output.
"""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from hashlib import sha256
from multiprocessing import get_context
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..events import GENESIS_HASH, SCHEMA_VERSION
from ._records import HASH_SUFFIX_LEN, StoredLog
from ._verification import LogVerification

__all__ = ["FileRecords", "fast_candidate", "fast_verdict", "fast_verdicts"]

BLOCK_BYTES: Final = 2**20
"""A file is read and checked in blocks of about this size: memory stays bounded."""

PARALLEL_FROM: Final = 16
"""Logs from which verification spreads over the machine's cores."""

_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_ENVELOPE_KEYS = (
    b'"attempt":',
    b'"kind":"',
    b'"prev_hash":"',
    b'"quantum_id":"',
    b'"schema_version":',
    b'"seq":',
    b'"timestamp_ns":',
    b'"hash":"',
)
# What the C parser would accept but orjson (the checker's parser) refuses: a
# lone surrogate escape, NaN and infinities. The writer never writes them.
_REFUSED_BY_ORJSON = re.compile(rb"\\u[dD][89a-fA-F]|[:,\[]\s*-?(?:NaN|Infinity)")
_HASH_KEY = b',"hash":"'
_GENESIS = GENESIS_HASH.encode("ascii")
_REF = pa.struct([pa.field("id", pa.string())])
_SCHEMA = pa.schema(
    [
        pa.field("attempt", pa.int64()),
        pa.field("kind", pa.string()),
        pa.field("prev_hash", pa.string()),
        pa.field("quantum_id", pa.string()),
        pa.field("schema_version", pa.int64()),
        pa.field("seq", pa.int64()),
        pa.field("timestamp_ns", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("dataset_id", pa.string()),
        pa.field("removed", pa.list_(pa.string())),
        pa.field(
            "quantum",
            pa.struct([pa.field("id", pa.string()), pa.field("outputs", pa.list_(_REF))]),
        ),
    ]
)


class FileRecords:
    """The records of a JSON Lines log file: its lines, numbered from 1, without newline.

    Parameters
    ----------
    path : `str`
        The file (absolute).
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> Any:
        with open(self.path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                if line.endswith(b"\n"):
                    yield number, line[:-1], True
                else:
                    yield number, line, False


def fast_verdict(path: str) -> LogVerification | None:
    """Return the verdict of a log file with no problem, or `None` if it may have one.

    Parameters
    ----------
    path : `str`
        A JSON Lines log file (its location in reports).

    Returns
    -------
    verdict : `LogVerification` or `None`
        The verdict of a perfect log (no problems), or `None`: the log may
        have a problem (or a shape the fast path does not handle), and only
        the full checker may judge it.
    """
    state = _State()
    try:
        with open(path, "rb") as stream:
            rest = b""
            while True:
                block = stream.read(BLOCK_BYTES)
                if not block:
                    break
                data = rest + block
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                if end and not state.check(data[:end]):
                    return None
        if rest or state.finished is None:
            return None  # a last line without its newline, or no quantum_finished
        return state.verdict(path)
    except (OSError, pa.ArrowException, ValueError, KeyError, IndexError, TypeError):
        return None


class _State:
    """What the blocks of one file checked so far established."""

    def __init__(self) -> None:
        self.prev = _GENESIS
        self.count = 0
        self.last_ts = -(2**63)
        self.quantum_id: str | None = None
        self.attempt: int | None = None
        self.outputs: pa.Array | None = None
        self.finished: int | None = None
        self.status: str | None = None

    def check(self, data: bytes) -> bool:
        """Check a block of whole lines; `False` if anything is not perfect."""
        if self.finished is not None or b"\r" in data or _REFUSED_BY_ORJSON.search(data):
            return False
        lines = data.split(b"\n")
        lines.pop()
        n = len(lines)
        if any(data.count(key) != n for key in _ENVELOPE_KEYS):
            return False  # an envelope key inside a payload: the checker reads it properly
        cut = -HASH_SUFFIX_LEN
        if not all(
            len(line) > HASH_SUFFIX_LEN
            and line[:1] == b"{"
            and line[cut:-66] == _HASH_KEY
            and line[-2:] == b'"}'
            for line in lines
        ):
            return False
        tails = [line[-66:-2] for line in lines]
        prevs = [self.prev, *tails[:-1]]
        # Each line hashed over its stored bytes, chained on the previous stored hash.
        digests = [
            sha256(prev + line[:cut] + b"}").hexdigest().encode("ascii")
            for prev, line in zip(prevs, lines, strict=True)
        ]
        if digests != tails:
            return False
        options = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
        table = pj.read_json(io.BytesIO(data), parse_options=options)
        if table.num_rows != n or table["prev_hash"].to_pylist() != [
            p.decode("ascii") for p in prevs
        ]:
            return False  # two objects on one line, or a prev_hash not the stored chain
        if not self.envelopes(table):
            return False
        self.prev = tails[-1]
        self.count += n
        return True

    def envelopes(self, table: pa.Table) -> bool:
        n = table.num_rows
        for name in (
            "attempt",
            "kind",
            "prev_hash",
            "quantum_id",
            "schema_version",
            "seq",
            "timestamp_ns",
        ):
            if table[name].null_count:
                return False
        seqs = pa.array(range(self.count, self.count + n), pa.int64())
        if not pc.all(pc.equal(table["seq"], seqs)).as_py():
            return False
        kinds = table["kind"]
        started = pc.equal(kinds, "quantum_started")
        if self.quantum_id is None and not self.first(table, started):
            return False
        if self.count and pc.any(started).as_py():
            return False  # a second quantum_started
        if not (
            pc.all(pc.equal(table["quantum_id"], self.quantum_id)).as_py()
            and pc.all(pc.equal(table["attempt"], self.attempt)).as_py()
            and pc.all(pc.equal(table["schema_version"], SCHEMA_VERSION)).as_py()
        ):
            return False
        times = table["timestamp_ns"].to_numpy()
        if times[0] < self.last_ts or (n > 1 and (times[1:] < times[:-1]).any()):
            return False
        self.last_ts = int(times[-1])
        finished = pc.equal(kinds, "quantum_finished")
        if pc.sum(finished).as_py():
            if pc.sum(finished).as_py() != 1 or not finished[n - 1].as_py():
                return False  # sealed before its last event
            self.finished = self.count + n - 1
            status = table["status"][n - 1].as_py()
            self.status = status if isinstance(status, str) else "unknown"
        return _named_outputs(table, kinds, self.outputs)

    def first(self, table: pa.Table, started: Any) -> bool:
        """Take the quantum from the first event, a ``quantum_started`` that describes it."""
        quantum_id = table["quantum_id"][0].as_py()
        if not (started[0].as_py() and isinstance(quantum_id, str) and re.match(_UUID, quantum_id)):
            return False
        quantum = table["quantum"][0].as_py()
        if quantum is None or quantum["id"] != quantum_id:
            return False
        outputs = [ref["id"] for ref in quantum["outputs"] or [] if ref is not None]
        if not all(isinstance(o, str) and re.match(_UUID, o) for o in outputs):
            return False
        self.quantum_id = quantum_id
        self.attempt = table["attempt"][0].as_py()
        self.outputs = pa.array(outputs, pa.string())
        return True

    def verdict(self, path: str) -> LogVerification:
        assert self.quantum_id is not None
        assert self.attempt is not None
        return LogVerification(
            location=path,
            quantum_id=uuid.UUID(self.quantum_id),
            attempt=self.attempt,
            events=self.count,
            final_hash=self.prev.decode("ascii"),
            status=self.status,
            problems=(),
        )


def _named_outputs(table: pa.Table, kinds: Any, allowed: pa.Array | None) -> bool:
    """Tell whether every written and pruned dataset is a predicted output."""
    written = table["dataset_id"].filter(pc.equal(kinds, "output_written"))
    if written.null_count or (
        len(written) and not pc.all(pc.is_in(written, value_set=allowed)).as_py()
    ):
        return False
    removed = table["removed"].filter(pc.equal(kinds, "datasets_pruned"))
    if removed.null_count:
        return False
    flat = pc.list_flatten(removed)
    return not (
        len(flat) and (flat.null_count or not pc.all(pc.is_in(flat, value_set=allowed)).as_py())
    )


def fast_candidate(log: StoredLog, validate: bool) -> bool:
    """Tell whether a log may have a fast verdict: a JSON Lines file, no schema validation.

    Parameters
    ----------
    log : `StoredLog`
        A log from any store.
    validate : `bool`
        Schema validation was asked for: only the full checker does it.

    Returns
    -------
    candidate : `bool`
        Whether `fast_verdicts` may judge it.
    """
    return not validate and isinstance(log.records, FileRecords)


def fast_verdicts(logs: Sequence[StoredLog]) -> list[LogVerification | None]:
    """Return the fast verdict of each log file (`None` where the full checker must judge).

    Parameters
    ----------
    logs : `~collections.abc.Sequence` [`StoredLog`]
        JSON Lines logs (`fast_candidate`).

    Returns
    -------
    verdicts : `list` [`LogVerification` or `None`]
        Aligned with ``logs``. Many files are checked on every core, in
        worker processes (logs are independent).
    """
    paths = [log.records.path for log in logs if isinstance(log.records, FileRecords)]
    if len(paths) != len(logs):
        raise TypeError("fast_verdicts judges JSON Lines files only")
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) >= PARALLEL_FROM and workers > 1:
        # forkserver: workers never inherit the caller's threads or locks.
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            return list(pool.map(fast_verdict, paths, chunksize=8))
    return [fast_verdict(path) for path in paths]
