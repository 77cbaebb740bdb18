"""Box-prompted pseudo-labels for an annotation file: every boxed item gets LiteMedSAM's label map.

For every item with boxes (and, with ``click_box``, every item with foreground clicks) the boxes are
given to LiteMedSAM (:mod:`frugalseg.pseudolabels.litemedsam`), the box masks are merged into one label
map (:mod:`frugalseg.pseudolabels.merge`: the higher logit wins, pixels no mask holds are background),
and the item gains a ``label_map`` field (``docs/annotation-format.md``). Everything else in the item is
kept: the boxes still price the item (a machine-made label map costs no annotator time), and methods that
read boxes still see them. Items with ``mask: true`` or a ``label_map`` already, and items without a
prompt, are copied unchanged. Any method then trains on the new file: with a full label on every boxed
item, ``supervised`` learns from the pseudo-labels like from masks.

**Box from a click** (``click_box = N``, off by default): a click of a foreground class becomes the
N x N box centred on it (for even N one more pixel below and right of the click), cut at the image's
border. Background clicks give no box. ``docs/methods/medsam_boxes.md`` has the measured effect of N.

**Cache**: each item's label map is stored in ``cache_dir`` under a key hashing the weights' sha256, the
pre-processing version, the image's bytes and the prompts, written atomically one file per item. An
interrupted run resumes where it stopped; a changed image, box or model never reuses a stale map.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from frugalseg.config import PseudoLabelConfig
from frugalseg.data.annotations import AnnotationFile, Item, LabelMap, check_annotations
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError
from frugalseg.files import atomic_path
from frugalseg.pseudolabels.litemedsam import PACKAGE, PACKAGE_VERSION, PREPROCESSING, WEIGHTS_SHA256, BoxPrompt
from frugalseg.pseudolabels.merge import resolve_boxes

__all__ = ["LabelCache", "default_cache_dir", "item_prompts", "needs_pseudolabel", "pseudolabel_items",
           "pseudolabel_run"]
CACHE_ENV = "FRUGALSEG_CACHE"

BoxLogits = Callable[[np.ndarray, Sequence[BoxPrompt]], np.ndarray]
"""``(image (H, W), boxes) -> logits (K, H, W)``: :meth:`LiteMedSAM.box_logits` or a test's stand-in."""


def _click_box(y: int, x: int, size: int, shape: tuple[int, int]) -> BoxPrompt:
    before = (size - 1) // 2
    after = size - 1 - before
    h, w = shape
    return BoxPrompt(max(0, y - before), max(0, x - before), min(h - 1, y + after), min(w - 1, x + after))


def item_prompts(item: Item, shape: tuple[int, int], click_box: int | None) -> tuple[list[BoxPrompt], list[int]]:
    """The boxes (and their classes) LiteMedSAM is prompted with on this item: its boxes, then click boxes."""
    boxes = [BoxPrompt(b.y0, b.x0, b.y1, b.x1) for b in item.boxes]
    classes = [b.class_ for b in item.boxes]
    if click_box:
        for p in item.points:
            if p.class_ > 0:
                boxes.append(_click_box(p.y, p.x, click_box, shape))
                classes.append(p.class_)
    return boxes, classes


def needs_pseudolabel(item: Item | None, click_box: int | None) -> bool:
    """Whether the item gets a pseudo-label: no full label yet, and at least one box (or click box)."""
    if item is None or item.has_full_label:
        return False
    return bool(item.boxes) or bool(click_box and any(p.class_ > 0 for p in item.points))


class LabelCache:
    """One ``.npz`` per item in ``folder``, keyed by model, pre-processing, image and prompts."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(image: np.ndarray, boxes: Sequence[BoxPrompt], classes: Sequence[int]) -> str:
        digest = hashlib.sha256()
        digest.update(f"{WEIGHTS_SHA256}|{PREPROCESSING}|{image.dtype}|{image.shape}|".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(json.dumps([[b.y0, b.x0, b.y1, b.x1] for b in boxes] + [list(classes)]).encode())
        return digest.hexdigest()

    def path(self, item_id: str, key: str) -> Path:
        return self.folder / f"{item_id}.{key[:20]}.npz"

    def get(self, item_id: str, key: str) -> np.ndarray | None:
        path = self.path(item_id, key)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["label"], dtype=np.int64)

    def put(self, item_id: str, key: str, label: np.ndarray) -> None:
        with atomic_path(self.path(item_id, key), suffix=".npz") as tmp:
            np.savez_compressed(tmp, label=label.astype(np.uint8))


def _check_2d(ann: AnnotationFile, todo: Sequence[str], origin: str | Path) -> None:
    for item_id in todo:
        item = ann.items[item_id]
        if any(b.z is not None for b in item.boxes) or any(p.z is not None for p in item.points):
            raise AnnotationError(origin, "pseudo-labels are made per 2D slice; this is a volume item (z given)",
                                  item=item_id, field="boxes")


def pseudolabel_items(
    items: Sequence[SliceItem],
    ann: AnnotationFile,
    load_model: Callable[[], BoxLogits],
    click_box: int | None = None,
    cache_dir: str | Path | None = None,
    origin: str | Path = "<annotations>",
    progress: bool = True,
) -> AnnotationFile:
    """A copy of ``ann`` whose boxed items carry LiteMedSAM's ``label_map`` (module docstring).

    Args:
        items: the data's training slices (their images are prompted; their grids check the file).
        ann: the annotations; checked against the slices' grids first, so a box outside its image or with
            corners out of order stops here with the annotation file's error, before any inference.
        load_model: returns the box-logit function (``lambda: LiteMedSAM().box_logits``); called once, and only
            when some item is not cached yet, so a fully cached run does not load the model.
        click_box: side of the box made around each foreground click, or ``None`` (clicks give no box).
        cache_dir: per-item cache folder (resumable); ``None``: no cache.
        origin: the annotation file's name for error messages.
        progress: show a progress bar.
    """
    if click_box is not None and click_box < 1:
        raise ValueError(f"click_box must be 1 or more pixels, got {click_box}")
    by_id = {it.item_id: it for it in items}
    check_annotations(ann, {k: it.shape for k, it in by_id.items()}, origin)
    todo = [k for k in sorted(ann.items) if needs_pseudolabel(ann.items[k], click_box)]
    _check_2d(ann, todo, origin)
    cache = LabelCache(cache_dir) if cache_dir is not None else None
    fn: BoxLogits | None = None
    new_items: dict[str, Item] = dict(ann.items)
    for item_id in tqdm(todo, desc="LiteMedSAM pseudo-labels", unit="slice", disable=not progress):
        slice_ = by_id[item_id]
        boxes, classes = item_prompts(ann.items[item_id], slice_.shape, click_box)
        key = LabelCache.key(slice_.image, boxes, classes)
        label = cache.get(item_id, key) if cache is not None else None
        if label is None:
            if fn is None:
                fn = load_model()
            label = resolve_boxes(fn(slice_.image, boxes), boxes, classes)
            if cache is not None:
                cache.put(item_id, key, label)
        new_items[item_id] = ann.items[item_id].model_copy(update={"label_map": LabelMap.from_array(label)})
    provenance = dict(ann.provenance)
    provenance["pseudolabels"] = _provenance(len(todo), click_box)
    return AnnotationFile(format=ann.format, classes=dict(ann.classes), items=new_items, provenance=provenance)


def _provenance(count: int, click_box: int | None) -> Mapping[str, Any]:
    return {
        "model": "LiteMedSAM",
        "package": f"{PACKAGE} {PACKAGE_VERSION}",
        "weights_sha256": WEIGHTS_SHA256,
        "preprocessing": PREPROCESSING,
        "overlap_rule": "highest logit inside its own box wins; no mask -> background",
        "click_box": click_box,
        "items": count,
    }


def default_cache_dir() -> Path:
    """``$FRUGALSEG_CACHE/pseudolabels``, or ``~/.cache/frugalseg/pseudolabels``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "frugalseg") / "pseudolabels"


def pseudolabel_run(
    items: Sequence[SliceItem], ann: AnnotationFile, config: PseudoLabelConfig, origin: str | Path | None = None
) -> AnnotationFile:
    """A run's pre-processing step (``data.pseudolabels``): :func:`pseudolabel_items` with LiteMedSAM, cached.

    The extra is checked first, so a run without it stops with the install hint before training starts.
    """
    from frugalseg.pseudolabels.litemedsam import LiteMedSAM

    LiteMedSAM.check_installed()
    cache = Path(config.cache).expanduser() if config.cache else default_cache_dir()
    return pseudolabel_items(items, ann, lambda: LiteMedSAM().box_logits, click_box=config.click_box,
                             cache_dir=cache, origin=origin or "<annotations>")
