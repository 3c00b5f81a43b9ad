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
    "payloads",
    "deferred",
    "butler",
    "testing",
    "demo",
    "interop",
    "cli_contract",
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
        assert typing_only <= {"butler"}, f"{path.name}: {typing_only}"


def test_semantics_import_no_io_library() -> None:
    root = Path(qbb_events.__file__).parent
    for name in ("events", "fold", "provenance", "model", "quantum", "records"):
        source = (root / f"{name}.py").read_text()
        for library in ("pyarrow", "sqlalchemy", "structlog"):
            assert f"import {library}" not in source, (name, library)
