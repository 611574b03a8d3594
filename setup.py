"""Packaging that pyproject.toml cannot say: the shipped models travel inside the wheel.

models/ at the repo root stays where `digitrec ship` writes them and what an editable checkout
reads; a wheel gets a copy as digitrec/models/, which shipped.MODELS_DIR finds with
importlib.resources when there is no source tree beside the package.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"
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


setup(cmdclass={"build_py": BuildWithModels})
