"""Readers round-trip, and every kind of bad data gets an error naming file, row and column."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec import data
from digitrec.errors import DataError


@pytest.fixture(scope="module")
def small() -> data.Dataset:
    test = data.load_mnist("test")
    return test.subset(np.arange(50))


def test_bundled_mnist_has_the_published_counts() -> None:
    train, test = data.load_mnist("train"), data.load_mnist("test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8
    assert train.class_counts()[0] == 5923 and test.class_counts()[0] == 980


def test_corrupt_bundled_file_is_named(tmp_path: Path) -> None:
    for f in data.MNIST_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        data.load_mnist("test", tmp_path)
    target.unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: file missing"):
        data.load_mnist("test", tmp_path)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_round_trip(tmp_path: Path, small: data.Dataset, suffix: str) -> None:
    data.write_idx(small.images, tmp_path / f"x-images-idx3-ubyte{suffix}")
    data.write_idx(small.labels, tmp_path / f"x-labels-idx1-ubyte{suffix}")
    back = data.load(tmp_path / f"x-images-idx3-ubyte{suffix}")
    assert np.array_equal(back.images, small.images)
    assert np.array_equal(back.labels, small.labels)


def test_idx_wrong_magic_and_size(tmp_path: Path, small: data.Dataset) -> None:
    path = tmp_path / "bad-images-idx3-ubyte"
    data.write_idx(small.images, path)
    raw = path.read_bytes()
    path.write_bytes(b"\x00\x00\x09\x03" + raw[4:])
    with pytest.raises(DataError, match="bad-images-idx3-ubyte: wrong magic number 00000903"):
        data.load(path)
    path.write_bytes(raw[:-5])
    with pytest.raises(DataError, match="size mismatch"):
        data.load(path)


def test_csv_round_trip_train_and_test(tmp_path: Path, small: data.Dataset) -> None:
    data.write_csv(small, tmp_path / "train.csv")
    data.write_csv(small, tmp_path / "test.csv", with_labels=False)
    train = data.load(tmp_path / "train.csv")
    test = data.load(tmp_path / "test.csv")
    assert np.array_equal(train.images, small.images) and np.array_equal(train.labels, small.labels)
    assert np.array_equal(test.images, small.images) and test.labels is None
    header = (tmp_path / "train.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["label", "pixel0"] and header[-1] == "pixel783" and len(header) == 785


def _csv(tmp_path: Path, rows: list[list[object]], header: list[str] | None = None) -> Path:
    header = header if header is not None else ["label"] + [f"pixel{i}" for i in range(784)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


GOOD = [3] + [0] * 784


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([GOOD, [3] + [0] * 783], r"train.csv, row 3: 784 columns, header has 785"),
        ([GOOD, GOOD[:100]], r"train.csv, row 3: 100 columns"),
        ([GOOD, [3, "x"] + [0] * 783], r"train.csv, row 3, column pixel0: not an integer: 'x'"),
        ([[3] + [0] * 10 + [256] + [0] * 773], r"row 2, column pixel10: pixel value 256 outside"),
        ([[3, -1] + [0] * 783], r"row 2, column pixel0: pixel value -1 outside"),
        ([GOOD, [12] + [0] * 784], r"row 3, column label: label 12 outside 0..9"),
        ([], r"train.csv: no data rows"),
    ],
)
def test_bad_csv_names_file_row_and_column(
    tmp_path: Path, rows: list[list[object]], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        data.load(_csv(tmp_path, rows))


def test_csv_missing_header_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train.csv, row 1: missing header"):
        data.load(_csv(tmp_path, [GOOD], header=[str(v) for v in GOOD]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: empty file"):
        data.load(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="nothere.csv: file not found"):
        data.load(tmp_path / "nothere.csv")


def test_npz_keras_layout(tmp_path: Path, small: data.Dataset) -> None:
    np.savez(
        tmp_path / "mnist.npz",
        x_train=small.images,
        y_train=small.labels,
        x_test=small.images[:5],
        y_test=small.labels[:5],
    )
    assert np.array_equal(data.load(tmp_path / "mnist.npz").labels, small.labels)
    assert len(data.load(tmp_path / "mnist.npz", "test")) == 5
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="bad.npz: not a valid .npz"):
        data.load(tmp_path / "bad.npz")


def test_image_folder(tmp_path: Path, small: data.Dataset) -> None:
    for i in range(10):
        digit = int(small.labels[i])
        (tmp_path / str(digit)).mkdir(exist_ok=True)
        # dark ink on white paper, 4x larger: the folder reader must bring it back to MNIST form
        big = Image.fromarray(255 - small.images[i]).resize((112, 112))
        big.save(tmp_path / str(digit) / f"{i}.png")
    ds = data.load(tmp_path)
    assert len(ds) == 10 and sorted(ds.labels.tolist()) == sorted(small.labels[:10].tolist())
    assert ds.images.max() > 200 and ds.images[:, 0, :].max() == 0  # ink high, empty border


def test_split_is_stratified_and_deterministic() -> None:
    full = data.load_mnist("train")
    train_a, val_a = data.split_validation(full, 0.1, seed=3)
    train_b, val_b = data.split_validation(full, 0.1, seed=3)
    assert np.array_equal(val_a.images, val_b.images)
    assert len(train_a) + len(val_a) == 60000 and abs(len(val_a) - 6000) <= 5
    fractions = np.array(val_a.class_counts()) / np.array(full.class_counts())
    assert np.allclose(fractions, 0.1, atol=0.001)
    _, val_c = data.split_validation(full, 0.1, seed=4)
    assert not np.array_equal(val_a.labels, val_c.labels)


def test_gzip_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"hello")[:8])
    with pytest.raises(DataError, match="x-images-idx3-ubyte.gz: not a valid gzip"):
        data.load(path)
