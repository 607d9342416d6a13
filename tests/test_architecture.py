"""docs/architecture.md stays true to the code, and the package has no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "glmmkit"
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> dict:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def test_every_module_the_architecture_names_exists():
    text = DOC.read_text()
    named = set(re.findall(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_]+\.py)\b", text))
    assert len(named) > 20  # the page does describe the modules
    files = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")}
    files |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("*.py")}
    basenames = {Path(f).name for f in files}
    missing = sorted(n for n in named if n not in files and ("/" in n or n not in basenames))
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_package_is_described():
    text = DOC.read_text()
    packages = sorted(p.parent.relative_to(PKG).as_posix() for p in PKG.glob("*/__init__.py"))
    undocumented = [pkg for pkg in packages if f"{pkg}/" not in text]
    assert not undocumented, f"packages missing from docs/architecture.md: {undocumented}"


def _import_graph():
    mods = _modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                for alias in node.names:
                    targets.append(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in mods else mod)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                # a module importing its own package's __init__ (or a parent package) is not an edge
                if t in mods and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def test_no_import_cycles():
    """Function-level imports count too: a lazy import that goes back up the layers is still a cycle."""
    graph = _import_graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_user_side_never_imports_the_engine_internals():
    graph = _import_graph()
    user_side = [m for m in graph if m.startswith(("glmmkit.diagnostics", "glmmkit.report", "glmmkit.cli"))]
    internals = ("glmmkit.linalg", "glmmkit.objective", "glmmkit.fitting")
    bad = {m: sorted(t for t in graph[m] if t.startswith(internals)) for m in user_side}
    assert not {m: t for m, t in bad.items() if t}
