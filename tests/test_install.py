"""The wheel as a user installs it: built from this checkout, installed with the serving extra
into a fresh venv outside the repo (no torch), and run from a directory that is not the repo.
The shipped models come from inside the installed package; MNIST, which the wheel does not
carry, is asked for in one line. Reuses pip's cache and its configured indexes (~30 s)."""

from __future__ import annotations

import base64
import email
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.helpers import SOURCES, free_port

ROOT = Path(__file__).resolve().parents[1]
DRAWN_7 = ROOT / "benchmarks" / "canvas7.png"  # a 7 drawn and exported in Chromium
NUMBER = ROOT / "tests" / "realworld" / "numbers_000_canvas_plain.png"  # "526", drawn
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.install


def run(*args: object, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path, dict[str, str]]:
    """(the wheel, its build log, a venv with the core install alone, the environment)."""
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
    # The build backend, as pip runs it without isolation: its own output, warnings included.
    dist.mkdir()
    build = f"import setuptools.build_meta as b; b.build_wheel({str(dist)!r})"
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", build],
        cwd=source, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-2000:]
    (wheel,) = dist.glob("digitrec-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    spec = f"digitrec @ {wheel.as_uri()}"
    run(*pip, "--python", venv / "bin" / "python", "install", "-q", spec, cwd=base, env=env)
    env["HOME"] = str(base / "home")  # nothing of the user's: caches, data dirs
    return wheel, log, venv, env


@pytest.fixture(scope="module")
def installed(built: tuple[Path, str, Path, dict[str, str]]) -> tuple[Path, Path, dict[str, str]]:
    """(venv, a working directory outside the repo, the environment to run in): the core
    install of `built` with the serving extra added (after the core-only tests above ran)."""
    wheel, _, venv, env = built
    started = time.perf_counter()
    spec = f"digitrec[serve] @ {wheel.as_uri()}"
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    run(*pip, "install", "-q", spec, cwd=venv.parent, env=env)
    print(
        f"wheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB, "
        f"[serve] added in {time.perf_counter() - started:.1f} s"
    )
    elsewhere = venv.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return venv, elsewhere, env


def test_the_wheel_builds_clean_with_its_license_types_and_links(
    built: tuple[Path, str, Path, dict[str, str]],
) -> None:
    wheel, log, _, _ = built
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert not warnings, warnings  # setuptools' deprecations included
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = email.message_from_bytes(z.read("digitrec-0.1.0.dist-info/METADATA"))
    assert "digitrec/py.typed" in names and "digitrec-0.1.0.dist-info/licenses/LICENSE" in names
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in classifiers)
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    # The README as the index shows it: every link absolute (or an anchor on the page).
    description = metadata.get_payload()
    targets = re.findall(r"\]\(([^)\s]+)\)", description)
    assert targets and all(t.startswith(("https://", "#")) for t in targets), targets
    assert f"{urls['Source']}/raw/main/docs/screenshot.png" in description
    # The size the README states is the wheel's.
    stated = re.search(r"The wheel carries the shipped models \(([0-9.]+) MiB\)", README)
    assert stated and float(stated[1]) == round(wheel.stat().st_size / 2**20, 1)


# Each command that needs an extra, from a core install: one line naming the extra.
NEEDS = {
    ("train",): "'digitrec train' needs PyTorch: pip install 'digitrec[train]'",
    ("train", "--model", "seed"): "'digitrec train' needs PyTorch: pip install 'digitrec[train]'",
    ("ensemble", "a", "b", "-o", "c"): (
        "'digitrec ensemble' needs PyTorch: pip install 'digitrec[train]'"
    ),
    ("export", "-m", "run"): "'digitrec export' needs PyTorch: pip install 'digitrec[train]'",
    ("ship", "-m", "run", "--name", "x"): (
        "'digitrec ship' needs PyTorch: pip install 'digitrec[train]'"
    ),
    ("explore",): "'digitrec explore' needs matplotlib: pip install 'digitrec[train]'",
    ("evaluate",): "'digitrec evaluate' needs scikit-learn: pip install 'digitrec[train]'",
    ("serve",): "'digitrec serve' needs FastAPI: pip install 'digitrec[serve]'",
    ("batch", "images", "-o", "out.jsonl"): (
        "'digitrec batch' needs Ray: pip install 'digitrec[ray]'"
    ),
    ("feedback", "export", "--database", "postgresql://u@localhost/db"): (
        "a PostgreSQL database needs the psycopg driver: pip install 'digitrec[postgres]'"
    ),
}


def test_a_core_install_names_the_extra_each_command_needs(
    built: tuple[Path, str, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, _, venv, env = built
    env = {**env, "DIGITREC_MNIST": str(ROOT / "data" / "mnist")}  # past the data, to the extra
    probe = "import importlib.util as u; print([u.find_spec(m) is None for m in MODULES])"
    modules = "MODULES = ['torch', 'fastapi', 'ray', 'psycopg', 'sklearn', 'matplotlib', 'scipy']\n"
    assert run(venv / "bin" / "python", "-c", modules + probe, cwd=tmp_path, env=env).strip() == (
        str([True] * 7)
    ), "the core install holds an extra's library"
    (tmp_path / "images").mkdir()
    shutil.copy(DRAWN_7, tmp_path / "images" / "seven.png")
    for args, line in NEEDS.items():
        done = subprocess.run(
            [venv / "bin" / "digitrec", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (done.returncode, done.stderr) == (1, f"error: {line}\n"), args
    python = [venv / "bin" / "python", "-c"]
    fit = "import digitrec; digitrec.fit('fast')"
    done = subprocess.run([*python, fit], cwd=tmp_path, env=env, capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "digitrec.errors.DigitrecError: digitrec.fit needs PyTorch: pip install 'digitrec[train]'"
    )


def test_a_core_install_predicts_and_reads_from_any_directory(
    built: tuple[Path, str, Path, dict[str, str]], tmp_path: Path
) -> None:
    """No SciPy, no torch (the test above): OpenCV and ONNX Runtime are enough to answer."""
    _, _, venv, env = built
    cwd = tmp_path
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


def test_uvicorn_is_held_to_the_range_the_tests_run_on() -> None:
    """serve/protocol.py subclasses a private uvicorn class: the requirement bounds uvicorn
    above, and the uvicorn these tests run on is in the range."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [
        Requirement(r) for r in project["optional-dependencies"]["serve"]
        if Requirement(r).name == "uvicorn"
    ]  # fmt: skip
    assert any(s.operator == "<" for s in spec.specifier), "uvicorn has no upper bound"
    assert Version(version("uvicorn")) in spec.specifier


def test_the_serving_install_has_no_torch_nor_scipy(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    venv, cwd, env = installed
    probe = "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('scipy'))"
    assert run(venv / "bin" / "python", "-c", probe, cwd=cwd, env=env).strip() == "None None"


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
        for path in ("/", "/healthz", "/readyz", "/api/v1/model", "/openapi.json"):  # curl -I
            head = urllib.request.Request(f"{url}{path}", method="HEAD")
            with urllib.request.urlopen(head, timeout=10) as answer:
                assert (answer.status, answer.read()) == (200, b""), path
                assert int(answer.headers["Content-Length"]) > 0, path
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
