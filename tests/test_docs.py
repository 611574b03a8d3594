"""The API reference: built from the docstrings by pdoc, as `make docs` builds it, with any
warning an error (a name in __all__ that does not resolve, a docstring pdoc cannot read)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_reference_builds_without_a_warning(tmp_path: Path) -> None:
    modules = re.search(r"^API_MODULES := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert modules
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "pdoc", *modules[1].split(), "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "digitrec" / "api.html").read_text()
    for name in ("load", "fit", "Model", "Ink", "Prediction", "Reading", "Report"):
        assert f'id="{name}"' in api, name  # each public name has its entry
    assert "dark ink on light paper" in api  # Ink's documentation, from its docstring
    assert 'id="Model.predict"' in api and 'id="Model.submit"' in api
    errors = (tmp_path / "digitrec" / "errors.html").read_text()
    assert 'id="ImageError"' in errors
    assert (tmp_path / "digitrec" / "data.html").is_file()
    assert 'id="Dataset"' in (tmp_path / "digitrec" / "dataset.html").read_text()
