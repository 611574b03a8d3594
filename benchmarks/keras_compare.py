"""digitrec vs the original tutorial's Keras code: training images/s, test accuracy and
one-image prediction latency, on the same data, on the same machine, one after the other.

    python benchmarks/keras_compare.py --epochs 2          # quick check (~10 min on 2 cores)
    python benchmarks/keras_compare.py                     # the tutorial's 10 epochs

The Keras side runs benchmarks/keras_tutorial.py in a throwaway venv (TensorFlow is not a
digitrec dependency and never goes into digitrec's venv):

    python3 -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install tensorflow-cpu

digitrec's side trains the `seed` model (the tutorial's CNN, layer for layer) with the tutorial's
settings (Adam 1e-3, batch 50, 20% validation, seed 5) through digitrec.training.loop.train, reads
images/s from the run's history.json, then times one-image prediction on ONNX Runtime
(digitrec.predictor.Predictor): `predict_array` on one preprocessed 28x28 image and the full
`predict(png_bytes)` path (decode + preprocess + model) for a 280x280 canvas PNG, both for the
freshly trained seed model and the best shipped model.

Targets: training images/s >= 1.5x Keras; one-image prediction (predict_array) < 1 ms.
The CPU may be shared: the load average is printed before each phase and at the end.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import functools
import json
import os
import os.path
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERAS_SCRIPT = ROOT / "benchmarks" / "keras_tutorial.py"
DEFAULT_KERAS_PYTHON = "/tmp/kerasvenv/bin/python"
HOW_TO_MAKE_VENV = "python3 -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install tensorflow-cpu"


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


@functools.cache
def _keras_script():  # type: ignore[no-untyped-def]
    """keras_tutorial.py as a module, for its timing helper (it imports TensorFlow only in
    main, so loading it here needs none)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("keras_tutorial", KERAS_SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def timed_ms(fn, calls: int, warmup: int = 10) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return _keras_script().median_ms(fn, calls, warmup)


def run_keras(args: argparse.Namespace) -> dict:
    python = Path(args.keras_python)
    if not python.exists():
        sys.exit(
            f"keras_compare: no Keras interpreter at {python}.\n"
            f"Make the throwaway venv (outside the repo, not digitrec's venv):\n"
            f"    {HOW_TO_MAKE_VENV}\n"
            f"or pass --keras-python PATH, or --keras-json FILE from an earlier run."
        )
    cmd = [
        str(python),
        str(KERAS_SCRIPT),
        "--epochs",
        str(args.epochs),
        "--calls",
        str(args.calls),
        "--seed",
        str(args.seed),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print(f"# keras: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    last_json = None
    assert proc.stdout is not None
    for line in proc.stdout:  # Keras's per-epoch lines go on to stderr as they come
        if line.startswith("{"):
            last_json = line
        else:
            print(f"  keras| {line.rstrip()}", file=sys.stderr, flush=True)
    if proc.wait() != 0 or last_json is None:
        sys.exit(f"keras_compare: the Keras run failed (exit {proc.returncode}); see above")
    return json.loads(last_json)


def run_digitrec(args: argparse.Namespace, workdir: Path) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    from digitrec import shipped
    from digitrec.config import TrainConfig
    from digitrec.predictor import Predictor
    from digitrec.training.export import export_run
    from digitrec.training.loop import train
    from digitrec.vision import preprocess

    out = workdir / "seed-run"
    cfg = TrainConfig(
        model="seed",
        epochs=args.epochs,
        batch_size=50,
        val_fraction=0.2,
        seed=args.seed,
        threads=args.threads,
        output=str(out),
    )

    def progress(epoch: int, step: int, stats: dict) -> None:
        if step == -1:
            print(
                f"  digitrec| epoch {epoch + 1}: {stats['images'] / stats['seconds']:.0f} img/s "
                f"({stats['seconds']:.1f} s) loss {stats['loss']:.4f} "
                f"val_accuracy {stats['val_accuracy']:.4f}",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"# digitrec: train(TrainConfig(model='seed', epochs={args.epochs}, batch_size=50, "
        f"val_fraction=0.2, seed={args.seed}, threads={args.threads}))",
        file=sys.stderr,
        flush=True,
    )
    run = train(cfg, progress=progress)
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    per_epoch = [h["images"] / h["seconds"] for h in history]
    later = history[1:]

    # one-image prediction on ONNX Runtime: the seed model just trained, and the best shipped one
    export_run(out, check=False)
    png = canvas_png()
    image28 = preprocess.preprocess(png)
    assert image28 is not None
    one = image28[None]
    latency: dict[str, dict] = {}
    for label, ref in [("seed", shipped.resolve(out)), ("shipped", None)]:
        try:
            predictor = Predictor(ref) if ref is not None else Predictor.load(None)
        except Exception as e:  # no shipped model is not fatal for the benchmark
            print(f"# no {label} model: {e}", file=sys.stderr)
            continue
        latency[label] = {
            "model": predictor.name,
            "predict_array": timed_ms(lambda p=predictor: p.predict_array(one), args.calls),
            "predict_png": timed_ms(lambda p=predictor: p.predict(png), args.calls),
        }
    latency["preprocess_png"] = timed_ms(lambda: preprocess.preprocess(png), args.calls)

    return {
        "framework": "digitrec",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "threads": {
            "requested": args.threads,
            "torch": torch.get_num_threads(),
            "onnxruntime_intra_op": 1,
        },
        "parameters": metrics["parameters"],
        "train_images_per_epoch": history[0]["images"] if history else 0,
        "epoch_seconds": [h["seconds"] for h in history],
        "images_per_second_per_epoch": per_epoch,
        "images_per_second_first_epoch": per_epoch[0] if per_epoch else None,
        "images_per_second_steady": (
            sum(h["images"] for h in later) / sum(h["seconds"] for h in later) if later else None
        ),
        "images_per_second_all": metrics["images_per_second"],
        "train_seconds": metrics["train_seconds"],
        "val_accuracy": [h["val_accuracy"] for h in history],
        "test_accuracy": metrics["test_accuracy"],
        "latency": latency,
        "run_dir": str(run.directory),
    }


def fmt(v: float | None, spec: str = ".0f") -> str:
    return "n/a" if v is None else format(v, spec)


def report(k: dict, d: dict, machine: dict) -> str:
    steady_k, steady_d = k["images_per_second_steady"], d["images_per_second_steady"]
    all_k, all_d = k["images_per_second_all"], d["images_per_second_all"]
    ratio_steady = steady_d / steady_k if steady_k and steady_d else None
    ratio_all = all_d / all_k
    lat = d["latency"]
    rows = [
        (
            "training images/s, epoch 1",
            fmt(k["images_per_second_first_epoch"]),
            fmt(d["images_per_second_first_epoch"]),
            fmt(d["images_per_second_first_epoch"] / k["images_per_second_first_epoch"], ".2f")
            + "x",
        ),
        (
            "training images/s, epochs 2+",
            fmt(steady_k),
            fmt(steady_d),
            (fmt(ratio_steady, ".2f") + "x") if ratio_steady else "n/a",
        ),
        ("training images/s, all epochs", fmt(all_k), fmt(all_d), fmt(ratio_all, ".2f") + "x"),
        (
            "training seconds (train only)",
            fmt(sum(k["epoch_seconds"]), ".1f"),
            fmt(sum(d["epoch_seconds"]), ".1f"),
            "",
        ),
        (
            "test accuracy (t10k)",
            fmt(k["test_accuracy"], ".4f"),
            fmt(d["test_accuracy"], ".4f"),
            "",
        ),
        ("parameters", str(k["parameters"]), str(d["parameters"]), ""),
        (
            "1 image: Keras model.predict",
            fmt(k["latency_predict"]["median_ms"], ".3f") + " ms",
            "",
            "",
        ),
        ("1 image: Keras model(x)", fmt(k["latency_call"]["median_ms"], ".3f") + " ms", "", ""),
    ]
    for label in ("seed", "shipped"):
        if label in lat:
            name = lat[label]["model"] if label == "shipped" else "seed"
            rows.append(
                (
                    f"1 image: ORT predict_array ({name})",
                    "",
                    fmt(lat[label]["predict_array"]["median_ms"], ".3f") + " ms",
                    "",
                )
            )
            rows.append(
                (
                    f"1 image: predict(canvas PNG) ({name})",
                    "",
                    fmt(lat[label]["predict_png"]["median_ms"], ".3f") + " ms",
                    "",
                )
            )
    rows.append(
        (
            "preprocess(canvas PNG) alone",
            "",
            fmt(lat["preprocess_png"]["median_ms"], ".3f") + " ms",
            "",
        )
    )
    w0 = max(len(r[0]) for r in rows)
    lines = [f"{'':{w0}}  {'Keras':>12}  {'digitrec':>12}  {'digitrec/Keras':>14}"]
    lines += [f"{a:{w0}}  {b:>12}  {c:>12}  {e:>14}" for a, b, c, e in rows]
    target_train = "MET" if (ratio_steady or ratio_all) >= 1.5 else "NOT MET"
    seed_lat = lat.get("seed", {}).get("predict_array", {}).get("median_ms")
    target_lat = "MET" if seed_lat is not None and seed_lat < 1.0 else "NOT MET"
    lines += [
        "",
        f"targets: training >= 1.5x Keras (epochs 2+ where there are any): {target_train}; "
        f"one-image predict_array < 1 ms: {target_lat}",
        "latencies are medians of the timed calls after warm-up; Keras trains on the last 20% held "
        "out (48,000 images), digitrec on a stratified random 80% (48,000)",
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}; "
        f"date {machine['date']}",
        f"load average (1/5/15 min): before Keras {machine['load_before_keras']}, "
        f"before digitrec {machine['load_before_digitrec']}, at the end {machine['load_after']}",
        "keras side: "
        + ", ".join(f"{a} {b}" for a, b in k["versions"].items())
        + f"; threads intra {k['threads']['intra_op']} inter {k['threads']['inter_op']}"
        " (0 = TF default)",
        "digitrec side: "
        + ", ".join(f"{a} {b}" for a, b in d["versions"].items())
        + f"; torch threads {d['threads']['torch']}, ONNX Runtime intra-op 1",
        f"epochs {machine['epochs']}, batch 50, validation 0.2, seed {machine['seed']}",
    ]
    return "\n".join(lines)


def canvas_png(size: int = 280, width: int = 20) -> bytes:
    """A 7 drawn on a transparent canvas, as the web page sends it: the benchmarks' input."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    s = size / 280
    points = [(65 * s, 60 * s), (215 * s, 60 * s), (125 * s, 240 * s)]
    ImageDraw.Draw(image).line(points, fill=(17, 17, 17, 255), width=width, joint="curve")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10, help="10 = the tutorial; 2 for a quick run")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="training threads for both sides; 0 = each library's default (all cores)",
    )
    p.add_argument(
        "--keras-python",
        default=DEFAULT_KERAS_PYTHON,
        help=f"the Keras venv's python (default {DEFAULT_KERAS_PYTHON})",
    )
    p.add_argument(
        "--keras-json",
        type=Path,
        help="reuse the JSON line of an earlier keras_tutorial.py run, not running it",
    )
    p.add_argument("--calls", type=int, default=50, help="timed one-image calls per method")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--json-out", type=Path, help="also write every figure here as JSON")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from digitrec.machine import cpu_name

    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "epochs": args.epochs,
        "seed": args.seed,
        "load_before_keras": loadavg(),
    }
    if args.keras_json:
        keras_result = json.loads(args.keras_json.read_text().strip().splitlines()[-1])
    else:
        if not Path(args.keras_python).exists():  # fail before the long digitrec run too
            run_keras(args)
        keras_result = run_keras(args)
    machine["load_before_digitrec"] = loadavg()
    with tempfile.TemporaryDirectory(prefix="keras-compare-") as tmp:
        digitrec_result = run_digitrec(args, Path(tmp))
    machine["load_after"] = loadavg()
    print(report(keras_result, digitrec_result, machine))
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {"machine": machine, "keras": keras_result, "digitrec": digitrec_result}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
