"""The tutorial notebook runs top to bottom with short settings, as a user would run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

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
