"""The images a command is given: files, directories, globs, and `-` (standard input: an image,
or file names one per line)."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

from digitrec.errors import DigitrecError

STDIN = Path("-")  # an image read from standard input

_stdin_image: list[bytes | None] = [None]  # the image `-` read, if it was one


def _stdin_items() -> list[str]:
    """`-`: standard input holds one image (its bytes), or file names, one per line (what
    `find` or `ls` print)."""
    data = sys.stdin.buffer.read()
    try:  # an image is binary: NUL bytes, or bytes that are no UTF-8 (PNG's, JPEG's first)
        text = None if b"\0" in data else data.decode()
    except UnicodeDecodeError:
        text = None
    if text is None:
        _stdin_image[0] = data  # the image loader says if it is none it can read
        return ["-"]
    names = [line for line in text.splitlines() if line.strip()]
    if not names:
        raise DigitrecError("-: no image and no file names on standard input")
    return names


def source(path: Path) -> bytes | Path:
    """What to load for a listed path: the bytes read from stdin for `-`, else the path."""
    if path == STDIN and _stdin_image[0] is not None:
        return _stdin_image[0]
    return path


def expand(inputs: list[str]) -> list[Path]:
    """The image files `inputs` name, in their order: a directory's images sorted, a glob's
    matches sorted; a missing file stays, for the image loader to report."""
    from digitrec.data import IMAGE_SUFFIXES

    if "-" in inputs:  # read once, where it stands among the other inputs
        at = inputs.index("-")
        inputs = [*inputs[:at], *_stdin_items(), *[i for i in inputs[at + 1 :] if i != "-"]]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if item == "-" and _stdin_image[0] is not None:
            files.append(STDIN)
            continue
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():  # a name with [ or * in it is a file first, a pattern only if not
            files.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise DigitrecError(f"{item}: no files match")
            files += matches
        else:
            files.append(p)  # a missing file is reported by the image loader, naming it
    return files
