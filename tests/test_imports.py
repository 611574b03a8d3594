"""No import cycles inside the package: every module imports only modules below it.

An import inside a function, or under TYPE_CHECKING, counts as much as one at the top: a cycle
hidden in a function still ties the two modules together. `from digitrec import x` counts as
importing `digitrec.x` where x is a module, else as importing the package's `__init__`.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitrec"


def module_name(path: Path) -> str:
    parts = ("digitrec", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> set[str]:
    """The package's modules that `name` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                # from digitrec import errors: the module digitrec.errors, not the package
                found.add(sub if (sub := f"{module}.{alias.name}") in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def test_the_graph_sees_the_package() -> None:
    assert "digitrec.serve.app" in GRAPH and "digitrec.predictor" in GRAPH["digitrec.serve.app"]
    assert "digitrec.vision.preprocess" in GRAPH["digitrec.predictor"]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles in the graph, each spelled module -> ... -> the same module; after each one
    found, its closing edge is set aside so the next can show."""
    graph = {name: set(edges) for name, edges in graph.items()}
    found = []
    while True:
        try:
            TopologicalSorter(graph).prepare()
            return found
        except CycleError as error:
            cycle = error.args[1][::-1]  # graphlib lists a cycle against the import direction
            found.append(cycle)
            graph[cycle[0]].discard(cycle[1])


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}
    assert sorted(len(c) for c in cycles(graph)) == [2, 4]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_commands_never_import_the_cli() -> None:
    """cli.py registers the commands; a command importing it back would tie them in a knot."""
    commands = [m for m in GRAPH if m.startswith("digitrec.commands.")]
    assert "digitrec.commands.predict" in commands
    assert all("digitrec.cli" not in GRAPH[m] for m in commands)
    assert "digitrec.commands.train" in GRAPH["digitrec.cli"]
