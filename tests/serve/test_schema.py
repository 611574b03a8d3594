"""Schemathesis against the running server's /openapi.json, every check on (schemathesis.toml
says which refusals a schema-valid request may get, and why): no server error, every answer
on its schema and its documented statuses, every request off the schema refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import ROOT, free_port


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    port = free_port()
    serve = [sys.executable, "-m", "digitrec", "serve", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(
        [*serve, "--data-dir", str(tmp_path / "store")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"serve exited: {server.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer /healthz in 60 s"
                time.sleep(0.2)
        schemathesis = Path(sys.executable).parent / "schemathesis"
        done = subprocess.run(
            [schemathesis, "run", f"{url}/openapi.json", "--checks", "all",
             "--max-examples", "40", "--seed", "1", "--no-color"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        summary = done.stdout[-3000:]
        assert done.returncode == 0, done.stdout[-20000:]
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as answer:
            paths = json.load(answer)["paths"]
        operations = sum(len(methods) for methods in paths.values())
        assert f"Tested: {operations}" in summary, summary  # every operation
        counts = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert counts and counts[1] == counts[2] and int(counts[1]) > 100, summary
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
