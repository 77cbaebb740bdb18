from __future__ import annotations

import pytest

from frugalseg.pseudolabels import litemedsam
from tests.pseudolabels.test_pipeline import FakeLiteMedSAM


@pytest.fixture
def fake_model(monkeypatch):
    """LiteMedSAM replaced by :class:`FakeLiteMedSAM` (each box filled), its loads counted from 0."""
    FakeLiteMedSAM.loads = 0
    monkeypatch.setattr(litemedsam, "LiteMedSAM", FakeLiteMedSAM)
    return FakeLiteMedSAM
