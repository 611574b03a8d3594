"""`digitrec batch` on Ray Data: one local Ray on 2 CPUs for the whole file.

The answers are compared with the single-process path a user knows, `digitrec predict`/`read
--format json`, on the repo's real-world images and on 2,000 MNIST test images as PNG files.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# Imported plainly, never importorskip: without the `ray` extra this file fails to collect,
# and CI (`make test` installs the extra) reports it as a failure.
import ray
from PIL import Image
from typer.testing import CliRunner

from digitrec import batch, data
from digitrec.cli import app
from digitrec.errors import DigitrecError

ROOT = Path(__file__).resolve().parents[1]
REALWORLD = ROOT / "tests" / "realworld"
REAL = ROOT / "data" / "real"
PREDICT_COLUMNS = [
    "file", "path", "digit", "confidence", "probabilities", "reason", "candidates", "error",
]  # fmt: skip
READ_COLUMNS = ["file", "path", "text", "confidence", "digits", "reason", "error"]


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Any:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def cli_json(command: str, files: list[str]) -> list[dict[str, Any]]:
    """What `digitrec predict|read FILES --format json` prints, one object per file."""
    result = CliRunner().invoke(app, [command, *files, "--format", "json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def same_answers(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Rows (without `path`) equal the CLI's objects, in order; floats within 1e-5 (ONNX
    Runtime may sum in another order on other threads and batch sizes)."""
    assert [r["file"] for r in rows] == [e["file"] for e in expected]
    for row, want in zip(rows, expected, strict=True):
        got = {k: v for k, v in row.items() if k != "path"}
        assert close(got, want), (got, want)


def close(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-5, through nested dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-5
    return type(a) is type(b) and a == b


def images_in(*folders: Path) -> list[str]:
    return [
        str(f)
        for folder in folders
        for f in sorted(folder.rglob("*"))
        if f.suffix.lower() in data.IMAGE_SUFFIXES
    ]


@pytest.fixture(scope="module")
def mnist_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mnist2000")
    test = data.load_mnist("test")
    for i in range(2000):
        Image.fromarray(test.images[i]).save(folder / f"{i:04d}_{test.labels[i]}.png")
    return folder


def test_predict_on_the_real_world_sets_equals_the_cli(tmp_path: Path) -> None:
    files = images_in(REALWORLD, REAL)
    assert len(files) > 2400  # tests/realworld (700) and data/real's Semeion and mfeat sets
    summary = batch.run(files, tmp_path / "out.jsonl", progress=False)
    assert (summary.rows, summary.errors, summary.workers) == (len(files), 0, 2)
    rows = jsonl(tmp_path / "out.jsonl")
    same_answers(rows, cli_json("predict", files))
    assert all(r["path"] == os.path.abspath(r["file"]) for r in rows)
    # the blank images are answered "no digit", as the CLI does, never a guess
    blanks = [r for r in rows if "/blank_" in r["file"]]
    assert blanks and all(r["digit"] is None and r["reason"] == "empty" for r in blanks)


def test_read_on_the_real_world_set_equals_the_cli(tmp_path: Path) -> None:
    files = images_in(REALWORLD)
    batch.run(files, tmp_path / "out.jsonl", mode="read", progress=False)
    rows = jsonl(tmp_path / "out.jsonl")
    same_answers(rows, cli_json("read", files))
    numbers = [r for r in rows if "/numbers_" in r["file"]]
    assert len(numbers) == 100 and sum(r["text"] is not None for r in numbers) >= 80


def test_2000_mnist_pngs_to_parquet_equal_the_cli(mnist_pngs: Path, tmp_path: Path) -> None:
    out = tmp_path / "mnist.parquet"
    result = CliRunner().invoke(
        app, ["batch", str(mnist_pngs), "-o", str(out), "--batch-size", "200"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2,000 rows, 0 failed" in result.stdout
    table = pq.read_table(out)
    assert table.column_names == PREDICT_COLUMNS
    assert table.schema.field("digit").type == pa.int64()
    assert table.schema.field("probabilities").type == pa.list_(pa.float64())
    # Parquet has every column: null where the CLI's JSON leaves the key out
    rows = [
        {k: v for k, v in r.items() if v is not None or k not in ("reason", "candidates", "error")}
        for r in table.to_pylist()
    ]
    assert table.column("error").null_count == 2000
    same_answers(rows, cli_json("predict", [r["file"] for r in rows]))
    right = sum(r["digit"] == int(Path(r["file"]).stem[-1]) for r in rows)
    assert right >= 1980  # rows belong to their files (1,986 right: a null answer is wrong)


def test_bad_files_are_error_rows_not_a_failed_job(mnist_pngs: Path, tmp_path: Path) -> None:
    good = str(sorted(mnist_pngs.glob("*.png"))[0])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then nothing
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    missing = tmp_path / "missing.png"
    listing = tmp_path / "list.csv"
    listing.write_text(
        "path,label\n" + "".join(f"{p},x\n" for p in (good, corrupt, missing, text, tmp_path))
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["batch", str(listing), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 rows, 4 failed" in result.stdout
    rows = jsonl(out)
    assert [r["file"] for r in rows] == [good, str(corrupt), str(missing), str(text), str(tmp_path)]
    assert rows[0]["digit"] == int(Path(good).stem[-1]) and "error" not in rows[0]
    assert all(set(r) == {"file", "path", "error"} for r in rows[1:])
    errors = [r["error"] for r in rows[1:]]
    assert "not an image" in errors[0]
    assert errors[1] == f"{missing}: no such file"
    assert "not an image" in errors[2]
    assert errors[3] == "not a regular file (a directory): give an image file"


def test_cli_joins_a_running_cluster_and_reads_a_parquet_listing(
    ray_session: str, tmp_path: Path
) -> None:
    """`--ray ADDRESS` in a fresh process: it joins this file's Ray, and leaves it running."""
    files = sorted(str(f) for f in REALWORLD.glob("numbers_00*"))  # 10 written numbers
    listing = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"path": [*files, str(tmp_path / "gone.png")]}), listing)
    out = tmp_path / "numbers.parquet.out.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "batch", str(listing), "--mode", "read",
         "-o", str(out), "--ray", ray_session],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "11 rows, 1 failed" in done.stdout
    table = pq.read_table(out)
    assert table.column_names == READ_COLUMNS
    rows = table.to_pylist()
    expected = cli_json("read", files)
    assert [r["text"] for r in rows[:-1]] == [e["text"] for e in expected]
    assert rows[-1]["text"] is None and rows[-1]["error"].endswith("gone.png: no such file")
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2


def test_a_glob_input_and_a_wrong_output_suffix(mnist_pngs: Path, tmp_path: Path) -> None:
    out = tmp_path / "sevens.jsonl"
    result = CliRunner().invoke(app, ["batch", f"{mnist_pngs}/00[0-4]?_7.png", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = jsonl(out)
    assert len(rows) >= 3 and all(r["file"].endswith("_7.png") for r in rows)
    assert sum(r["digit"] == 7 for r in rows) == len(rows)
    with pytest.raises(DigitrecError, match="give an output ending in .parquet or .jsonl"):
        batch.run([rows[0]["file"]], tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_without_ray_it_says_what_to_install(
    mnist_pngs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core install has no Ray: the command names the extra, and nothing else imports it."""
    code = (
        "import sys, digitrec.cli, digitrec.batch\n"
        "print(sorted({'ray', 'pyarrow'} & {*sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr
    monkeypatch.setitem(sys.modules, "ray.data", None)  # import ray.data raises ImportError
    with pytest.raises(DigitrecError, match=r"needs Ray: pip install 'digitrec\[ray\]'"):
        batch.run([str(next(mnist_pngs.glob("*.png")))], tmp_path / "out.jsonl")
