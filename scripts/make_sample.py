"""Rebuild the bundled ACDC sample ``src/frugalseg/data/sample/ACDC/`` byte-identically from the full data.

The sample is a tiny copy of the SSL4MIS ACDC layout that ships inside the package, so that tests,
``frugalseg demo`` and the quick-start run without downloading anything:

- the first 4 training patients in ``train_slices.list`` order (patient099, 038, 050, 100), both
  frames, every slice: "the first k patients" budgets (k = 1, 3) mean the same on the sample as on
  the full set;
- the first validation patient's two frames (patient028), as whole volumes;
- in-plane size halved: images by 2x2 area averaging (edge rows/columns replicated when a side is
  odd), labels by 2x2 majority vote, ties going to the block's top-left pixel (its nearest
  neighbour), so that thin structures such as the myocardium survive and labels stay whole classes;
- intensities rounded to multiples of 1/256 (still float32) so that gzip can compress them: the
  sample must stay under ~3 MB. 1/256 rather than 1/255 because k/256 is an exact binary fraction,
  whose two low mantissa bytes are zero: with the shuffle filter those byte planes compress to
  nothing (1.97 MB in all, against 2.36 MB for the best 1/255 variant and 3.84 MB for 1/255 with
  shuffle).

Determinism: every HDF5 dataset is written with ``track_times=False``, one fixed chunk shape, gzip
level 9 and the shuffle filter, and the files are written in a fixed order, so two builds give the
same bytes (checked by ``--verify``) with the same h5py/HDF5 versions.

Usage (from the repository root)::

    python scripts/make_sample.py                     # rebuild src/frugalseg/data/sample/ACDC
    python scripts/make_sample.py --verify            # build into a temporary folder and compare
    python scripts/make_sample.py --source DIR --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO / ".." / "shared" / "data" / "ACDC"
DEFAULT_OUT = REPO / "src" / "frugalseg" / "data" / "sample" / "ACDC"
N_TRAIN_PATIENTS = 4
N_VAL_PATIENTS = 1
MANIFEST = "SHA256SUMS"
LEVELS = 256  # intensities are stored as multiples of 1/LEVELS: exact binary fractions

_PATIENT_RE = re.compile(r"^(.+?)_frame\d+")


def patient_of(name: str) -> str:
    """``patient099_frame01_slice_3`` and ``patient099_frame01`` both belong to ``patient099``."""
    match = _PATIENT_RE.match(name)
    if match is None:
        raise ValueError(f"cannot tell the patient of {name!r}")
    return match.group(1)


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_patients(names: list[str], k: int) -> list[str]:
    """The first ``k`` distinct patients in the order ``names`` mentions them."""
    return list(dict.fromkeys(patient_of(n) for n in names))[:k]


def halve_image(image: np.ndarray) -> np.ndarray:
    """2x2 area average of the last two axes (an odd side's last row/column is replicated first)."""
    h, w = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2) + [(0, h % 2), (0, w % 2)]
    x = np.pad(image.astype(np.float64), pad, mode="edge")
    x = 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])
    return x


def halve_label(label: np.ndarray) -> np.ndarray:
    """2x2 majority vote of the last two axes; a tie goes to the block's top-left pixel (nearest neighbour)."""
    h, w = label.shape[-2:]
    pad = [(0, 0)] * (label.ndim - 2) + [(0, h % 2), (0, w % 2)]
    x = np.pad(label, pad, mode="edge")
    block = np.stack([x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]])
    counts = np.stack([(block == c).sum(axis=0) for c in range(int(label.max()) + 1)])
    best = counts.max(axis=0)
    top_left = block[0]
    top_left_count = np.take_along_axis(counts, top_left[None].astype(np.int64), axis=0)[0]
    return np.where(top_left_count == best, top_left, counts.argmax(axis=0)).astype(np.uint8)


def quantise(image: np.ndarray) -> np.ndarray:
    """Round intensities to multiples of 1/256 and store as float32 (exact, so the low mantissa bytes are 0)."""
    return (np.round(np.clip(image, 0.0, 1.0) * LEVELS) / LEVELS).astype(np.float32)


def read_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["image"][()], f["label"][()]


def write_pair(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    """Write ``image``/``label`` deterministically: no timestamps, one chunk per slice, gzip 9 + shuffle."""
    chunks = image.shape if image.ndim == 2 else (1, *image.shape[1:])
    with h5py.File(path, "w", libver="earliest") as f:
        for name, array in (("image", image), ("label", label)):
            f.create_dataset(name, data=array, chunks=chunks, compression="gzip", compression_opts=9, shuffle=True,
                             track_times=False)


def write_list(path: Path, names: list[str]) -> None:
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


README = """\
# Bundled ACDC sample

A tiny copy of the ACDC cardiac cine-MRI data in the SSL4MIS HDF5 layout (readable by the
`acdc_h5` source), shipped inside the package so that tests, `frugalseg demo` and the quick start
run with nothing to download. It is for trying the software, not for results: report figures on
the full data only.

## Provenance and licence

ACDC: O. Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-Structures
Segmentation and Diagnosis: Is the Problem Solved?", IEEE Transactions on Medical Imaging 37(11),
2514-2525, 2018. The data are for research use only; cite Bernard et al. 2018 when you use them.
The files derive from the SSL4MIS pre-processing of ACDC (each volume min-max normalised to [0, 1];
labels 0 background, 1 RV, 2 Myo, 3 LV).

## Content

| what | value |
| --- | --- |
| training patients | {train_patients} (the first {n_train} in `train_slices.list` order, as in the full set) |
| training slices | {n_slices} files `data/<case>_slice_<k>.h5`, listed in `train_slices.list` (full set's order) |
| training volumes | {n_train_cases} names in `train.list` (stored as slices only) |
| validation volumes | {val_cases} (`data/<case>.h5`, listed in `val.list`) |
| in-plane size | halved: images 2x2 area average, labels 2x2 majority (ties: top-left pixel, i.e. nearest) |
| intensities | float32 in steps of 1/256 (exact binary fractions compress well); not re-normalised |
| compression | gzip level 9 + shuffle, one chunk per slice, `track_times=False` |
| total size | {total_kb} KiB of HDF5 files and lists; {n_files} files in all |

Because the first k patients of the full list are kept in order, the budgets "1 patient" and
"3 patients" with masks select the same patients here as on the full data (32 and 68 slices
there; halved in size here, not in number).

## Rebuilding

From the repository root, with the full data in `../shared/data/ACDC`:

    python scripts/make_sample.py                      # rewrite this folder
    python scripts/make_sample.py --verify             # rebuild elsewhere and compare byte for byte

The build is byte-identical for the same h5py/HDF5 versions (built with h5py {h5py_version},
HDF5 {hdf5_version}). `{manifest}` holds the sha256 of every other file in this folder
(`sha256sum -c {manifest}` checks them).
"""


def build(source: Path, out: Path) -> None:
    """Write the sample from ``source`` (the full SSL4MIS ACDC folder) into the new folder ``out``."""
    slices_all = read_list(source / "train_slices.list")
    train_all = read_list(source / "train.list")
    val_all = read_list(source / "val.list")
    train_patients = first_patients(slices_all, N_TRAIN_PATIENTS)
    val_patients = first_patients(val_all, N_VAL_PATIENTS)
    slices = [n for n in slices_all if patient_of(n) in train_patients]
    if slices != slices_all[: len(slices)]:
        raise SystemExit("the first patients' slices are not a prefix of train_slices.list")
    train_cases = [n for n in train_all if patient_of(n) in train_patients]
    val_cases = [n for n in val_all if patient_of(n) in val_patients]

    (out / "data").mkdir(parents=True)
    for name in sorted(slices):
        image, label = read_pair(source / "data" / f"{name}.h5")
        write_pair(out / "data" / f"{name}.h5", quantise(halve_image(image)), halve_label(label))
    for name in val_cases:
        image, label = read_pair(source / "data" / f"{name}.h5")
        write_pair(out / "data" / f"{name}.h5", quantise(halve_image(image)), halve_label(label))
    write_list(out / "train_slices.list", slices)
    write_list(out / "train.list", train_cases)
    write_list(out / "val.list", val_cases)

    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    readme = README.format(
        train_patients=", ".join(train_patients), n_train=N_TRAIN_PATIENTS, n_slices=len(slices),
        n_train_cases=len(train_cases), val_cases=", ".join(val_cases), total_kb=round(total / 1024),
        n_files=len(files) + 2, h5py_version=h5py.version.version, hdf5_version=h5py.version.hdf5_version,
        manifest=MANIFEST)
    (out / "README.md").write_text(readme, encoding="utf-8", newline="\n")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = "".join(f"{sha256(p)}  {p.relative_to(out).as_posix()}\n" for p in files)
    (out / MANIFEST).write_text(manifest, encoding="utf-8", newline="\n")


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path."""
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the full SSL4MIS ACDC folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the sample folder to (re)write")
    parser.add_argument("--verify", action="store_true",
                        help="build into a temporary folder and compare with --out byte for byte; write nothing")
    args = parser.parse_args(argv)
    source, out = args.source.resolve(), args.out.resolve()
    for name in ("train_slices.list", "train.list", "val.list", "data"):
        if not (source / name).exists():
            parser.error(f"{source / name} does not exist: --source must be the full SSL4MIS ACDC folder")

    if args.verify:
        with tempfile.TemporaryDirectory() as tmp:
            built = Path(tmp) / "ACDC"
            build(source, built)
            new, old = tree_digest(built), tree_digest(out) if out.is_dir() else {}
        differ = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
        if differ:
            print(f"{len(differ)} file(s) differ from {out}: {', '.join(differ[:10])}", file=sys.stderr)
            return 1
        print(f"{out}: {len(new)} files identical to a fresh build")
        return 0

    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        parser.error(f"{out} exists, is not empty and holds no {MANIFEST}: refusing to replace it")
    staging = Path(tempfile.mkdtemp(prefix=".ACDC-build-", dir=out.parent if out.parent.is_dir() else None))
    try:
        build(source, staging / "ACDC")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        (staging / "ACDC").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
