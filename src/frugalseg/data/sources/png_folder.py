"""A folder of 2D PNG images, with optional masks: the simplest layout a clinic can export.

Layout::

    root/
      images/<id>.png     8- or 16-bit greyscale (one case and one item each)
      masks/<id>.png      optional, per image: class indices (0 background, 1, 2, ...), greyscale or palette
      classes.json        optional: {"1": "lesion", "2": "vessel"}

Images are min-max normalised per image to [0, 1] (so 8- and 16-bit files train alike, as ACDC's
volumes are normalised per volume). An RGB(A) file whose three channels are equal is greyscale saved
as colour and is read as grey; a true colour image is an error rather than a silent conversion,
because frugalseg's networks read one channel and which grey a colour image should become (luma, one
channel, a stain separation) is the user's decision: convert first, e.g. ``Image.open(p).convert("L")``.
Masks must hold class indices: a colour-coded mask (red = class 1, ...) is an error, as is a value
above 255. A palette ("P") mask is read by its palette indices, the usual way of storing label maps.

Without ``classes.json`` the classes are 1 .. (largest value in any mask), named ``class_<k>``. A
mask with no image of the same name is an error: it almost always means the two folders are named
differently (``img_01.png`` against ``img_01_mask.png``), which would otherwise train on no labels.
Files carry no physical spacing, so ``spacing`` is ``None``.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from frugalseg.data.sources.base import Source, check_label, register_source
from frugalseg.data.types import Case
from frugalseg.errors import DataError

__all__ = ["PngFolderSource", "read_grey_png", "read_mask_png"]

_GREY_MODES = {"L", "I;16", "I;16L", "I;16B", "I;16N", "I", "F", "1"}


def _open_png(path: Path) -> Image.Image:
    """Open and fully decode a PNG, so that a truncated file fails here, naming itself."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable image file ({exc})") from exc


def _single_channel(path: Path, img: Image.Image, what: str, hint: str) -> np.ndarray:
    """The one channel of a greyscale image, or of a colour-mode image whose channels are all equal."""
    if img.mode in _GREY_MODES:
        return np.asarray(img)
    if img.mode in ("LA", "La"):
        return np.asarray(img)[..., 0]
    if img.mode in ("RGB", "RGBA", "RGBa"):
        rgb = np.asarray(img)[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
        raise DataError(path, f"colour {what} (mode {img.mode}); {hint}")
    raise DataError(path, f"unsupported {what} mode {img.mode!r}; {hint}")


def read_grey_png(path: Path) -> np.ndarray:
    """Read an 8- or 16-bit greyscale PNG as float32, min-max normalised to [0, 1] (zeros if constant).

    Raises:
        DataError: the file is unreadable or a true colour image.
    """
    img = _open_png(path)
    if img.mode == "P":
        img = img.convert("RGBA")
    hint = "frugalseg reads one channel: convert it to greyscale first (PIL: Image.open(p).convert('L'))"
    image = _single_channel(path, img, "image", hint).astype(np.float32)
    if not np.isfinite(image).all():
        raise DataError(path, "image holds NaN or infinite values")
    low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
    if high <= low:
        return np.zeros_like(image)
    return (image - low) / (high - low)


def read_mask_png(path: Path) -> np.ndarray:
    """Read a mask PNG of class indices as uint8 (palette masks by their palette indices).

    Raises:
        DataError: the file is unreadable, colour-coded, or holds a value above 255.
    """
    img = _open_png(path)
    if img.mode == "P":
        mask = np.asarray(img)
    else:
        hint = "a mask holds class indices (0 background, 1, 2, ...) in a greyscale or palette PNG"
        mask = _single_channel(path, img, "mask", hint)
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.size and (float(mask.min()) < 0 or float(mask.max()) > 255):
        raise DataError(path, f"mask values span [{mask.min()}, {mask.max()}]; expected class indices 0..255")
    if np.issubdtype(mask.dtype, np.floating) and not np.array_equal(mask, np.round(mask)):
        raise DataError(path, "mask holds non-integer values; expected class indices")
    return mask.astype(np.uint8)


@register_source("png_folder")
class PngFolderSource(Source):
    """Reads ``images/<id>.png`` with optional ``masks/<id>.png`` and ``classes.json`` (module docstring).

    Every image is one 2D case and one training item with id ``<id>``. The layout has no split of its
    own: every case is in ``"train"`` and ``"val"`` is empty.

    Args:
        root: the folder holding ``images/``.

    Raises:
        DataError: ``images/`` is missing.
    """

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.images_dir = self.root / "images"
        self.masks_dir = self.root / "masks"
        if not self.images_dir.is_dir():
            raise DataError(self.images_dir, "missing: a PNG folder holds images/<id>.png")

    @classmethod
    def detect(cls, root: Path) -> bool:
        """An ``images/`` folder holding at least one ``.png`` file."""
        images = root / "images"
        return images.is_dir() and next(images.glob("*.png"), None) is not None

    @cached_property
    def _ids(self) -> list[str]:
        """Image ids, sorted; checks that every mask has its image."""
        ids = sorted(p.stem for p in self.images_dir.glob("*.png") if not p.name.startswith("."))
        if self.masks_dir.is_dir():
            known = set(ids)
            orphans = sorted(p for p in self.masks_dir.glob("*.png") if p.stem not in known
                             and not p.name.startswith("."))
            if orphans:
                raise DataError(orphans[0], f"mask without an image images/{orphans[0].name} ({len(orphans)} such "
                                "masks): masks/<id>.png must be named as images/<id>.png")
        return ids

    @cached_property
    def _classes(self) -> dict[int, str]:
        path = self.root / "classes.json"
        if path.is_file():
            return _read_classes(path)
        highest = 0
        for case_id in self._ids:
            mask_path = self.masks_dir / f"{case_id}.png"
            if mask_path.is_file():
                mask = read_mask_png(mask_path)
                highest = max(highest, int(mask.max()) if mask.size else 0)
        return {k: f"class_{k}" for k in range(1, highest + 1)}

    @property
    def classes(self) -> dict[int, str]:
        """From ``classes.json``, else ``class_1`` .. ``class_<max mask value>`` (reads every mask once)."""
        return dict(self._classes)

    def case_ids(self, split: str = "train") -> list[str]:
        """Every image id for ``"train"`` and ``"all"``; none for ``"val"``."""
        if split in ("train", "all"):
            return list(self._ids)
        if split == "val":
            return []
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'all'")

    def load_case(self, case_id: str) -> Case:
        """Read one image (H, W) and its mask, if any.

        Raises:
            DataError: a file is unreadable, colour, or the mask's shape differs from the image's or
                holds a class that ``classes.json`` does not name.
        """
        image = read_grey_png(self.images_dir / f"{case_id}.png")
        mask_path = self.masks_dir / f"{case_id}.png"
        label = read_mask_png(mask_path) if mask_path.is_file() else None
        check_label(mask_path, image, label, self.num_classes)
        return Case(case_id, self.patient_of(case_id), image, label)


def _read_classes(path: Path) -> dict[int, str]:
    """``classes.json``: {"1": "name", ...}; ``"0"`` (background) is allowed and dropped."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"unreadable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(path, 'expected an object {"1": "name", ...}')
    classes: dict[int, str] = {}
    for key, name in raw.items():
        try:
            index = int(key)
        except ValueError:
            raise DataError(path, f"key {key!r} is not a class index") from None
        if index < 0 or index > 255 or not isinstance(name, str):
            raise DataError(path, f"entry {key!r}: {name!r}; expected a class index 0..255 and a name")
        if index > 0:
            classes[index] = name
    return dict(sorted(classes.items()))
