"""8-bit integer ONNX graphs: ONNX Runtime's static quantization of an exported model.

A float32 3x3 convolution already runs near this CPU's peak (AVX2 FMA, ~90 GFLOP/s a core),
so the only way to make the same network cheaper is fewer bits: ONNX Runtime's integer
kernels make it cheaper per image with the same validation accuracy (benchmarks/inference.py;
the figures are in BENCHMARKS.md, "Inference").

What is quantized, and how (choices measured on `best`, validation split only):
- Convolutions, the dense layer, max- and average-pooling, in QDQ form (ONNX Runtime fuses each
  QuantizeLinear -> op -> DequantizeLinear into its integer kernel). Pooling in integers keeps
  the tensors in uint8 between the convolutions instead of converting back and forth.
- Weights per output channel (int8, symmetric), activations per tensor (uint8), their ranges
  read from the training images (min-max calibration). Never the validation or test images.
- Left in float: convolutions that read a single channel (the image itself), which ran ~5x
  slower in integers (a one-channel im2col has nothing to gain), and the calibrated softmax at
  the end, so the probabilities keep their precision (quantized, they would move in steps of
  1/255 and the calibration would be lost).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from digitrec.errors import ModelError

QUANTIZED_OPS = ["Conv", "Gemm", "MaxPool", "GlobalAveragePool"]
CALIBRATION_IMAGES = 512
DESCRIPTION = (  # for the model card
    "ONNX Runtime static quantization (QDQ): int8 weights per channel, uint8 activations "
    f"calibrated on {CALIBRATION_IMAGES} images of the training split; convolutions on the "
    "image and the softmax stay float"
)


def single_channel_convs(model: object) -> list[str]:
    """Names of the Conv nodes whose weight has one input channel (those reading the image)."""
    graph = model.graph  # type: ignore[attr-defined]
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv"
        and len(shapes.get(node.input[1], [])) == 4
        and shapes[node.input[1]][1] == 1
    ]


def quantize_int8(onnx_bytes: bytes, calibration: np.ndarray, batch: int = 32) -> bytes:
    """An int8 version of a float ONNX graph (input "image", (N, 1, 28, 28) float in [0, 1]).

    `calibration`: (N, 28, 28) uint8 training images, ink high, for the activation ranges.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if calibration.ndim != 3 or calibration.shape[1:] != (28, 28) or len(calibration) == 0:
        raise ModelError(f"calibration images must be N x 28 x 28, got {calibration.shape}")
    x = calibration[:, None].astype(np.float32) / 255

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = iter(
                {"image": x[i : i + batch]} for i in range(0, len(x), batch)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_bytes)
        # Shape inference and graph clean-up first, as ONNX Runtime's quantization docs advise.
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre),
            str(out),
            Batches(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=single_channel_convs(onnx.load(str(pre))),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return out.read_bytes()
