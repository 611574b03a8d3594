"""Documents that cannot drift from what they describe: the shipped models' figures in README.md
and BENCHMARKS.md are the cards' (tools/model_docs.py writes them), and docs/ARCHITECTURE.md's
package layout names every module there is and none that is not."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_script

model_docs = load_script(ROOT / "tools" / "model_docs.py")

PACKAGE = ROOT / "src" / "digitrec"


@pytest.mark.parametrize("doc", model_docs.DOCUMENTS, ids=lambda p: p.name)
def test_the_documents_show_the_shipped_models_as_their_cards_say(doc: Path) -> None:
    text = doc.read_text()
    assert model_docs.rewritten(text, model_docs.block()) == text, (
        f"{doc.name}: the shipped models' block differs from models/*.json; "
        "run python tools/model_docs.py"
    )


def test_a_card_changed_without_its_documents_is_caught(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("*.onnx", "*.safe*"))
    card = json.loads((models / "fast.json").read_text())
    card["test_accuracy"] = 0.5
    (models / "fast.json").write_text(json.dumps(card))
    readme = (ROOT / "README.md").read_text()
    assert model_docs.rewritten(readme, model_docs.block(models)) != readme
    assert "**50.00%**" in model_docs.block(models)
    with pytest.raises(ValueError, match="no generated block"):
        model_docs.rewritten("a document without one", model_docs.block(models))


def layout_names(text: str) -> set[str]:
    """The module paths (relative to src/digitrec) that ARCHITECTURE.md's layout table names in
    its first column; a bare name after a `folder/name` is in the same folder."""
    section = text.split("## 2. Package layout", 1)[1].split("\n## ", 1)[0]
    named = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "/" in name:
                folder = name if name.endswith("/") else name.rsplit("/", 1)[0] + "/"
            else:
                name = folder + name
            named.add(name)
    return named


def test_the_architecture_names_every_module_and_only_real_ones() -> None:
    named = layout_names((ROOT / "docs" / "ARCHITECTURE.md").read_text())
    assert "serve/app.py" in named and "predictor.py" in named  # the table is read
    modules = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if not (p.name == "__init__.py" and p.parent != PACKAGE)  # a subpackage's own marker
    }
    folders = {n for n in named if n.endswith("/")}
    missing = sorted(m for m in modules if m not in named and not any(map(m.startswith, folders)))
    assert not missing, f"docs/ARCHITECTURE.md's layout does not name {missing}"
    gone = sorted(n for n in named if not (PACKAGE / n).exists())
    assert not gone, f"docs/ARCHITECTURE.md's layout names what is not there: {gone}"
