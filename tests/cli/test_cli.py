from __future__ import annotations

import json

import pytest

from frugalseg.cli import main
from tests.helpers import sample_root

TINY = ["train.iterations=4", "train.batch_size=4", "data.patch_size=[64,64]", "train.val_every=2",
        "train.checkpoint_every=2", "model.features=[8,16,32,64,128]", "train.precision=off"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "sample_supervised", f"data.root={sample_root()}", *TINY, "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_train_eval_predict_end_to_end(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "best.pt"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(sample_root()), "--out", str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert set(summary["classes"]) == {"RV", "Myo", "LV"}
    rows = (tmp_path / "e" / "per_volume.csv").read_text().strip().splitlines()
    assert len(rows) > 2
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(sample_root()), "--out",
                 str(tmp_path / "p")]) == 0
    written = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert written and all(n.endswith(".nii.gz") for n in written)
    # predicting again refuses to overwrite, and leaves the files as they were
    before = {n: (tmp_path / "p" / n).read_bytes() for n in written}
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(sample_root()), "--out",
                 str(tmp_path / "p")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert before == {n: (tmp_path / "p" / n).read_bytes() for n in written}


def test_bad_config_key_fails_before_work(tmp_path, capsys):
    rc = main(["train", "sample_supervised", f"data.root={sample_root()}", "train.iteratons=3", "--out",
               str(tmp_path / "r")])
    assert rc == 2 and "train.iteratons: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_missing_data_folder(tmp_path, capsys):
    rc = main(["train", "sample_supervised", f"data.root={tmp_path / 'nope'}", "--out", str(tmp_path / "r")])
    assert rc == 2 and "nope" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_empty_list(trained, tmp_path, capsys):
    empty = tmp_path / "empty.list"
    empty.write_text("\n")
    rc = main(["eval", "--checkpoint", str(trained / "checkpoints" / "best.pt"), "--data", str(sample_root()),
               "--list", str(empty), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "empty.list" in err and "is empty" in err
    assert not (tmp_path / "e").exists()


def test_checkpoint_of_other_architecture_or_class_count(trained, tmp_path, capsys):
    import torch

    from frugalseg.training.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(trained / "checkpoints" / "best.pt")
    ckpt.pop("format")
    other_arch = {**ckpt, "config": {**ckpt["config"], "model": {**ckpt["config"]["model"],
                                                                 "features": [16, 32, 64, 128, 256]}}}
    save_checkpoint(other_arch, tmp_path / "arch.pt")
    rc = main(["eval", "--checkpoint", str(tmp_path / "arch.pt"), "--data", str(sample_root()), "--out",
               str(tmp_path / "e1")])
    assert rc == 2 and "does not fit" in capsys.readouterr().err
    head = [k for k in ckpt["method"] if k.endswith("weight") and ckpt["method"][k].ndim == 4][-1]
    w = ckpt["method"][head]
    bias = head[: -len("weight")] + "bias"
    two = {**ckpt, "num_classes": 2,
           "method": {**ckpt["method"], head: w[:2].clone(), bias: ckpt["method"][bias][:2].clone()}}
    save_checkpoint(two, tmp_path / "two.pt")
    rc = main(["eval", "--checkpoint", str(tmp_path / "two.pt"), "--data", str(sample_root()), "--out",
               str(tmp_path / "e2")])
    assert rc == 2 and "2 classes" in capsys.readouterr().err
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()
    assert torch.is_tensor(w)


def test_eval_and_predict_of_a_named_network_and_an_unknown_one_writes_nothing(trained, tmp_path, capsys):
    ckpt = str(trained / "checkpoints" / "best.pt")
    assert main(["eval", "--checkpoint", ckpt, "--data", str(sample_root()), "--network", "student", "--out",
                 str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["network"] == "student"
    rc = main(["eval", "--checkpoint", ckpt, "--data", str(sample_root()), "--network", "teacher", "--out",
               str(tmp_path / "t")])
    assert rc == 2 and "no network 'teacher' in this supervised checkpoint; it holds student" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    rc = main(["predict", "--checkpoint", ckpt, "--input", str(sample_root()), "--network", "peer", "--out",
               str(tmp_path / "p")])
    assert rc == 2 and "no network 'peer'" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["predict", "--checkpoint", ckpt, "--input", str(sample_root()), "--network", "student", "--out",
                 str(tmp_path / "p")]) == 0
    assert list((tmp_path / "p").glob("*.nii.gz"))


def test_out_pointing_at_existing_run_refuses(trained, capsys):
    marker = (trained / "summary.json").read_text()
    rc = main(["train", "sample_supervised", f"data.root={sample_root()}", *TINY, "--out", str(trained)])
    assert rc == 2 and "--resume" in capsys.readouterr().err
    assert (trained / "summary.json").read_text() == marker


def test_predict_single_nifti_file_keeps_its_affine(trained, tmp_path):
    import nibabel as nib
    import numpy as np

    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    affine[:3, 3] = [10.0, -4.0, 2.0]
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((40, 36, 3)).astype(np.float32), affine), scan)
    ckpt = trained / "checkpoints" / "best.pt"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(scan), "--out", str(tmp_path / "p")]) == 0
    out = nib.load(tmp_path / "p" / "scan.nii.gz")
    assert out.shape == (40, 36, 3) and np.allclose(out.affine, affine)
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2, 3}


def test_predict_unknown_file_type_names_it(trained, tmp_path, capsys):
    bad = tmp_path / "scan.txt"
    bad.write_text("not an image")
    rc = main(["predict", "--checkpoint", str(trained / "checkpoints" / "best.pt"), "--input", str(bad), "--out",
               str(tmp_path / "p")])
    assert rc == 2 and "scan.txt" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_stop_at_then_resume_finishes_the_same_schedule(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "sample_supervised", f"data.root={sample_root()}", *TINY, "--out", str(out), "--no-progress"]
    assert main([*args, "--stop-at", "2"]) == 0
    assert "stopped at iteration 2 of 4" in capsys.readouterr().out
    assert (out / "checkpoints" / "last.pt").is_file() and not (out / "summary.json").exists()
    assert main([*args, "--resume", "--stop-at", "2"]) == 2  # already there: refused, the run left as it was
    assert "cannot stop at iteration 2: the run is at iteration 2 already" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 4
    with pytest.raises(SystemExit):  # not a positive count: argparse's usage error
        main(["train", "sample_supervised", f"data.root={sample_root()}", "--out", str(tmp_path / "r2"),
              "--stop-at", "0"])
    assert not (tmp_path / "r2").exists()
