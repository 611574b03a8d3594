"""Execute a notebook top to bottom with its own parameters (full settings) and save it with
its outputs: `python tools/run_notebook.py notebooks/tutorial.ipynb`. The kernel is this
interpreter, so run it with the venv's python. The notebook's metadata records the sha256 of
the code it ran (`code_sha256`): tests/test_notebook.py checks the stored outputs are those of
the code as it stands."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager


def main(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / "digitrec-python"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(kernel))
        km = KernelManager(
            kernel_name="digitrec-python",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
        )
        t0 = time.perf_counter()
        nbclient.NotebookClient(
            nb, km=km, timeout=3600, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernelspec
    nb.metadata["digitrec"] = {"code_sha256": code_sha256(nb)}
    nbformat.write(nb, path)
    print(f"{path}: ran in {time.perf_counter() - t0:.0f} s, {path.stat().st_size:,} bytes")


def code_sha256(nb: nbformat.NotebookNode) -> str:
    """The sha256 of the notebook's code cells, in order: what its outputs came from."""
    code = "\n\0".join(c.source for c in nb.cells if c.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
