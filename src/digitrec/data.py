"""Datasets: the bundled MNIST, Kaggle CSV, IDX, NPZ and image folders, all as one `Dataset`
(digitrec.dataset; importable from here too).

Every reader gives uint8 images (N, 28, 28), ink high on 0, and int64 labels (N,) or None.
A file that cannot be read raises `DataError` naming the file, and the row and column when
there are any, so the CLI can print one line a user can act on.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from digitrec.dataset import Dataset as Dataset
from digitrec.errors import DataError, DigitrecError
from digitrec.files import atomic_write_bytes

# The repo's data/mnist, found from the source tree (editable install) or DIGITREC_MNIST. A wheel
# does not carry it (11 MB that serving never reads): an installed digitrec outside the repo is
# pointed to a copy with DIGITREC_MNIST, or given --data, and says so when it is not (MNIST_HINT).
MNIST_DIR = Path(
    os.environ.get("DIGITREC_MNIST") or Path(__file__).resolve().parents[2] / "data" / "mnist"
)
MNIST_HINT = (
    "not found; set DIGITREC_MNIST=/path/to/mnist (a copy of the repo's data/mnist: "
    "the four IDX .gz files and SHA256SUMS); explore and evaluate also take --data PATH"
)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
PIXELS = 28 * 28
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


# ---------------------------------------------------------------- bundled MNIST


def read_checksums(directory: Path = MNIST_DIR) -> dict[str, str]:
    sums = directory / "SHA256SUMS"
    if not directory.is_dir():  # the default, named as such: an installed digitrec has no MNIST
        default = directory == MNIST_DIR and not os.environ.get("DIGITREC_MNIST")
        raise DataError("MNIST" if default else directory, MNIST_HINT)
    if not sums.exists():
        raise DataError(sums, "checksum file missing")
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def _verified_bytes(path: Path, expected: str) -> bytes:
    if not path.exists():
        raise DataError(path, "file missing (the bundled MNIST should be in data/mnist)")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise DataError(path, "checksum mismatch: the file is corrupt or was changed")
    return raw


def load_mnist(split: str = "train", directory: Path = MNIST_DIR) -> Dataset:
    """The bundled MNIST `train` (60,000) or `test` (10,000) split, checksums verified."""
    sums = read_checksums(directory)
    image_name, label_name = MNIST_FILES[split]
    images = parse_idx(
        _verified_bytes(directory / image_name, sums[image_name]), directory / image_name
    )
    labels = parse_idx(
        _verified_bytes(directory / label_name, sums[label_name]), directory / label_name
    )
    return Dataset(
        images, _check_labels(labels.astype(np.int64), directory / label_name), f"mnist:{split}"
    )


def _check_labels(labels: np.ndarray, path: object) -> np.ndarray:
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise DataError(path, f"label {labels[bad[0]]} outside 0..9", row=int(bad[0]) + 1)
    return labels


# ---------------------------------------------------------------- IDX


def parse_idx(raw: bytes, path: object = "<idx>") -> np.ndarray:
    """IDX bytes (gzip or raw) -> uint8 array. Magic 0x0000 08 NDIM: unsigned bytes."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(path, f"not a valid gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(path, f"wrong magic number {raw[:4].hex()} (expected 00000801 or 00000803)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, "file ends inside the header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            path,
            f"size mismatch: header says {shape} ({expected} bytes), file has {len(raw) - header}",
        )
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(path, f"images must be 28x28, header says {shape[1]}x{shape[2]}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(array: np.ndarray, path: Path) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    atomic_write_bytes(path, gzip.compress(data) if str(path).endswith(".gz") else data)


def load_idx(images: Path, labels: Path | None = None) -> Dataset:
    x = parse_idx(_read(images), images)
    if x.ndim != 3:
        raise DataError(images, f"expected an image file (3 dimensions), got {x.ndim}")
    y = None
    if labels is not None:
        y = _check_labels(parse_idx(_read(labels), labels).astype(np.int64), labels)
    return Dataset(x, y, str(images))


# ---------------------------------------------------------------- Kaggle CSV


def load_csv(path: Path) -> Dataset:
    """Kaggle "Digit Recognizer" CSV: `label,pixel0..pixel783` (train) or `pixel0..` (test)."""
    text = _read(path).decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(text))
    try:
        return _parse_csv(path, rows)
    except csv.Error as e:  # a field over csv.field_size_limit (128 KB), a NUL byte, ...
        raise DataError(path, f"not a valid CSV file ({e})", row=rows.line_num) from None


def _parse_csv(path: Path, rows: Iterator[list[str]]) -> Dataset:
    header = next(rows, None)
    if header is None or not any(h.strip() for h in header):
        raise DataError(path, "empty file (expected a header line: label,pixel0,...,pixel783)")
    header = [h.strip() for h in header]
    has_label = header[0] == "label"
    pixel_cols = header[1:] if has_label else header
    if not pixel_cols or not pixel_cols[0].startswith("pixel"):
        raise DataError(
            path,
            f"missing header: first line starts {header[:2]}, expected label,pixel0,...",
            row=1,
        )
    if pixel_cols != [f"pixel{i}" for i in range(PIXELS)]:
        raise DataError(
            path,
            f"expected {PIXELS} columns pixel0..pixel{PIXELS - 1}, header has {len(pixel_cols)}",
            row=1,
        )
    width = len(header)
    cells: list[list[str]] = []
    for r, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != width:
            raise DataError(path, f"{len(row)} columns, header has {width}", row=r)
        cells.append(row)
    if not cells:
        raise DataError(path, "no data rows after the header")
    try:
        values = np.array(cells, dtype=np.int64)
    except ValueError:
        values = _locate_bad_cell(path, cells, header)
    bad = np.argwhere((values < 0) | (values > 255))
    if has_label:
        label_bad = np.flatnonzero((values[:, 0] < 0) | (values[:, 0] > 9))
        if len(label_bad):
            r = int(label_bad[0])
            raise DataError(path, f"label {values[r, 0]} outside 0..9", row=r + 2, column="label")
    if len(bad):
        r, c = (int(v) for v in bad[0])
        raise DataError(
            path, f"pixel value {values[r, c]} outside 0..255", row=r + 2, column=header[c]
        )
    labels = values[:, 0].copy() if has_label else None
    images = values[:, 1:] if has_label else values
    return Dataset(images.astype(np.uint8).reshape(-1, 28, 28), labels, str(path))


def _locate_bad_cell(path: Path, cells: list[list[str]], header: list[str]) -> np.ndarray:
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            try:
                int(cell)
            except ValueError:
                raise DataError(
                    path, f"not an integer: {cell[:20]!r}", row=r + 2, column=header[c]
                ) from None
    raise AssertionError("unreachable: every cell parsed")


def write_csv(dataset: Dataset, path: Path, with_labels: bool = True) -> None:
    """Kaggle-format CSV (the inverse of load_csv), written atomically."""
    flat = dataset.images.reshape(len(dataset), PIXELS).astype(np.int64)
    header = [f"pixel{i}" for i in range(PIXELS)]
    if with_labels:
        if dataset.labels is None:
            raise DataError(path, "cannot write labels: the dataset has none")
        flat = np.column_stack([dataset.labels, flat])
        header = ["label", *header]
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    np.savetxt(buf, flat, fmt="%d", delimiter=",")
    atomic_write_bytes(path, buf.getvalue().encode())


# ---------------------------------------------------------------- NPZ (Keras mnist.npz layout)


def load_npz(path: Path, split: str = "train") -> Dataset:
    try:
        with np.load(io.BytesIO(_read(path)), allow_pickle=False) as npz:
            keys = set(npz.files)
            x_key, y_key = f"x_{split}", f"y_{split}"
            if x_key not in keys:
                raise DataError(path, f"no array {x_key!r} (has {sorted(keys)})")
            x = npz[x_key]
            y = npz[y_key].astype(np.int64) if y_key in keys else None
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise DataError(path, f"not a valid .npz file ({e})") from None
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(path, f"{split} images must be N x 28 x 28, got {x.shape}")
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DataError(path, "pixel values outside 0..255")
        x = x.astype(np.uint8)
    return Dataset(x, None if y is None else _check_labels(y, path), str(path))


# ---------------------------------------------------------------- image folders


def load_folder(path: Path) -> Dataset:
    """A folder with one subfolder per digit (0/ ... 9/), images of any size and format.

    Each image is brought to MNIST's form with the same preprocessing as real input.
    """
    from digitrec.vision.preprocess import preprocess  # real-input preprocessing (Pillow, SciPy)

    images, labels = [], []
    for digit in range(10):
        sub = path / str(digit)
        if not sub.is_dir():
            continue
        for file in sorted(sub.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                x = preprocess(file)
            except Exception as e:  # an unreadable image names itself
                raise DataError(file, str(e)) from None
            if x is None:
                raise DataError(file, "blank image: no ink found")
            images.append(np.round(x * 255).astype(np.uint8))
            labels.append(digit)
    if not images:
        raise DataError(path, "no images found in subfolders 0/ .. 9/")
    return Dataset(np.stack(images), np.array(labels, dtype=np.int64), str(path))


# ---------------------------------------------------------------- any path


def load(path: str | Path | None, split: str = "train") -> Dataset:
    """Load data by path, picking the reader from what the path is. None: bundled MNIST."""
    if path is None or str(path) in ("mnist", "mnist:train", "mnist:test"):
        return load_mnist(str(path).split(":")[1] if path and ":" in str(path) else split)
    p = Path(path)
    if p.is_dir():
        if (p / "SHA256SUMS").exists():
            return load_mnist(split, p)
        return load_folder(p)
    name = p.name.lower()
    if name.endswith(".sqlite3"):  # a feedback store: its accepted rows
        from digitrec.feedback.export import accepted_dataset

        return accepted_dataset(p)
    if name.endswith(".csv"):
        return load_csv(p)
    if name.endswith(".npz"):
        return load_npz(p, split)
    if "idx" in name or name.endswith("ubyte") or name.endswith("ubyte.gz"):
        label_path = Path(str(p).replace("images-idx3", "labels-idx1"))
        return load_idx(p, label_path if label_path != p and label_path.exists() else None)
    raise DataError(p, "unknown data format (expected .csv, .npz, IDX or a folder)")


def _read(path: Path) -> bytes:
    try:
        # A FIFO would block the read, /dev/zero never end it.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise DataError(path, "not a regular file (a pipe or a device)")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a file") from None
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})") from None


# ---------------------------------------------------------------- validation split


def split_validation(
    dataset: Dataset, fraction: float = 0.1, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """A deterministic, stratified (per-class) split: (train, validation)."""
    if not 0 <= fraction < 1:
        raise DigitrecError(f"validation fraction must be in [0, 1), got {fraction}")
    if dataset.labels is None:
        raise DataError(dataset.source, "cannot split unlabelled data")
    if fraction == 0:
        return dataset, dataset.subset(np.array([], dtype=np.int64))
    rng = np.random.default_rng(seed)
    val_index = []
    for digit in range(10):
        members = np.flatnonzero(dataset.labels == digit)
        rng.shuffle(members)
        val_index.append(members[: int(round(len(members) * fraction))])
    val = np.sort(np.concatenate(val_index))
    train = np.setdiff1d(np.arange(len(dataset)), val)
    return dataset.subset(train), dataset.subset(val)
