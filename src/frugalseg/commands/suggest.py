"""``frugalseg suggest``: the unannotated slices a model would gain most from, one item id per line.

Everything that can be refused is refused before ``--out`` is written: an existing output (without
``--overwrite``), an unknown strategy, a checkpoint that is unsafe or trained for another class count
(the same error as ``frugalseg eval``), an annotation file that names items or classes the data does
not have. The file is written atomically, in the order the slices should be annotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from frugalseg.active.predictions import load_scoring_model
from frugalseg.active.ranking import Selection
from frugalseg.active.suggest import check_strategy, rank_pool, unannotated
from frugalseg.data.annotations import AnnotationFile, load_annotations
from frugalseg.data.sources import Source, open_source
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError, CheckpointError, ConfigError
from frugalseg.files import refuse_existing, write_text_atomic

__all__ = ["SuggestOutput", "read_pool_annotations", "suggest_slices"]


@dataclass
class SuggestOutput:
    """What was written: the selection (ids, scores, warnings), how disagreement was measured, the file."""

    selection: Selection
    strategy: str
    pair: str | None
    pool_size: int
    out: Path


def check_class_count(checkpoint: str | Path, trained_for: int, source: Source) -> None:
    """:class:`CheckpointError` when the checkpoint predicts another number of classes than the data has."""
    if source.num_classes != trained_for:
        raise CheckpointError(f"{checkpoint}: trained for {trained_for} classes, but {source.root} has "
                              f"{source.num_classes}")


def read_pool_annotations(path: str | Path, source: Source, items: list[SliceItem]) -> AnnotationFile:
    """Read ``path`` checked against the data: every item must exist there, and the classes must be the data's."""
    ann = load_annotations(path, grids={it.item_id: it.shape for it in items})
    if len(ann.classes) != source.num_classes - 1:
        raise AnnotationError(path, f"declares {len(ann.classes)} foreground classes but {source.root} has "
                                    f"{source.num_classes - 1}: an annotation file for other data?",
                              field="classes")
    return ann


def suggest_slices(checkpoint: str | Path, data: str | Path, out: str | Path, n: int = 20,
                   strategy: str = "entropy", annotations: str | Path | None = None, seed: int = 0,
                   allow_adjacent: bool = False, overwrite: bool = False,
                   device: str | None = None) -> SuggestOutput:
    """Rank the training slices of ``data`` that hold no annotation in ``annotations``; write the best ``n``.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is false.
        ConfigError: unknown strategy, ``n`` below 1, negative seed.
        CheckpointError: the checkpoint is missing, unsafe, or trained for another class count.
        DataError / AnnotationError: the data cannot be read, or the annotation file is not for it.
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    check_strategy(strategy)
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_scoring_model(checkpoint, dev)
    source = open_source(data)
    check_class_count(checkpoint, model.num_classes, source)
    items = source.training_slices()
    ann = None if annotations is None else read_pool_annotations(annotations, source, items)
    pool = unannotated(items, ann)
    selection = rank_pool(model, pool, n, strategy, seed, allow_adjacent)
    write_text_atomic(out, "".join(f"{i}\n" for i in selection.item_ids), overwrite=overwrite)
    return SuggestOutput(selection, strategy, model.pair if strategy == "disagreement" else None, len(pool), out)
