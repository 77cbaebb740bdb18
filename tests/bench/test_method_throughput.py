"""``benchmarks/method_throughput.py --smoke``: every registered method through the script, tiny, in seconds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.helpers import shipped_schedule

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_smoke_writes_the_throughput_block(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when the script runs: its folder first on sys.path
    spec = importlib.util.spec_from_file_location("method_throughput", BENCHMARKS / "method_throughput.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "method_throughput", module)
    spec.loader.exec_module(module)
    from frugalseg.methods import METHODS

    page, record = tmp_path / "performance.md", tmp_path / "perf" / "throughput.json"
    assert module.main(["--smoke", "--out", str(page), "--json", str(record)]) == 0
    text = page.read_text()
    measured = json.loads(record.read_text())
    assert measured["smoke"] is True and sorted(measured["methods"]) == sorted(METHODS)
    for r in measured["methods"].values():  # a whole run of the quick schedule at the measured speed
        assert r["run_iterations"] == shipped_schedule("quick")["train.iterations"]
        assert r["run_minutes"] == pytest.approx(r["run_images"] / r["images_per_second"] / 60)
    # ACTION's stages each have their own batch: its run holds other than iterations x 8 images
    assert measured["methods"]["supervised"]["run_images"] == 8 * measured["methods"]["supervised"]["run_iterations"]
    assert text.startswith("# Performance") and text.count("<!-- method_throughput -->") == 2
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith(("| method", "| ---"))]
    assert sorted(r.split("|")[1].strip() for r in rows) == sorted(METHODS)
    assert rows[0].startswith("| supervised | acdc_supervised |") and "| 1.00x |" in rows[0]
    assert "| action | acdc_action | 3 |" in text  # three stages, each timed
    assert "resident memory during training" in text or "max_memory_allocated" in text


def test_each_method_is_measured_in_its_own_process(tmp_path, monkeypatch):
    """The real mode, on the sample and tiny: one subprocess per method reports its numbers back."""
    from frugalseg.data.sample import sample_path

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = importlib.util.spec_from_file_location("method_throughput", BENCHMARKS / "method_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = tmp_path / "performance.md"
    args = ["--data", str(sample_path()), "--methods", "supervised", "--warmup", "1", "--iters", "1",
            "--out", str(page), *(f"--set={s}" for s in module.SMOKE)]
    assert module.main(args) == 0
    text = page.read_text()
    assert "| supervised | acdc_supervised | 1 |" in text and "one subprocess per method" in text
