"""Pure image code, no torch: decoding and bounds (preprocess.load_image), the path from any
photo or drawing to a 28x28 MNIST-framed digit (preprocess), NumPy/OpenCV helpers (imageops), a
canvas PNG's alpha plane (png), an image's size from its header (header), and cutting a
written number into digits (segment).

Serving and the core install use only this subpackage and the ONNX predictor; training code
lives in `digitrec.training`.
"""
