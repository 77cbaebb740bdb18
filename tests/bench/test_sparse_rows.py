"""The sparse-budget rows of the bench matrix train on the bundled sample (a few iterations each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugalseg.bench.matrix import load_matrix, row_config
from frugalseg.train import train_run
from tests.helpers import sample_root

TINY = ["train.iterations=3", "train.batch_size=4", "data.patch_size=[32,32]", "train.val_every=100",
        "train.checkpoint_every=3", "model.features=[4,8,16,32,64]", "train.precision=off",
        "data.mask_items_per_batch=2"]


@pytest.mark.slow
@pytest.mark.parametrize("label", ["supervised_sparse", "mean_teacher_sparse", "boxes_naive_sparse", "dii_dcr_sparse"])
def test_sparse_row_trains(label: str, tmp_path: Path) -> None:
    matrix = load_matrix()
    extra = TINY if label != "supervised_sparse" else TINY[:-1]  # supervised has no second stream
    config = row_config(matrix.row(label), sample_root(), "quick", 0, extra)
    result = train_run(config, tmp_path / label, progress=False)
    assert result.iterations == 3
    ann = json.loads((tmp_path / label / "annotations.json").read_text())
    assert len(ann["items"]) == 8  # one slice of each of the sample's 8 volumes
    assert {"mask" in it for it in ann["items"].values()} == {label in ("supervised_sparse", "mean_teacher_sparse")}
