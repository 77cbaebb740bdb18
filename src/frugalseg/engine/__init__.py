"""The one training loop: optimiser, schedules, EMA teachers, AMP, DDP, validation, logs, checkpoints."""
