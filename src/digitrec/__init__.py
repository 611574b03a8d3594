"""digitrec: handwritten digit recognition, from MNIST to a finger on a phone."""

__version__ = "0.1.0"
