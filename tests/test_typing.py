"""The public API is typed (py.typed, mypy --strict clean): a user's type checker sees what
`digitrec.load()` and its answers are, not Any."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_SCRIPT = """\
import numpy as np

import digitrec

model = digitrec.load()
answer = model.predict(np.zeros((28, 28), np.uint8), ink="light")
reveal_type(answer.digit)
reveal_type(model.read("number.png").text)
reveal_type(model.evaluate().accuracy)
digit: int = answer.digit  # an error: the digit may be None
model.predict("seven.png", ink="white")  # an error: not an ink
"""


def test_the_public_api_passes_mypy_strict_and_a_user_sees_its_types(tmp_path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")  # continued lines
    public = re.search(r"^PUBLIC := (.+)$", makefile, re.M)
    assert public
    user = tmp_path / "user.py"
    user.write_text(USER_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(user), *public[1].split()],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = done.stdout
    assert not [line for line in out.splitlines() if line.startswith("src/")], out  # the API
    assert 'Revealed type is "int | None"' in out
    assert 'Revealed type is "str | None"' in out
    assert 'Revealed type is "float"' in out
    errors = re.findall(rf"^{re.escape(str(user))}:(\d+): error", out, re.M)
    assert errors == ["10", "11"], out
