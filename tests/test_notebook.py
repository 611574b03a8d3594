"""The tutorial notebook runs top to bottom with short settings, as a user would run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import load_script

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("torch")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"


def kernel_manager(tmp: Path) -> KernelManager:
    """A kernel started by this interpreter (the venv's), whatever kernels the machine lists."""
    spec = tmp / "kernels" / "digitrec-python"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "digitrec", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    return KernelManager(kernel_name="digitrec-python", kernel_spec_manager=ksm)


def test_tutorial_runs_top_to_bottom(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "STEPS = 0" in code[0].source  # the parameter cell comes first
    work = tmp_path / "work"
    code[0].source = f"STEPS = 3\nTRAIN_ROWS = 2000\nWORK = {str(work)!r}\n"
    client = nbclient.NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "test accuracy:" in text
    assert "parameters: 43,578" in text
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 6  # samples, classes, history, confusion, mistakes, the drawn digit

    rows = (work / "submission.csv").read_text().splitlines()
    assert rows[0] == "ImageId,Label" and len(rows) == 10_001
    assert rows[1].split(",")[0] == "1" and rows[-1].split(",")[0] == "10000"
    # nothing written next to the notebook
    assert not (NOTEBOOK.parent / "submission.csv").exists()


def test_the_notebook_uses_the_public_api_only() -> None:
    """`digitrec` (load, fit, Model) and `digitrec.data`: what a user's own notebook would."""
    import re

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imported = set(re.findall(r"^\s*(?:from|import) (digitrec[\w.]*)", code, re.M))
    imported |= {f"digitrec.{m}" for m in re.findall(r"^\s*from digitrec import (\w+)", code, re.M)}
    assert imported == {"digitrec", "digitrec.data"}, imported
    assert "digitrec.fit(" in code and "digitrec.load(" in code


def test_the_stored_outputs_are_those_of_the_code_as_it_stands() -> None:
    """tools/run_notebook.py records the sha256 of the code it ran; a cell changed since is a
    stale output. Rerun: `.venv/bin/python tools/run_notebook.py notebooks/tutorial.ipynb`."""
    code_sha256 = load_script(NOTEBOOK.parents[1] / "tools" / "run_notebook.py").code_sha256
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.get("digitrec", {}).get("code_sha256") == code_sha256(nb), (
        "the notebook's outputs are stale: rerun tools/run_notebook.py"
    )
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
