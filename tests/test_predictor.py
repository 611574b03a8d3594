"""Shipped models, the registry, and the ONNX Runtime predictor as users meet them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec import data, realworld, shipped
from digitrec.errors import DataError, ImageError, ModelError
from digitrec.evaluate import evaluate
from digitrec.predictor import Predictor, zoom

REALWORLD = Path(__file__).parent / "realworld"


@pytest.mark.parametrize("card", shipped.shipped_cards(), ids=lambda c: c["name"])
def test_shipped_model_matches_its_card(card: dict) -> None:
    """Each shipped model's test accuracy, measured now through ONNX Runtime, is the card's."""
    predictor = Predictor.load(card["name"], threads=0)
    report = evaluate(predictor)
    assert report.accuracy == pytest.approx(card["test_accuracy"], abs=2e-4)
    assert report.ece <= 0.01  # calibrated: expected calibration error under 1%
    for key in (
        "architecture",
        "parameters",
        "command",
        "data",
        "val_accuracy",
        "calibration",
        "train_seconds",
        "hardware",
        "sha256",
        "date",
    ):
        assert key in card, key


def test_default_model_is_the_best_shipped_on_validation() -> None:
    """The default is chosen on the selection score (shipped.default_choice: the smallest model
    within noise of the best), and is at least 99.5% on the MNIST test set: the floor for a
    default chosen for real handwriting (DESIGN.md; BENCHMARKS.md, "Real writers' drawings")."""
    default = Predictor.load().card
    assert default["name"] == shipped.default_choice(shipped.shipped_cards())
    assert default["test_accuracy"] >= 0.995, default["name"]


def test_default_choice_takes_the_smaller_model_unless_the_bigger_is_clearly_better() -> None:
    def card(name: str, val: float, parameters: int) -> dict[str, object]:
        return {"name": name, "val_accuracy": val, "parameters": parameters,
                "data": {"validation": 6000}}  # fmt: skip

    fast = card("fast", 0.9927, 140_842)
    # 2 images of 6,000 apart: noise (one standard error is ~5); the single model answers
    single, ensemble = card("best", 0.99533, 288_170), card("mix-x3", 0.99567, 940_158)
    assert shipped.default_choice([fast, single, ensemble]) == "best"
    # 12 images apart: the ensemble is better, and it is the default
    assert shipped.default_choice([fast, card("best", 0.9937, 288_170), ensemble]) == "mix-x3"
    assert shipped.default_choice([fast]) == "fast"


def test_shipped_models_fit_in_20_mb() -> None:
    total = sum(p.stat().st_size for p in shipped.MODELS_DIR.iterdir())
    assert total < 20 * 2**20


def _copy_models(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(shipped.MODELS_DIR, target)
    return target


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    name = shipped.default_name(models)
    onnx = models / f"{name}.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])  # truncated
    with pytest.raises(ModelError, match=f"{name}.onnx: sha256 mismatch"):
        shipped.resolve(name, models)


def test_unknown_model_lists_what_is_shipped() -> None:
    with pytest.raises(ModelError, match="nope: no such model \\(shipped: "):
        shipped.resolve("nope")


def _drawn(digit_path: list[tuple[int, int]], size: int = 280, width: int = 20) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).line(digit_path, fill=(20, 20, 20, 255), width=width, joint="curve")
    return img


def test_canvas_drawings_are_recognised() -> None:
    predictor = Predictor.load()
    one = predictor.predict(_drawn([(140, 40), (140, 240)]))
    seven = predictor.predict(_drawn([(70, 60), (210, 60), (120, 230)]))
    assert (one.digit, seven.digit) == (1, 7)
    assert one.preprocessed.shape == (28, 28) and one.preprocessed.max() > 0.9
    assert sum(seven.probabilities) == pytest.approx(1, abs=1e-4)


def test_blank_is_never_a_digit() -> None:
    predictor = Predictor.load()
    for blank in (Image.new("RGBA", (280, 280), (0, 0, 0, 0)), Image.new("L", (64, 64), 255)):
        p = predictor.predict(blank)
        assert p.digit is None and p.reason == "empty"
        assert p.to_dict()["reason"] == "empty"


def test_batched_equals_one_by_one() -> None:
    predictor = Predictor.load()
    images = data.load_mnist("test").images[:32].astype(np.float32) / 255
    batched = predictor.predict_array(images)
    single = np.concatenate([predictor.predict_array(x[None]) for x in images])
    assert np.allclose(batched, single, atol=1e-5)


def test_predict_and_read_cli_json(tmp_path: Path) -> None:
    _drawn([(70, 60), (210, 60), (120, 230)]).save(tmp_path / "seven.png")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "digitrec",
            "predict",
            str(tmp_path / "seven.png"),
            str(tmp_path / "blank.png"),
            str(tmp_path / "broken.png"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"].split("/")[-1] for r in rows] == ["seven.png", "blank.png"]
    assert rows[0]["digit"] == 7 and len(rows[0]["probabilities"]) == 10
    assert rows[1]["digit"] is None and rows[1]["reason"] == "empty"
    assert result.returncode == 1 and "broken.png" in result.stderr
    assert "Traceback" not in result.stderr

    strip = next(REALWORLD.glob("numbers_*_canvas*.png"))
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "read", str(strip), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["text"] == "".join(str(d["digit"]) for d in row["digits"]) and row["digits"]
    xs = [d["box"][0] for d in row["digits"]]
    assert xs == sorted(xs)  # left to right, in the input image's pixels


@pytest.mark.parametrize(
    ("payload", "status"),
    [(b"", 415), (b"GIF89a\x00", 415), (b"\x00" * 1000, 415), (b"%PDF-1.4 not an image", 415)],
)
def test_broken_files_are_clear_errors(payload: bytes, status: int) -> None:
    with pytest.raises(ImageError) as caught:
        Predictor.load().predict(payload)
    assert caught.value.status == status and str(caught.value)


def test_realworld_val_split_accuracy() -> None:
    """Our own real-world set (val split here; the test split is for reporting)."""
    results = realworld.score_generated(Predictor.load(), "val")
    assert results["blank"].accuracy == 1.0  # blank images: never a digit
    for kind in ("canvas", "font", "photo", "inverted"):
        assert results[kind].accuracy >= 0.95, (kind, results[kind].confusions)
    assert results["numbers"].accuracy >= 0.9, results["numbers"].confusions


def test_real_dev_sets_read_other_writers() -> None:
    """Writers outside MNIST (data/real: Semeion, the Dutch map numerals), dev halves: the
    default model reads them, and answers null for few of them."""
    predictor = Predictor.load()
    for name, floor in (("semeion", 0.95), ("mfeat", 0.955)):
        score = realworld.score_digits(predictor, name, realworld.load_real(name))
        assert score.total >= 796
        assert score.accuracy >= floor, (name, score.accuracy, score.confusions.most_common(5))
        assert score.null_share <= 0.02, (name, score.null_share)


def test_a_missing_real_set_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "labels.csv").write_text("file,label\na.png,12\n")
    with pytest.raises(DataError, match="no such real set 'nope' \\(found: mine\\)"):
        realworld.load_real("nope", tmp_path)
    with pytest.raises(DataError, match="row 2"):
        realworld.load_real("mine", tmp_path)


def test_zoom_scales_about_the_centre() -> None:
    square = np.zeros((1, 28, 28), np.float32)
    square[0, 9:19, 9:19] = 1  # 10 px, centred
    np.testing.assert_allclose(zoom(square, 1.0), square, atol=1e-6)
    for factor, side in ((1.2, 12), (0.8, 8)):
        out = zoom(square, factor)[0]
        rows = np.flatnonzero(out.max(axis=1) > 0.5)
        assert rows[-1] - rows[0] + 1 == side, (factor, rows)
        assert abs(float((out.sum(1) * np.arange(28)).sum() / out.sum()) - 13.5) < 0.05
        assert out.sum() == pytest.approx(100 * factor**2, rel=0.1)  # ink grows with the area


def test_prediction_leaves_opencvs_thread_count_as_it_was() -> None:
    """Preprocessing runs OpenCV on one thread, and gives the caller's setting back after."""
    import cv2

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        answer = Predictor.load("fast").predict(_drawn([(70, 60), (210, 60), (120, 230)]))
        assert answer.digit == 7 and cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_one_thread_pins_blas_and_opencv_inside_and_restores_them() -> None:
    import cv2
    from threadpoolctl import threadpool_info, threadpool_limits

    from digitrec.predictor import one_thread

    def blas() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    before = cv2.getNumThreads()
    try:
        with threadpool_limits(2, user_api="blas"):
            cv2.setNumThreads(2)
            with one_thread():
                assert blas() == {1} and cv2.getNumThreads() == 1
                with one_thread():  # nested (a server worker's batch inside its lifetime pin)
                    assert blas() == {1} and cv2.getNumThreads() == 1
                assert blas() == {1} and cv2.getNumThreads() == 1
            assert blas() == {2} and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


# A process that reads numbers: pen numbers drawn as the page sends them (its logical size,
# 560x280), read three times over; RSS (MB) after each pass on stdout, one JSON list.
_READ_PASSES = """
import io, json, sys
from PIL import Image
from digitrec import realworld
from digitrec.predictor import Predictor

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))

pages = []
for sample in realworld.pen_numbers(count=int(sys.argv[1]), seed=3):
    drawn = Image.open(io.BytesIO(sample.data)).resize((560, 280), Image.Resampling.BOX)
    out = io.BytesIO()
    drawn.save(out, format="PNG")
    pages.append(out.getvalue())
predictor = Predictor.load()
after = []
for _ in range(3):
    for page in pages:
        predictor.read(page)
    after.append(rss_mb())
print(json.dumps(after))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_reading_numbers_again_takes_no_more_memory() -> None:
    """A server worker reads number after number: once it has read a few dozen, reading them
    again must not take more memory. Segmentation scores 2 to a few hundred candidate crops in
    one model call, and ONNX Runtime keeps the memory of its largest call (and a memory plan
    per batch size): in one call each, the second pass of these numbers took 200 MB more."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_PASSES, "25"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    first, second, third = json.loads(done.stdout)
    assert second - first < 25 and third - first < 25, (first, second, third)
