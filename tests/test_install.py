"""The wheel as a user installs it: built from this checkout, installed with the serving extra
into a fresh venv outside the repo (no torch), and run from a directory that is not the repo.
The shipped models come from inside the installed package; MNIST, which the wheel does not
carry, is asked for in one line. Reuses pip's cache and its configured indexes (~30 s)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRAWN_7 = ROOT / "benchmarks" / "canvas7.png"  # a 7 drawn and exported in Chromium
NUMBER = ROOT / "tests" / "realworld" / "numbers_000_canvas_plain.png"  # "526", drawn
# What a wheel is built from: everything else in the checkout stays out of the build.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "models")

pytestmark = pytest.mark.install


def run(*args: object, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(venv, a working directory outside the repo, the environment to run in)."""
    base = tmp_path_factory.mktemp("install")
    assert not base.resolve().is_relative_to(ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITREC_", "PYTHON"))}
    source = base / "source"  # a copy, so the build leaves no build/ or egg-info in the repo
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    dist, venv = base / "dist", base / "venv"
    pip = [sys.executable, "-m", "pip"]
    run(
        *pip,
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        source,
        "-w",
        dist,
        cwd=base,
        env=env,
    )
    (wheel,) = dist.glob("digitrec-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    started = time.perf_counter()
    spec = f"digitrec[serve] @ {wheel.as_uri()}"
    run(*pip, "--python", venv / "bin" / "python", "install", "-q", spec, cwd=base, env=env)
    print(
        f"wheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB, "
        f"installed with [serve] in {time.perf_counter() - started:.1f} s"
    )
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    env["HOME"] = str(base / "home")  # nothing of the user's: caches, data dirs
    return venv, elsewhere, env


def test_the_serving_install_has_no_torch(installed: tuple[Path, Path, dict[str, str]]) -> None:
    venv, cwd, env = installed
    probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
    assert run(venv / "bin" / "python", "-c", probe, cwd=cwd, env=env).strip() == "True"


def test_version_predict_and_read_from_any_directory(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    venv, cwd, env = installed
    digitrec = venv / "bin" / "digitrec"
    assert run(digitrec, "--version", cwd=cwd, env=env).strip().startswith("digitrec ")
    shutil.copy(DRAWN_7, cwd / "seven.png")
    shutil.copy(NUMBER, cwd / "number.png")
    predicted = json.loads(
        run(digitrec, "predict", "seven.png", "--format", "json", cwd=cwd, env=env)
    )
    assert predicted["file"] == "seven.png" and predicted["digit"] == 7
    read = json.loads(run(digitrec, "read", "number.png", "--format", "json", cwd=cwd, env=env))
    assert read["text"] == "526"
    where = "from digitrec import shipped; print(shipped.MODELS_DIR)"
    models = Path(run(venv / "bin" / "python", "-c", where, cwd=cwd, env=env).strip())
    assert models.is_relative_to(venv) and (models / "best.onnx").is_file()  # the wheel's own


def test_without_mnist_one_line_says_how_to_point_to_it(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    venv, cwd, env = installed
    load = "from digitrec import data; data.load_mnist('test')"
    done = subprocess.run(
        [venv / "bin" / "python", "-c", load], cwd=cwd, env=env, capture_output=True, text=True
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and last.startswith("digitrec.errors.DataError: MNIST: not found")
    assert "DIGITREC_MNIST=/path/to/mnist" in last and "take --data PATH" in last


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_health_and_a_prediction(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    venv, cwd, env = installed
    port = free_port()
    args = ["serve", "--port", str(port), "--workers", "1", "--data-dir", str(cwd / "store")]
    server = subprocess.Popen(
        [venv / "bin" / "digitrec", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"serve exited: {server.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as health:
                    assert health.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer /healthz in 60 s"
                time.sleep(0.2)
        image = base64.b64encode(DRAWN_7.read_bytes()).decode()
        request = urllib.request.Request(
            f"{url}/api/v1/predict",
            data=json.dumps({"image": image}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["digit"] == 7
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
