"""Which extra installs a missing library: a core install (`pip install digitrec`) predicts,
reads and submits; training, the figures, the server, Ray and PostgreSQL each come with an
extra. A command that needs one says which, in one line, instead of an import traceback.
"""

from __future__ import annotations

from digitrec.errors import DigitrecError

# The top-level module a ModuleNotFoundError names -> (what it is, the extra that brings it).
PROVIDERS: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "train"),
    "safetensors": ("safetensors", "train"),
    "matplotlib": ("matplotlib", "train"),
    "sklearn": ("scikit-learn", "train"),
    "onnx": ("onnx", "train"),
    "onnxscript": ("onnxscript", "train"),
    "scipy": ("SciPy", "train"),
    "fastapi": ("FastAPI", "serve"),
    "fastapi_offline": ("fastapi-offline", "serve"),
    "starlette": ("Starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "multipart": ("python-multipart", "serve"),
    "python_multipart": ("python-multipart", "serve"),
    "pydantic": ("pydantic", "serve"),
    "pydantic_settings": ("pydantic-settings", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "ray": ("Ray", "ray"),
    "pyarrow": ("PyArrow", "ray"),
    "psycopg": ("psycopg", "postgres"),
}


def install_hint(error: ModuleNotFoundError, what: str) -> DigitrecError | None:
    """`what needs LIBRARY: pip install 'digitrec[EXTRA]'` for a library an extra brings; None
    for any other missing module (a bug, to be seen as one)."""
    top = (error.name or "").split(".")[0]
    provider = PROVIDERS.get(top)
    if provider is None:
        return None
    library, extra = provider
    return DigitrecError(f"{what} needs {library}: pip install 'digitrec[{extra}]'")
