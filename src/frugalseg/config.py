"""One validated configuration schema for every run, loaded from YAML with dotted overrides.

A run is fully described by one :class:`RunConfig`: which method, which data
and annotations, which network, which optimiser and schedule.

Config files are composed, in the manner of mmsegmentation's ``_base_``: a file may name base files
(``_base_: [a.yaml, b.yaml]``, relative to itself, else among the shipped configs); the bases are merged
in order and the file on top of them, mappings key by key, anything else replaced. The shipped configs
in ``frugalseg/configs/`` are built that way:

- ``_base_/schedules.yaml``: the two schedules (``paper``: the run's own settings; ``quick``: a reduced
  one a 2-core CPU finishes in minutes), override blocks selected by ``schedule``;
- ``_base_/acdc.yaml`` (the ACDC protocol) and ``_base_/two_stream.yaml`` (half of each batch masked);
- ``methods/<name>.yaml``: one file per method that trains on any data (``frugalseg train pce
  data.root=DIR data.simulate.kind=points``);
- ``acdc_<method>.yaml``: a published run, naming its bases and holding only what differs.

Every key is checked before any work starts: an unknown key or a bad value
raises :class:`~frugalseg.errors.ConfigError` naming it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from frugalseg.choices import StrEnum
from frugalseg.errors import ConfigError, describe_validation

DATA_ENV = "FRUGALSEG_DATA"
"""Environment variable giving ``data.root`` when a config leaves it unset (as nnU-Net's ``nnUNet_raw``)."""


class Precision(StrEnum):
    """Mixed precision: ``auto`` = bf16 autocast on CPU, bf16 on GPUs that support it, else fp16."""

    AUTO = "auto"
    OFF = "off"
    BF16 = "bf16"
    FP16 = "fp16"


class OptimizerName(StrEnum):
    SGD = "sgd"
    ADAMW = "adamw"


class LRSchedule(StrEnum):
    POLY = "poly"
    COSINE = "cosine"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:  # noqa: ANN401
        """``train.iterations=true`` must not run 1 iteration: a boolean is refused where a number is meant."""
        from frugalseg.config_types import refuse_bool_number

        return refuse_bool_number(cls.model_fields[info.field_name or ""].annotation, value)


class SimulateConfig(_Strict):
    """Annotations simulated from the training masks at the start of a run (written into the run folder)."""

    kind: str = Field(description="points | scribbles | boxes | tags | budget")
    seed: int = 0
    budget: str | None = Field(default=None, description="budget file; a bare name is looked up in configs/budgets/")
    options: dict[str, Any] = Field(default_factory=dict)


class PseudoLabelConfig(_Strict):
    """Model-made label maps for the boxed items, added before training (``frugalseg.pseudolabels``)."""

    model: Literal["litemedsam"] = Field(default="litemedsam", description="LiteMedSAM (pip install 'frugalseg[sam]')")
    click_box: int | None = Field(default=None, ge=1, description="N x N box around each foreground click; unset: none")
    cache: str | None = Field(default=None, description="per-slice cache folder; unset: $FRUGALSEG_CACHE/pseudolabels "
                                                        "or ~/.cache/frugalseg/pseudolabels")


class DataConfig(_Strict):
    """Where the images are and which annotations the run may use."""

    root: str | None = Field(default=None, description=f"data folder; unset: ${DATA_ENV}")
    format: str | None = Field(default=None, description="source name; unset: recognised from the folder")
    annotations: str | None = Field(default=None, description="annotation file (frugalseg.annotations/1)")
    simulate: SimulateConfig | None = None
    pseudolabels: PseudoLabelConfig | None = None
    train_list: str | None = Field(default=None, description="file of training case ids; unset: the source's split")
    val_list: str | None = Field(default=None, description="file of validation case ids; unset: the source's split")
    patch_size: tuple[int, int] = (256, 256)
    crop_size: tuple[int, int] | None = Field(
        default=None, description="train on random windows of this size cut from the patch_size grid; "
                                  "inference still sees whole slices on the grid; unset: whole slices",
    )
    augment: bool = True
    intensity_jitter: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="with augment: per-item brightness and contrast factors uniform in [1 - s, 1 + s] "
                    "(torchvision ColorJitter on a grey image), for scanners or volumes of other intensity; 0: off",
    )
    mask_items_per_batch: int | None = Field(
        default=None, description="two-stream batches: this many items with masks per batch (SSL4MIS labeled_bs)"
    )
    num_workers: int = Field(default=0, ge=0)

    @field_validator("patch_size", "crop_size")
    @classmethod
    def _divisible(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and any(s <= 0 or s % 16 for s in v):
            raise ValueError(f"{v} must be positive multiples of 16 (four 2x down-samplings)")
        return v

    @model_validator(mode="after")
    def _crop_fits(self) -> DataConfig:
        if self.crop_size is not None and any(c > p for c, p in zip(self.crop_size, self.patch_size, strict=True)):
            raise ValueError(f"crop_size {self.crop_size} is larger than patch_size {self.patch_size}")
        return self

    def resolved_root(self) -> Path:
        """``root``, or ``$FRUGALSEG_DATA`` when unset; :class:`ConfigError` if neither is given."""
        root = self.root or os.environ.get(DATA_ENV)
        if not root:
            raise ConfigError(f"data.root is not set and ${DATA_ENV} is empty: say where the data is")
        return Path(root).expanduser()


class ModelConfig(_Strict):
    """The U-Net of a run: the SSL4MIS/ACTION U-Net by default, written only here (:class:`~frugalseg.nets.UNet`
    takes these defaults as its own)."""

    features: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
    norm: str = "batch"
    upsample: str = "bilinear"
    deep_supervision: bool = False
    ds_hidden: int = 64


class OptimConfig(_Strict):
    """Optimiser and learning-rate schedule (defaults: SGD 0.01 / 0.9 / 1e-4, poly 0.9, as all three code bases)."""

    name: OptimizerName = OptimizerName.SGD
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    lr_schedule: LRSchedule = Field(default=LRSchedule.POLY, description="poly: (1 - t/T)^poly_power; "
                                    "cosine: half a cosine from lr to 0 (after the warm-up, as one-cycle)")
    poly_power: float = Field(default=0.9, ge=0)
    warmup_iterations: int = Field(default=0, ge=0)
    grad_clip: float | None = Field(default=None, gt=0)


class TrainConfig(_Strict):
    """Length, batch, precision, and how often to validate, log and save."""

    iterations: int = Field(default=30000, gt=0)
    batch_size: int = Field(default=24, gt=0)
    seed: int = 0
    precision: Precision = Precision.AUTO
    channels_last: bool | None = Field(default=None, description="unset: on for CPU and CUDA")
    val_every: int = Field(default=200, gt=0)
    val_batch_size: int = Field(default=16, gt=0)
    checkpoint_every: int = Field(default=500, gt=0)
    log_every: int = Field(default=10, gt=0)
    sync_batchnorm: bool = Field(
        default=True,
        description="DDP on GPUs: BatchNorm statistics over all ranks (on CPU torch has no SyncBatchNorm: per rank)",
    )
    device: str | None = Field(default=None, description="unset: cuda if available, else cpu")
    threads: int | None = Field(default=None, gt=0, description="torch intra-op threads; unset: torch's default")

    @field_validator("precision", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:  # noqa: ANN401
        """YAML 1.1 reads a bare ``off`` as ``False``: accept it as the ``off`` it was meant to be."""
        return "off" if value is False else value


class MethodConfig(_Strict):
    """The method by registry name and its own options (validated by the method's ``Options`` model)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class RunConfig(_Strict):
    """Everything one training run needs."""

    method: MethodConfig
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    schedule: str = "paper"
    schedules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (enums as strings, tuples as lists): stored in checkpoints and run folders."""
        return self.model_dump(mode="json")


BASE_KEY = "_base_"
"""The key of a config file that names the files it is composed on."""

METHODS_FOLDER = "methods"
"""Shipped method files (one per method, for any data) live in ``configs/methods/``."""


def configs_dir() -> Path:
    """Folder of the configs shipped inside the package."""
    return Path(str(resources.files("frugalseg") / "configs"))


def shipped_configs() -> list[str]:
    """Names a command accepts for a shipped config: the runs (``acdc_pce``) and the methods (``pce``)."""
    runs = sorted(f.stem for f in configs_dir().glob("*.yaml"))
    return runs + sorted(f.stem for f in (configs_dir() / METHODS_FOLDER).glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """An existing file path, or the name of a shipped run or method config (``acdc_pce``, ``pce.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    for folder in (configs_dir(), configs_dir() / METHODS_FOLDER):
        for candidate in (folder / p.name, folder / f"{p.name}.yaml"):
            if candidate.is_file():
                return candidate
    raise ConfigError(f"{path}: no such config file (shipped configs: {', '.join(shipped_configs())})")


def merge_trees(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merged key by key (recursively), any other value replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    from frugalseg.strict_yaml import load_yaml_text  # refuses duplicate keys

    tree = load_yaml_text(text, path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(tree).__name__}")
    return tree


def _base_path(path: Path, base: str) -> Path:
    """A base named by ``path``: relative to ``path``'s folder, else among the shipped configs."""
    for candidate in (path.parent / base, configs_dir() / base):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{path}: {BASE_KEY}: {base!r} is neither next to it nor a shipped config")


def read_config_tree(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw tree of a config file composed on its bases (``_base_``), not yet validated.

    Raises:
        ConfigError: a file cannot be read, ``_base_`` is not a name or a list of names, a base does not
            exist, or the bases name each other in a cycle.
    """
    path = Path(path)
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"{path}: {BASE_KEY} files include each other: {cycle}")
    tree = _read_yaml(path)
    bases = tree.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge_trees(merged, read_config_tree(_base_path(path, base), (*_chain, path.resolve())))
    return merge_trees(merged, tree)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.sub=value``; the value is parsed as YAML (``3``, ``0.5``, ``[128,128]``, ``null``, ``true``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:  # PyYAML: "\U" escapes
        raise ConfigError(f"override {text!r}: value is not valid YAML ({' '.join(str(exc).split())})") from exc
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:  # noqa: ANN401
    """Set ``tree[a][b][c] = value`` for ``key = "a.b.c"``, creating dicts along the way."""
    if not isinstance(key, str):
        raise ConfigError(f"key {key!r} is not a name")
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``tree`` with each dotted override applied in order."""
    out = copy.deepcopy(tree)
    for key, value in overrides.items():
        set_dotted(out, key, value)
    return out


def build_config(tree: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "<config>") -> RunConfig:
    """Validate a raw config tree: select its schedule, apply overrides, check every key and method option.

    The schedule block (``schedules[schedule]``) is applied first, then the command-line
    overrides, so ``train.iterations=10`` always wins over the schedule.
    """
    cli = dict(parse_override(o) for o in overrides)
    raw = dict(tree)
    schedule = cli.get("schedule", raw.get("schedule", "paper"))
    schedules = raw.get("schedules") or {}
    if not isinstance(schedule, str):
        raise ConfigError(f"{source}: schedule: a schedule name, not {schedule!r}")
    if not isinstance(schedules, dict) or not all(isinstance(b, dict) for b in schedules.values()):
        raise ConfigError(f"{source}: schedules: a mapping of schedule names to blocks of overrides")
    if schedules and schedule not in schedules:
        raise ConfigError(f"{source}: schedule {schedule!r} is not one of {sorted(schedules)}")
    if not schedules and "schedule" in cli and schedule != "paper":
        raise ConfigError(f"{source}: schedule={schedule!r}, but this config has no schedules block (it always "
                          "runs as written)")
    raw = apply_overrides(raw, schedules.get(schedule, {}))
    raw = apply_overrides(raw, cli)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation(exc)}") from exc
    # late import: only the method registry knows each method's options, and importing the schema must load
    # no method (docs/architecture.md, the one allowed upward import)
    from frugalseg.methods import validate_method_options

    validate_method_options(config.method, source)
    from frugalseg.preflight import check_config  # what the network, the method and the device need

    check_config(config, source)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config (a path or a shipped config's name) on its bases and validate it with ``overrides``."""
    resolved = resolve_config_path(path)
    config = build_config(read_config_tree(resolved), overrides, source=str(resolved))
    if config.name is None:
        config.name = resolved.stem
    return config

