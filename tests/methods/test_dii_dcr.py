from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from frugalseg.bench.records import read_record, recorded_method_state, write_record
from frugalseg.config import load_config
from frugalseg.engine.run_data import load_run_data
from frugalseg.losses.co_regularisation import cross_pseudo_supervision, cutmix_masks, mix
from frugalseg.losses.dice import dice_ce_loss
from frugalseg.losses.instance_weighting import weighted_cross_entropy
from frugalseg.methods import METHODS, get_method
from frugalseg.methods.dii_dcr import (
    DIIDCR,
    BatchInstances,
    DIIDCROptions,
    Granularity,
    SoftmaxAverage,
    instance_slots,
)
from frugalseg.methods.restore import load_trained_model
from frugalseg.nets import UNet
from frugalseg.train import train_run
from frugalseg.training import StepContext
from frugalseg.training.checkpoint import load_checkpoint
from tests.helpers import (
    load_script,
    loss_drops_on_fixed_batch,
    one_thread,
    run_ddp_workers,
    shipped_schedule,
    tiny_config,
)

K = 4  # classes, background included (as ACDC)
REPO = Path(__file__).resolve().parents[2]


def _tiny_net() -> UNet:
    # Instance norm and no dropout: a network's output on an image does not depend on the rest of the batch,
    # so un-mixed and mixed images (or DDP shares) can be checked one by one.
    return UNet(num_classes=K, features=(4, 8), dropout=(0.0, 0.0), norm="instance")


def _method(**options: object) -> DIIDCR:
    torch.manual_seed(0)
    return DIIDCR(DIIDCROptions.model_validate(options), _tiny_net, K)


def _batch(size: int = 8) -> dict[str, torch.Tensor]:
    """Two strong images (random masks) and two weak ones with boxes:

    image 2 (item 20): box 0 of class 1 at rows 0-3, cols 0-3; box 1 of class 2 at rows 4-7, cols 4-7
    image 3 (item 21): box 0 of class 3 at rows 2-5, cols 2-5
    """
    g = torch.Generator().manual_seed(0)
    image = torch.rand(4, 1, size, size, generator=g)
    label = torch.full((4, size, size), -1)
    label[:2] = torch.randint(0, K, (2, size, size), generator=g)
    box_label = torch.full((4, size, size), -1)
    box_index = torch.full((4, size, size), -1)
    box_label[2:] = 0
    box_label[2, 0:4, 0:4], box_index[2, 0:4, 0:4] = 1, 0
    box_label[2, 4:8, 4:8], box_index[2, 4:8, 4:8] = 2, 1
    box_label[3, 2:6, 2:6], box_index[3, 2:6, 2:6] = 3, 0
    return {
        "image": image,
        "candidates": torch.ones(4, K, size, size, dtype=torch.bool),
        "presence": torch.full((4, K), -1, dtype=torch.int8),
        "label": label,
        "has_mask": torch.tensor([True, True, False, False]),
        "box_label": box_label,
        "box_index": box_index,
        "index": torch.tensor([10, 11, 20, 21]),
    }


def _budget(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample has 4 training patients: one with masks, the rest with boxes (masks7_boxes in small)."""
    path = tmp_path_factory.mktemp("budget") / "masks1_boxes.yaml"
    path.write_text("masks:\n  first_patients: 1\nrest:\n  boxes: 1\n")
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# Registry, options, shipped config.
# ---------------------------------------------------------------------------------------------------------------


def test_registered_and_samples_two_streams():
    assert get_method("dii_dcr") is DIIDCR and "dii_dcr" in METHODS
    assert DIIDCR.requirements(DIIDCROptions()) == {"sample": "all", "two_stream": True}


@pytest.mark.parametrize("options", [
    {"gamma": 0.5},  # unknown key (the option is gamma_init)
    {"gamma_init": 1.5},
    {"indicator_lr": 0.0},
    {"update_every": 0},
    {"instance": "pixel"},
    {"indicator_optimizer": "rmsprop"},
    {"cutmix_area": 1.0},
    {"inference": "average", "dcr": False},
])
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        DIIDCROptions.model_validate(options)


@pytest.mark.parametrize("schedule", ["paper", "quick"])
def test_shipped_config_and_its_baselines(schedule):
    cfg = load_config("acdc_dii_dcr", [f"schedule={schedule}"])
    assert cfg.data.simulate is not None and cfg.data.simulate.budget == "masks7_boxes"
    opts = DIIDCROptions.model_validate(cfg.method.options)
    assert opts.dii and opts.dcr and opts.instance == Granularity.BOX
    if schedule == "quick":
        quick = shipped_schedule("quick")
        assert cfg.data.patch_size == tuple(quick["data.patch_size"])
        assert cfg.train.batch_size == quick["train.batch_size"]
        assert cfg.train.iterations == quick["train.iterations"]
        assert (cfg.optim.name, cfg.optim.lr_schedule) == (quick["optim.name"], quick["optim.lr_schedule"])
    # The baselines of the evidence runs are overrides of the same config: same data, network and schedule.
    sup = load_config("acdc_dii_dcr", [f"schedule={schedule}", "method.name=supervised", "method.options={}"])
    naive = load_config("acdc_dii_dcr", [f"schedule={schedule}", "method.options.dii=false",
                                         "method.options.dcr=false"])
    noisy = load_config("acdc_dii_dcr", [f"schedule={schedule}", "data.simulate.budget=masks7_boxes_noisy"])
    for other in (sup, naive, noisy):
        for section in ("model", "optim", "train"):
            assert getattr(other, section) == getattr(cfg, section), section
    assert sup.data == cfg.data and naive.data == cfg.data and sup.method.name == "supervised"


# ---------------------------------------------------------------------------------------------------------------
# Instances, weights.
# ---------------------------------------------------------------------------------------------------------------


def test_instance_slots_per_granularity():
    batch = _batch()
    box = instance_slots(batch, Granularity.BOX)
    assert (box[:2] == -1).all()  # strong images hold no weak instance
    assert box[2, 0, 0] == 0 and box[2, 5, 5] == 1 and box[2, 0, 7] == -1 and box[3, 3, 3] == 0
    cls = instance_slots(batch, Granularity.CLASS)
    assert cls[2, 0, 0] == 1 and cls[2, 5, 5] == 2 and cls[3, 3, 3] == 3 and cls[3, 0, 0] == -1
    img = instance_slots(batch, Granularity.IMAGE)
    assert (img[2:] == 0).all() and (img[:2] == -1).all()  # the whole weak image, background included

    inst = BatchInstances.of(batch["index"], box)
    assert list(zip(inst.items.tolist(), inst.slots.tolist())) == [(20, 0), (20, 1), (21, 0)]
    assert inst.segments[2, 0, 0] == 0 and inst.segments[2, 5, 5] == 1 and inst.segments[3, 3, 3] == 2


def test_pixel_weights_and_image_trust_read_gamma():
    method = _method()
    method.indicators.grow(22, 2)
    method.indicators.gamma[20, 0], method.indicators.gamma[20, 1] = 0.2, 0.6
    batch = _batch()
    inst = BatchInstances.of(batch["index"], instance_slots(batch, Granularity.BOX))
    weights, trust, gamma = method.pixel_weights(batch, inst)
    assert gamma.tolist() == pytest.approx([0.2, 0.6, 0.5])  # item 21's box was never updated: γ₀
    assert weights[2, 0, 0] == pytest.approx(0.2) and weights[2, 5, 5] == pytest.approx(0.6)
    assert weights[2, 0, 7] == 1.0 and (weights[:2] == 1).all()  # outside every box, strong images: 1
    assert trust.tolist() == pytest.approx([1.0, 1.0, 0.4, 0.5])
    naive = _method(dii=False)
    weights, trust, _ = naive.pixel_weights(batch, inst)
    assert (weights == 1).all() and (trust == 1).all()


# ---------------------------------------------------------------------------------------------------------------
# The losses are what the docstring says.
# ---------------------------------------------------------------------------------------------------------------


def test_supervised_terms_without_dcr():
    method = _method(dcr=False)
    method.indicators.grow(22, 2)
    method.indicators.gamma[20, 0] = 0.2
    batch = _batch()
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    assert set(out.losses) == {"ce", "dice", "ce_weak"}
    assert out.weights == {"ce": 0.5, "dice": 0.5, "ce_weak": 0.5}
    logits = method.nets["student"](batch["image"])
    ce, dice = dice_ce_loss(logits[:2], batch["label"][:2])
    w = torch.ones(2, 8, 8)
    w[0, 0:4, 0:4], w[0, 4:8, 4:8], w[1, 2:6, 2:6] = 0.2, 0.5, 0.5
    weak = weighted_cross_entropy(logits[2:], batch["box_label"][2:], w)
    assert out.losses["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out.losses["dice"].item() == pytest.approx(dice.item(), rel=1e-6)
    assert out.losses["ce_weak"].item() == pytest.approx(weak.item(), rel=1e-6)


@pytest.mark.parametrize("weighting", ["pair", "pixel"])
def test_co_regularisation_term_in_the_step(weighting):
    method = _method(cr_weight=0.7, cr_weighting=weighting)
    method.indicators.grow(22, 2)
    method.indicators.gamma[20, 0], method.indicators.gamma[20, 1], method.indicators.gamma[21, 0] = 0.2, 0.6, 0.9
    batch = _batch()
    torch.manual_seed(5)
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    torch.manual_seed(5)
    mask = cutmix_masks(4, 8, 8, 0.5)
    partner = torch.tensor([1, 2, 3, 0])
    x, x_mix = batch["image"], mix(batch["image"], mask, partner)
    a, b = method.nets["student"], method.nets["peer"]
    pseudo_a, pseudo_b = (mix(net(x).argmax(dim=1), mask, partner) for net in (a, b))
    if weighting == "pair":
        trust = torch.tensor([1.0, 1.0, 0.4, 0.9])  # mean γ of each image's boxes, 1 for strong images
        weight = (trust + trust[partner]) / 2
    else:
        w = torch.ones(4, 8, 8)
        w[2, 0:4, 0:4], w[2, 4:8, 4:8], w[3, 2:6, 2:6] = 0.2, 0.6, 0.9
        weight = mix(w, mask, partner)
    expected = cross_pseudo_supervision(a(x_mix), b(x_mix), pseudo_a, pseudo_b, weight)
    assert out.losses["cr"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.weights["cr"] == 0.7
    # The supervised terms are summed over the two networks.
    ce = sum(dice_ce_loss(net(x)[:2], batch["label"][:2])[0] for net in (a, b))
    assert out.losses["ce"].item() == pytest.approx(ce.item(), rel=1e-5)


def test_hypergradients_are_the_exact_classifier_alignment():
    """``∂L_S/∂γ_k = −Σ_n g_S(f_n) · g_k(f_n)``, gathered in the pending sums, checked against autograd."""
    method = _method(start_fraction=0.0, strong_grad_ema=0.0, update_every=1000)
    batch = _batch()
    method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    method.on_step_end(StepContext(iteration=0, max_iterations=10))
    x = batch["image"]
    strong_pixels = torch.zeros(4, 8, 8, dtype=torch.bool)
    strong_pixels[:2] = True
    regions = {(20, 0): (2, batch["box_index"][2] == 0), (20, 1): (2, batch["box_index"][2] == 1),
               (21, 0): (3, batch["box_index"][3] == 0)}
    for (item, slot), (img, region) in regions.items():
        expected = 0.0
        for net in (method.nets["student"], method.nets["peer"]):
            feats = net(x, return_features=True).features[-1].detach()
            params = list(net.head.parameters())

            def grad_of(loss: torch.Tensor, params: list = params) -> torch.Tensor:
                return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])

            logits = net.head(feats)
            ce = F.cross_entropy(logits, torch.where(batch["has_mask"].reshape(-1, 1, 1), batch["label"],
                                                     batch["box_label"]).clamp(min=0), reduction="none")
            g_s = grad_of(ce[strong_pixels].mean())
            g_k = grad_of(ce[img][region].mean())
            expected -= float(g_s @ g_k)
        assert method.indicators.hypergrad_sum[item, slot].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)
        assert method.indicators.hypergrad_count[item, slot].item() == 1.0
    assert method.indicators.hypergrad_count.sum() == 3
    assert (method.indicators.gamma == 0.5).all()  # no step before τ iterations


def test_update_moves_only_the_instances_seen():
    method = _method(start_fraction=0.0, update_every=1, indicator_lr=0.1, indicator_poly_power=0.0)
    method.indicators.grow(30, 3)
    batch = _batch()
    ctx = StepContext(iteration=0, max_iterations=10)
    method.training_step(batch, ctx)
    method.on_step_end(ctx)
    ind = method.indicators
    seen = torch.zeros(30, 3, dtype=torch.bool)
    seen[20, 0] = seen[20, 1] = seen[21, 0] = True
    assert (ind.steps[seen] == 1).all() and (ind.steps[~seen] == 0).all()
    assert (ind.gamma[~seen] == 0.5).all()
    # Adam's first step on an instance is ±lr, whatever the scale of its hypergradient
    assert ((ind.gamma[seen] - 0.5).abs() - 0.1).abs().max() < 1e-5
    assert ind.hypergrad_count.sum() == 0 and ind.hypergrad_sum.abs().sum() == 0  # cleared after the step


def test_naive_hybrid_learns_no_gamma():
    method = _method(dii=False, dcr=False)
    assert list(method.nets) == ["student"]
    ctx = StepContext(iteration=5, max_iterations=10)
    out = method.training_step(_batch(), ctx)
    method.on_step_end(ctx)
    assert method.indicators.shape == (0, 0) and out.metrics == {}  # no γ, nothing to log


def test_no_gamma_is_learnt_before_the_warm_up_ends():
    method = _method(start_fraction=0.5, update_every=1)
    for it in range(3):
        method.training_step(_batch(), StepContext(iteration=it, max_iterations=10))
        method.on_step_end(StepContext(iteration=it, max_iterations=10))
    assert method.indicators.shape == (0, 0)


def test_softmax_average_inference():
    method = _method(inference="average")
    net = method.inference_network()
    assert isinstance(net, SoftmaxAverage)
    x = torch.rand(2, 1, 8, 8)
    expected = (torch.softmax(method.nets["student"](x), 1) + torch.softmax(method.nets["peer"](x), 1)) / 2
    torch.testing.assert_close(torch.softmax(net(x), dim=1), expected)
    first = _method()
    assert first.inference_network() is first.nets["student"]


def test_state_dict_round_trip_resizes_the_tables():
    method = _method()
    method.indicators.grow(7, 3)
    method.indicators.gamma[6, 2] = 0.9
    method.indicators.steps[6, 2] = 4
    fresh = _method()
    fresh.load_state_dict(method.state_dict())
    assert fresh.indicators.shape == (7, 3)
    assert fresh.indicators.gamma[6, 2] == pytest.approx(0.9) and fresh.indicators.steps[6, 2] == 4


def test_bf16_autocast_gives_fp32_losses_and_finite_hypergradients():
    method = _method(start_fraction=0.0, update_every=1)
    ctx = StepContext(iteration=0, max_iterations=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method.training_step(_batch(), ctx)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.losses.values())
    out.total().backward()
    method.on_step_end(ctx)
    assert torch.isfinite(method.indicators.gamma).all() and (method.indicators.steps > 0).sum() == 3


# ---------------------------------------------------------------------------------------------------------------
# DDP: γ is the same on every rank and equals the single-process update on the whole batch.
# ---------------------------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        method = _method(dcr=False, start_fraction=0.0, update_every=1, strong_grad_ema=0.5)
        method.wrap_networks(lambda net: torch.nn.parallel.DistributedDataParallel(net))
        local = {k: v[rank::world] for k, v in _batch().items()}  # the engine's split: every world-th slot
        for it in range(2):
            ctx = StepContext(iteration=it, max_iterations=10)
            method.training_step(local, ctx).total().backward()
            method.on_step_end(ctx)
        torch.save({k: v for k, v in method.indicators.state_dict().items()}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: most of its ~10 s is their start-up
def test_ddp_gamma_is_identical_on_every_rank_and_equals_one_process(tmp_path):
    world = 2
    run_ddp_workers(_ddp_worker, tmp_path, world)
    method = _method(dcr=False, start_fraction=0.0, update_every=1, strong_grad_ema=0.5)
    with one_thread():
        for it in range(2):
            ctx1 = StepContext(iteration=it, max_iterations=10)
            method.training_step(_batch(), ctx1).total().backward()
            method.on_step_end(ctx1)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    for key, value in method.indicators.state_dict().items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key].to(value.dtype), value, rtol=1e-4, atol=1e-6, msg=key)


# ---------------------------------------------------------------------------------------------------------------
# End to end on the bundled sample: training reduces the loss, γ survives a resume, the evidence script runs.
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    options = {"start_fraction": 0.0, "update_every": 2, "indicator_lr": 0.1}
    cfg = tiny_config("dii_dcr", options, data={"simulate": {"kind": "budget", "budget": _budget(tmp_path_factory),
                                                               "seed": 0}})
    return cfg, load_run_data(cfg, with_val=False)


def test_a_few_steps_reduce_the_loss(sample_run):
    cfg, data = sample_run
    before, after = loss_drops_on_fixed_batch(cfg, steps=10, data=data)
    assert after < before, (before, after)


def test_gamma_survives_checkpoint_resume_and_record(tmp_path, sample_run):
    cfg, data = sample_run
    train_run(cfg, tmp_path / "full", progress=False, run_data=data)
    train_run(cfg, tmp_path / "killed", progress=False, run_data=data, stop_at=3)
    train_run(cfg, tmp_path / "killed", resume=True, progress=False, run_data=data)
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["method"]
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["method"]
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert (full["indicators.steps"] > 0).any() and (full["indicators.gamma"] != 0.5).any()
    model = load_trained_model(tmp_path / "full" / "checkpoints" / "last.pt")  # the tables load into a fresh method
    assert isinstance(model.network, UNet)

    script = _quality_script()
    assert script.main(["--run", str(tmp_path / "full")]) == 0
    rows = list(csv.DictReader((tmp_path / "full" / "dii_instances.csv").open()))
    assert rows and {"gamma", "iou", "precision", "updates", "corrupted"} <= set(rows[0])
    updated = [r for r in rows if int(r["updates"]) > 0]
    assert updated and all(0.0 <= float(r["gamma"]) <= 1.0 and 0.0 <= float(r["iou"]) <= 1.0 for r in rows)

    # The committed record keeps last.pt's γ table, and the analysis read from the record alone (the
    # checkpoints gone, the annotations simulated again from the config) gives the same instances.
    for which in ("best", "last"):  # the scores a record copies; their values do not matter here
        (tmp_path / "full" / f"eval_{which}").mkdir()
        (tmp_path / "full" / f"eval_{which}" / "summary.json").write_text("{}")
        (tmp_path / "full" / f"eval_{which}" / "per_volume.csv").write_text("case\n")
    state = recorded_method_state(tmp_path / "full")
    assert state is not None and set(state.arrays) == {"indicators.gamma", "indicators.steps"}
    record = write_record(tmp_path / "full", tmp_path / "records" / "dii_dcr-s0", {"label": "dii_dcr", "seed": 0},
                          method_state=state)
    np.testing.assert_array_equal(read_record(record).method_state().arrays["indicators.gamma"],
                                  full["indicators.gamma"].numpy())
    shutil.rmtree(tmp_path / "full" / "checkpoints")
    assert script.main(["--run", str(record), "--out", str(tmp_path / "analysis")]) == 0
    assert not (record / "dii_instances.csv").exists()  # a record is never written to
    assert list(csv.DictReader((tmp_path / "analysis" / "dii_dcr-s0" / "dii_instances.csv").open())) == rows


def _quality_script():
    """``scripts/dii_instance_quality.py`` as a module (scripts are not a package)."""
    return load_script(REPO / "scripts" / "dii_instance_quality.py")


def test_instance_quality_auroc_by_hand():
    """AUROC of γ for clean over corrupted instances: the share of (clean, corrupted) pairs ranked right."""
    script = _quality_script()
    # clean 0.9, 0.5 against corrupted 0.5, 0.1: pairs (0.9>0.5) (0.9>0.1) (0.5=0.5 -> 1/2) (0.5>0.1) = 3.5 of 4
    assert script.auroc([0.9, 0.5], [0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert script.auroc([0.1], [0.9]) == 0.0
    assert script.auroc([], [0.3]) is None
