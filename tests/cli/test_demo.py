"""``frugalseg demo`` end to end on the bundled sample, a few iterations: the report and its figures."""

from __future__ import annotations

from frugalseg.cli import main


def test_demo_writes_its_report_with_the_benchs_prediction_panel(tmp_path, capsys, monkeypatch):
    import frugalseg.bench.figures as figures

    drawn = []
    original = figures.plot_prediction_panel

    def spy(image, reference, predictions, path, title=""):
        drawn.append((image.shape, reference.shape, {k: v.shape for k, v in predictions.items()}, title))
        return original(image, reference, predictions, path, title)

    monkeypatch.setattr(figures, "plot_prediction_panel", spy)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "2"]) == 0
    assert f"demo report: {out / 'report.md'}" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "| pce | mean |" in text and "| supervised | mean |" in text and "![predictions](predictions.png)" in text
    for name in ("predictions.png", "loss_curves.png", "annotations.json"):
        assert (out / name).stat().st_size > 0
    # the prediction panel is the bench's figure: the same slices for image, reference and both runs
    [(image, reference, predictions, title)] = drawn
    assert image == reference and set(predictions) == {"pce", "supervised"}
    assert all(shape == image for shape in predictions.values()) and image[0] == 4
    assert "RV (orange), Myo (green), LV (red)" in title
