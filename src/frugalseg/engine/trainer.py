"""The one training loop. It knows no method: it calls ``method.training_step`` and does the rest.

Per iteration: build the batch (a pure function of seed and iteration, so resuming is
exact), run the method under autocast, sum the weighted losses, back-propagate, clip,
step the optimiser and the poly schedule, update the EMA teachers, log; every
``val_every`` iterations evaluate on the validation volumes and keep the best
checkpoint by mean Dice; every ``checkpoint_every`` iterations save ``last.pt``.
Under ``torchrun`` the same loop runs on every rank with DistributedDataParallel;
rank 0 alone logs, evaluates and saves.

Stages. A method may split the run into consecutive stages (:meth:`Method.stages`, e.g. ACTION's
global distillation, local distillation and fine-tuning; :mod:`frugalseg.training.stages`). The loop is
the same; what the engine does per stage is generic and method-agnostic:

- the poly learning rate restarts at each stage's first iteration and decays over the stage's length;
- at a stage's first iteration the optimiser state (momentum) is cleared, the stage's parameter-group
  values (e.g. ``nesterov``) are set, and :meth:`Method.on_stage_start` is called (where a method
  re-initialises a teacher, say) -- also when a resumed run starts exactly there;
- batches have the stage's size and mask slots (:class:`~frugalseg.training.Stage`);
- the step context names the stage, the logs get a ``stage`` column (its index), and the last
  iteration of each stage saves ``checkpoints/stage_<name>.pt`` as well as ``last.pt``.

A run is still one schedule over ``train.iterations``: resuming from ``last.pt`` lands in the right
stage with the right learning rate because all of it is a function of the iteration. A method of one
stage (every method but ACTION) gets exactly the loop it had before stages existed.

The loop knows no method by name: it receives a built :class:`~frugalseg.training.Method` and the run's
data. Building the method from ``method.name``, preparing the run folder and seeding are the command
side's (:func:`frugalseg.commands.train.train_run`).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from frugalseg.config import Precision, RunConfig
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.sampling import BatchPlan
from frugalseg.engine.logs import RunLogger
from frugalseg.engine.run_data import RunData
from frugalseg.errors import DataError
from frugalseg.training import Method, StagePlan, StepContext
from frugalseg.training import collectives as dist_utils
from frugalseg.training.checkpoint import load_checkpoint, save_checkpoint
from frugalseg.training.ema import update_ema
from frugalseg.training.schedules import ema_decay

RUN_MARKER = "config.json"
"""A folder holding this file is a frugalseg run folder."""


@dataclass
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    iterations: int
    best_dice: float
    best_iteration: int
    seconds: float


def resolve_device(config: RunConfig, local_rank: int = 0) -> torch.device:
    if config.train.device:
        return torch.device(config.train.device)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: full fp32)."""
    if precision == Precision.OFF:
        return None
    if precision == Precision.FP16:
        return torch.float16
    if precision == Precision.BF16:
        return torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_items(dataset: SliceDataset, requirements: dict[str, Any], method_name: str) -> list[int]:
    """Indices of the training items a method learns from (``sample``: masks | labelled | all)."""
    sample = requirements.get("sample", "all")
    if sample == "masks":
        chosen = list(dataset.mask_indices)
        what = "items with a full mask"
    elif sample == "labelled":
        chosen = list(dataset.labelled_indices)
        what = "items with clicks, scribbles or masks"
    else:
        chosen = list(range(len(dataset)))
        what = "items"
    if not chosen:
        raise DataError(Path("<annotations>"), f"method {method_name!r} needs {what}, and the annotations give none")
    return chosen


def primary_items(dataset: SliceDataset, chosen: list[int]) -> list[int] | None:
    """The primary stream of two-stream sampling: the mask items, or with none the annotated items; ``None``
    (plain sampling) when that leaves nothing to mix.

    With no mask at all (a sparse box budget), the annotated slices take the mask items' fixed share of
    each batch, so that a method learning from boxes and unlabelled slices sees boxes in every batch.
    """
    masks = set(dataset.mask_indices)
    primary = [i for i in chosen if i in masks]
    if not primary:
        annotated = set(dataset.annotated_indices)
        primary = [i for i in chosen if i in annotated]
    if not primary or len(primary) == len(chosen):
        return None
    return primary


class Trainer:
    """Train a built method on a run's data into ``run_dir`` (a folder the caller has prepared).

    Args:
        config: the validated run config.
        method: the built method (its weights as the caller seeded them, on the CPU).
        data: the run's data (training items, validation volumes, annotations).
        run_dir: output folder (config, annotations, logs, checkpoints).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: stop after this many iterations (saving ``last.pt``) as if the run had been killed there;
            ``--resume`` continues it. The schedule still spans ``train.iterations``.
    """

    def __init__(
        self,
        config: RunConfig,
        method: Method[Any],
        data: RunData,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        stop_at: int | None = None,
    ) -> None:
        self.config = config
        self.method = method
        self.data = data
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.stop_at = stop_at

    # ------------------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.config
        info = dist_utils.init_distributed("cuda" if torch.cuda.is_available() and not cfg.train.device else "cpu")
        device = resolve_device(cfg, info.local_rank)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        data = self.data
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / RUN_MARKER).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            if data.annotations is not None and not (self.run_dir / "annotations.json").exists():
                from frugalseg.data.annotations import save_annotations

                save_annotations(data.annotations, self.run_dir / "annotations.json", overwrite=True)
        try:
            return self._train(data, info, device)
        finally:
            dist_utils.shutdown(info)

    # ------------------------------------------------------------------------------------------------------------
    def _train(self, data: RunData, info: dist_utils.DistInfo, device: torch.device) -> TrainResult:
        cfg = self.config
        num_classes = data.source.num_classes
        method = self.method
        requirements = method.requirements(method.options)
        dataset = SliceDataset(
            data.train_items, data.annotations, num_classes, cfg.data.patch_size, augment=cfg.data.augment,
            intensity_jitter=cfg.data.intensity_jitter,
        )
        chosen = select_items(dataset, requirements, cfg.method.name)
        total = cfg.train.iterations
        stages = StagePlan(method.stages(total), total)
        primary = primary_items(dataset, chosen) if requirements.get("two_stream") else None
        plans = [self._batch_plan(stages, k, chosen, primary, info) for k in range(len(stages))]

        channels_last = cfg.train.channels_last if cfg.train.channels_last is not None else True
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        method.to(device=device, memory_format=memory_format)
        if info.enabled:
            if cfg.train.sync_batchnorm and device.type == "cuda":  # SyncBatchNorm has no CPU kernel
                for name in list(method.nets):
                    method.nets[name] = nn.SyncBatchNorm.convert_sync_batchnorm(method.nets[name])
            ids = [device.index] if device.type == "cuda" else None
            unused = method.ddp_find_unused_parameters
            method.wrap_networks(
                lambda net: nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=unused)
            )

        params = list(method.trainable_parameters())
        o = cfg.optim
        if o.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: stages.lr_factor(it, o.poly_power, o.warmup_iterations)
        )
        amp_dtype = autocast_dtype(cfg.train.precision, device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16 and device.type == "cuda")

        start, best_dice, best_it = 0, -1.0, -1
        logger = RunLogger(self.run_dir, enabled=info.is_main)
        if self.resume:
            ckpt = load_checkpoint(self.run_dir / "checkpoints" / "last.pt", map_location=device)
            method.load_state_dict(ckpt["method"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            torch.set_rng_state(ckpt["rng"]["torch"][info.rank % len(ckpt["rng"]["torch"])])
            start, best_dice, best_it = ckpt["iteration"], ckpt["best_dice"], ckpt["best_iteration"]
            logger.truncate_after(start)

        def checkpoint_payload(iteration: int, rng: list[torch.Tensor]) -> dict[str, Any]:
            return {
                "config": cfg.to_dict(),
                "in_channels": data.source.in_channels,
                "num_classes": num_classes,
                "class_names": {str(k): v for k, v in data.source.classes.items()},
                "iteration": iteration,
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": {"torch": rng},
                "best_dice": best_dice,
                "best_iteration": best_it,
            }

        method.train()
        done = start
        t0 = t_log = time.perf_counter()
        it_log = start
        bar = tqdm(total=total, initial=start, disable=not (self.progress and info.is_main), desc=cfg.name or "train",
                   dynamic_ncols=True)
        for it in range(start, total):
            stage_index = stages.index_at(it)
            ctx = stages.context(it)
            if it == stages.start(stage_index):
                self._start_stage(method, optimizer, stages, stage_index, ctx)
                if len(stages) > 1:
                    bar.set_description(f"{cfg.name or 'train'} [{ctx.stage}]")
            plan = plans[stage_index]
            keys = plan.for_rank(plan.batch(it), info.rank, info.world_size)
            batch = default_collate([dataset[(chosen[i], s)] for i, s in keys])
            batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            batch["image"] = batch["image"].contiguous(memory_format=memory_format)
            autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            with autocast:
                out = method.training_step(batch, ctx)
            loss = out.total()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"iteration {it}: loss is {loss.item()} ({_fmt(out.losses)})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if o.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            for teacher, student in method.ema_pairs:
                update_ema(method.teachers[teacher], method.nets[student], ema_decay(it, method.ema_decay))
            method.on_step_end(ctx)
            done = it + 1
            bar.update(1)
            if done % cfg.train.log_every == 0 or done == total:
                row = {"loss": dist_utils.all_reduce_mean(loss.detach(), info).item(), "lr": scheduler.get_last_lr()[0]}
                row.update({k: dist_utils.all_reduce_mean(v.detach().float(), info).item()
                            for k, v in out.losses.items()})
                row.update({f"w_{k}": v for k, v in out.weights.items()})
                row.update(out.metrics)
                if len(stages) > 1:
                    row["stage"] = stage_index
                now = time.perf_counter()
                row["seconds_per_iteration"] = (now - t_log) / max(1, done - it_log)
                t_log, it_log = now, done
                logger.log("train", done, row)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if data.val_cases and (done % cfg.train.val_every == 0 or done == total):
                if info.is_main:
                    scores = self._validate(method, data, device, amp_dtype is not None, channels_last)
                    logger.log("val", done, scores)
                    if scores["dice"] > best_dice:
                        best_dice, best_it = scores["dice"], done
                        # rank 0 alone is here: no collective (best.pt is for inference, not for resuming)
                        payload = checkpoint_payload(done, [torch.get_rng_state()])
                        save_checkpoint(payload, self.run_dir / "checkpoints" / "best.pt")
                    bar.write(f"[{done}/{total}] val dice {scores['dice']:.4f} (best {best_dice:.4f} @ {best_it})")
                method.train()
                dist_utils.barrier(info)
            stopping = self.stop_at is not None and done >= self.stop_at
            stage_end = len(stages) > 1 and done == stages.end(stage_index)
            if done % cfg.train.checkpoint_every == 0 or done == total or stopping or stage_end:
                payload = checkpoint_payload(done, _gather_rng(info))  # every rank joins the RNG gather
                if info.is_main:
                    save_checkpoint(payload, self.run_dir / "checkpoints" / "last.pt")
                    if stage_end:
                        save_checkpoint(payload, self.run_dir / "checkpoints" / f"stage_{ctx.stage}.pt")
            if stopping:
                break
        bar.close()
        logger.close()
        seconds = time.perf_counter() - t0
        if info.is_main and done == total:
            if not data.val_cases:  # no validation: the last weights are the ones to use
                shutil.copyfile(self.run_dir / "checkpoints" / "last.pt", self.run_dir / "checkpoints" / "best.pt")
            summary = {"iterations": total, "best_dice": best_dice, "best_iteration": best_it,
                       "train_seconds": seconds, "world_size": info.world_size}
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return TrainResult(self.run_dir, done, best_dice, best_it, seconds)

    def _batch_plan(self, stages: StagePlan, index: int, chosen: list[int], primary: list[int] | None,
                    info: dist_utils.DistInfo) -> BatchPlan:
        """The batch composition of stage ``index`` (two-stream when ``primary`` lists the mask items)."""
        cfg = self.config
        size, per_batch = stages.batch_shape(index, cfg.train.batch_size, cfg.data.mask_items_per_batch)
        if size % info.world_size:
            raise ValueError(f"batch size {size} (stage {stages.stages[index].name!r}) is not divisible by "
                             f"{info.world_size} ranks")
        if primary is None:
            return BatchPlan(len(chosen), size, cfg.train.seed)
        return BatchPlan(len(chosen), size, cfg.train.seed, primary=_positions(chosen, primary),
                         primary_per_batch=per_batch or size // 2)

    @staticmethod
    def _start_stage(method: Method[Any], optimizer: torch.optim.Optimizer, stages: StagePlan, index: int,
                     ctx: StepContext) -> None:
        """What changes at a stage's first iteration: optimiser state and group values, then the method's hook."""
        stage = stages.stages[index]
        if index > 0 and stage.reset_optimizer:
            optimizer.state.clear()
        for key, value in stage.optimizer.items():
            for group in optimizer.param_groups:
                if key not in group:
                    raise ValueError(f"stage {stage.name!r} sets optimiser option {key!r}, which "
                                     f"{type(optimizer).__name__} does not have")
                group[key] = value
        method.on_stage_start(stage, ctx)

    def _validate(self, method: Method[Any], data: RunData, device: torch.device, amp: bool,
                  channels_last: bool) -> dict[str, float]:
        """Mean Dice (and per-class Dice, HD95) of the inference network on the validation volumes."""
        from frugalseg.evaluation.inference import evaluate_cases
        from frugalseg.evaluation.metrics import summarise

        net = method.inference_network()
        results = evaluate_cases(net, data.val_cases, patch_size=self.config.data.patch_size,
                                 batch_size=self.config.train.val_batch_size, amp=amp, device=device,
                                 channels_last=channels_last)
        summary = summarise(results, data.source.classes)
        scores = {"dice": summary["overall"]["dice"]["mean"], "hd95": summary["overall"]["hd95"]["mean"]}
        for name, per in summary["classes"].items():
            scores[f"dice_{name}"] = per["dice"]["mean"]
        return scores


def _positions(chosen: list[int], subset: list[int] | None) -> list[int] | None:
    """Positions within ``chosen`` of the dataset indices in ``subset``."""
    if subset is None:
        return None
    where = {idx: pos for pos, idx in enumerate(chosen)}
    return [where[i] for i in subset]


def _gather_rng(info: dist_utils.DistInfo) -> list[torch.Tensor]:
    """Every rank's CPU RNG state (dropout, noise), so a resumed DDP run continues each rank's stream."""
    state = torch.get_rng_state()
    if not info.enabled:
        return [state]
    import torch.distributed as dist

    states = [torch.empty_like(state) for _ in range(info.world_size)]
    dist.all_gather(states, state)
    return states


def _fmt(losses: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())


__all__ = ["TrainResult", "Trainer", "seed_everything"]
