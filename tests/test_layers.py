"""The house rules of the package layout (DESIGN.md section 2), checked on the source itself.

Arrows point down only: front ends -> registry and faces -> families -> base. Families import
the base and, sideways, other families, never a face or a front end; the base knows no loss.
No import cycle between files or between packages. ``import losskit`` and ``import
losskit.keras`` import no torch (the Keras adapter runs on TensorFlow and JAX alone).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
FRONT_ENDS = ("losskit.cli", "losskit.selection", "losskit.bench")
FACES = (
    "losskit",
    "losskit.functional",
    "losskit.nn",
    "losskit.mining",
    "losskit.schedules",
    "losskit.weights",
    "losskit.linear_ce",
    "losskit.distributed",
    "losskit.keras",
)
REGISTRY = ("losskit._registry", "losskit.custom", "losskit.multitask")


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in SRC.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """Every losskit module ``name`` imports (function-level imports included, TYPE_CHECKING
    blocks not), resolved to a module of the package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _rank(name: str) -> int:
    if name.startswith(FRONT_ENDS):
        return 3
    if name in FACES or name.startswith("losskit.keras") or name in REGISTRY:
        return 2
    if name.startswith("losskit.losses"):
        return 1
    return 0


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    up = {m for m in GRAPH[name] if _rank(m) > _rank(name)}
    assert not up, f"{name} (layer {_rank(name)}) imports a higher layer: {sorted(up)}"


def test_families_import_no_face():
    for name, imports in GRAPH.items():
        if name.startswith("losskit.losses."):
            faces = {m for m in imports if m in FACES}
            assert not faces, f"{name} imports the public face(s) {sorted(faces)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _package(name: str) -> str:
    if name.startswith("losskit.losses."):
        return ".".join(name.split(".")[:3])
    parts = name.split(".")
    return (
        name
        if MODULES[name].name == "__init__.py" or len(parts) == 2
        else parts[0] + "." + parts[1]
    )


def test_no_import_cycle_between_files():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for name, imports in GRAPH.items():
        packages.setdefault(_package(name), set()).update(
            _package(m) for m in imports if _package(m) != _package(name)
        )
    assert _cycles(packages) == []


@pytest.mark.parametrize("statement", ["import losskit", "import losskit.keras"])
def test_no_torch_import(statement):
    code = f"import sys; {statement}; print('torch' in sys.modules)"
    if "keras" in statement:
        pytest.importorskip("keras")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "False", result.stderr


def test_faces_are_up_to_date():
    """losskit.functional, losskit.nn and the package's __all__ are generated from the families
    (scripts/make_faces.py): a loss added to a family appears in them, or this fails."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_faces.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_fixtures_load_only_on_demand():
    """The catalog's metadata, the faces and a loss call import no fixture module (cases.py,
    _fixtures); asking an entry for its sample inputs does."""
    code = (
        "import sys, torch, losskit, losskit.functional as LF, losskit.nn\n"
        "losskit.catalog['huber'].formula\n"
        "LF.huber_loss(torch.zeros(3), torch.ones(3))\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.endswith('.cases') "
        "or m == 'losskit._fixtures')\n"
        "print(loaded())\n"
        "losskit.catalog['huber'].sample_inputs\n"
        "print(loaded())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    before, after = result.stdout.strip().splitlines()
    assert before == "[]", before
    assert "losskit.losses.regression.cases" in after
