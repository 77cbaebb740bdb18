from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from frugalseg.config import build_config, load_config
from frugalseg.errors import ConfigError
from frugalseg.losses.contrastive_variance import contrastive_variance_loss
from frugalseg.losses.partial_ce import partial_cross_entropy
from frugalseg.methods import METHODS, get_method
from frugalseg.methods.pscv import PSCV, PSCVOptions, cv_weight_at
from frugalseg.training import StepContext
from tests.helpers import loss_drops_on_fixed_batch, one_thread, run_ddp_workers, tiny_config

K = 4  # classes, background included (as ACDC)


def _tiny_net() -> nn.Module:
    # A network small enough to check gradients by hand; PSCV only needs (B, 1, H, W) -> (B, K, H, W) logits.
    return nn.Conv2d(1, K, kernel_size=3, padding=1)


def _method(**options: object) -> PSCV:
    torch.manual_seed(0)
    return PSCV(PSCVOptions.model_validate(options), _tiny_net, K)


def _batch(b: int = 3, size: int = 8, clicks: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images; every pixel unknown (all candidates) except, with ``clicks``, one click per class per image."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 1, size, size, generator=g)
    candidates = torch.ones(b, K, size, size, dtype=torch.bool)
    if clicks:
        for i in range(b):
            flat = torch.randperm(size * size, generator=g)[:K]
            for c, p in enumerate(flat.tolist()):
                y, x = divmod(p, size)
                candidates[i, :, y, x] = False
                candidates[i, c, y, x] = True
    return {
        "image": image,
        "candidates": candidates,
        "presence": torch.full((b, K), -1, dtype=torch.int8),
        "label": torch.full((b, size, size), -1, dtype=torch.long),
        "has_mask": torch.zeros(b, dtype=torch.bool),
    }


# ---------------------------------------------------------------------------------------------------------------
# Registry, requirements, options.
# ---------------------------------------------------------------------------------------------------------------


def test_registered_and_samples_labelled_items():
    assert get_method("pscv") is PSCV and "pscv" in METHODS
    assert PSCV.requirements(PSCVOptions()) == {"sample": "labelled"}


@pytest.mark.parametrize(
    "options",
    [
        {"lambda": 0.1},  # unknown key (the option is cv_weight)
        {"cv_weight": -0.1},
        {"temperature": 0.0},
        {"rampup_fraction": 1.5},
        {"negatives": "same_image"},
    ],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        PSCVOptions.model_validate(options)


def test_unknown_option_in_a_config_names_the_key():
    with pytest.raises(ConfigError, match=r"method\.options\.lambda: unknown key"):
        build_config({"method": {"name": "pscv", "options": {"lambda": 0.1}}})


@pytest.mark.parametrize("schedule", ["paper", "quick"])
def test_shipped_config_differs_from_pce_only_by_the_method(schedule):
    # PSCV vs pCE is a fair comparison only if data (clicks, seed), network and schedule are the same.
    pscv = load_config("acdc_pscv", [f"schedule={schedule}"])
    pce = load_config("acdc_pce", [f"schedule={schedule}"])
    assert pscv.method.name == "pscv" and pce.method.name == "pce"
    for section in ("data", "model", "optim", "train"):
        assert getattr(pscv, section) == getattr(pce, section), section
    assert pscv.data.simulate is not None and pscv.data.simulate.kind == "points"
    PSCVOptions.model_validate(pscv.method.options)


# ---------------------------------------------------------------------------------------------------------------
# The loss is what the docstring says.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("negatives", ["all", "other_images"])
@pytest.mark.parametrize("include_background", [True, False])
def test_loss_is_pce_plus_weighted_cv(negatives, include_background):
    method = _method(cv_weight=0.3, temperature=0.5, negatives=negatives, include_background=include_background)
    batch = _batch()
    out = method.training_step(batch, StepContext(iteration=5, max_iterations=10))

    logits = method.nets["student"](batch["image"])
    pce = partial_cross_entropy(logits, batch["candidates"])
    cv = contrastive_variance_loss(
        logits, batch["image"], 0.5, negatives=negatives, include_background=include_background
    )
    # Raw values in ``losses``, λ in ``weights`` (so that the logs show both apart).
    assert set(out.losses) == {"pce", "cv"}
    assert out.losses["pce"].item() == pytest.approx(pce.item(), rel=1e-6)
    assert out.losses["cv"].item() == pytest.approx(cv.item(), rel=1e-6)
    assert out.weights == {"pce": 1.0, "cv": 0.3}
    assert out.total().item() == pytest.approx(pce.item() + 0.3 * cv.item(), rel=1e-6)
    assert cv.item() > 0


def test_gradient_reaches_the_network_through_the_cv_term_alone():
    # No singleton pixel: pCE is exactly 0 and carries no gradient; whatever the network gets is the CV term's.
    method = _method(cv_weight=1.0)
    batch = _batch(clicks=False)
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    assert out.losses["pce"].item() == 0.0
    out.total().backward()
    grads = [p.grad for p in method.nets["student"].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0

    silent = _method(cv_weight=0.0)  # λ = 0: the same batch must give no gradient at all
    silent.training_step(batch, StepContext(iteration=0, max_iterations=10)).total().backward()
    assert all(p.grad.abs().sum().item() == 0 for p in silent.nets["student"].parameters())


def test_rampup_of_lambda():
    opts = PSCVOptions(cv_weight=0.5, rampup_fraction=0.4)
    assert cv_weight_at(opts, StepContext(iteration=0, max_iterations=100)) == pytest.approx(0.5 * math.exp(-5))
    assert cv_weight_at(opts, StepContext(iteration=20, max_iterations=100)) == pytest.approx(0.5 * math.exp(-5 * 0.25))
    assert cv_weight_at(opts, StepContext(iteration=40, max_iterations=100)) == pytest.approx(0.5)
    assert cv_weight_at(opts, StepContext(iteration=100, max_iterations=100)) == pytest.approx(0.5)
    # No ramp-up (the default, as in the paper): λ from the first iteration.
    assert cv_weight_at(PSCVOptions(cv_weight=0.5), StepContext(iteration=0, max_iterations=100)) == 0.5
    # The method reports the ramped weight.
    method = _method(cv_weight=0.5, rampup_fraction=0.4)
    out = method.training_step(_batch(), StepContext(iteration=0, max_iterations=100))
    assert out.weights["cv"] == pytest.approx(0.5 * math.exp(-5))


def test_bf16_autocast_gives_fp32_losses():
    method = _method()
    batch = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.losses.values())
    out.total().backward()
    assert all(torch.isfinite(p.grad).all() for p in method.nets["student"].parameters())


# ---------------------------------------------------------------------------------------------------------------
# Under DDP the global batch is contrasted and the update is the single-process one.
# ---------------------------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool (as DataLoader workers)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        method = _method(cv_weight=0.7, temperature=0.5)
        method.wrap_networks(lambda net: nn.parallel.DistributedDataParallel(net))
        full = _batch(b=4)
        share = 4 // world
        local = {k: v[rank * share : (rank + 1) * share] for k, v in full.items()}
        out = method.training_step(local, StepContext(iteration=0, max_iterations=10))
        out.total().backward()  # DDP averages the parameter gradients over the ranks
        grads = [p.grad.clone() for p in method.nets["student"].parameters()]
        torch.save({"cv": out.losses["cv"].detach(), "grads": grads}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_the_global_batch_and_matches_one_process(tmp_path):
    world = 2
    run_ddp_workers(_ddp_worker, tmp_path, world)

    # One process on the whole batch of 4 images (each image has K clicks, so the mean of the two ranks'
    # pCE means is the pCE mean of the whole batch and the whole update must agree).
    method = _method(cv_weight=0.7, temperature=0.5)
    with one_thread():
        out = method.training_step(_batch(b=4), StepContext(iteration=0, max_iterations=10))
        out.total().backward()
    expected = [p.grad for p in method.nets["student"].parameters()]
    for rank in range(world):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["cv"].item() == pytest.approx(out.losses["cv"].item(), rel=1e-5)
        for g, e in zip(got["grads"], expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# End to end on the bundled sample.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["points", "scribbles"])
def test_a_few_steps_reduce_the_loss(kind):
    config = tiny_config("pscv", {"cv_weight": 0.1, "temperature": 0.1}, data={"simulate": {"kind": kind, "seed": 0}})
    before, after = loss_drops_on_fixed_batch(config)
    assert after < before, (before, after)
