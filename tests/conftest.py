"""Shared test settings: few threads (CI has 2 cores), deterministic torch, a quiet hypothesis profile."""

from __future__ import annotations

import os

import torch
from hypothesis import settings

os.environ.setdefault("FRUGALSEG_RUNS", os.path.join(os.environ.get("TMPDIR", "/tmp"), "frugalseg-test-runs"))
torch.set_num_threads(min(2, torch.get_num_threads()))
settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")
