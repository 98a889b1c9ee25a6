"""The architecture as a contract: imports run one way (import-linter's layers, from
pyproject.toml, as scripts/test runs them), no cycles, no symlinks in the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from tests.conftest import ROOT

PACKAGE = ROOT / "src/pipecompile"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LAYERS = next(c for c in CONFIG["contracts"] if c["type"] == "layers")


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("pipecompile")


def _illegal(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    layers = []
    for layer in LAYERS["layers"]:
        names = {name.strip() for name in layer.split("|")}
        layers.append(grimp.Layer(*names, independent=True))
    for line in LAYERS["ignore_imports"]:
        importer, imported = (part.strip() for part in line.split("->"))
        graph.remove_import(importer=importer, imported=imported)
    found = graph.find_illegal_dependencies_for_layers(layers=layers)
    return {(d.importer, d.imported) for d in found}


def test_the_layers_contract_holds() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout
    assert _illegal(_graph()) == set()


def test_the_layers_contract_catches_an_upward_import() -> None:
    # lowering that asks the registry, or a target that reads the command line
    graph = _graph()
    graph.add_import(importer="pipecompile.frontend.lower", imported="pipecompile.targets.registry")
    graph.add_import(importer="pipecompile.targets.helm", imported="pipecompile.commands.cli")
    assert _illegal(graph) == {
        ("pipecompile.frontend", "pipecompile.targets"),
        ("pipecompile.targets", "pipecompile.commands"),
    }


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    # every import counts, those inside functions and under TYPE_CHECKING too
    assert _cycles(_graph()) == []
    graph = _graph()
    graph.add_import(importer="pipecompile.ir", imported="pipecompile.targets")
    assert _cycles(graph) != []  # the check can fail


def test_the_package_has_no_symlinks() -> None:
    links = [p.relative_to(ROOT) for p in PACKAGE.rglob("*") if p.is_symlink()]
    assert links == []


def test_the_package_folders_are_the_layers() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == ["commands", "data", "frontend", "insight", "output", "serialize", "targets"]
    named = {layer.split(".")[1] for row in LAYERS["layers"] for layer in row.split(" | ")}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert set(folders) - {"data"} <= named and modules <= named


def _target_names_in(source: str) -> list[tuple[int, str]]:
    """String literals naming a built-in target, outside field paths (a tuple such as
    ``("terraform", "backend")`` is a place in pipeline.yaml, the language's own)."""
    import ast

    from pipecompile.targets.registry import builtin

    names = set(builtin()) - {"local"}  # "local" is also a backend kind of the language
    tree = ast.parse(source)
    in_tuples = {
        id(elt) for node in ast.walk(tree) if isinstance(node, ast.Tuple) for elt in node.elts
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in names
        and id(node) not in in_tuples
    ]


def test_lowering_names_no_target() -> None:
    # what a target is called, where it writes and what it publishes come from the
    # registry (targets.registry.Layout); the models are the language (outputs: keys)
    found = {
        f"{path.name}:{line}: {name!r}"
        for path in sorted((PACKAGE / "frontend").glob("*.py"))
        if path.name not in ("model.py", "model_types.py")
        for line, name in _target_names_in(path.read_text())
    }
    assert found == set()


def test_the_target_name_scan_finds_a_name() -> None:
    assert _target_names_in('helm = dict(outputs).get("helm")\n') == [(1, "helm")]
    assert _target_names_in('where = ("terraform", "backend")\n') == []


def test_every_builtin_target_is_its_own_package() -> None:
    """The independence contract names every built-in target, so no target may import
    another (shared code lives in targets/__init__, common and chart)."""
    from pipecompile.targets import registry

    independent = next(c for c in CONFIG["contracts"] if c["type"] == "independence")
    # each target's package: pipecompile.targets.<package>[.<module of its render>]
    packages = {".".join(t.render.__module__.split(".")[:3]) for t in registry.builtin().values()}
    assert packages == set(independent["modules"])
    graph = _graph()
    for package in packages:  # and the contract holds: no target reaches another
        for other in packages - {package}:
            assert not graph.chain_exists(importer=package, imported=other, as_packages=True), (
                package,
                other,
            )


def test_the_front_end_and_the_ir_name_no_file_of_a_target() -> None:
    """Targets own their names: no workflow, buildspec, Terraform file or packaged script
    is named in lowering or the IR (they live in targets/: common.STEP_SCRIPTS, the
    buildspecs, github_actions' ci_file and deliver_file)."""
    import ast

    named = []
    modules = [
        *(PACKAGE / "frontend").glob("*.py"),
        PACKAGE / "ir.py",
        PACKAGE / "ir_plan.py",
        PACKAGE / "ir_services.py",
    ]
    for py in modules:
        for node in ast.walk(ast.parse(py.read_text("utf-8"))):
            parts = node.values if isinstance(node, ast.JoinedStr) else [node]
            last = parts[-1] if parts else None
            text = last.value if isinstance(last, ast.Constant) else None
            if isinstance(text, str) and text.endswith((".sh", ".yml", ".tf", ".cjs", ".jq")):
                named.append(f"{py.relative_to(PACKAGE)}:{node.lineno}: {text}")
    assert named == []
