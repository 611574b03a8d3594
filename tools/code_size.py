"""The package's size where it matters for reading it: modules over 400 lines, functions over
50 and over 80 lines, and the largest five of each (issue "a house that stays in order").

    python tools/code_size.py            # src/digitrec
    python tools/code_size.py --json     # the same as one JSON object

A function's length counts its lines from `def` to its last line (decorators and docstring
included), nested functions counted inside their parent and on their own.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitrec"
MODULE_MOST, FUNCTION_MOST, FUNCTION_LONG = 400, 50, 80


def sizes(package: Path = PACKAGE) -> dict[str, object]:
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package.parent).as_posix()
        text = path.read_text()
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                functions[f"{name}:{node.lineno} {node.name}"] = node.end_lineno - start + 1
    big = sorted(modules.items(), key=lambda kv: -kv[1])
    long = sorted(functions.items(), key=lambda kv: -kv[1])
    return {
        "modules": len(modules),
        "lines": sum(modules.values()),
        f"modules over {MODULE_MOST} lines": sum(n > MODULE_MOST for n in modules.values()),
        f"functions over {FUNCTION_MOST} lines": sum(n > FUNCTION_MOST for n in functions.values()),
        f"functions over {FUNCTION_LONG} lines": sum(n > FUNCTION_LONG for n in functions.values()),
        "largest modules": big[:5],
        "longest functions": long[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object")
    args = ap.parse_args()
    figures = sizes()
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        if isinstance(value, list):
            print(f"{key}:")
            for name, n in value:
                print(f"  {n:5d}  {name}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
