"""Fixtures of the bench tests: the engine's trainer and ``frugalseg eval`` replaced by fast stand-ins."""

from __future__ import annotations

import json

import pytest

from tests.bench.fakes import RecordingTrainer, fake_summary


@pytest.fixture
def trainer(monkeypatch):
    """``train_run``, the bench's way to train, replaced by :class:`RecordingTrainer` (no training; calls recorded)."""
    import frugalseg.train as train

    def record(config, run_dir, resume=False, overwrite=False, progress=True, **_):
        return RecordingTrainer(config, run_dir, resume=resume, overwrite=overwrite, progress=progress).run()

    RecordingTrainer.calls = []
    monkeypatch.setattr(train, "train_run", record)
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
