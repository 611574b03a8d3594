"""digitrec: handwritten digit recognition, from MNIST to a finger on a phone."""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while they wait starve each other when another process holds a core:
# on a shared 2-core machine that made 2-thread training 2-4x slower than 1 thread. Passive
# waiting avoids it. Set before torch starts its thread pool (digitrec imports torch lazily).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
