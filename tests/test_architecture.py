"""The import graph of the project's packages, as ARCHITECTURE.md draws it: no cycle, no arrow back up.

Every module of the installed packages, bench/ and tools/ is parsed with `ast`, and EVERY import statement
counts, wherever it sits: at module level, inside functions, and under `if TYPE_CHECKING:`. A relative
import is resolved against its package; `from pkg import name` is an edge to the module `pkg.name` when
there is one, else to `pkg`. Imports by name count too (they are imports inside functions, written so the
parser cannot see them): a string "package.module:attribute" anywhere (migration steps, after-open hooks),
and a project module's name in a file that calls importlib.import_module (ingest/detect.py's sources).

Type-only imports (under `if TYPE_CHECKING:`) count for the layers (an upper package's type in a lower
one is an upward dependency all the same) but not for cycles: they never run, so they cannot leave a
module half-initialised, and every helper of vault/store.py that takes a `Vault` must name its type. The
cycle check follows every import that runs: module level, inside functions, and by name.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PACKAGES = ("vault", "synth", "ingest", "embeddings", "federated", "api", "reports", "lifevault")
SCANNED = (*PACKAGES, "bench", "tools")

# What each package may import of the project: whole packages, or single modules ("ingest.apps").
LAYERS: dict[str, set[str]] = {
    "vault": set(),
    "synth": {"ingest.apps"},  # the ground truth names apps as the pipeline does (a leaf: a table and a lookup)
    "ingest": {"vault"},
    "embeddings": {"vault"},
    "federated": {"vault"},
    "api": {"vault", "ingest", "embeddings", "federated", "reports"},
    "reports": {"vault", "federated"},
    "lifevault": {"vault", "synth", "ingest", "embeddings", "federated", "api", "reports"},
    "bench": {"vault", "synth", "ingest", "embeddings", "federated", "api", "reports", "lifevault"},
    "tools": set(),  # verify_export.py checks an export without lifevault: it shares no code with what it checks
}

# Edges the layers allow but the "boundaries crossed" questioned; each kept on purpose.
ALLOWED_CROSSINGS: dict[tuple[str, str], str] = {
    ("api", "ingest"): "the server owns the vault while it runs, so the ingest job the CLI forwards runs there",
    ("api", "reports"): "GET /v1/privacy/report serves the privacy report built from the audit log and ledger",
    ("synth", "ingest.apps"): "the persona's truth names apps and categories exactly as derive.py will",
}

# Third-party libraries only one package may import (the layer that owns what they touch). bench/ may import
# any of them: a benchmark measures lifevault against the bare library.
OWNED_LIBRARIES = {
    "duckdb": "vault",
    "faiss": "embeddings",
    "sentence_transformers": "embeddings",
    "flwr": "federated",
    "fastapi": "api",
    "mcp": "api",
}
OWNED_LIBRARY_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("lifevault.demo_agent", "mcp"): "the demo's agent is an outside MCP client of `lifevault mcp`, not a server",
}


@dataclass(slots=True)
class Graph:
    edges: dict[str, set[str]] = field(default_factory=dict)  # module -> project modules it imports
    line: dict[tuple[str, str], int] = field(default_factory=dict)  # first line of each edge
    runtime: set[tuple[str, str]] = field(default_factory=set)  # edges with at least one import outside TYPE_CHECKING
    external: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # module -> (library module, line)


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in SCANNED:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in the tree, with whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _statements(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _statements(node, type_only)


def _by_name(tree: ast.AST, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Imports by name: a string "package.module:attribute" (a migration step, an after-open hook, run
    through importlib), and any project module's name in a file that calls importlib.import_module."""
    constants = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    imports_by_name = any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in ast.walk(tree))
    for node in constants:
        module, colon, attribute = str(node.value).partition(":")
        if module in modules and "." in module and (
                (colon and attribute.isidentifier()) or (imports_by_name and not colon)):
            yield module, node.lineno


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, type-only) for every import statement in the file, and every import by name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for target, line in _by_name(tree, modules):
        yield target, line, False
    for node, type_only in _statements(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, type_only
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            yield (sub if sub in modules else target), node.lineno, type_only


def _graph() -> Graph:
    return _graph_of(ROOT)


@functools.cache
def _graph_of(root: Path) -> Graph:
    """The graph of the tree under root, parsed once per test run (the tests only read it)."""
    modules = _modules(root)
    g = Graph(edges={m: set() for m in modules}, external={m: [] for m in modules})
    for name, path in modules.items():
        for target, line, type_only in _imports(name, path, modules):
            if target in modules:
                if target == name:
                    continue
                g.edges[name].add(target)
                g.line.setdefault((name, target), line)
                if not type_only:
                    g.runtime.add((name, target))
            elif target.split(".")[0] not in SCANNED:
                g.external[name].append((target, line))
    return g


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(edges[start])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [_one_cycle(edges, set(c)) for c in components]


def _one_cycle(edges: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path a -> b -> ... -> a."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in component {component}")


def _describe(cycle: list[str], g: Graph) -> str:
    hops = [f"{a} (line {g.line[(a, b)]}{'' if (a, b) in g.runtime else ', type-only'})"
            for a, b in zip(cycle, cycle[1:], strict=False)]
    return " -> ".join([*hops, cycle[-1]])


def _allowed(source: str, target: str) -> bool:
    a, b = source.split(".")[0], target.split(".")[0]
    allowed = LAYERS[a]
    return a == b or b in allowed or any(target == m or target.startswith(m + ".") for m in allowed)


def _runtime(g: Graph) -> dict[str, set[str]]:
    return {m: {t for t in ts if (m, t) in g.runtime} for m, ts in g.edges.items()}


def test_the_project_has_no_import_cycle_even_inside_functions():
    g = _graph()
    cycles = _cycles(_runtime(g))
    assert not cycles, "import cycles:\n" + "\n".join(_describe(c, g) for c in cycles)


def test_no_package_imports_a_package_above_it():
    g = _graph()
    wrong = [f"{s} imports {t} (line {g.line[(s, t)]})" for s, ts in g.edges.items() for t in ts if not _allowed(s, t)]
    assert not wrong, "\n".join(sorted(wrong))


def test_every_allowed_crossing_is_still_used_and_within_the_layers():
    g = _graph()
    for (a, b), reason in ALLOWED_CROSSINGS.items():
        assert reason and b in LAYERS[a], (a, b)
        used = [(s, t) for s, ts in g.edges.items() for t in ts
                if s.split(".")[0] == a and (t == b or t.startswith(b + "."))]
        assert used, f"{a} no longer imports {b}: drop it from ALLOWED_CROSSINGS and LAYERS"


def test_each_owned_library_is_imported_only_by_its_package():
    g = _graph()
    wrong = []
    for source, imports in g.external.items():
        for target, line in imports:
            library = target.split(".")[0]
            owner = OWNED_LIBRARIES.get(library)
            if owner is None or source.split(".")[0] in (owner, "bench"):
                continue
            if (source, library) not in OWNED_LIBRARY_EXCEPTIONS:
                wrong.append(f"{source} imports {target} (line {line}); only {owner}/ may")
    assert not wrong, "\n".join(sorted(wrong))
    for (source, library), reason in OWNED_LIBRARY_EXCEPTIONS.items():
        assert reason and any(t.split(".")[0] == library for t, _ in g.external[source]), (source, library)


@pytest.mark.parametrize("package", ["vault", "tools"])
def test_the_vault_and_the_export_verifier_import_nothing_else_of_the_project(package):
    g = _graph()
    outside = [f"{s} -> {t}" for s, ts in g.edges.items() if s.split(".")[0] == package
               for t in ts if t.split(".")[0] != package]
    assert not outside, outside
    assert any(m.split(".")[0] == package for m in g.edges)  # the package was scanned at all


@pytest.mark.parametrize("path", ["a -> b -> a", "a -> b -> c -> a"])
def test_the_cycle_finder_reports_a_planted_cycle(path):
    names = path.split(" -> ")
    edges: dict[str, set[str]] = {n: set() for n in names}
    for a, b in zip(names, names[1:], strict=False):
        edges[a].add(b)
    edges["z"] = {"a"}
    (cycle,) = _cycles(edges)
    assert cycle == names


def test_the_scanner_sees_imports_inside_functions_and_under_type_checking(tmp_path, monkeypatch):
    package = tmp_path / "vault"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    from vault import b\nelse:\n    import os\n")
    (package / "b.py").write_text("def f():\n    from . import a\n    import duckdb\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    g = _graph()
    assert g.edges["vault.a"] == {"vault.b"} and g.edges["vault.b"] == {"vault.a"}
    assert g.runtime == {("vault.b", "vault.a")}
    assert ("duckdb", 3) in g.external["vault.b"] and ("os", 5) in g.external["vault.a"]
    assert _cycles(g.edges) == [["vault.a", "vault.b", "vault.a"]] and _cycles(_runtime(g)) == []
    assert _describe(["vault.a", "vault.b", "vault.a"], g) == (
        "vault.a (line 3, type-only) -> vault.b (line 2) -> vault.a")


def test_the_scanner_sees_imports_by_name(tmp_path, monkeypatch):
    package = tmp_path / "vault"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text('STEPS = {"one": "vault.b:run"}\nTEXT = "vault.c"\n')
    (package / "b.py").write_text('import importlib\nSOURCES = ("vault.c",)\nimportlib.import_module(SOURCES[0])\n')
    (package / "c.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    g = _graph()
    assert g.edges["vault.a"] == {"vault.b"} and ("vault.a", "vault.b") in g.runtime  # a mere name is no import
    assert g.edges["vault.b"] == {"vault.c"} and g.line[("vault.b", "vault.c")] == 2


def test_the_layer_rule_refuses_an_arrow_up_and_allows_only_the_listed_module_of_a_higher_package():
    assert _allowed("api.app", "vault.store") and _allowed("federated.dp", "federated.gaussian")
    assert not _allowed("vault.store", "embeddings.index") and not _allowed("federated.simulate", "ingest.pipeline")
    assert _allowed("synth.usage", "ingest.apps") and not _allowed("synth.usage", "ingest.pipeline")
    assert not _allowed("tools.verify_export", "vault.chain")


# federated/ bottom up, as ARCHITECTURE.md lists it: each module imports only modules before it.
FEDERATED_ORDER = ("params", "vocab", "gaussian", "skellam", "accounting", "dp", "trust", "features", "model",
                   "client", "aggregate", "client_app", "server_app", "simulate", "audit")


def test_each_federated_module_imports_only_the_modules_below_it():
    g = _graph()
    place = {f"federated.{m}": i for i, m in enumerate(FEDERATED_ORDER)}
    unplaced = sorted(m for m in g.edges if m.startswith("federated.") and m not in place)
    assert not unplaced, f"place these in FEDERATED_ORDER (and ARCHITECTURE.md): {unplaced}"
    upward = [f"{s} imports {t} (line {g.line[(s, t)]})" for s, ts in g.edges.items() if s in place
              for t in ts if t in place and place[t] > place[s]]
    assert not upward, "\n".join(sorted(upward))
