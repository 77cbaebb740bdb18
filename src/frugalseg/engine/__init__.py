"""The one training loop and what feeds it: the run's data, the loop over a built method, its logs.

The pieces the loop drives (method, stages, EMA, schedules, collectives, checkpoints) are the training core,
:mod:`frugalseg.training`; the engine imports no method (docs/architecture.md).
"""
