"""The training dataset: slices in memory, annotations as constraints, augmented together.

``SliceDataset[(index, aug_seed)]`` returns one training example as tensors:

=============  ================  ====================================================================
key            shape / dtype     meaning
=============  ================  ====================================================================
image          (1, h, w) f32     augmented, resized intensities
candidates     (C, h, w) bool    classes each pixel may still take (DESIGN.md); all True = unknown
presence       (C,) int8         1 present, 0 absent, -1 unknown (image level)
label          (h, w) int64      the full mask where the item has one, else -1 everywhere
has_mask       () bool           whether ``label`` is a full mask
box_label      (h, w) int64      the weak mask drawn from boxes (class in its box, 0 elsewhere), else -1
box_index      (h, w) int64      which box (in the item's ``boxes`` order) a pixel belongs to, else -1
index          () int64          the item's index in the dataset (for per-item method state)
=============  ================  ====================================================================

Indexing by ``(index, aug_seed)`` instead of ``index`` makes each example a pure function of
its key: the engine derives keys from (run seed, iteration), so batches, augmentations included,
are identical after a resume and on any number of workers. Slices stay in memory (they were read
once by the source); constraints are rasterised per call, which costs far less than the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.candidates import Constraints, is_labelled, rasterise
from frugalseg.data.intensity import random_brightness_contrast
from frugalseg.data.transforms import AugmentParams, warp
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
    ) -> None:
        if not 0.0 <= intensity_jitter < 1.0:
            raise ValueError(f"intensity_jitter must lie in [0, 1); got {intensity_jitter}")
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
        if self.augment and aug_seed is not None:
            params = AugmentParams.draw(np.random.default_rng(aug_seed))
        else:
            params = AugmentParams()
        c = self.num_classes
        # Warp only the maps that carry information: a mask's candidates are its one-hot label, an item
        # without region constraints has all-True candidates, an item without boxes has box maps of -1.
        # Candidates are warped as "excluded" maps, so pixels from outside the slice (fill 0) exclude nothing.
        warp_dense = not con.has_mask and not con.dense.all()
        has_boxes = bool((con.box_index >= 0).any())
        maps = [con.label] if con.has_mask else []
        if has_boxes:
            maps += [con.box_label, con.box_index]
        if warp_dense:
            maps += list(~con.dense)
        fill = [-1.0] * (len(maps) - (c if warp_dense else 0)) + [0.0] * (c if warp_dense else 0)
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
        if warp_dense:
            candidates = torch.stack([m == 0 for m in warped])
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
        return {
            "image": image.contiguous(),
            "candidates": candidates.contiguous(),
            "presence": torch.from_numpy(con.presence.copy()),
            "label": label.contiguous(),
            "has_mask": torch.tensor(con.has_mask),
            "box_label": box_label.contiguous(),
            "box_index": box_index.contiguous(),
            "index": torch.tensor(index, dtype=torch.int64),
        }


__all__ = ["SliceDataset"]
