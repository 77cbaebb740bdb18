"""``frugalseg predict``: label maps for new images, as NIfTI files that carry the input's geometry."""

from __future__ import annotations

from pathlib import Path

import torch

from frugalseg.data.sources import open_source
from frugalseg.data.types import Case
from frugalseg.errors import DataError, OutputExistsError
from frugalseg.methods.restore import load_trained_model
from frugalseg.preflight import check_device
from frugalseg.run_folder import check_output_folder


def predict_to_nifti(
    checkpoint: str | Path,
    input_path: str | Path,
    out: str | Path,
    case_list: list[str] | None = None,
    overwrite: bool = False,
    device: str | None = None,
    network: str | None = None,
) -> list[Path]:
    """Predict every case of ``input_path`` (a data folder, or one ``.nii``/``.nii.gz``/``.h5``/``.png`` file).

    One ``<case id>.nii.gz`` per case in ``out``. Existing outputs are never replaced unless
    ``overwrite``; the check covers every output before the first is written. ``network`` predicts with
    another of the checkpoint's networks than the method's own choice (``frugalseg eval --network``).
    """
    from frugalseg.evaluation.inference import predict_volume
    from frugalseg.evaluation.nifti import write_label_nifti

    out = check_output_folder(out)
    dev = check_device(device, "--device") or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_trained_model(checkpoint, dev, network)
    cases = _read_input(Path(input_path), case_list)
    targets = [out / f"{c.case_id}.nii.gz" for c in cases]
    clash = [t for t in targets if t.exists()]
    if clash and not overwrite:
        raise OutputExistsError(clash[0], f"pass --overwrite to replace it ({len(clash)} existing output(s))")
    out.mkdir(parents=True, exist_ok=True)
    for case, target in zip(cases, targets, strict=True):
        labels = predict_volume(model.network, case.image, patch_size=model.config.data.patch_size,
                                batch_size=model.config.train.val_batch_size,
                                amp=model.config.train.precision != "off", device=dev)
        write_label_nifti(labels, case, target, overwrite=overwrite)
    return targets


def _read_input(path: Path, case_list: list[str] | None) -> list[Case]:
    """Cases of a data folder (its validation split, else all) or of a single image file."""
    if path.is_dir():
        source = open_source(path)
        ids = case_list or source.case_ids("val") or source.case_ids("all")
        return [source.load_case(i) for i in ids]
    if not path.is_file():
        raise DataError(path, "input does not exist")
    from frugalseg.data.sources.single_file import read_single_case

    return [read_single_case(path)]
