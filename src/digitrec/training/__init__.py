"""Everything that needs torch: the training configuration and recipes (config), optimizers and
schedules (optim), the epoch loop (loop), ensembles (ensemble), architectures (models),
augmentation and training-data synthesis (augment, styles, strokes), ONNX export (export) and
shipping a run as a model (ship).

Nothing here is imported by serving (`digitrec.serve`, `digitrec.predictor`, `digitrec.vision`);
tests/test_torch_boundary.py checks it. Import the modules themselves (this file imports none,
so `digitrec.training.config` stays torch-free).
"""
