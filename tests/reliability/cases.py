"""The reliability corpus: what a careless or hostile user does, what frugalseg must answer, what it must keep.

One table (:data:`CASES`) serves the tests (``test_corpus.py``: every case run through the real command
line, its exit code, its message and the bytes of every existing output checked) and the page
(``scripts/reliability_table.py`` writes ``docs/reliability.md`` from the same table and the messages
the cases actually print).

Each case runs in a *world*: a folder holding what a user has already made and must not lose: a
finished run (``run/``), an annotation file (``clicks.json``), an evaluation and a prediction folder
(``eval/``, ``pred/``), a plain file (``notes.txt``), and a copy of the bundled sample
(``data/``) that a case may damage. A case's ``setup`` adds its bad input; ``argv`` may name
``{world}``, ``{sample}`` (the pristine bundled sample) and ``{run}`` (the finished run).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TINY = ["train.iterations=4", "train.batch_size=4", "data.patch_size=[64,64]", "train.val_every=2",
        "train.checkpoint_every=2", "model.features=[8,16,32,64,128]", "train.precision=off"]
"""A run of seconds on the sample (the finished run of every world is trained with these)."""
RUN_ARGS = ["sample_pce", "data.root={sample}", *TINY]
"""The command line (after ``train``) the world's finished run was trained with."""
SLICE = "patient099_frame01_slice_3"
"""A training slice of the sample (112 x 77 pixels)."""


@dataclass(frozen=True)
class Case:
    """One thing a user does wrong.

    Attributes:
        id: a short name (the test id).
        item: the item of issue #22 (or ``existing``: a bad input the project already refused).
        does: what the user does, in words (the page's first column).
        argv: the command line, with ``{world}``, ``{sample}``, ``{run}`` placeholders.
        needles: substrings the error message must hold (the file or key it names); placeholders allowed.
        setup: writes the case's bad input into the world.
        code: the exit code expected (2: the project's own one-line error; argparse also exits 2).
        holds_lock: the test process holds ``run/``'s lock while the case runs (a second run into it).
    """

    id: str
    item: str
    does: str
    argv: list[str]
    needles: list[str]
    setup: Callable[[Path], None] | None = None
    code: int = 2
    holds_lock: bool = False
    env: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ setups
def _annotations(items: dict, classes: dict | None = None) -> dict:
    return {"format": "frugalseg.annotations/1", "classes": classes or {"1": "RV", "2": "Myo", "3": "LV"},
            "items": items}


def _write_ann(name: str, items: dict, classes: dict | None = None) -> Callable[[Path], None]:
    def setup(world: Path) -> None:
        (world / name).write_text(json.dumps(_annotations(items, classes)))
    return setup


def _write_text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(world: Path) -> None:
        target = world / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
    return setup


def _nested(world: Path) -> None:
    depth = 100_000
    (world / "deep.json").write_text('{"format": "frugalseg.annotations/1", "classes": {}, "provenance": '
                                     + "[" * depth + "]" * depth + "}")


def _truncate_slice(world: Path) -> None:
    bad = world / "data" / "data" / f"{SLICE}.h5"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])


def _nan_slice(world: Path) -> None:
    import h5py

    bad = world / "data" / "data" / f"{SLICE}.h5"
    with h5py.File(bad, "r+") as f:
        image = f["image"][()]
        image[0, 0] = np.nan
        del f["image"]
        f["image"] = image


def _label_out_of_range(world: Path) -> None:
    import h5py

    bad = world / "data" / "data" / f"{SLICE}.h5"
    with h5py.File(bad, "r+") as f:
        label = f["label"][()]
        label[0, 0] = 7
        del f["label"]
        f["label"] = label


def _pickle_checkpoint(world: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("touch " + str(world / "PWNED"),))

    (world / "evil.pt").write_bytes(pickle.dumps({"format": "frugalseg.checkpoint/1", "x": Evil()}))


def _other_architecture(world: Path) -> None:
    from frugalseg.training.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(world / "run" / "checkpoints" / "best.pt")
    ckpt.pop("format")
    ckpt["config"]["model"]["features"] = [16, 32, 64, 128, 256]
    save_checkpoint(ckpt, world / "arch.pt")


def _config_file(name: str, text: str) -> Callable[[Path], None]:
    return _write_text(name, text)


def _unlabelled_scan(world: Path) -> None:
    import h5py

    with h5py.File(world / "scan.h5", "w") as f:
        f["image"] = np.random.default_rng(0).random((3, 40, 36)).astype(np.float32)


CLICK = {"class": 1, "y": 60, "x": 30}
ANN = ["data.simulate=null", "data.annotations={world}/ann.json"]


def train_new(*overrides: str) -> list[str]:
    """``train`` of the world's run config with ``overrides`` into a new folder."""
    return ["train", *RUN_ARGS, *overrides, "--out", "{world}/new", "--no-progress"]


def train_over(*overrides: str) -> list[str]:
    """``train --overwrite`` over the world's finished run."""
    return ["train", *RUN_ARGS, *overrides, "--out", "{run}", "--overwrite", "--no-progress"]


def train_resume(*overrides: str) -> list[str]:
    """``train --resume`` of the world's finished run."""
    return ["train", *RUN_ARGS, *overrides, "--out", "{run}", "--resume", "--no-progress"]


BEST = "{run}/checkpoints/best.pt"

CASES: list[Case] = [
    # ---------------------------------------------------------------- 1: --overwrite checks before it replaces
    Case("overwrite_missing_annotations", "1", "`--overwrite` an existing run with a mistyped annotation path",
         train_over("data.simulate=null", "data.annotations={world}/ann_pionts.json"), ["ann_pionts.json"]),
    Case("overwrite_missing_data", "1", "`--overwrite` an existing run with a data folder that does not exist",
         train_over("data.root={world}/nope"), ["nope"]),
    Case("overwrite_bad_norm", "1", "`--overwrite` an existing run with `model.norm=batchnorm`",
         train_over("model.norm=batchnorm"), ["model.norm"]),
    Case("overwrite_not_a_run", "existing", "`--overwrite` a folder that is not a frugalseg run",
         ["train", *RUN_ARGS, "--out", "{world}/eval", "--overwrite"], ["eval", "not a frugalseg run folder"]),
    # ---------------------------------------------------------------- 2: one writer per run folder
    Case("second_run_into_locked_folder", "2", "start a run into a folder another run is writing",
         train_over(), ["run", "in use by pid {pid}"], holds_lock=True),
    Case("resume_locked_folder", "2", "`--resume` a run that is still running",
         train_resume(), ["run", "in use by pid {pid}"], holds_lock=True),
    # ---------------------------------------------------------------- 3: class ids against the data's classes
    Case("click_of_unknown_class", "3", "click a class the data does not have (class 4 of 3)",
         train_new(*ANN), ["ann.json", SLICE, "points.0.class", "class 4"],
         _write_ann("ann.json", {SLICE: {"points": [{"class": 4, "y": 60, "x": 30}]}},
                    {"1": "RV", "2": "Myo", "3": "LV", "4": "Aorta"})),
    Case("box_of_unknown_class", "3", "draw a box of a class the data does not have",
         train_new(*ANN), ["ann.json", SLICE, "boxes.0.class", "class 4"],
         _write_ann("ann.json", {SLICE: {"boxes": [{"class": 4, "y0": 1, "x0": 1, "y1": 5, "x1": 5}]}},
                    {"1": "RV", "2": "Myo", "3": "LV", "4": "Aorta"})),
    Case("scribble_of_unknown_class", "3", "scribble a class the data does not have",
         train_new(*ANN), ["ann.json", SLICE, "scribbles.0.class", "class 4"],
         _write_ann("ann.json", {SLICE: {"scribbles": [{"class": 4, "path": [[3, 3]]}]}},
                    {"1": "RV", "2": "Myo", "3": "LV", "4": "Aorta"})),
    Case("tag_of_unknown_class", "3", "tag a class the data does not have",
         train_new(*ANN), ["ann.json", SLICE, "tags.1", "class 4"],
         _write_ann("ann.json", {SLICE: {"tags": [1, 4]}}, {"1": "RV", "2": "Myo", "3": "LV", "4": "Aorta"})),
    Case("declared_unknown_class", "3", "declare a class the data does not have",
         train_new(*ANN), ["ann.json", "classes.4"],
         _write_ann("ann.json", {SLICE: {"points": [CLICK]}}, {"1": "RV", "2": "Myo", "3": "LV", "4": "Aorta"})),
    # ---------------------------------------------------------------- 4: --resume continues the same run
    Case("resume_other_batch_size", "4", "`--resume` with another batch size",
         train_resume("train.batch_size=8"), ["config.json", "train.batch_size", "--resume-with-changes"]),
    Case("resume_other_iterations", "4", "`--resume` with another iteration count",
         train_resume("train.iterations=6"), ["config.json", "train.iterations"]),
    Case("resume_other_method", "4", "`--resume` with another method",
         ["train", "sample_supervised", "data.root={sample}", *TINY, "--out", "{run}", "--resume"],
         ["config.json", "method.name"]),
    Case("resume_other_features", "4", "`--resume` with another `model.features`",
         train_resume("model.features=[16,32,64,128,256]"), ["config.json", "model.features"]),
    Case("resume_nothing", "existing", "`--resume` a folder with no checkpoint",
         ["train", *RUN_ARGS, "--out", "{world}/eval", "--resume"], ["eval", "nothing to resume"]),
    # ---------------------------------------------------------------- 5: what the network, method, device need
    Case("bad_norm", "5", "`model.norm=batchnorm`", train_new("model.norm=batchnorm"), ["model.norm", "batch"]),
    Case("bad_upsample", "5", "`model.upsample=nearest`", train_new("model.upsample=nearest"),
         ["model.upsample", "bilinear"]),
    Case("no_features", "5", "`model.features=[]`", train_new("model.features=[]"), ["model.features"]),
    Case("dropout_length", "5", "a `model.dropout` list of the wrong length",
         train_new("model.dropout=[0.1,0.2]"), ["model.dropout", "5"]),
    Case("mlds_without_deep_supervision", "5", "`mlds` without `model.deep_supervision`",
         ["train", "acdc_mlds", "data.root={sample}", "model.deep_supervision=false", "--out", "{world}/new"],
         ["acdc_mlds", "model.deep_supervision"]),
    Case("cuda_on_cpu_torch", "5", "`train.device=cuda` on a CPU-only torch",
         train_new("train.device=cuda"), ["train.device", "cuda"]),
    # ---------------------------------------------------------------- 6: failed runs leave nothing behind
    Case("no_usable_items", "6", "train `supervised` on an annotation file without a single mask",
         ["train", "sample_supervised", "data.root={sample}", *TINY, *ANN, "--out", "{world}/new"],
         ["ann.json", "full mask"], _write_ann("ann.json", {SLICE: {"points": [CLICK]}})),
    # ---------------------------------------------------------------- 7: demo --iterations 0
    Case("demo_zero_iterations", "7", "`demo --iterations 0`", ["demo", "--iterations", "0", "--out", "{world}/demo"],
         ["--iterations", "0"]),
    # ---------------------------------------------------------------- 8: one-line errors, not tracebacks
    Case("eval_empty_checkpoint", "8", "`eval` a 0-byte checkpoint",
         ["eval", "--checkpoint", "{world}/empty.pt", "--data", "{sample}", "--out", "{world}/e"],
         ["empty.pt", "0 bytes"], _write_text("empty.pt", b"")),
    Case("predict_empty_checkpoint", "8", "`predict` with a 0-byte checkpoint",
         ["predict", "--checkpoint", "{world}/empty.pt", "--input", "{sample}", "--out", "{world}/p"],
         ["empty.pt", "0 bytes"], _write_text("empty.pt", b"")),
    Case("deeply_nested_annotations", "8", "an annotation JSON nested 100,000 deep",
         train_new("data.simulate=null", "data.annotations={world}/deep.json"), ["deep.json", "nested"], _nested),
    Case("train_out_is_a_file", "8", "`train --out` naming an existing file",
         ["train", *RUN_ARGS, "--out", "{world}/notes.txt"], ["notes.txt", "not a folder"]),
    Case("predict_out_is_a_file", "8", "`predict --out` naming an existing file",
         ["predict", "--checkpoint", BEST, "--input", "{sample}", "--out", "{world}/notes.txt"],
         ["notes.txt", "not a folder"]),
    Case("eval_out_is_a_file", "8", "`eval --out` naming an existing file",
         ["eval", "--checkpoint", BEST, "--data", "{sample}", "--out", "{world}/notes.txt"],
         ["notes.txt", "not a folder"]),
    Case("simulate_out_is_a_folder", "8", "`simulate --out DIR --overwrite`",
         ["simulate", "--data", "{sample}", "--kind", "points", "--out", "{world}/eval", "--overwrite"],
         ["eval", "is a folder"]),
    Case("eval_bogus_device", "8", "`eval --device bogus`",
         ["eval", "--checkpoint", BEST, "--data", "{sample}", "--out", "{world}/e", "--device", "bogus"],
         ["--device", "bogus"]),
    Case("predict_cuda_on_cpu", "8", "`predict --device cuda` on a CPU-only torch",
         ["predict", "--checkpoint", BEST, "--input", "{sample}", "--out", "{world}/p", "--device", "cuda"],
         ["--device", "cuda"]),
    # ---------------------------------------------------------------- 9: strict parsing, contradictions
    Case("iterations_true", "9", "`train.iterations=true`", train_new("train.iterations=true"),
         ["train.iterations", "boolean"]),
    Case("duplicate_yaml_key", "9", "a config file giving `lr` twice",
         ["train", "{world}/dup.yaml", "data.root={sample}", *TINY, "--out", "{world}/new"], ["dup.yaml", "'lr'"],
         _config_file("dup.yaml", "method:\n  name: pce\noptim:\n  lr: 0.01\n  momentum: 0.9\n  lr: 0.1\n")),
    Case("schedule_without_schedules", "9", "`schedule=quick` for a config that has no schedules",
         ["train", "{world}/plain.yaml", "data.root={sample}", *TINY, "schedule=quick", "--out", "{world}/new"],
         ["plain.yaml", "schedule"], _config_file("plain.yaml", "method:\n  name: pce\n")),
    Case("unknown_schedule", "9", "`schedule=fast` for a config whose schedules are paper and quick",
         ["train", "acdc_pce", "data.root={sample}", "schedule=fast", "--out", "{world}/new"], ["schedule", "fast"]),
    Case("pixel_two_classes", "9", "click one pixel as two classes",
         train_new(*ANN), ["ann.json", SLICE, "points.1", "class 2"],
         _write_ann("ann.json", {SLICE: {"points": [CLICK, {"class": 2, "y": 60, "x": 30}]}})),
    Case("empty_tags_beside_clicks", "9", "`tags: []` beside a foreground click",
         train_new(*ANN), ["ann.json", SLICE, "tags", "class 1"],
         _write_ann("ann.json", {SLICE: {"points": [CLICK], "tags": []}})),
    # ---------------------------------------------------------------- refusals the project already had
    Case("unknown_config_key", "existing", "misspell a config key (`train.iteratons`)",
         train_new("train.iteratons=3"), ["train.iteratons", "unknown key"]),
    Case("missing_config", "existing", "name a config that does not exist",
         ["train", "{world}/nope.yaml", "--out", "{world}/new"], ["nope.yaml", "no such config"]),
    Case("missing_data", "existing", "a data folder that does not exist",
         train_new("data.root={world}/nope"), ["nope"]),
    Case("existing_run_without_flags", "existing", "train into an existing run without `--resume`/`--overwrite`",
         ["train", *RUN_ARGS, "--out", "{run}"], ["run", "--resume", "--overwrite"]),
    Case("truncated_hdf5", "existing", "a truncated HDF5 slice in the data",
         ["train", "sample_pce", "data.root={world}/data", *TINY, "--out", "{world}/new"], [f"{SLICE}.h5"],
         _truncate_slice),
    Case("nan_in_image", "existing", "a NaN intensity in an HDF5 slice",
         ["train", "sample_pce", "data.root={world}/data", *TINY, "--out", "{world}/new"], [f"{SLICE}.h5", "NaN"],
         _nan_slice),
    Case("label_out_of_range", "existing", "a label value beyond the data's classes",
         ["train", "sample_pce", "data.root={world}/data", *TINY, "--out", "{world}/new"], [f"{SLICE}.h5", "class 7"],
         _label_out_of_range),
    Case("annotations_not_json", "existing", "an annotation file that is not JSON",
         train_new(*ANN), ["ann.json", "invalid JSON"], _write_text("ann.json", "{'format': 1")),
    Case("annotations_unknown_field", "existing", "a misspelt annotation field (`colour`)",
         train_new(*ANN), ["ann.json", SLICE, "points.0.colour", "unknown field"],
         _write_ann("ann.json", {SLICE: {"points": [{"colour": 1, "y": 60, "x": 30}]}})),
    Case("annotations_other_version", "existing", "an annotation file of another format version",
         train_new(*ANN), ["ann.json", "frugalseg.annotations/2"],
         _write_text("ann.json", json.dumps({"format": "frugalseg.annotations/2", "classes": {}}))),
    Case("click_outside_image", "existing", "a click outside the image",
         train_new(*ANN), ["ann.json", SLICE, "points.0.y", "outside"],
         _write_ann("ann.json", {SLICE: {"points": [{"class": 1, "y": 500, "x": 3}]}})),
    Case("box_corners_reversed", "existing", "a box with its corners out of order",
         train_new(*ANN), ["ann.json", SLICE, "boxes.0.y1", "out of order"],
         _write_ann("ann.json", {SLICE: {"boxes": [{"class": 1, "y0": 9, "x0": 1, "y1": 5, "x1": 5}]}})),
    Case("item_not_in_data", "existing", "annotate an item the data does not have",
         train_new(*ANN), ["ann.json", "patient001_frame01_slice_1", "no such item"],
         _write_ann("ann.json", {"patient001_frame01_slice_1": {"points": [CLICK]}})),
    Case("eval_pickle_checkpoint", "existing", "`eval` a checkpoint that carries a pickled program",
         ["eval", "--checkpoint", "{world}/evil.pt", "--data", "{sample}", "--out", "{world}/e"],
         ["evil.pt", "not a safe frugalseg checkpoint"], _pickle_checkpoint),
    Case("eval_other_architecture", "existing", "`eval` a checkpoint whose weights do not fit its config",
         ["eval", "--checkpoint", "{world}/arch.pt", "--data", "{sample}", "--out", "{world}/e"],
         ["arch.pt", "does not fit"], _other_architecture),
    Case("eval_empty_list", "existing", "`eval --list` an empty file",
         ["eval", "--checkpoint", BEST, "--data", "{sample}", "--list", "{world}/empty.list", "--out", "{world}/e"],
         ["empty.list", "is empty"], _write_text("empty.list", "\n")),
    Case("eval_existing_outputs", "existing", "`eval` into a folder that holds an evaluation",
         ["eval", "--checkpoint", BEST, "--data", "{sample}", "--out", "{world}/eval"],
         ["per_volume.csv", "--overwrite"]),
    Case("predict_existing_outputs", "existing", "`predict` into a folder that holds its predictions",
         ["predict", "--checkpoint", BEST, "--input", "{sample}", "--out", "{world}/pred"],
         ["patient028_frame01.nii.gz", "--overwrite"]),
    Case("predict_unknown_file_type", "existing", "`predict` a file of an unknown type",
         ["predict", "--checkpoint", BEST, "--input", "{world}/notes.txt", "--out", "{world}/p"],
         ["notes.txt", "unknown image type"]),
    Case("simulate_existing_out", "existing", "`simulate` over an existing annotation file",
         ["simulate", "--data", "{sample}", "--kind", "points", "--out", "{world}/clicks.json"],
         ["clicks.json", "--overwrite"]),
]


# ------------------------------------------------------------------------------------------------ running
def make_world_template(root: Path) -> Path:
    """Build the world every case starts from (a finished run and other outputs); return its folder."""
    from frugalseg.cli import main
    from frugalseg.data.sample import sample_path

    world = root / "world"
    (world / "eval").mkdir(parents=True)
    (world / "eval" / "summary.json").write_text('{"overall": {}}\n')
    (world / "eval" / "per_volume.csv").write_text("case,dice\n")
    (world / "pred").mkdir()
    (world / "pred" / "patient028_frame01.nii.gz").write_bytes(b"an earlier prediction")
    (world / "notes.txt").write_text("a file a user keeps\n")
    shutil.copytree(sample_path(), world / "data")
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        argv = [a.format(sample=sample_path()) for a in RUN_ARGS]
        assert main(["train", *argv, "--out", str(world / "run"), "--no-progress"]) == 0, quiet.getvalue()
        assert main(["simulate", "--data", str(sample_path()), "--kind", "points", "--out",
                     str(world / "clicks.json")]) == 0
    return world


def fill(text: str, world: Path) -> str:
    from frugalseg.data.sample import sample_path

    return text.format(world=world, sample=sample_path(), run=world / "run", pid=os.getpid())


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (what a case must leave as it was)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Outcome:
    code: int
    err: str


def run_case(case: Case, world: Path) -> Outcome:
    """Run ``case`` in ``world`` through the real command line (in this process); exit code and stderr."""
    from frugalseg.cli import main
    from frugalseg.run_folder import RunFolder, RunMode

    argv = [fill(a, world) for a in case.argv]
    holder = RunFolder(world / "run", RunMode.RESUME) if case.holds_lock else None
    if holder is not None:
        holder.open()
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own refusals
                code = int(exc.code or 0)
    finally:
        if holder is not None:
            holder.close()
    return Outcome(code, err.getvalue())
