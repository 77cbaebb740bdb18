"""The training dataset: slices in memory, annotations as constraints, augmented together.

``SliceDataset[(index, aug_seed)]`` returns one training example as tensors:

=============  ================  ====================================================================
key            shape / dtype     meaning
=============  ================  ====================================================================
image          (1, h, w) f32     augmented, resized intensities (h, w: the crop size when cropping, else the grid)
candidates     (C, h, w) bool    classes each pixel may still take (DESIGN.md); all True = unknown
presence       (C,) int8         1 present, 0 absent, -1 unknown (image level)
label          (h, w) int64      the full mask where the item has one, else -1 everywhere
has_mask       () bool           whether ``label`` is a full mask
box_label      (h, w) int64      the weak mask drawn from boxes (class in its box, 0 elsewhere), else -1
box_index      (h, w) int64      which box (in the item's ``boxes`` order) a pixel belongs to, else -1
box_cut        (C, h, w) bool    class c's box evidence at the pixel comes only from boxes a crop window cuts
                                 (all False without a crop): no longer tight boxes, so MLDS takes no box
                                 positives there
index          () int64          the item's index in the dataset (for per-item method state)
=============  ================  ====================================================================

Indexing by ``(index, aug_seed)`` instead of ``index`` makes each example a pure function of
its key: the engine derives keys from (run seed, iteration), so batches, augmentations included,
are identical after a resume and on any number of workers. Slices stay in memory (they were read
once by the source); constraints are rasterised per call, which costs far less than the forward pass.

Crops (``crop_size``): each slice is brought to the ``output_size`` grid and a random window of
``crop_size`` is cut from it (:mod:`frugalseg.data.transforms`). Maps, boxes and clicks follow the window;
the presence vector is re-derived for it, because a window may miss a structure the slice holds: with a
mask, a class is present if the window's label holds it and absent otherwise; without one, a 'present'
class stays present only where the window proves it (a click or scribble pixel of it inside the window,
or one of its boxes wholly inside), else it becomes unknown. 'Absent' stays absent (not in the slice, not
in any window of it). A box the window cuts is clipped to it (``box_label``, ``box_index`` and the
candidates are cut with the image; DII keeps weighting it as the same instance), but it is no longer
tight: the structure need not reach every row and column of what is left, so ``box_cut`` marks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.candidates import ABSENT, PRESENT, UNKNOWN, Constraints, is_labelled, rasterise
from frugalseg.data.intensity import random_brightness_contrast
from frugalseg.data.transforms import AugmentParams, Warped, points_inside, warp
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError

_INTENSITY_STREAM = 1
"""Second entropy word of the intensity jitter's seed: a stream apart from the geometric draw's."""


class SliceDataset(Dataset[dict[str, Tensor]]):
    """Training slices with their annotation constraints.

    Args:
        items: the training slices (a source's ``training_slices``).
        annotations: the run's annotation file; ``None`` means every item carries a full mask
            (plain supervised training on a source with labels).
        num_classes: number of classes, background included.
        output_size: (h, w) the network sees.
        augment: apply the SSL4MIS random rot90/flip/rotation (resizing always happens).
        intensity_jitter: with ``augment``, also scale each item's brightness and contrast by factors uniform
            in [1 − s, 1 + s] (:func:`frugalseg.data.intensity.random_brightness_contrast`), drawn from the
            item's augmentation seed through a separate stream, so the geometry is the same with or without
            it; 0 (the SSL4MIS recipe) leaves the image untouched.
        origin: the annotation file's path, for error messages.
        crop_size: (h, w) of a random window cut from the ``output_size`` grid per item (centred without an
            augmentation seed); ``None``: the whole grid.
    """

    def __init__(
        self,
        items: Sequence[SliceItem],
        annotations: AnnotationFile | None,
        num_classes: int,
        output_size: Sequence[int],
        augment: bool = True,
        origin: str | Path = "<annotations>",
        intensity_jitter: float = 0.0,
        crop_size: Sequence[int] | None = None,
    ) -> None:
        if not 0.0 <= intensity_jitter < 1.0:
            raise ValueError(f"intensity_jitter must lie in [0, 1); got {intensity_jitter}")
        self.crop_size = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        if self.crop_size and (self.crop_size[0] > output_size[0] or self.crop_size[1] > output_size[1]):
            raise ValueError(f"crop_size {self.crop_size} is larger than the grid {tuple(output_size)}")
        self.items = list(items)
        self.intensity_jitter = float(intensity_jitter)
        self.num_classes = int(num_classes)
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.augment = augment
        self.origin = origin
        if annotations is None:
            self.annotations: list[Item | None] = [Item(mask=True) for _ in self.items]
        else:
            known = {it.item_id for it in self.items}
            unknown = sorted(set(annotations.items) - known)
            if unknown:
                shown = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
                raise AnnotationError(origin, f"{len(unknown)} annotated item(s) are not training slices: {shown}",
                                      item=unknown[0])
            self.annotations = [annotations.items.get(it.item_id) for it in self.items]
        for item, ann in zip(self.items, self.annotations, strict=True):
            if ann is not None and ann.mask and item.label is None:
                raise AnnotationError(origin, "mask: true, but the data has no label map for this item",
                                      item=item.item_id, field="mask")
        self.mask_indices = [i for i, a in enumerate(self.annotations) if a is not None and a.has_full_label]
        self.labelled_indices = [i for i, a in enumerate(self.annotations) if is_labelled(a)]
        self.annotated_indices = [i for i, a in enumerate(self.annotations) if a is not None and not a.is_empty]

    def __len__(self) -> int:
        return len(self.items)

    def constraints(self, index: int) -> Constraints:
        """The unaugmented constraints of item ``index`` on its stored grid."""
        return rasterise(self.items[index], self.annotations[index], self.num_classes, self.origin)

    def _jitter(self, image: Tensor, aug_seed: int) -> Tensor:
        """Brightness and contrast of one warped (1, h, w) image, from a stream of its own seeded by ``aug_seed``."""
        stream = int(np.random.SeedSequence([aug_seed, _INTENSITY_STREAM]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(stream)
        return random_brightness_contrast(image.unsqueeze(0), self.intensity_jitter, 1.0, generator)[0]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, aug_seed = (key, None) if isinstance(key, int) else key
        item = self.items[index]
        con = self.constraints(index)
        rng = np.random.default_rng(aug_seed) if aug_seed is not None else None
        params = AugmentParams.draw(rng) if self.augment and rng is not None else AugmentParams()
        if self.crop_size is not None:
            params = params.with_crop(rng, self.output_size, self.crop_size)
        c = self.num_classes
        whole = self._whole_boxes(index, params)
        # Warp only the maps that carry information: a mask's candidates are its one-hot label, an item
        # without region constraints has all-True candidates, an item without boxes has box maps of -1.
        # Candidates are warped as "excluded" maps, so pixels from outside the slice (fill 0) exclude nothing.
        warp_dense = not con.has_mask and not con.dense.all()
        has_boxes = bool((con.box_index >= 0).any())
        maps = [con.label] if con.has_mask else []
        if has_boxes:
            maps += [con.box_label, con.box_index]
        fill = [-1.0] * len(maps)  # label-like maps: -1 outside the slice; the others (no flag) 0
        cut_maps = self._cut_box_maps(index, whole) if has_boxes and not all(whole) else []
        maps += cut_maps
        if warp_dense:
            maps += list(~con.dense)
        fill += [0.0] * (len(maps) - len(fill))
        stacked = np.stack(maps) if maps else np.zeros((0, *item.shape), dtype=np.int64)
        out = warp(item.image, stacked, np.asarray(fill), con.sparse_yx, self.output_size, params)
        image = out.image
        if self.augment and aug_seed is not None and self.intensity_jitter > 0:
            image = self._jitter(image, aug_seed)
        h, w = out.image.shape[-2:]
        warped = iter(out.maps.round().to(torch.int64))
        label = next(warped) if con.has_mask else torch.full((h, w), -1, dtype=torch.int64)
        if has_boxes:
            box_label, box_index = next(warped), next(warped)
        else:
            box_label = box_index = torch.full((h, w), -1, dtype=torch.int64)
        box_cut = torch.zeros((c, h, w), dtype=torch.bool)
        if cut_maps:
            box_cut = torch.stack([next(warped) > 0 for _ in cut_maps])
        candidates = self._candidates(con, out, label, warped if warp_dense else None)
        presence = con.presence.copy()
        if self.crop_size is not None:
            presence = self._window_presence(index, con, out, label, whole)
        return {
            "image": image.contiguous(),
            "candidates": candidates.contiguous(),
            "presence": torch.from_numpy(presence),
            "label": label.contiguous(),
            "has_mask": torch.tensor(con.has_mask),
            "box_label": box_label.contiguous(),
            "box_index": box_index.contiguous(),
            "box_cut": box_cut.contiguous(),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def _candidates(self, con: Constraints, out: Warped, label: Tensor,
                    excluded: Iterator[Tensor] | None) -> Tensor:
        """The warped item's (C, h, w) candidate sets: from its warped "excluded" maps (``excluded``), its mask, or
        all-True, then the clicks that survived the warp (``out.keep``) made singletons."""
        c, (h, w) = self.num_classes, label.shape
        if excluded is not None:
            candidates = torch.stack([m == 0 for m in excluded])
        elif con.has_mask:
            candidates = torch.nn.functional.one_hot(label.clamp(min=0), c).permute(2, 0, 1).bool()
            candidates |= (label < 0).unsqueeze(0)  # outside the slice: anything
        else:
            candidates = torch.ones((c, h, w), dtype=torch.bool)
        if out.keep.any():
            yx = out.sparse_yx[out.keep]
            cls = torch.from_numpy(con.sparse_class)[out.keep]
            candidates[:, yx[:, 0], yx[:, 1]] = False
            candidates[cls, yx[:, 0], yx[:, 1]] = True
        return candidates

    def _whole_boxes(self, index: int, params: AugmentParams) -> list[bool]:
        """For each box of item ``index``: whether it lies wholly inside the output (always, without a crop)."""
        annotation = self.annotations[index]
        boxes = annotation.boxes if annotation is not None else []
        if self.crop_size is None or not boxes:
            return [True] * len(boxes)
        corners = np.array([[[b.y0, b.x0], [b.y0, b.x1], [b.y1, b.x0], [b.y1, b.x1]] for b in boxes]).reshape(-1, 2)
        inside = points_inside(corners, params, self.items[index].shape, self.output_size)
        return [bool(corners_in.all()) for corners_in in inside.reshape(len(boxes), 4)]

    def _cut_box_maps(self, index: int, whole: list[bool]) -> list[np.ndarray]:
        """Per class, on the stored grid: pixels inside a cut box of the class and inside none of its whole boxes."""
        annotation = self.annotations[index]
        assert annotation is not None  # only called for items with boxes
        shape = self.items[index].shape
        cut = np.zeros((self.num_classes, *shape), dtype=bool)
        kept = np.zeros((self.num_classes, *shape), dtype=bool)
        for b, is_whole in zip(annotation.boxes, whole, strict=True):
            (kept if is_whole else cut)[b.class_, b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = True
        return list((cut & ~kept).astype(np.int64))

    def _window_presence(self, index: int, con: Constraints, out: Warped, label: Tensor,
                         whole: list[bool]) -> np.ndarray:
        """The presence vector of a crop window (module docstring): what the window itself proves."""
        if con.has_mask:
            held = torch.bincount(label[label >= 0], minlength=self.num_classes).numpy() > 0
            return np.where(held, PRESENT, ABSENT).astype(np.int8)
        presence = con.presence.copy()
        proven = np.zeros(self.num_classes, dtype=bool)
        proven[con.sparse_class[out.keep.numpy()]] = True
        annotation = self.annotations[index]
        for b, is_whole in zip(annotation.boxes if annotation is not None else [], whole, strict=True):
            proven[b.class_] |= is_whole
        presence[(presence == PRESENT) & ~proven] = UNKNOWN
        return presence


__all__ = ["SliceDataset"]
