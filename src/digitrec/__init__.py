"""digitrec: handwritten digit recognition, from MNIST to a finger on a phone.

    import digitrec
    model = digitrec.load()                      # the best shipped model
    model.predict("seven.png").digit             # 7
    model.read("cheque-amount.jpg").text         # "1907"
    run = digitrec.fit("fast", max_steps=20)     # a run directory, as `digitrec train` writes

`load` gives a `Model`; its answers are `Prediction`, `Reading` and `Report` objects whose
fields are the CLI's JSON fields. `digitrec.data` reads and writes datasets (MNIST, Kaggle CSV,
NPZ, image folders); `digitrec.errors` holds the exceptions. Predicting and reading need only
the core install (ONNX Runtime, no torch); `fit` needs the `train` extra.
"""

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# OpenMP threads that spin while they wait starve each other when another process holds a core:
# on a shared 2-core machine that made 2-thread training 2-4x slower than 1 thread. Passive
# waiting avoids it. Set before torch starts its thread pool (digitrec imports torch lazily).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The Python API (api.py), loaded on first use: `import digitrec` stays light, and a serving
# install (no torch) can `digitrec.load()` and predict.
__all__ = ["Ink", "Model", "Prediction", "Reading", "Report", "fit", "load"]

if TYPE_CHECKING:
    from digitrec.api import Ink, Model, Prediction, Reading, Report, fit, load


def __getattr__(name: str) -> object:
    if name in __all__:
        from digitrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'digitrec' has no attribute {name!r}")
