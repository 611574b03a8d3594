"""Everything that needs torch: optimizers and schedules (optim), the epoch loop (loop),
ensembles (ensemble), architectures (models), augmentation and training-data synthesis (augment,
styles, strokes), ONNX export (export) and shipping a run as a model (ship).

Nothing here is imported by serving (`digitrec.serve`, `digitrec.predictor`, `digitrec.vision`);
tests/test_torch_boundary.py checks it. The configuration a run is given and the recipes are
torch-free, below this package: `digitrec.config`, read by the run directory (`digitrec.runs`)
and the CLI. Import the modules themselves (this file imports none).
"""
