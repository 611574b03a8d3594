"""Packaging that pyproject.toml cannot say: the shipped models travel inside the wheel, and
the README's relative links point into the repository on a package index page.

models/ at the repo root stays where `digitrec ship` writes them and what an editable checkout
reads; a wheel gets a copy as digitrec/models/, which shipped.MODELS_DIR finds with
importlib.resources when there is no source tree beside the package.
"""

import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "models"
SHIPPED = (".onnx", ".json", ".safetensors", ".md")  # weights, the card, the card as markdown


class BuildWithModels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads models/ in place
            return
        target = Path(self.build_lib) / "digitrec" / "models"
        self.mkpath(str(target))
        for path in sorted(MODELS.iterdir()):
            if path.is_file() and path.suffix in SHIPPED:
                self.copy_file(str(path), str(target / path.name))


# pyproject.toml's [project.urls] Source: where the README's files are, off the package index.
REPOSITORY = "https://github.com/digitrec/digitrec"
RELATIVE_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")


def absolute_links(markdown: str) -> str:
    """`[text](docs/x.md)` -> `[text](REPOSITORY/blob/main/docs/x.md)`, and an image to its raw
    file: a package index shows the README without the repository around it."""

    def link(m: re.Match[str]) -> str:
        image, text, target = m.groups()
        kind = "raw" if image else "blob"
        return f"{image}[{text}]({REPOSITORY}/{kind}/main/{target})"

    return RELATIVE_LINK.sub(link, markdown)


setup(
    cmdclass={"build_py": BuildWithModels},
    long_description=absolute_links((ROOT / "README.md").read_text(encoding="utf-8")),
    long_description_content_type="text/markdown",
)
