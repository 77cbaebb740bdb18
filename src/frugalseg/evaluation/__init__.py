"""Evaluation: volume inference, per-volume metrics as the literature computes them, reports, NIfTI output.

Submodules are imported on use (``from frugalseg.evaluation.metrics import summarise``): the metrics pull in
MONAI, whose import costs seconds that a command which never evaluates should not pay.
"""
