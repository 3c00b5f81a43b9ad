"""qbb_replay is built on qbb_events' public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import qbb_events
import qbb_events.cli_contract
import qbb_events.parquet

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "qbb_replay"
# Public modules of qbb_events, each with its own __all__.
PUBLIC_MODULES = {
    "qbb_events": qbb_events,
    "qbb_events.cli_contract": qbb_events.cli_contract,
    "qbb_events.parquet": qbb_events.parquet,
}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def test_replay_imports_only_public_names_of_qbb_events() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    checked = 0
    for path in files:
        for module, names, line in _imports(path):
            if module != "qbb_events" and not module.startswith("qbb_events."):
                continue
            where = f"{path.name}:{line}"
            assert module in PUBLIC_MODULES, f"{where} imports {module}, not a public module"
            public = set(PUBLIC_MODULES[module].__all__)
            for name in names:
                assert name in public, f"{where} imports {module}.{name}, not in its __all__"
            checked += 1
    assert checked >= 5


def test_replay_reads_no_private_attribute_of_qbb_events() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "qbb_events"
            ):
                assert not node.attr.startswith("_"), f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Name) and first.id == "qbb_events":
                    name = node.args[1]
                    assert isinstance(name, ast.Constant)
                    assert not str(name.value).startswith("_")


def test_a_planted_private_import_is_caught(tmp_path: Path) -> None:
    planted = tmp_path / "bad.py"
    planted.write_text("from qbb_events.logs.verification import _LogChecker\n")
    ((module, _names, _line),) = _imports(planted)
    assert module not in PUBLIC_MODULES
