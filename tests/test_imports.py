"""The packages import each other in layers, with no cycle, read from the source with `ast`.

The layers, bottom up: `prelabel` (the core), `task_types`, then the parts (`producer`,
`workers`, `collector`, `evaluation`, `simulator`, and any top-level package added later).
A package imports only from layers below it, or from its own layer without a cycle.

Every import counts, at any depth (inside functions too), except those under
`if TYPE_CHECKING:`, which never run. The command line sits above all of them: a module
named `cli` or `__main__` is a node of its own rather than part of its package, since
`prelabel/cli.py` imports every part (lazily, for start-up time) and nothing imports it.

An import inside a function that would close a cycle of module imports if it were at the
top of its module is there to dodge that cycle, and fails, unless a comment on its line or
directly above it says it is lazy for start-up time: it names "start-up" (or "startup") or
"first use"/"first lookup".
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The layers below the parts, bottom first; any other top-level package is a part.
LAYERS = ("prelabel", "task_types")
#: Modules of these names are the command line: above every package.
ENTRY_POINTS = ("cli", "__main__")
#: What a comment says of an import that is lazy for start-up time.
LAZY_REASONS = ("start-up", "startup", "first use", "first lookup")


@dataclass(frozen=True)
class Import:
    importer: str  # module
    imported: str  # module (or package)
    line: int
    in_function: bool
    says_lazy: bool

    def where(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def packages() -> list[str]:
    return sorted(
        p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"
    )


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages():
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _says_lazy(lines: list[str], line: int) -> bool:
    """The import's own line, or the block of comment lines directly above it."""
    texts = [lines[line - 1]]
    n = line - 2
    while n >= 0 and lines[n].strip().startswith("#"):
        texts.append(lines[n])
        n -= 1
    comments = " ".join(t.partition("#")[2].strip() for t in reversed(texts) if "#" in t)
    comments = " ".join(comments.lower().split())
    return any(reason in comments for reason in LAZY_REASONS)


def imports_of(module: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    roots = {name.split(".")[0] for name in known}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            return
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            stem = ".".join([*base, node.module] if node.module else base)
        else:
            stem = node.module or ""
        yield from dict.fromkeys(
            f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
            for alias in node.names
        )

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk_one(other, in_function)
                continue
            yield from walk_one(child, in_function)

    def walk_one(node: ast.AST, in_function: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in targets(node):
                if target.split(".")[0] in roots:
                    lazy = _says_lazy(lines, node.lineno)
                    yield Import(module, target, node.lineno, in_function, lazy)
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from walk(node, inner)

    yield from walk(ast.parse(source, str(path)), False)


def all_imports() -> list[Import]:
    known = modules()
    return [i for module, path in known.items() for i in imports_of(module, path, known)]


def node_of(module: str) -> str:
    """The package a module counts for; the command line's modules count for themselves."""
    return module if module.rpartition(".")[2] in ENTRY_POINTS else module.split(".")[0]


def layer_of(package: str) -> int:
    return LAYERS.index(package) if package in LAYERS else len(LAYERS)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def package_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in imports:
        a, b = node_of(imp.importer), node_of(imp.imported)
        if a != b:
            edges[a, b].append(imp)
    return edges


def describe(cycle: list[str], edges: dict[tuple[str, str], list[Import]]) -> str:
    steps = [
        f"  {a} -> {b}: " + "; ".join(i.where() for i in edges[a, b][:3])
        for a, b in itertools.pairwise(cycle)
    ]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_cycle_between_packages() -> None:
    edges = package_edges(all_imports())
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages:\n" + describe(cycle, edges)


def test_packages_import_only_from_the_layers_below() -> None:
    upward = [
        imp.where()
        for (a, b), found in package_edges(all_imports()).items()
        if a.rpartition(".")[2] not in ENTRY_POINTS and layer_of(a) < len(LAYERS)
        if layer_of(b) >= layer_of(a)
        for imp in found
    ]
    assert not upward, f"layers {' <- '.join(LAYERS)} <- the parts, broken by:\n" + "\n".join(
        upward
    )


def test_no_import_inside_a_function_dodges_a_cycle() -> None:
    imports = all_imports()
    # Module-level imports, with the packages an import runs first (a.b.c runs a and a.b).
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if not imp.in_function:
            parts = imp.imported.split(".")
            graph[imp.importer].update(".".join(parts[:n]) for n in range(1, len(parts) + 1))

    def reaches(start: str, goal: str) -> bool:
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    dodges = [
        imp.where()
        for imp in imports
        if imp.in_function and not imp.says_lazy
        if reaches(imp.imported, imp.importer)
    ]
    assert not dodges, (
        "imports inside functions that dodge a cycle (restructure, or if lazy for start-up "
        "time, say so in a comment):\n" + "\n".join(dodges)
    )


def test_the_checks_see_a_cycle_and_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    lines = ["def f():", "    # Imported here for start-up time.", "    import x"]
    assert _says_lazy(lines, 3) and not _says_lazy(lines, 1)
    assert node_of("prelabel.cli") == "prelabel.cli" and node_of("prelabel.store") == "prelabel"
