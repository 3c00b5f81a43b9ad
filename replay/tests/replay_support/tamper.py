"""Ways to damage a JSON Lines log, the same kinds the durable-logs tests make."""

from __future__ import annotations

from pathlib import Path

import orjson

from qbb_events import canonical_json, chain_hash


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, content: list[bytes]) -> None:
    path.write_bytes(b"".join(content))


def record(body: dict[str, object], prev_hash: str) -> bytes:
    """A well-formed record of ``body`` chained after ``prev_hash``."""
    body = {**body, "prev_hash": prev_hash}
    body.pop("hash", None)
    canonical = canonical_json(body)
    digest = chain_hash(prev_hash, canonical)
    return canonical[:-1] + b',"hash":"' + digest.encode() + b'"}\n'


def flip_byte(path: Path, seq: int) -> None:
    content = lines(path)
    line = bytearray(content[seq])
    at = line.index(b'"kind"') + 9
    line[at] ^= 0x01
    content[seq] = bytes(line)
    write(path, content)


def edit_and_rehash(path: Path, seq: int) -> None:
    content = lines(path)
    body = orjson.loads(content[seq])
    body["timestamp_ns"] += 1
    content[seq] = record(body, body["prev_hash"])
    write(path, content)


def delete(path: Path, seq: int) -> None:
    content = lines(path)
    del content[seq]
    write(path, content)


def swap(path: Path, seq: int) -> None:
    content = lines(path)
    content[seq], content[seq + 1] = content[seq + 1], content[seq]
    write(path, content)


def duplicate(path: Path, seq: int) -> None:
    content = lines(path)
    content.insert(seq + 1, content[seq])
    write(path, content)


def truncate(path: Path, seq: int) -> None:
    content = lines(path)
    assert seq == len(content) - 1
    content[seq] = content[seq][: len(content[seq]) // 2]
    write(path, content)


def after_seal(path: Path, seq: int) -> None:
    content = lines(path)
    assert seq == len(content)
    last = orjson.loads(content[-1])
    extra = {**orjson.loads(content[1]), "seq": seq, "timestamp_ns": last["timestamp_ns"] + 1}
    content.append(record(extra, last["hash"]))
    write(path, content)


def splice(path: Path, seq: int, other: Path) -> None:
    content = lines(path)
    content[seq] = lines(other)[seq]
    write(path, content)
