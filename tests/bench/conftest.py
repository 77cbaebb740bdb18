"""Fixtures of the bench tests: the engine's trainer and ``frugalseg eval`` replaced by fast stand-ins."""

from __future__ import annotations

import json

import pytest

from tests.bench.fakes import RecordingTrainer, fake_summary


@pytest.fixture
def trainer(monkeypatch):
    """The engine's ``Trainer`` replaced by :class:`RecordingTrainer` (no training; calls recorded)."""
    import frugalseg.engine.trainer as engine

    RecordingTrainer.calls = []
    monkeypatch.setattr(engine, "Trainer", RecordingTrainer)
    return RecordingTrainer


@pytest.fixture
def no_eval(monkeypatch):
    """Evaluation that writes what ``frugalseg eval`` writes (fixed numbers) and counts its calls."""
    import frugalseg.evaluation.checkpoint as evaluate

    calls = []

    def fake(checkpoint, data, out, overwrite=False, device=None, **_):
        calls.append(checkpoint.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(fake_summary(0.5)))
        (out / "per_volume.csv").write_text("case_id,class_index,class,dice\ncase0,1,RV,0.5\n")

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", fake)
    return calls
