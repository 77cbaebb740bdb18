"""How a run's config becomes data: the source, the annotations, the training set and the validation volumes.

Kept apart from the loop so that ``train``, ``eval``, ``demo`` and the benchmarks build
data the same way. Everything that can fail on bad input (missing folder, broken
annotation file, empty list) fails here, before the run writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frugalseg.config import RunConfig, SimulateConfig
from frugalseg.data.annotations import AnnotationFile, load_annotations
from frugalseg.data.id_lists import read_id_lines
from frugalseg.data.sources import Source, open_source
from frugalseg.data.types import Case, SliceItem
from frugalseg.errors import ConfigError, DataError


def read_case_list(path: str | Path) -> list[str]:
    """Case ids, one a line (:func:`~frugalseg.data.id_lists.read_id_lines`); :class:`DataError` if missing or empty."""
    return [case_id for _, case_id in read_id_lines(path, "case list")]


def check_ids(source: Source, ids: list[str], list_path: str | Path) -> list[str]:
    """Every id of a ``--list`` file must be a case of the source: say which are not."""
    known = set(source.case_ids("all"))
    missing = [i for i in ids if i not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(Path(list_path), f"{len(missing)} case id(s) not in {source.root}: {shown}")
    return ids


@dataclass
class RunData:
    """The data of one run."""

    source: Source
    train_items: list[SliceItem]
    val_cases: list[Case]
    annotations: AnnotationFile | None


def load_run_data(config: RunConfig, with_val: bool = True) -> RunData:
    """Open the source, read the training slices and validation volumes, and read or simulate annotations.

    The trainer writes the annotations into the run folder (``annotations.json``).

    Args:
        config: the validated run config.
        with_val: read the validation volumes too.
    """
    source = open_source(config.data.resolved_root(), config.data.format)
    if config.data.train_list:
        train_ids = check_ids(source, read_case_list(config.data.train_list), config.data.train_list)
    else:
        train_ids = source.case_ids("train")
    if not train_ids:
        raise DataError(source.root, "no training cases")
    items = source.training_slices(train_ids)
    val_cases: list[Case] = []
    if with_val:
        if config.data.val_list:
            val_ids = check_ids(source, read_case_list(config.data.val_list), config.data.val_list)
        else:
            val_ids = source.case_ids("val")
        val_cases = [source.load_case(i) for i in val_ids]
    annotations = None
    if config.data.annotations and config.data.simulate:
        raise ConfigError("data.annotations and data.simulate are exclusive: give an annotation file or simulate one")
    if config.data.annotations:
        annotations = _read_annotations(config.data.annotations, source, items)
    elif config.data.simulate:
        annotations = simulated_annotations(config.data.simulate, source, items)
    if config.data.pseudolabels is not None and annotations is not None:
        from frugalseg.pseudolabels.generate import pseudolabel_run

        annotations = pseudolabel_run(items, annotations, config.data.pseudolabels, config.data.annotations)
    return RunData(source, items, val_cases, annotations)


def simulated_annotations(sim: SimulateConfig, source: Source, items: list[SliceItem]) -> AnnotationFile:
    """The annotations ``data.simulate`` makes from the masks of ``items`` (the same for every caller that asks)."""
    from frugalseg.data.simulate import simulate_items

    return simulate_items(items, source.classes, source.num_classes, kind=sim.kind, seed=sim.seed,
                          budget=sim.budget, **sim.options)


def _read_annotations(path: str | Path, source: Source, items: list[SliceItem]) -> AnnotationFile:
    """Read the run's annotation file against the training grids and the data's classes; split volume items."""
    from frugalseg.data.annotations import check_data_classes
    from frugalseg.data.volume_items import slices_by_case, split_volume_items, training_grids

    volumes = slices_by_case(source, items)
    grids = training_grids(items, volumes)
    annotations = load_annotations(path, grids=grids)
    check_data_classes(annotations, source.classes, path)
    return split_volume_items(annotations, volumes, grids, path)


def annotations_origin(config: RunConfig) -> str:
    """How errors name the annotations of a run: the file, or the simulation that made them."""
    if config.data.annotations:
        return str(config.data.annotations)
    if config.data.simulate is not None:
        return f"annotations simulated by data.simulate (kind {config.data.simulate.kind!r})"
    return "<full masks>"
