"""``frugalseg pseudolabel``: write a copy of an annotation file whose boxed items carry LiteMedSAM's masks."""

from __future__ import annotations

from pathlib import Path

from frugalseg.data.annotations import AnnotationFile, load_annotations, save_annotations
from frugalseg.errors import DataError
from frugalseg.files import refuse_existing


def pseudolabel_file(
    data: str | Path,
    annotations: str | Path,
    out: str | Path,
    click_box: int | None = None,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> AnnotationFile:
    """Read ``data`` and ``annotations``, add LiteMedSAM label maps, write ``out`` (atomically).

    Everything that can be refused is refused before the model runs or anything is written: an existing
    ``out`` (unless ``overwrite``), a broken annotation file, a box outside its image, the missing extra.

    Raises:
        OutputExistsError, AnnotationError, DataError, MissingExtraError, CheckpointError.
    """
    from frugalseg.data.sources import open_source
    from frugalseg.pseudolabels.generate import pseudolabel_items
    from frugalseg.pseudolabels.litemedsam import LiteMedSAM

    out = Path(out)
    refuse_existing(out, overwrite)
    source = open_source(data)
    items = source.training_slices()
    if not items:
        raise DataError(Path(data), "no training items")
    ann = load_annotations(annotations, grids={it.item_id: it.shape for it in items})
    LiteMedSAM.check_installed()
    result = pseudolabel_items(items, ann, lambda: LiteMedSAM(device=device).box_logits, click_box=click_box,
                               cache_dir=cache_dir, origin=annotations, progress=progress)
    save_annotations(result, out, overwrite=overwrite)
    return result
