"""The modules of ``src/msrnet`` import each other without a cycle, lazy imports included.

The graph is read from the source with `ast`, never by importing it:

- Nodes are modules: ``msrnet.models.msr`` for ``models/msr.py``, ``msrnet.models`` for
  ``models/__init__.py``.
- Every ``import`` statement counts wherever it stands (module level, inside a function or a
  ``try``), since a lazy import runs too, only later; the one exception is a block under
  ``if TYPE_CHECKING:``, which never runs.
- ``import msrnet.a.b`` and ``from msrnet.a.b import name`` (or the relative ``from .b import
  name``) are an edge to ``msrnet.a.b``.
- ``from msrnet.a import x`` is an edge to ``msrnet.a.x`` when ``x`` is a submodule, else to
  ``msrnet.a`` (its ``__init__``, which defines or re-exports ``x``).
- Importing ``msrnet.a.b`` runs ``msrnet.a``'s ``__init__`` first, but that is not an edge:
  a package's ``__init__`` importing its submodules would otherwise make every submodule part
  of a cycle. A submodule that imports a name from its own package's ``__init__`` does form an
  edge to it, and so a cycle when that ``__init__`` imports the submodule.
- Modules that ``importlib.import_module`` loads by a computed name (``msrnet/__init__.py``'s
  lazy attributes) are not statements and are not read.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "msrnet"


def _modules(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``package`` under ``src``."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.orelse:  # the else branch runs
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring for the rules)."""
    modules = _modules(src, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    # `from . import x` in pkg/mod.py is relative to pkg; in pkg/__init__.py too.
                    base = name.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    assert target in modules, f"{path}: imports {target}, which is not a module of {package}"
                    if target != name:
                        graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path a -> ... -> a through ``component``, to name in the failure."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("not a strongly connected component")


def test_the_rules_resolve_what_they_say(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from .a import f\nfrom . import sub\n",
        "pkg/a.py": (
            "from typing import TYPE_CHECKING\n"
            "import os\n"
            "from pkg.sub import helper\n"
            "if TYPE_CHECKING:\n    from pkg.b import B\n"
            "def f():\n    from . import b\n    return b\n"
        ),
        "pkg/b.py": "from pkg import sub\nfrom pkg import f\n",
        "pkg/sub/__init__.py": "from .deep import helper\n",
        "pkg/sub/deep.py": "from ..a import f\nimport pkg.sub\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_graph(tmp_path, "pkg") == {
        "pkg": {"pkg.a", "pkg.sub"},
        # The TYPE_CHECKING import is left out, the one inside f() is not.
        "pkg.a": {"pkg.sub", "pkg.b"},
        # `sub` is a submodule, `f` a name of the package's __init__.
        "pkg.b": {"pkg.sub", "pkg"},
        "pkg.sub": {"pkg.sub.deep"},
        "pkg.sub.deep": {"pkg.a", "pkg.sub"},
    }
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (one per group of modules that import each other): " + "; ".join(
        " -> ".join(c) for c in cycles
    )
