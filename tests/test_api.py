"""The public surface: __all__, the version, and the command line."""

from __future__ import annotations

import inspect
from pathlib import Path

from click.testing import CliRunner

import qbb_events
from qbb_events import QbbEventsError, fold, read_log
from qbb_events.cli import main
from qbb_events.demo import run_demo


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(qbb_events).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(qbb_events.__all__) == public | {"__version__"}
    assert qbb_events.__all__ == sorted(qbb_events.__all__, key=lambda n: (not n.isupper(), n))


def test_spec_names_are_exported() -> None:
    for name in (
        "DatasetType",
        "DatasetRef",
        "Quantum",
        "FileDatastore",
        "QuantumBackedButler",
        "QuantumProvenanceData",
        "read_log",
        "fold",
    ):
        assert name in qbb_events.__all__
    butler = qbb_events.QuantumBackedButler
    for method in (
        "initialize",
        "from_predicted",
        "get",
        "getDeferred",
        "stored",
        "stored_many",
        "exists",
        "put",
        "markInputUnused",
        "pruneDatasets",
        "extract_provenance_data",
        "close",
        "__enter__",
        "__exit__",
    ):
        assert callable(getattr(butler, method)), method


def test_every_error_is_a_qbb_events_error_and_a_builtin() -> None:
    for name in qbb_events.__all__:
        value = getattr(qbb_events, name)
        if isinstance(value, type) and issubclass(value, Warning):
            assert issubclass(value, UserWarning), name
        elif (
            isinstance(value, type) and issubclass(value, Exception) and value is not QbbEventsError
        ):
            assert issubclass(value, QbbEventsError), name
            builtin_bases = [
                b for b in value.__mro__ if b.__module__ == "builtins" and b is not Exception
            ]
            assert len(builtin_bases) > 2, f"{name} derives from no builtin of its meaning"


def test_every_public_name_has_a_docstring() -> None:
    for name in qbb_events.__all__:
        value = getattr(qbb_events, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_demo_command_prints_provenance_and_replays_logs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--root", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "Provenance of 5 quanta" in result.output
    assert "failed" in result.output
    assert result.output.count("log re-read and re-folded to the same provenance") == 5
    logs = sorted((tmp_path / "demo" / "logs").glob("*.jsonl"))
    assert len(logs) == 5


def test_demo_twice_in_one_root_uses_new_runs(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    second = run_demo(tmp_path)
    assert {q.quantum.id for q in first}.isdisjoint(q.quantum.id for q in second)
    for q in (*first, *second):
        assert fold(read_log(q.log_path)) == q.provenance


def test_demo_provenance_shows_missing_unused_and_deferred(tmp_path: Path) -> None:
    quanta = {
        (q.quantum.task_label, tuple(q.quantum.data_id.values())): q for q in run_demo(tmp_path)
    }
    failed = quanta[("isr", (3, 1))].provenance
    assert failed.status == "failed"
    assert len(failed.unavailable_inputs) == 1
    assert not failed.actual_outputs
    coadd = quanta[("coadd", (1,))].provenance
    assert len(coadd.predicted_inputs) == 3
    assert len(coadd.available_inputs) == 2
    assert len(coadd.actual_inputs) == 1
    summary = quanta[("summary", (1,))].provenance
    assert summary.actual_inputs == summary.predicted_inputs
    assert [w.tag for w in summary.warnings] == ["unchecked_predicted_inputs"]


def test_demo_reports_an_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["demo", "--root", str(blocker / "demo")])
    assert result.exit_code != 0
    assert "demo failed" in result.output


LAYERS = [
    "errors",
    "ids",
    "records",
    "_lsst_json",
    "model",
    "quantum",
    "events",
    "provenance",
    "fold",
    "_sql",
    "datastore",
    "logs",
    "parquet",
    "registry",
    "analytics",
    "_metrics",
    "payloads",
    "deferred",
    "butler",
    "testing",
    "demo",
    "interop",
    "cli_contract",
    "executor",
    "_cli_registry",
    "cli",
]


def _imports(path: Path, root: Path) -> list[tuple[str, bool]]:
    """Package modules (layers) a source file imports, and whether only for type checking.

    An import inside a subpackage (``from .sqlite import ...`` in ``logs/``)
    stays within the file's own layer.
    """
    import ast

    parts = path.relative_to(root).parts
    depth, layer = len(parts) - 1, parts[0].removesuffix(".py")
    tree = ast.parse(path.read_text())
    typing_nodes = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for sub in ast.walk(node)
    }
    return [
        (
            layer if node.level <= depth else (node.module or "").split(".")[0],
            id(node) in typing_nodes,
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level
    ]


def test_imports_flow_one_way() -> None:
    root = Path(qbb_events.__file__).parent
    rank = {name: i for i, name in enumerate(LAYERS)}
    modules = {p.relative_to(root).parts[0].removesuffix(".py") for p in root.rglob("*.py")}
    assert modules - {"__init__"} == set(LAYERS)
    for path in root.rglob("*.py"):
        layer = path.relative_to(root).parts[0].removesuffix(".py")
        if layer == "__init__":
            continue
        imports = _imports(path, root)
        runtime = {m for m, typing_only in imports if m and not typing_only}
        typing_only = {m for m, t in imports if m and t} - runtime - {layer}
        for module in runtime:
            if module in rank and module != layer:
                assert rank[module] < rank[layer], f"{path.name} imports {module}"
        # Not even for type checking: deferred gets a loader callable, not the butler.
        assert not typing_only, f"{path.name}: {typing_only}"


def test_semantics_import_no_io_library() -> None:
    root = Path(qbb_events.__file__).parent
    for name in ("events", "fold", "provenance", "model", "quantum", "records"):
        source = (root / f"{name}.py").read_text()
        for library in ("pyarrow", "sqlalchemy", "structlog"):
            assert f"import {library}" not in source, (name, library)


# Cycles being removed elsewhere: issue 9 gives the deferred handle a loader
# callable, which breaks this one (a TYPE_CHECKING import of the butler).
def _module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Every module of the package tree under ``root`` and the package modules it imports.

    Relative imports are resolved to full module names; an import of a
    subpackage is an edge to its ``__init__``; imports under TYPE_CHECKING
    count too, since they are cycles a reader has to untangle all the same.
    """
    import ast

    def name_of(path: Path) -> str:
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(path): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            anchor = base[: len(base) - (node.level - 1)]
            target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            graph[name] |= {c for c in candidates if c in modules and c != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a module graph (each once, as the modules along it)."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycle = stack[stack.index(imported) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_module_imports_itself_through_others_inside_subpackages_too() -> None:
    root = Path(qbb_events.__file__).parent
    graph = _module_graph(root, "qbb_events")
    assert "qbb_events.logs.sqlite._store" in graph  # the walk looks inside subpackages
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_planted_inside_a_subpackage(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "qbb_events"
    shutil.copytree(Path(qbb_events.__file__).parent, root)
    # The SQLite store's log imports the store module back: a cycle two levels down.
    log_module = root / "logs" / "sqlite" / "_log.py"
    log_module.write_text(log_module.read_text() + "\nfrom ._store import SqliteEventStore\n")
    cycles = _cycles(_module_graph(root, "qbb_events"))
    assert [sorted(c) for c in cycles] == [
        ["qbb_events.logs.sqlite._log", "qbb_events.logs.sqlite._store"]
    ]


def test_implementation_modules_inside_subpackages_are_private() -> None:
    root = Path(qbb_events.__file__).parent
    for path in (root / "logs").rglob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), path
