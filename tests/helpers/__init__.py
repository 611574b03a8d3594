"""What the tests share: the repository's root, a free port, and the scripts of benchmarks/ and
tools/ (not packages) loaded from their files. The servers and fakes several test files use are
in helpers.app (in-process, a fake predictor), helpers.server (a real uvicorn on 127.0.0.1) and
helpers.browser (Chromium driving a real `digitrec serve`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.pg import free_port  # one definition: pg.py stands alone (benchmarks load it by path)

__all__ = ["ROOT", "SOURCES", "benchmark", "free_port", "load_script"]

ROOT = Path(__file__).resolve().parents[2]
# What a wheel is built from: everything else in the checkout stays out of the build.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "src", "models")


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """A script (benchmarks/, tools/: not packages) loaded from its file, as module `name`."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def benchmark(name: str) -> ModuleType:
    """A script of benchmarks/, loaded from its file."""
    return load_script(ROOT / "benchmarks" / f"{name}.py", f"benchmarks_{name}")
