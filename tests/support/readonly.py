"""Make a directory read-only for the test process, even when the tests run as root.

Root ignores permission bits, so under root the directory and its files are
made immutable (``chattr +i``, which binds root too); otherwise they lose
their write bits. Either way they are restored when the block ends.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@contextmanager
def frozen(folder: Path) -> Iterator[Path]:
    """Within the block, nothing in ``folder`` (nor the folder itself) can be written."""
    paths = [folder, *folder.rglob("*")]
    if os.geteuid() == 0:
        _chattr("+i", paths)
        try:
            yield folder
        finally:
            _chattr("-i", paths)
        return
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield folder
    finally:
        for path in reversed(paths):
            path.chmod(modes[path])


@contextmanager
def unlistable(folder: Path) -> Iterator[Path]:
    """Within the block, listing ``folder`` fails with ``EACCES``, even for root.

    Without root its permission bits are cleared; under root (which ignores
    them) ``os.scandir`` of that one directory is made to fail as the kernel
    would.
    """
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0)
        try:
            yield folder
        finally:
            folder.chmod(mode)
        return
    real = os.scandir
    target = os.path.realpath(folder)

    def scandir(path: Any = ".") -> Any:
        if os.path.realpath(os.fspath(path)) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    os.scandir = scandir
    try:
        yield folder
    finally:
        os.scandir = real
