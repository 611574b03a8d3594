"""The sequence reader: a written number read whole, without cutting it into digits.

A small CNN slides along the height-normalised line (vision/line.py: 32 px tall) and gives a
class per FRAME_STRIDE columns, a digit or the CTC blank; CTC training needs only each line's
text, never where its digits are. The training lines are made here, on the fly:

- digits: real pen-stroke writers' digits (data/real/pendigits, chosen by writer: `writers`),
  each drawn several ways (training/pen.vary, a round brush 4-22% of the digit's height), and
  MNIST training-split digits (never the validation split nor the 10,000 test images);
- joined as people write a number (one source per line): 1-8 digits, one height give or take,
  gaps from wide to touching and overlapping, the baseline drifting, a shared slant;
- with what people write around a number and the reader must skip: `.`, `,`, `-`, `=`, `/`,
  a closing dash, an underline, specks;
- seen as the ink map of a canvas or a photo, or of a low-resolution capture (the digits 8-32
  px tall, enlarged blocky or smooth), fainter or bolder.

    python -m digitrec.training.sequence --minutes 40 --out runs/reader   (one thread)

The run writes model.safetensors and config.json there; `export` writes the ONNX graph
(input "line" (N, 1, 32, W), output "probabilities" (N, W/4, 11), softmax, blank last).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from digitrec import data
from digitrec.files import save_weights, write_json
from digitrec.vision import canvas
from digitrec.vision import line as L

log = logging.getLogger(__name__)
GLYPH_HEIGHT = 40  # px: digits are drawn this tall, then scaled with their line
OVERLAP_MOST = 0.4  # of the narrower of two neighbours that may lie under the other


@dataclass(frozen=True)
class Config:
    writers: tuple[int, ...] = (1, 2, 3, 4, 5)  # pen-stroke writers that may train
    pen_variants: int = 8  # ways each pen digit is drawn
    pen_share: float = 0.5  # of lines written with pen digits (the rest: MNIST digits)
    lengths: tuple[int, int] = (1, 8)  # digits per line
    batch: int = 48
    lr: float = 2e-3  # peak (Adam, one-cycle)
    minutes: float = 40.0  # wall-clock training budget
    steps: int = (
        100_000  # schedule length in steps; the budget is whichever of steps and minutes ends first
    )
    channels: tuple[int, ...] = (16, 32, 64, 64, 96)
    seed: int = 0
    widen: float = 0.0  # share of lines narrowed or widened
    init: str = ""  # a run directory whose weights to start from ("" for none)


# ---------------------------------------------------------------- the model


def _conv(a: int, b: int) -> list[nn.Module]:
    return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]


class Reader(nn.Module):
    """(N, 1, 32, W) line -> (N, 11, W/4) class logits per frame (blank last)."""

    def __init__(self, channels: tuple[int, ...] = Config.channels):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.features = nn.Sequential(
            *_conv(1, c1), nn.MaxPool2d(2),  # (c1, 16, W/2)
            *_conv(c1, c2), nn.MaxPool2d(2),  # (c2, 8, W/4)
            *_conv(c2, c3), *_conv(c3, c4), nn.MaxPool2d((2, 1)),  # (c4, 4, W/4)
            *_conv(c4, c5), nn.MaxPool2d((4, 1)),  # (c5, 1, W/4)
        )  # fmt: skip
        self.head = nn.Sequential(  # along the line: each frame sees ~3 digits' width
            nn.Conv1d(c5, c5, 3, padding=1, bias=False), nn.BatchNorm1d(c5), nn.ReLU(inplace=True),
            nn.Conv1d(c5, c5, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(c5),
            nn.ReLU(inplace=True), nn.Conv1d(c5, L.BLANK + 1, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).squeeze(2))


class Softmaxed(nn.Module):
    """What ships: (N, 1, 32, W) -> (N, W/4, 11) probabilities."""

    def __init__(self, reader: Reader):
        super().__init__()
        self.reader = reader

    def forward(self, line: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.reader(line), dim=1).transpose(1, 2)


# ---------------------------------------------------------------- digits to write with


def pen_glyphs(
    writers: tuple[int, ...], variants: int, seed: int
) -> dict[int, list[tuple[int, np.ndarray]]]:
    """{writer: [(label, (h, w) float32 ink)]}: each pen digit drawn `variants` ways."""
    from digitrec.training import pen

    rng = np.random.default_rng(seed)
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    g = GLYPH_HEIGHT
    for d in pen.load(writers):
        for _ in range(variants):
            brush = g * rng.uniform(0.04, 0.22)
            m = brush
            points = canvas.place(pen.vary(d.strokes, rng), (m, m, 1.6 * g, g))
            alpha = canvas.draw_alpha(points, brush, (int(1.6 * g + 2 * m) + 2, int(g + 2 * m) + 2))
            out.setdefault(d.writer, []).append((d.label, _tight(alpha.astype(np.float32) / 255)))
    return out


def _tight(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.max(axis=1) > 0.1)
    cols = np.flatnonzero(ink.max(axis=0) > 0.1)
    if rows.size == 0:
        return ink
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def mnist_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """MNIST training digits outside the validation split (split seed 0, the shipped models')."""
    train, _ = data.split_validation(data.load_mnist("train"), 0.1, 0)
    assert train.labels is not None
    return train.images, train.labels


# ---------------------------------------------------------------- a line


def _mark(kind: str, h: float, stroke: float, rng: np.random.Generator) -> np.ndarray:
    """A non-digit mark people write around numbers, as ink (its own box), `h` the digit height."""
    t = max(1, round(stroke))
    if kind == ".":
        r = max(1, round(stroke * rng.uniform(0.5, 0.9)))
        img = np.zeros((2 * r + 3, 2 * r + 3), np.float32)
        cv2.circle(img, (r + 1, r + 1), r, 1.0, -1, cv2.LINE_AA)
    elif kind == ",":
        w, hh = max(3, round(h * 0.12)), max(4, round(h * rng.uniform(0.2, 0.35)))
        img = np.zeros((hh + 2 * t, w + 2 * t), np.float32)
        cv2.line(img, (w + t - 1, t), (t, hh + t - 1), 1.0, t, cv2.LINE_AA)
    elif kind in ("-", "~"):
        w = max(4, round(h * rng.uniform(0.25, 0.6 if kind == "-" else 1.5)))
        img = np.zeros((t + 4, w + 2 * t), np.float32)
        cv2.line(
            img,
            (t, 2 + t // 2),
            (w + t, 2 + t // 2 + int(rng.integers(-1, 2))),
            1.0,
            t,
            cv2.LINE_AA,
        )
    elif kind == "=":
        w, sep = (
            max(4, round(h * rng.uniform(0.3, 0.6))),
            max(t + 2, round(h * rng.uniform(0.15, 0.3))),
        )
        img = np.zeros((sep + 2 * t + 2, w + 2 * t), np.float32)
        cv2.line(img, (t, t), (w + t, t), 1.0, t, cv2.LINE_AA)
        cv2.line(img, (t, t + sep), (w + t, t + sep), 1.0, t, cv2.LINE_AA)
    else:  # "/": leaning well over, unlike a 1
        hh = max(6, round(h * rng.uniform(0.6, 1.0)))
        w = round(hh * rng.uniform(0.6, 1.0))
        img = np.zeros((hh + 2 * t, w + 2 * t), np.float32)
        cv2.line(img, (w + t, t), (t, hh + t), 1.0, t, cv2.LINE_AA)
    return img


MARKS = (".", ",", "-", "=", "/", "~")


def write_line(glyphs: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Digits (each (h, w) ink) written side by side as one number, marks and mess added:
    (H, W) float32 ink map of the whole."""
    g = GLYPH_HEIGHT
    stroke = max(1.5, float(np.median([x.sum() / max(x.shape[0], 1) / 3 for x in glyphs])))
    pieces: list[tuple[np.ndarray, float, bool]] = []  # (ink, top, is_digit)
    for x in glyphs:
        h = g * rng.uniform(0.85, 1.1)
        w = max(2, round(x.shape[1] * h / x.shape[0]))
        pieces.append(
            (
                cv2.resize(x, (w, round(h)), interpolation=cv2.INTER_AREA),
                g - h + rng.uniform(-0.08, 0.08) * g,
                True,
            )
        )
    if rng.random() < 0.3:  # separators: a thousands mark inside, or an end mark
        kind = MARKS[int(rng.integers(len(MARKS)))]
        mark = _mark(kind, g, stroke, rng)
        if kind in (".", ","):
            top = g - mark.shape[0] * (0.3 if kind == "," else 0.8) + rng.uniform(-2, 2)
        elif kind == "/":
            top = g - mark.shape[0] + rng.uniform(-3, 3)
        else:
            top = g * rng.uniform(0.35, 0.65) - mark.shape[0] / 2
        at = (
            int(rng.integers(1, len(pieces) + 1))
            if kind in (".", ",") and len(pieces) > 1
            else len(pieces)
        )
        if rng.random() < 0.3 and kind not in (".", ","):
            at = 0
        pieces.insert(at, (mark, top, False))
    # x positions: the gap between inked boxes, in digit heights; an overlap never covers more
    # than OVERLAP_MOST of the narrower neighbour, so no digit (a thin 1) hides in another's ink
    xs: list[float] = []
    pos = 0.0
    for i, (ink, _, _) in enumerate(pieces):
        xs.append(pos)
        u = rng.random()
        gap = (
            rng.uniform(0.05, 0.6)
            if u < 0.55
            else rng.uniform(-0.05, 0.05)
            if u < 0.8
            else rng.uniform(-0.2, -0.05)
        )
        if i + 1 < len(pieces):
            narrower = min(ink.shape[1], pieces[i + 1][0].shape[1])
            gap = max(gap, -OVERLAP_MOST * narrower / g)
        pos += ink.shape[1] + gap * g
    width = int(max(x0 + p[0].shape[1] for x0, p in zip(xs, pieces, strict=True))) + 4
    tops = [p[1] for p in pieces]
    y_min = min(0.0, min(tops))
    height = int(max(t + p[0].shape[0] for t, p in zip(tops, pieces, strict=True)) - y_min) + 4
    out = np.zeros((height, width), np.float32)
    for x0, (ink, top, _) in zip(xs, pieces, strict=True):
        r, c = int(top - y_min) + 2, max(0, int(x0)) + 2
        region = out[r : r + ink.shape[0], c : c + ink.shape[1]]
        np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)
    if rng.random() < 0.1:  # underlined
        y = height - 1 - int(rng.integers(0, 3))
        out = np.vstack([out, np.zeros((int(stroke) + 6, width), np.float32)])
        cv2.line(
            out,
            (int(rng.integers(0, 8)), y + 3),
            (width - int(rng.integers(0, 8)), y + 3 + int(rng.integers(-2, 3))),
            1.0,
            max(1, round(stroke)),
            cv2.LINE_AA,
        )
    if rng.random() < 0.15:  # specks
        for _ in range(int(rng.integers(1, 4))):
            cv2.circle(
                out,
                (int(rng.integers(0, out.shape[1])), int(rng.integers(0, out.shape[0]))),
                int(rng.integers(1, 3)),
                float(rng.uniform(0.4, 1)),
                -1,
            )
    return _slant(out, rng.uniform(-0.3, 0.3))


def _slant(ink: np.ndarray, shear: float) -> np.ndarray:
    """The whole line slanted: the top moved `shear` x height to the right of the bottom."""
    h, w = ink.shape
    m = np.array([[1, -shear, max(shear, 0.0) * h], [0, 1, 0]], np.float32)
    return cv2.warpAffine(ink, m, (w + int(abs(shear) * h) + 1, h), flags=cv2.INTER_LINEAR)


def seen(ink: np.ndarray, rng: np.random.Generator, cfg_widen: float = 0.0) -> np.ndarray:
    """The line as the reader gets it: (HEIGHT, W) from line.normalise, after the capture;
    a `cfg_widen` share of lines narrowed or widened (0.74-1.35 x: wide and narrow hands)."""
    u = rng.random()
    if u < 0.3:  # a low-resolution capture enlarged: the digits 8-32 px tall
        h, w = ink.shape
        f = rng.uniform(8, 32) / GLYPH_HEIGHT
        small = cv2.resize(
            ink, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA
        )
        g = rng.uniform(40, 100) / (GLYPH_HEIGHT * f)
        interp = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
        ink = cv2.resize(
            small, (round(small.shape[1] * g), round(small.shape[0] * g)), interpolation=interp
        )
        if rng.random() < 0.5:  # the ink map of a photo: contrast stretched, weak ink dropped
            ink = np.clip((ink - 0.15) / 0.6, 0, 1)
    elif u < 0.45:  # bolder or thinner strokes
        k = np.ones((3, 3), np.uint8)
        ink = cv2.dilate(ink, k) if rng.random() < 0.5 else cv2.erode(ink, k)
    if rng.random() < 0.2:  # faint ink
        ink = ink * rng.uniform(0.5, 1.0)
    line = L.normalise(
        ink, float(np.exp(rng.uniform(-0.3, 0.3))) if rng.random() < cfg_widen else 1.0
    )
    assert line is not None
    return line.image


class Lines:
    """An endless, seeded stream of (line, text) pairs."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.pen = pen_glyphs(cfg.writers, cfg.pen_variants, cfg.seed) if cfg.writers else {}
        self.mnist, self.mnist_labels = mnist_glyphs()

    def one(self) -> tuple[np.ndarray, str]:
        rng, cfg = self.rng, self.cfg
        k = int(rng.integers(cfg.lengths[0], cfg.lengths[1] + 1))
        if self.pen and rng.random() < cfg.pen_share:
            pool = self.pen[int(rng.choice(sorted(self.pen)))]
            picks = [pool[int(i)] for i in rng.integers(0, len(pool), k)]
            labels, glyphs = [p[0] for p in picks], [p[1] for p in picks]
        else:
            idx = rng.integers(0, len(self.mnist), k)
            labels = [int(self.mnist_labels[i]) for i in idx]
            glyphs = [_tight(self.mnist[i].astype(np.float32) / 255) for i in idx]
            glyphs = [
                cv2.resize(x, (max(1, round(x.shape[1] * GLYPH_HEIGHT / x.shape[0])), GLYPH_HEIGHT))
                for x in glyphs
            ]
        return seen(write_line(glyphs, rng), rng, cfg.widen), "".join(map(str, labels))

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 1, 32, Wmax) lines, concatenated targets, input (frame) lengths, target lengths."""
        pairs = [self.one() for _ in range(n)]
        wmax = max(p[0].shape[1] for p in pairs)
        wmax += -wmax % L.FRAME_STRIDE
        x = np.zeros((n, 1, L.HEIGHT, wmax), np.float32)
        for i, (img, _) in enumerate(pairs):
            x[i, 0, :, : img.shape[1]] = img
        targets = torch.tensor([int(c) for _, t in pairs for c in t], dtype=torch.long)
        frames = torch.tensor([p[0].shape[1] // L.FRAME_STRIDE for p in pairs], dtype=torch.long)
        lengths = torch.tensor([len(t) for _, t in pairs], dtype=torch.long)
        return torch.from_numpy(x), targets, frames, lengths


# ---------------------------------------------------------------- training


def train(cfg: Config, out: Path) -> dict[str, float]:
    """Train for cfg.minutes (or cfg.steps), checkpointing to out/model.safetensors."""
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", asdict(cfg))
    t0 = time.perf_counter()
    lines = Lines(cfg)
    log.info("glyphs ready in %.0f s", time.perf_counter() - t0)
    model = load(Path(cfg.init)).train() if cfg.init else Reader(cfg.channels)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=L.BLANK, zero_infinity=True)
    start, seen_n, loss_avg, right = time.perf_counter(), 0, 0.0, 0.0
    metrics: dict[str, float] = {}
    for step in range(cfg.steps):
        # learning rate: warm up, then cosine down over the wall-clock budget (the machine is
        # shared, so steps per minute vary); whichever of steps and minutes ends first
        done = max(step / cfg.steps, (time.perf_counter() - start) / 60 / cfg.minutes)
        lr = (
            cfg.lr
            * min(1.0, step / (20 if cfg.init else 100))
            * 0.5
            * (1 + math.cos(math.pi * min(done, 1.0)))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        # data, forward/backward, step
        x, targets, frames, lengths = lines.batch(cfg.batch)
        model.train()
        logits = model(x)  # (N, 11, T)
        logp = logits.log_softmax(1).permute(2, 0, 1)  # (T, N, 11)
        loss = ctc(logp, targets, frames, lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        seen_n += len(x)
        loss_avg = 0.98 * loss_avg + 0.02 * loss.item() if step else loss.item()
        # log and checkpoint
        if step % 50 == 0 or step == cfg.steps - 1:
            right = _exact(logits.detach(), targets, frames, lengths)
            minutes = (time.perf_counter() - start) / 60
            log.info("step %d  lines %d  loss %.3f  exact(batch) %.2f  lr %.2e  %.1f min",
                     step, seen_n, loss_avg, right, lr, minutes)  # fmt: skip
            save_weights(out / "model.safetensors", model.state_dict())
            if done >= 1.0:
                log.info("time budget reached")
                break
    metrics = {
        "steps": step + 1,
        "lines": seen_n,
        "loss": loss_avg,
        "train_seconds": time.perf_counter() - t0,
    }
    save_weights(out / "model.safetensors", model.state_dict())
    write_json(out / "metrics.json", metrics)
    return metrics


def _exact(
    logits: torch.Tensor, targets: torch.Tensor, frames: torch.Tensor, lengths: torch.Tensor
) -> float:
    probs = logits.softmax(1).transpose(1, 2).numpy()
    texts, k = [], 0
    for n in lengths.tolist():
        texts.append("".join(map(str, targets[k : k + n].tolist())))
        k += n
    got = [
        "".join(str(c.digit) for c in L.decode(p[:f]))
        for p, f in zip(probs, frames.tolist(), strict=True)
    ]
    return float(np.mean([a == b for a, b in zip(got, texts, strict=True)]))


def load(run: Path) -> Reader:
    from digitrec.files import load_weights

    cfg = json.loads((run / "config.json").read_text())
    model = Reader(tuple(cfg["channels"]))
    model.load_state_dict(load_weights(run / "model.safetensors"))
    return model.eval()


def export(run: Path) -> bytes:
    """run/model.safetensors -> an ONNX graph, checked against torch on ONNX Runtime."""
    import onnxruntime as ort

    module = Softmaxed(load(run)).eval()
    f = io.BytesIO()
    torch.onnx.export(
        module, (torch.zeros(1, 1, L.HEIGHT, 128),), f, input_names=["line"],  # type: ignore[arg-type]
        output_names=["probabilities"], dynamic_axes={"line": {0: "batch", 3: "width"},
        "probabilities": {0: "batch", 1: "frames"}}, dynamo=False, opset_version=17,
    )  # fmt: skip
    blob = f.getvalue()
    x = torch.rand(2, 1, L.HEIGHT, 200)
    with torch.no_grad():
        expected = module(x).numpy()
    got = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(
        None, {"line": x.numpy()}
    )[0]
    if not np.allclose(expected, got, atol=1e-4):
        raise RuntimeError(f"ONNX Runtime disagrees with torch by {np.abs(expected - got).max()}")
    return blob


def ship(run: Path, models: Path, thresholds: dict[str, float], command: str) -> Path:
    """run -> models/reader.onnx + reader.json (the card: what it is, how it was made, its
    thresholds and the ONNX file's sha256, which loading checks), written by ModelsDir."""
    import platform

    from digitrec.models_dir import ModelsDir

    folder = ModelsDir(models)
    files = folder.write_model("reader", export(run))
    cfg = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    card = {
        "name": "reader",
        "kind": "sequence-reader",
        "architecture": "CNN over the 32-px line (5 conv 3x3 + BN + ReLU, pooled to 1 x W/4), "
        "2 conv1d along the line, CTC over 10 digits + blank",
        "parameters": sum(p.numel() for p in load(run).parameters()),
        "input": "line: (N, 1, 32, W) float [0, 1] ink high (vision/line.normalise)",
        "output": "probabilities: (N, W/4, 11), blank last",
        "command": command,
        "config": cfg,
        "training": {
            "pen_writers": cfg["writers"],
            "mnist": "training split less the validation split (split seed 0)",
            "steps": metrics["steps"],
            "lines": metrics["lines"],
            "train_seconds": round(metrics["train_seconds"]),
            "hardware": platform.processor() or platform.machine(),
            "threads": 1,
        },
        **thresholds,
        "sha256": files,
        "date": time.strftime("%Y-%m-%d"),
    }
    folder.write_card(card)
    return folder.onnx("reader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/reader"), help="run directory (default: runs/reader)"
    )
    parser.add_argument(
        "--minutes", type=float, default=Config.minutes, help="wall-clock budget (default: 40)"
    )
    parser.add_argument(
        "--steps", type=int, default=Config.steps, help="schedule length in steps (default: 100000)"
    )
    parser.add_argument(
        "--writers", default="1,2,3,4,5", help="pen writers that train (default: 1,2,3,4,5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument(
        "--lr", type=float, default=Config.lr, help="peak learning rate (default: 2e-3)"
    )
    parser.add_argument(
        "--widen", type=float, default=0.0, help="share of lines narrowed or widened (default: 0)"
    )
    parser.add_argument("--init", default="", help="start from this run's weights (default: none)")
    parser.add_argument(
        "--ship", type=Path, default=None, help="only ship the run to this models folder"
    )
    parser.add_argument(
        "--uncertain-below", type=float, default=0.5, help="with --ship (default: 0.5)"
    )
    parser.add_argument("--agree-below", type=float, default=0.5, help="with --ship (default: 0.5)")
    parser.add_argument(
        "--command", default="", help="with --ship: the command that trained the run"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    if args.ship:
        thresholds = {"uncertain_below": args.uncertain_below, "agree_below": args.agree_below}
        ship(args.out, args.ship, thresholds, args.command)
        return
    writers = tuple(int(w) for w in args.writers.split(",") if w)
    cfg = Config(
        writers=writers,
        minutes=args.minutes,
        steps=args.steps,
        seed=args.seed,
        lr=args.lr,
        widen=args.widen,
        init=args.init,
    )
    log.info("%s", cfg)
    log.info("parameters %d", sum(p.numel() for p in Reader(cfg.channels).parameters()))
    train(cfg, args.out)


if __name__ == "__main__":
    main()
