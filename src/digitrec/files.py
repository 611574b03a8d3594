"""Files on disk: weights (safetensors only, nothing is ever unpickled) and JSON written
atomically; which paths are no regular file to read an image from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from digitrec.errors import ModelError


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """A file to write `path` through: written beside it under a unique temporary name, synced,
    then renamed over it, so a crash or an error leaves the old file whole (and no temporary)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` atomically (atomic_open)."""
    with atomic_open(path) as f:
        f.write(payload)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_weights(path: Path, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: weights file missing")
    try:
        return load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ModelError(
            f"{path}: not a readable safetensors file, truncated or corrupt ({e})"
        ) from None


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A training checkpoint's tensors and its metadata (the JSON `resume` needs)."""
    from safetensors import safe_open

    tensors = load_weights(path)  # the clear errors for a missing or truncated file
    with safe_open(str(path), framework="pt") as f:
        return tensors, dict(f.metadata() or {})


def not_a_file(path: Path) -> str | None:
    """Why `path` is no image file, for what exists but is not a regular file (a FIFO would
    block the read, /dev/zero never end it); None otherwise (the image loader reports the rest)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a directory" if stat.S_ISDIR(mode)
        else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a file"
    )  # fmt: skip
    return f"not a regular file ({kind}): give an image file"
