"""The Containerfile: clean under hadolint, built from what the wheel is built from, serving as
a non-root user. Building and running it needs podman: `make container-check` (README,
"Container")."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import SOURCES

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "Containerfile"


def test_the_containerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(CONTAINERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_holds_the_wheel_and_serves_as_a_user() -> None:
    text = CONTAINERFILE.read_text()
    copied = {name for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
              for name in line.split()}  # fmt: skip
    assert set(SOURCES) <= copied, set(SOURCES) - copied  # all the wheel is built from
    final = text.rsplit("\nFROM ", 1)[1]  # the image's own stage
    user = re.search(r"^USER (\S+)$", final, re.M)
    assert user and user[1].split(":")[0] not in ("0", "root")
    assert '"$(ls /wheels/digitrec-*.whl)[serve]"' in final  # core + serve: no torch
    assert re.search(r'^ENTRYPOINT \["digitrec", "serve", "--host", "0.0.0.0"', final, re.M)
    assert "/readyz" in final  # its HEALTHCHECK
