"""The original tutorial's Keras CNN, timed: the baseline for benchmarks/keras_compare.py.

Runs under a throwaway Keras venv, never digitrec's (digitrec does not depend on TensorFlow):

    python3 -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install tensorflow-cpu
    /tmp/kerasvenv/bin/python benchmarks/keras_tutorial.py --epochs 10

What it does, as the Kaggle "Digit Recognizer" notebook did:
  - reads data/mnist/*.gz with gzip + NumPy only (IDX: 16-byte header for images, 8 for labels),
    images / 255 as (N, 28, 28, 1) float32, labels one-hot;
  - builds the tutorial's Sequential model exactly (43,578 parameters), Adam, categorical
    cross-entropy, fit(batch_size=50, epochs=E, validation_split=0.2): Keras takes the *last*
    20% of the 60,000 as validation, so it trains on 48,000 images per epoch;
  - times each epoch's training (epoch begin -> validation begin, so validation is excluded;
    digitrec's history.json "seconds" excludes it too) and reports images/s for the first epoch
    (includes tf.function tracing) and for the later epochs separately;
  - test accuracy on the 10,000 t10k images;
  - one-image latency: `model.predict(x[None])` (what the tutorial did) and
    `model(x[None], training=False)`, median of --calls calls after warm-up.

The last line on stdout is one JSON object with every figure (keras_compare.py parses it).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import gzip
import json
import os
import os.path
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load_mnist(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz", 8)
    if len(images) != len(labels):
        raise SystemExit(f"{data_dir}: {len(images)} images but {len(labels)} labels ({split})")
    return images, labels


def build_model(keras):  # type: ignore[no-untyped-def]
    from keras import layers

    # The tutorial's model, layer for layer (input_shape given as an Input layer, Keras 3 style).
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
            layers.MaxPool2D(2, 2),
            layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
            layers.MaxPool2D(2, 2),
            layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
            layers.MaxPool2D(2, 2),
            layers.Dropout(0.5),
            layers.Flatten(),
            layers.Dense(128),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def median_ms(fn, calls: int, warmup: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
        "calls": calls,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "mnist")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads; 0 = TensorFlow's default",
    )
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--calls", type=int, default=50, help="timed one-image calls per method")
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="use only the first N training images (smoke tests); 0 = all 60,000",
    )
    p.add_argument(
        "--verbose",
        type=int,
        default=2,
        help="Keras fit verbosity (the notebook used 1, a per-step progress bar; "
        "2 prints one line per epoch and costs less)",
    )
    args = p.parse_args(argv)

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    keras.utils.set_random_seed(args.seed)

    t0 = time.perf_counter()
    x_all, y_all = load_mnist(args.data, "train")
    if args.limit:
        x_all, y_all = x_all[: args.limit], y_all[: args.limit]
    x_test, y_test = load_mnist(args.data, "test")
    x = (x_all.astype(np.float32) / 255.0)[..., None]
    y = keras.utils.to_categorical(y_all, 10)
    xt = (x_test.astype(np.float32) / 255.0)[..., None]
    load_seconds = time.perf_counter() - t0

    model = build_model(keras)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    parameters = int(model.count_params())

    class EpochTimer(keras.callbacks.Callback):
        """Training seconds per epoch: epoch begin -> validation begin (else epoch end)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t = 0.0
            self._val_started = False

        def on_epoch_begin(self, epoch, logs=None):  # type: ignore[no-untyped-def]
            self._val_started = False
            self._t = time.perf_counter()

        def on_test_begin(self, logs=None):  # type: ignore[no-untyped-def]
            if not self._val_started:
                self._val_started = True
                self.seconds.append(time.perf_counter() - self._t)

        def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
            if not self._val_started:
                self.seconds.append(time.perf_counter() - self._t)

    timer = EpochTimer()
    n_train = len(x) - int(len(x) * args.validation_split)  # Keras: the last fraction validates
    t_fit = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=args.validation_split,
        callbacks=[timer],
        verbose=args.verbose,
    )
    fit_seconds = time.perf_counter() - t_fit

    probs = model.predict(xt, batch_size=1000, verbose=0)
    test_accuracy = float((probs.argmax(1) == y_test).mean())

    one = xt[0]
    predict_latency = median_ms(lambda: model.predict(one[None], verbose=0), args.calls, 5)
    one_tensor = tf.constant(one[None])
    call_latency = median_ms(lambda: model(one_tensor, training=False).numpy(), args.calls, 5)

    per_epoch = [n_train / s for s in timer.seconds]
    later = timer.seconds[1:]
    result = {
        "framework": "keras",
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "backend": keras.backend.backend(),
        },
        "threads": {
            "requested": args.threads,
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "parameters": parameters,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_images_per_epoch": n_train,
        "epoch_seconds": timer.seconds,
        "images_per_second_per_epoch": per_epoch,
        "images_per_second_first_epoch": per_epoch[0] if per_epoch else None,
        # steady state: epochs after the first (the first one traces the tf.function graphs)
        "images_per_second_steady": (n_train * len(later) / sum(later)) if later else None,
        "images_per_second_all": n_train * len(timer.seconds) / sum(timer.seconds),
        "fit_seconds_with_validation": fit_seconds,
        "load_seconds": load_seconds,
        "val_accuracy": [float(v) for v in history.history.get("val_accuracy", [])],
        "test_accuracy": test_accuracy,
        "latency_predict": predict_latency,
        "latency_call": call_latency,
    }
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
