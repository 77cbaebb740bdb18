"""Test helpers shared by the engine, method and CLI tests (all on the bundled sample)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from frugalseg.config import RunConfig, build_config
from frugalseg.data.dataset import SliceDataset
from frugalseg.engine.batches import select_items
from frugalseg.engine.run_data import RunData, load_run_data
from frugalseg.methods import build_method
from frugalseg.training import StepContext


def sample_root() -> Path:
    from frugalseg.data.sample import sample_path

    return sample_path()


def tiny_config(method: str, options: dict[str, Any] | None = None, **sections: Any) -> RunConfig:  # noqa: ANN401
    """A config that trains in seconds on the sample: 64x64 input, batch 4, a handful of iterations."""
    tree: dict[str, Any] = {
        "method": {"name": method, "options": options or {}},
        "data": {"root": str(sample_root()), "patch_size": [64, 64]},
        "train": {"iterations": 6, "batch_size": 4, "val_every": 1000, "checkpoint_every": 3, "log_every": 1,
                  "precision": "off", "val_batch_size": 8},
        "model": {"features": [8, 16, 32, 64, 128]},
    }
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    cfg = build_config(tree)
    cfg.name = f"test-{method}"
    return cfg


def loss_drops_on_fixed_batch(config: RunConfig, steps: int = 15, data: RunData | None = None) -> tuple[float, float]:
    """Loss of the method on one fixed batch before and after ``steps`` SGD steps on it.

    The same batch, no augmentation and the same RNG seed before each evaluation: what changes is
    only the weights, so a drop shows the method's losses train its networks.
    """
    torch.manual_seed(0)
    data = data or load_run_data(config, with_val=False)
    method = build_method(config, data.source.in_channels, data.source.num_classes)
    dataset = SliceDataset(data.train_items, data.annotations, data.source.num_classes, config.data.patch_size,
                           augment=False)
    chosen = select_items(dataset, method.requirements(method.options), config.method.name)
    stride = max(1, len(chosen) // 8)
    picks = chosen[::stride][:8]
    mask_idx = set(dataset.mask_indices)
    others = [i for i in chosen if i not in mask_idx]
    if method.requirements(method.options).get("two_stream") and others:
        picks = [i for i in picks if i in mask_idx][:4] + others[:: max(1, len(others) // 4)][:4]
    batch = torch.utils.data.default_collate([dataset[(i, 0)] for i in picks])
    opt = torch.optim.SGD(list(method.trainable_parameters()), lr=0.01, momentum=0.9)
    method.train()

    def total(it: int) -> torch.Tensor:
        torch.manual_seed(1234)
        return method.training_step(batch, StepContext(iteration=it, max_iterations=steps)).total()

    before = total(steps).item()  # weights at the end of the ramp-ups, so before/after compare like with like
    for it in range(steps):
        loss = total(it)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for teacher, student in method.ema_pairs:
            from frugalseg.training.ema import update_ema

            update_ema(method.teachers[teacher], method.nets[student], 0.5)
    after = total(steps).item()
    return before, after


def run_ddp_workers(worker: Any, out_dir: Path, world: int = 2, timeout: float = 180.0) -> None:  # noqa: ANN401
    """Run ``worker(rank, world, init_file, out_dir)`` in ``world`` spawned gloo processes and wait for them.

    Spawned, not forked: a child forked after the parent ran OpenMP regions can hang in its first parallel
    region. A worker's exception is re-raised here with its traceback (``ProcessRaisedException``), so a
    failing DDP test says why. A failure of the process group itself (gloo's rendezvous or transport on a
    loaded 2-core machine, not the code under test) is retried once with a fresh store file; workers still
    running after ``timeout`` seconds are killed and the test fails.
    """
    import time

    import pytest
    import torch.multiprocessing as mp

    for attempt in range(2):
        ctx = mp.start_processes(worker, args=(world, str(out_dir / f"store{attempt}"), str(out_dir)),
                                 nprocs=world, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=1):
                if time.monotonic() > deadline:
                    for process in ctx.processes:
                        process.terminate()
                    pytest.fail(f"DDP workers did not finish in {timeout:.0f} s")
            return
        except mp.ProcessRaisedException as error:
            transport = any(word in str(error) for word in ("Gloo", "gloo", "Connection", "connect", "Store"))
            if attempt or not transport:
                raise
        except mp.ProcessExitedException:
            if attempt:
                raise
            for process in ctx.processes:
                process.terminate()


class one_thread:  # noqa: N801 (used as a context manager, like torch.no_grad)
    """Run the body with one intra-op thread, as the DDP workers do, so that single-process references
    reduce in the same order as the workers (a float sum's rounding depends on how it is split over threads)."""

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)


def shipped_schedule(name: str = "quick") -> dict[str, Any]:
    """The override block of a shipped schedule, as ``configs/_base_/schedules.yaml`` writes it.

    Tests that name the CPU schedule's numbers read them here, so that changing the schedule is one edit.
    """
    import yaml

    from frugalseg.config import configs_dir

    return yaml.safe_load((configs_dir() / "_base_" / "schedules.yaml").read_text())["schedules"][name]


def load_script(path: Path) -> ModuleType:
    """A script of ``scripts/`` or ``benchmarks/`` as a module (they are not a package), registered in
    ``sys.modules`` under its file name so that its dataclasses can look their module up."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
