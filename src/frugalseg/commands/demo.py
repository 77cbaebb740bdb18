"""``frugalseg demo``: from clicks to a report on the bundled sample, in a few minutes on a laptop CPU.

Simulates one click per class per slice on the sample's training patients, trains
``pce`` on the clicks and ``supervised`` on the full masks with the same schedule,
evaluates both on the sample's validation volumes, and writes a report folder::

    report.md            metrics table (per class Dice, HD95, ASD) and what was run
    predictions.png      image / ground truth / both predictions for a few slices
    loss_curves.png      training losses and validation Dice of both runs
    annotations.json     the simulated clicks
    runs/<name>/         each run's config, logs, TensorBoard files and checkpoints
    eval/<name>/         per-volume CSV and JSON summary
"""

from __future__ import annotations

import csv
import datetime as dt
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg import __version__
from frugalseg.config import load_config
from frugalseg.data.sample import sample_path
from frugalseg.errors import ConfigError, OutputExistsError
from frugalseg.files import write_text_atomic
from frugalseg.run_folder import check_output_folder

DEMO_RUNS = {"pce": "sample_pce", "supervised": "sample_supervised"}


def run_demo(out: str | Path, iterations: int | None = None, overwrite: bool = False) -> Path:
    """Run the demo into ``out``; return the path of the Markdown report."""
    from frugalseg.data.annotations import save_annotations
    from frugalseg.engine.run_data import load_run_data
    from frugalseg.evaluation.checkpoint import evaluate_checkpoint
    from frugalseg.train import train_run

    out = check_output_folder(out)
    if iterations is not None and iterations < 1:
        raise ConfigError(f"--iterations {iterations}: a demo run needs at least 1 iteration")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(out)
    data_root = sample_path()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summaries: dict[str, dict[str, Any]] = {}
    for name, config_name in DEMO_RUNS.items():
        overrides = [f"data.root={data_root}"]
        if iterations is not None:
            overrides.append(f"train.iterations={iterations}")
        config = load_config(config_name, overrides)
        data = load_run_data(config)
        if name == "pce" and data.annotations is not None:
            save_annotations(data.annotations, out / "annotations.json", overwrite=True)
        run_dir = out / "runs" / name
        train_run(config, run_dir, overwrite=True, run_data=data)
        res = evaluate_checkpoint(run_dir / "checkpoints" / "best.pt", data_root, out / "eval" / name, overwrite=True)
        summaries[name] = res.summary
    seconds = time.perf_counter() - started
    _plot_curves(out, list(DEMO_RUNS))
    _plot_predictions(out, data_root, list(DEMO_RUNS))
    report = out / "report.md"
    write_text_atomic(report, _report_text(summaries, seconds), overwrite=True)
    return report


def _report_text(summaries: dict[str, dict[str, Any]], seconds: float) -> str:
    lines = [
        "# frugalseg demo report",
        "",
        f"Written {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by frugalseg {__version__} "
        f"(torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads) in {seconds:.0f} s.",
        "",
        "Data: the bundled ACDC sample (4 training patients, 2 validation volumes, down-sampled by 2; see "
        "`frugalseg/data/sample/ACDC/README.md`). `pce` learns from one simulated click per class per slice "
        "(`annotations.json`); `supervised` from every full mask. Validation: per volume, per class, then averaged "
        "(docs/evaluation.md); HD95 and ASD in pixels of the stored grid.",
        "",
        *_headline(summaries),
        "",
        "| run | class | Dice | Jaccard | HD95 (px) | ASD (px) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, summary in summaries.items():
        rows = [*summary["classes"].items(), ("mean", summary["overall"])]
        for cls, m in rows:
            cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in ("dice", "jaccard", "hd95", "asd")]
            lines.append(f"| {name} | {cls} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "With a few hundred iterations on four patients these numbers show that the pipeline works end to end, "
        "not what the methods reach: see `docs/results.md` for the benchmark.",
        "",
        "![predictions](predictions.png)",
        "",
        "![loss curves](loss_curves.png)",
        "",
    ]
    return "\n".join(lines)


def _headline(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Each model's mean Dice on the sample's validation patient, and one sentence on what it means."""
    dice = {name: s["overall"]["dice"]["mean"] for name, s in summaries.items()}
    lines = [f"- `{name}`: mean Dice **{value:.3f}** on the sample's validation patient"
             for name, value in dice.items()]
    if dice.get("supervised"):
        share = dice.get("pce", 0.0) / dice["supervised"]
        lines += ["", f"Clicks gave {share:.0%} of the full masks' Dice here; one patient and a short run make this a "
                      "check that the pipeline works end to end, not a measure of the methods (docs/results.md is)."]
    return lines


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows]) for k in rows[0]}


def _plot_curves(out: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        train = _read_csv(out / "runs" / name / "train_log.csv")
        if train:
            ax_loss.plot(train["iteration"], train["loss"], label=name)
        val_path = out / "runs" / name / "val_log.csv"
        if val_path.exists():
            val = _read_csv(val_path)
            ax_val.plot(val["iteration"], val["dice"], marker="o", label=name)
    ax_loss.set(xlabel="iteration", ylabel="training loss", yscale="log", title="training loss")
    ax_val.set(xlabel="iteration", ylabel="mean Dice", title="validation Dice", ylim=(0, 1))
    for ax in (ax_loss, ax_val):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=100)
    plt.close(fig)


def _plot_predictions(out: Path, data_root: Path, names: list[str], n_slices: int = 4) -> None:
    """The bench's prediction panel (:func:`~frugalseg.bench.figures.plot_prediction_panel`) of each run's best.pt.

    The slices are the bench's too (:func:`~frugalseg.bench.figures.pick_slices`: spread over the first
    validation volume's slices with foreground), so the demo's figure reads like the results page's.
    """
    from frugalseg.bench.figures import pick_slices, plot_prediction_panel
    from frugalseg.data.sources import open_source
    from frugalseg.evaluation.inference import predict_volume
    from frugalseg.methods.restore import load_trained_model

    source = open_source(data_root)
    case = source.load_case(source.case_ids("val")[0])
    assert case.label is not None
    picks = pick_slices(case.label, n_slices)
    preds = {}
    for name in names:
        model = load_trained_model(out / "runs" / name / "checkpoints" / "best.pt")
        preds[name] = predict_volume(model.network, case.image[picks], patch_size=model.config.data.patch_size)
    plot_prediction_panel(case.image[picks], case.label[picks], preds, out / "predictions.png",
                          title=f"{case.case_id}: RV (orange), Myo (green), LV (red)")
