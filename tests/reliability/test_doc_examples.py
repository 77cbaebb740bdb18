"""The annotation format page's own example is a file ``train`` accepts (it was refused as "no such item")."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from frugalseg.cli import main
from frugalseg.data.annotations import load_annotations
from tests.helpers import sample_root

PAGE = Path(__file__).resolve().parents[2] / "docs" / "annotation-format.md"


def _example(tmp_path: Path) -> Path:
    block = re.search(r"## A complete example\s+```json\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert block is not None, "the page lost its example"
    path = tmp_path / "example.json"
    path.write_text(block.group(1), encoding="utf-8")
    return path


def test_the_format_pages_example_trains_on_the_sample(tmp_path, capsys):
    example = _example(tmp_path)
    load_annotations(example)  # the format alone
    data = tmp_path / "data"
    shutil.copytree(sample_root(), data)
    (data / "val.list").unlink()  # no validation: the test is about reading the file
    rc = main(["train", "sample_pce", f"data.root={data}", "data.simulate=null", f"data.annotations={example}",
               "train.iterations=2", "train.batch_size=4", "data.patch_size=[64,64]",
               "model.features=[8,16,32,64,128]", "train.precision=off", "--out", str(tmp_path / "run"),
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    stored = json.loads((tmp_path / "run" / "annotations.json").read_text())["items"]
    # the volume item became annotations of its slice z=4 (the sample's slice files count from 1)
    assert stored["patient100_frame01_slice_5"]["points"] == [{"class": 1, "y": 70, "x": 40}]
    assert "patient100_frame01" not in stored and stored["patient099_frame01_slice_4"] == {"tags": []}
