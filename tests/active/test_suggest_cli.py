"""``frugalseg suggest`` on the bundled sample: determinism, the pool, the two predictions, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalseg.cli import main
from frugalseg.data.annotations import AnnotationFile, Item, save_annotations
from frugalseg.data.sources import open_source
from frugalseg.data.volumes import are_adjacent
from frugalseg.training.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import sample_root

pytestmark = pytest.mark.slow

TINY = ["train.iterations=2", "train.batch_size=4", "data.patch_size=[32,32]", "train.val_every=100",
        "train.checkpoint_every=2", "model.features=[4,8,16,32,64]", "train.precision=off"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("suggest")
    out = {}
    for name, config, extra in [("supervised", "sample_supervised", []),
                                ("mean_teacher", "acdc_mean_teacher", ["data.mask_items_per_batch=2"])]:
        rc = main(["train", config, f"data.root={sample_root()}", *TINY, *extra, "--out", str(root / name),
                   "--no-progress"])
        assert rc == 0
        out[name] = root / name / "checkpoints" / "last.pt"
    return out


def suggest(ckpt: Path, out: Path, *args: str) -> int:
    return main(["suggest", "--checkpoint", str(ckpt), "--data", str(sample_root()), "--out", str(out), *args])


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize("strategy", ["entropy", "disagreement", "random"])
def test_deterministic_non_adjacent_and_unannotated(runs, tmp_path, capsys, strategy) -> None:
    ann_path = tmp_path / "masks3.json"
    assert main(["simulate", "--data", str(sample_root()), "--kind", "budget", "--budget", "masks3", "--out",
                 str(ann_path)]) == 0
    args = ["--annotations", str(ann_path), "--strategy", strategy, "--n", "6"]
    assert suggest(runs["supervised"], tmp_path / "a.txt", *args) == 0
    assert suggest(runs["supervised"], tmp_path / "b.txt", *args) == 0
    got = lines(tmp_path / "a.txt")
    assert got == lines(tmp_path / "b.txt") and len(got) == len(set(got)) == 6
    # the sample's first 3 patients have masks in masks3: only patient100 is left to suggest from
    assert all(i.startswith("patient100_") for i in got)
    items = {it.item_id: it for it in open_source(sample_root()).training_slices()}
    assert not any(are_adjacent(items[a], items[b]) for a in got for b in got)
    text = capsys.readouterr().out
    assert "6 of 16 unannotated slices" in text
    if strategy == "disagreement":
        assert "test-time flip" in text


def test_random_depends_on_the_seed_and_allow_adjacent(runs, tmp_path) -> None:
    assert suggest(runs["supervised"], tmp_path / "s0.txt", "--strategy", "random", "--n", "20") == 0
    assert suggest(runs["supervised"], tmp_path / "s1.txt", "--strategy", "random", "--n", "20", "--seed", "1") == 0
    assert lines(tmp_path / "s0.txt") != lines(tmp_path / "s1.txt")
    assert suggest(runs["supervised"], tmp_path / "adj.txt", "--n", "84", "--allow-adjacent") == 0
    assert len(lines(tmp_path / "adj.txt")) == 84


def test_teacher_and_student_disagree(runs, tmp_path, capsys) -> None:
    assert suggest(runs["mean_teacher"], tmp_path / "mt.txt", "--strategy", "disagreement", "--n", "5") == 0
    assert "EMA teacher ('teacher') against its student ('student')" in capsys.readouterr().out


def test_more_than_the_pool_warns_and_returns_it_all(runs, tmp_path, capsys) -> None:
    assert suggest(runs["supervised"], tmp_path / "all.txt", "--n", "500") == 0
    assert len(lines(tmp_path / "all.txt")) == 84
    assert "asked for 500 slices but only 84 hold no annotation" in capsys.readouterr().err


def test_class_count_error_is_evals(runs, tmp_path, capsys) -> None:
    ckpt = load_checkpoint(runs["supervised"])
    ckpt.pop("format")
    head = [k for k in ckpt["method"] if k.endswith("weight") and ckpt["method"][k].ndim == 4][-1]
    bias = head[: -len("weight")] + "bias"
    two = {**ckpt, "num_classes": 2, "method": {**ckpt["method"], head: ckpt["method"][head][:2].clone(),
                                                 bias: ckpt["method"][bias][:2].clone()}}
    save_checkpoint(two, tmp_path / "two.pt")
    assert suggest(tmp_path / "two.pt", tmp_path / "next.txt") == 2
    err = capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "two.pt"), "--data", str(sample_root()), "--out",
                 str(tmp_path / "e")]) == 2
    assert "trained for 2 classes" in err
    assert err.split("error: ")[1] == capsys.readouterr().err.split("error: ")[1]
    assert not (tmp_path / "next.txt").exists()


@pytest.mark.parametrize(("items", "classes", "message"), [
    ({"patient042_frame01_slice_3": Item(mask=True)}, {"1": "RV", "2": "Myo", "3": "LV"}, "no such item"),
    ({"patient099_frame01_slice_3": Item(mask=True)}, {"1": "liver"}, "1 foreground classes"),
])
def test_annotations_for_other_data_write_nothing(runs, tmp_path, capsys, items, classes, message) -> None:
    save_annotations(AnnotationFile(classes=classes, items=items), tmp_path / "other.json")
    assert suggest(runs["supervised"], tmp_path / "next.txt", "--annotations", str(tmp_path / "other.json")) == 2
    err = capsys.readouterr().err
    assert message in err and "other.json" in err
    assert not (tmp_path / "next.txt").exists()


def test_existing_out_is_refused_without_overwrite(runs, tmp_path, capsys) -> None:
    out = tmp_path / "next.txt"
    out.write_text("keep me\n")
    assert suggest(runs["supervised"], out) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me\n"
    assert suggest(runs["supervised"], out, "--overwrite", "--n", "3") == 0
    assert len(lines(out)) == 3
