"""The one training loop. It knows no method: it calls ``method.training_step`` and does the rest.

The loop is a sequence of named steps (:class:`Trainer`): build (dataset, batches, stages), wrap
(device, DistributedDataParallel), restore (``--resume``), then per iteration step, log, validate and
save, and finish (summary).

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
side's (:func:`frugalseg.train.train_run`).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from frugalseg.config import RunConfig
from frugalseg.data.dataset import SliceDataset
from frugalseg.engine.batches import BatchSource
from frugalseg.engine.logs import RunLogger
from frugalseg.engine.optimisation import Optimisation, autocast_dtype, build_optimisation, start_stage
from frugalseg.engine.run_data import RunData, annotations_origin
from frugalseg.errors import ConfigError
from frugalseg.run_folder import RUN_MARKER, RunFolder
from frugalseg.training import Method, StagePlan, StepContext, StepOutput
from frugalseg.training import collectives as dist_utils
from frugalseg.training.checkpoint import TrainingState, load_training_state, save_checkpoint
from frugalseg.training.ema import update_ema
from frugalseg.training.schedules import ema_decay

__all__ = ["RUN_MARKER", "TrainResult", "Trainer", "seed_everything"]



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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class _Run:
    """Everything the steps of one training share once it is built."""

    info: dist_utils.DistInfo
    device: torch.device
    stages: StagePlan
    batches: BatchSource
    amp_dtype: torch.dtype | None
    channels_last: bool
    logger: RunLogger
    opt: Optimisation | None = None
    start: int = 0
    best_dice: float = -1.0
    best_iteration: int = -1
    timer: dict[str, float] = field(default_factory=dict)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def optimisation(self) -> Optimisation:
        assert self.opt is not None, "the optimiser is built before the loop runs"
        return self.opt


class Trainer:
    """Train a built method on a run's data into ``run_dir`` (a folder the caller has prepared).

    The caller (:func:`frugalseg.train.train_run`) seeds the generators before building the
    method, so that its initial weights and every random draw of the loop follow from the seed.

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
        folder: RunFolder | None = None,
    ) -> None:
        self.config = config
        self.folder = folder  # rank 0's checked run folder: opened, committed, closed or aborted here
        self.method = method
        self.data = data
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.stop_at = stop_at

    def run(self) -> TrainResult:
        """Join the process group (under torchrun), write the run's files, train, leave the group."""
        cfg = self.config
        info = dist_utils.init_distributed("cuda" if torch.cuda.is_available() and not cfg.train.device else "cpu")
        device = resolve_device(cfg, info.local_rank)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        folder = self.folder if info.is_main else None
        try:
            if folder is not None:  # every input is checked: from here on the folder changes (undone on failure)
                folder.open(cfg.to_dict())
            if info.is_main:
                self._write_run_files()
            run = self.build(info, device)
            self.wrap(run)
            run.opt = build_optimisation(self.method.trainable_parameters(), cfg.optim, run.stages, run.amp_dtype,
                                         device)
            if self.resume:
                self.restore(run)
            if self.stop_at is not None and self.stop_at <= run.start:
                raise ConfigError(f"{self.run_dir}: cannot stop at iteration {self.stop_at}: the run is at "
                                  f"iteration {run.start} already")
            done, seconds = self.loop(run)
            result = self.finish(run, done, seconds)
        except BaseException:
            if folder is not None:
                folder.abort()
            raise
        finally:
            dist_utils.shutdown(info)
        if folder is not None:
            folder.close()
        return result

    # ----- the named steps ------------------------------------------------------------------------------------
    def build(self, info: dist_utils.DistInfo, device: torch.device) -> _Run:
        """The dataset, the items the method learns from, the stages and each stage's batch composition."""
        cfg, data, method = self.config, self.data, self.method
        requirements = method.requirements(method.options)
        dataset = SliceDataset(
            data.train_items, data.annotations, data.source.num_classes, cfg.data.patch_size,
            augment=cfg.data.augment, intensity_jitter=cfg.data.intensity_jitter, origin=annotations_origin(cfg),
            crop_size=cfg.data.crop_size,
        )
        stages = StagePlan(method.stages(cfg.train.iterations), cfg.train.iterations)
        batches = BatchSource(cfg, dataset, requirements, cfg.method.name, stages, info)
        channels_last = cfg.train.channels_last if cfg.train.channels_last is not None else True
        return _Run(info, device, stages, batches, autocast_dtype(cfg.train.precision, device), channels_last,
                    RunLogger(self.run_dir, enabled=info.is_main))

    def wrap(self, run: _Run) -> None:
        """Move the method to the device; under torchrun, sync batch norm (CUDA) and wrap its networks in DDP."""
        method, device = self.method, run.device
        # torch's type stubs leave out ``memory_format``, which ``Module.to`` takes (channels-last weights)
        cast(Any, method).to(device=device, memory_format=run.memory_format)
        if not run.info.enabled:
            return
        if self.config.train.sync_batchnorm and device.type == "cuda":  # SyncBatchNorm has no CPU kernel
            for name in list(method.nets):
                method.nets[name] = nn.SyncBatchNorm.convert_sync_batchnorm(method.nets[name])
        ids = [device.index] if device.type == "cuda" else None
        unused = method.ddp_find_unused_parameters
        method.wrap_networks(
            lambda net: nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=unused)
        )

    def restore(self, run: _Run) -> None:
        """Continue from ``last.pt``: weights, optimiser, schedule, scaler, this rank's RNG, best score, logs."""
        state = load_training_state(self.run_dir / "checkpoints" / "last.pt", map_location=run.device)
        opt = run.optimisation
        self.method.load_state_dict(state.method)
        opt.optimizer.load_state_dict(state.optimizer)
        opt.scheduler.load_state_dict(state.scheduler)
        opt.scaler.load_state_dict(state.scaler)
        torch.set_rng_state(state.rng[run.info.rank % len(state.rng)])
        run.start, run.best_dice, run.best_iteration = state.iteration, state.best_dice, state.best_iteration
        run.timer["before"] = state.train_seconds  # a resumed run's summary gives the total
        run.logger.truncate_after(run.start)

    def loop(self, run: _Run) -> tuple[int, float]:
        """Every iteration from ``run.start``: step, then log, validate, save when due; (iterations, seconds)."""
        cfg, total, method = self.config, self.config.train.iterations, self.method
        method.train()
        done = run.start
        t0 = time.perf_counter()
        run.timer.update(t0=t0, t_log=t0, it_log=float(run.start))
        name = cfg.name or "train"
        bar = tqdm(total=total, initial=run.start, disable=not (self.progress and run.info.is_main), desc=name,
                   dynamic_ncols=True)
        for it in range(run.start, total):
            stage_index, ctx = run.stages.index_at(it), run.stages.context(it)
            if it == run.stages.start(stage_index):
                start_stage(method, run.optimisation.optimizer, run.stages, stage_index, ctx)
                if len(run.stages) > 1:
                    bar.set_description(f"{name} [{ctx.stage}]")
            out, loss = self.step(run, it, stage_index, ctx)
            done = it + 1
            bar.update(1)
            if done % cfg.train.log_every == 0 or done == total:
                bar.set_postfix(loss=f"{self.log(run, done, loss, out, stage_index):.4f}")
            if self.data.val_cases and (done % cfg.train.val_every == 0 or done == total):
                self.validate(run, done, bar)
            stopping = self.stop_at is not None and done >= self.stop_at
            self.save(run, done, stage_index, ctx, stopping)
            if stopping:
                break
        bar.close()
        run.logger.close()
        return done, run.timer.get("before", 0.0) + time.perf_counter() - t0

    def step(self, run: _Run, it: int, stage_index: int, ctx: StepContext) -> tuple[StepOutput, torch.Tensor]:
        """One optimiser step on the batch of ``it``: losses, backward, clip, step, schedule, EMA, the method's hook."""
        method, opt, clip = self.method, run.optimisation, self.config.optim.grad_clip
        batch = run.batches.batch(stage_index, it, run.device, run.memory_format)
        autocast = torch.autocast(run.device.type, dtype=run.amp_dtype) if run.amp_dtype else nullcontext()
        with autocast:
            out = method.training_step(batch, ctx)
        loss = out.total()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"iteration {it}: loss is {loss.item()} ({_fmt(out.losses)})")
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        if clip:
            opt.scaler.unscale_(opt.optimizer)
            torch.nn.utils.clip_grad_norm_(opt.params, clip)
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        opt.scheduler.step()
        for teacher, student in method.ema_pairs:
            update_ema(method.teachers[teacher], method.nets[student], ema_decay(it, method.ema_decay))
        method.on_step_end(ctx)
        return out, loss

    def log(self, run: _Run, done: int, loss: torch.Tensor, out: StepOutput, stage_index: int) -> float:
        """One row of the training log (losses averaged over ranks, weights, metrics, speed); the loss logged."""
        info = run.info
        row: dict[str, float] = {"loss": dist_utils.all_reduce_mean(loss.detach(), info).item(),
                                 "lr": float(run.optimisation.scheduler.get_last_lr()[0])}
        row.update({k: dist_utils.all_reduce_mean(v.detach().float(), info).item() for k, v in out.losses.items()})
        row.update({f"w_{k}": v for k, v in out.weights.items()})
        row.update(out.metrics)
        if len(run.stages) > 1:
            row["stage"] = stage_index
        now = time.perf_counter()
        row["seconds_per_iteration"] = (now - run.timer["t_log"]) / max(1, done - int(run.timer["it_log"]))
        run.timer.update(t_log=now, it_log=float(done))
        run.logger.log("train", done, row)
        return row["loss"]

    def validate(self, run: _Run, done: int, bar: Any) -> None:  # noqa: ANN401 (a tqdm bar)
        """Rank 0 scores the validation volumes and keeps ``best.pt``; every rank waits for it."""
        if run.info.is_main:
            scores = self._scores(run)
            run.logger.log("val", done, scores)
            if scores["dice"] > run.best_dice:
                run.best_dice, run.best_iteration = scores["dice"], done
                # rank 0 alone is here: no collective (best.pt is for inference, not for resuming)
                save_checkpoint(self._state(run, done, [torch.get_rng_state()]),
                                self.run_dir / "checkpoints" / "best.pt")
            total = self.config.train.iterations
            bar.write(f"[{done}/{total}] val dice {scores['dice']:.4f} "
                      f"(best {run.best_dice:.4f} @ {run.best_iteration})")
        self.method.train()
        dist_utils.barrier(run.info)

    def save(self, run: _Run, done: int, stage_index: int, ctx: StepContext, stopping: bool) -> None:
        """``last.pt`` every ``checkpoint_every``, at the end, a stop and a stage's end (+ ``stage_<name>.pt``)."""
        cfg = self.config
        stage_end = len(run.stages) > 1 and done == run.stages.end(stage_index)
        if not (done % cfg.train.checkpoint_every == 0 or done == cfg.train.iterations or stopping or stage_end):
            return
        state = self._state(run, done, _gather_rng(run.info))  # every rank joins the RNG gather
        if run.info.is_main:
            save_checkpoint(state, self.run_dir / "checkpoints" / "last.pt")
            if self.folder is not None:
                self.folder.checkpoint_written()  # an old run moved aside by --overwrite goes now
            if stage_end:
                save_checkpoint(state, self.run_dir / "checkpoints" / f"stage_{ctx.stage}.pt")

    def finish(self, run: _Run, done: int, seconds: float) -> TrainResult:
        """At the run's end, rank 0 writes ``summary.json`` (and ``best.pt`` = ``last.pt`` without validation)."""
        total = self.config.train.iterations
        if run.info.is_main and done == total:
            checkpoints = self.run_dir / "checkpoints"
            if not self.data.val_cases:  # no validation: the last weights are the ones to use
                shutil.copyfile(checkpoints / "last.pt", checkpoints / "best.pt")
            summary = {"iterations": total, "best_dice": run.best_dice, "best_iteration": run.best_iteration,
                       "train_seconds": seconds, "world_size": run.info.world_size}
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return TrainResult(self.run_dir, done, run.best_dice, run.best_iteration, seconds)

    # ----- helpers ----------------------------------------------------------------------------------------------
    def _write_run_files(self) -> None:
        """``config.json`` (the run-folder marker) and, when the run has annotations, ``annotations.json``."""
        if self.folder is None:  # a RunFolder writes config.json itself (and keeps it on resume)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / RUN_MARKER).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        annotations = self.data.annotations
        if annotations is not None and not (self.run_dir / "annotations.json").exists():
            from frugalseg.data.annotations import save_annotations

            save_annotations(annotations, self.run_dir / "annotations.json", overwrite=True)

    def _state(self, run: _Run, iteration: int, rng: list[torch.Tensor]) -> TrainingState:
        """The :class:`TrainingState` of this moment, as a checkpoint holds it."""
        source, opt = self.data.source, run.optimisation
        return TrainingState(
            config=self.config.to_dict(), num_classes=source.num_classes, method=self.method.state_dict(),
            iteration=iteration, in_channels=source.in_channels,
            class_names={str(k): v for k, v in source.classes.items()},
            optimizer=opt.optimizer.state_dict(), scheduler=opt.scheduler.state_dict(),
            scaler=opt.scaler.state_dict(), rng=rng, best_dice=run.best_dice, best_iteration=run.best_iteration,
            train_seconds=run.timer.get("before", 0.0) + time.perf_counter() - run.timer.get("t0", time.perf_counter()),
        )

    def _scores(self, run: _Run) -> dict[str, float]:
        """Mean Dice (and per-class Dice, HD95) of the inference network on the validation volumes."""
        from frugalseg.evaluation.inference import evaluate_cases
        from frugalseg.evaluation.metrics import summarise

        cfg = self.config
        results = evaluate_cases(self.method.inference_network(), self.data.val_cases, patch_size=cfg.data.patch_size,
                                 batch_size=cfg.train.val_batch_size, amp=run.amp_dtype is not None,
                                 device=run.device, channels_last=run.channels_last)
        summary = summarise(results, self.data.source.classes)
        scores = {"dice": summary["overall"]["dice"]["mean"], "hd95": summary["overall"]["hd95"]["mean"]}
        for name, per in summary["classes"].items():
            scores[f"dice_{name}"] = per["dice"]["mean"]
        return scores


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
