from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from frugalseg.config import build_config, load_config
from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.simulate import simulate_items
from frugalseg.engine.run_data import load_run_data
from frugalseg.errors import ConfigError
from frugalseg.losses.multilabel_deep_supervision import (
    box_positive_map,
    global_tag_loss,
    multilabel_deep_supervision_loss,
    ordinary_deep_supervision_loss,
)
from frugalseg.losses.partial_ce import partial_cross_entropy
from frugalseg.methods import METHODS, build_method, get_method
from frugalseg.methods.mlds import MLDS, MLDSOptions, filter_predictions, pseudo_label_candidates
from frugalseg.nets import UNet
from frugalseg.training import StepContext
from frugalseg.training.ema import update_ema
from tests.helpers import loss_drops_on_fixed_batch, shipped_schedule, tiny_config

C = 3  # background, class 1, class 2
E = math.e


def _net() -> nn.Module:
    # Two levels: deep heads on the bottleneck (H/2) and on the decoder stage (H).
    return UNet(1, C, features=(4, 8), dropout=(0.0, 0.0), deep_supervision=True, ds_hidden=4)


def _method(**options: object) -> MLDS:
    torch.manual_seed(0)
    return MLDS(MLDSOptions.model_validate({"noise_std": 0.0, **options}), _net, C)


class FixedLogits(nn.Module):
    """A stand-in teacher whose prediction is given (so that its filtering can be checked by hand)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == self.logits.shape[0] and x.shape[-2:] == self.logits.shape[-2:]
        return self.logits


# ---------------------------------------------------------------------------------------------------------------
# Teacher filtering on a 1x4 image, classes (background, 1, 2):
#   pixels 0-1 lie in a box of class 1 (class 1 removed at pixels 2-3); class 2 is absent (tags);
#   pixel 1 is a background click. Candidate sets: {0, 1}, {0}, {0}, {0}.
#   teacher logits (o0, o1, o2) per pixel and what becomes of them:
#     p0 (0, 1, 5): unfiltered argmax 2 (absent)      -> softmax over {0, 1}: (1/(1+e), e/(1+e), 0), class 1
#     p1 (0, 3, 0): unfiltered argmax 1 (clicked bg)  -> (1, 0, 0), the click is imposed
#     p2 (0, 2, 0): unfiltered argmax 1 (outside box) -> (1, 0, 0)
#     p3 (1, 0, 3): unfiltered argmax 2 (absent)      -> (1, 0, 0)
# ---------------------------------------------------------------------------------------------------------------

TEACHER = torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 3.0, 2.0, 0.0], [5.0, 0.0, 0.0, 3.0]]).view(1, C, 1, 4)


def _weak_candidates() -> torch.Tensor:
    cand = torch.ones(1, C, 1, 4, dtype=torch.bool)
    cand[0, 1, 0, 2:] = False  # box of class 1 on pixels 0-1
    cand[0, 2] = False  # class 2 absent
    cand[0, 1:, 0, 1] = False  # background click on pixel 1
    return cand


def test_filtering_removes_absent_tags_and_out_of_box_classes_and_imposes_clicks():
    assert TEACHER.argmax(1).flatten().tolist() == [2, 1, 1, 2]
    probs = filter_predictions(TEACHER, _weak_candidates())
    expected = torch.tensor([[1 / (1 + E), 1.0, 1.0, 1.0], [E / (1 + E), 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(probs[0, :, 0], expected)
    pseudo = pseudo_label_candidates(probs, _weak_candidates())
    assert pseudo.sum(1).eq(1).all() and pseudo.int().argmax(1).flatten().tolist() == [1, 0, 0, 0]
    # A threshold above e/(1+e) = 0.731 leaves pixel 0 with its weak candidates {0, 1}.
    pseudo = pseudo_label_candidates(probs, _weak_candidates(), threshold=0.8)
    assert pseudo[0, :, 0, 0].tolist() == [True, True, False]
    assert pseudo[0, :, 0, 1:].int().argmax(0).tolist() == [0, 0, 0]


def test_a_pixel_without_candidates_keeps_the_teacher_prediction():
    cand = _weak_candidates()
    cand[0, :, 0, 3] = False  # contradictory annotations: nothing allowed
    probs = filter_predictions(TEACHER, cand)
    torch.testing.assert_close(probs[0, :, 0, 3], torch.softmax(TEACHER[0, :, 0, 3], 0))


def test_the_method_filters_its_teacher():
    method = _method()
    method.teachers["teacher"] = FixedLogits(TEACHER)
    pseudo = method.teacher_candidates(torch.zeros(1, 1, 1, 4), _weak_candidates())
    assert pseudo.int().argmax(1).flatten().tolist() == [1, 0, 0, 0]


# ---------------------------------------------------------------------------------------------------------------
# The step's losses are the documented ones.
# ---------------------------------------------------------------------------------------------------------------


def _batch() -> dict[str, torch.Tensor]:
    """Three 8x8 images: a full mask, a box of class 1 with tags (class 2 absent), an unlabelled image."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 1, 8, 8, generator=g)
    label = torch.zeros(3, 8, 8, dtype=torch.long)
    label[0, 2:5, 2:5] = 1
    label[0, 6, :] = 2
    cand = torch.ones(3, C, 8, 8, dtype=torch.bool)
    cand[0] = torch.nn.functional.one_hot(label[0], C).permute(2, 0, 1).bool()
    box_label = torch.full((3, 8, 8), -1, dtype=torch.long)
    box_label[1] = 0
    box_label[1, 1:6, 1:6] = 1
    cand[1, 1] = box_label[1] == 1
    cand[1, 2] = False
    label[1:] = -1
    presence = torch.tensor([[1, 1, 1], [-1, 1, 0], [-1, -1, -1]], dtype=torch.int8)
    return {"image": image, "candidates": cand, "presence": presence, "label": label,
            "has_mask": torch.tensor([True, False, False]), "box_label": box_label}


def test_losses_and_weights_are_the_documented_ones():
    method = _method(box_positive_heads=1, pseudo_weight=0.5, ce_weight=0.7, ds_weight=0.9, tag_weight=0.3)
    batch = _batch()
    teacher_logits = torch.randn(2, C, 8, 8, generator=torch.Generator().manual_seed(1))
    method.teachers["teacher"] = FixedLogits(teacher_logits)
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))

    student = method.nets["student"](batch["image"], return_features=True)
    cand = batch["candidates"]
    pseudo = pseudo_label_candidates(filter_predictions(teacher_logits, cand[1:]), cand[1:])
    boxes = box_positive_map(cand, batch["box_label"])
    expected = {
        "ce": partial_cross_entropy(student.logits, cand),
        "ds": multilabel_deep_supervision_loss(student.deep, cand, box_positives=boxes, box_positive_heads=1),
        "tag": global_tag_loss(student.deep[0], batch["presence"]),
        "pseudo_ce": partial_cross_entropy(student.logits[1:], pseudo),
        "pseudo_ds": multilabel_deep_supervision_loss([d[1:] for d in student.deep], pseudo),
    }
    assert set(out.losses) == set(expected)
    for key, value in expected.items():
        assert out.losses[key].item() == pytest.approx(value.item(), rel=1e-5), key
        assert value.item() > 0, key
    w = 0.5 * math.exp(-5)  # ramp-up over the whole run, at its start
    assert out.weights == pytest.approx({"ce": 0.7, "ds": 0.9, "tag": 0.3, "pseudo_ce": w * 0.7, "pseudo_ds": w * 0.9})
    # The box gives positives on the coarsest head only: with box_positive_heads=0 the term is smaller.
    no_boxes = multilabel_deep_supervision_loss(student.deep, cand)
    assert expected["ds"].item() != pytest.approx(no_boxes.item())


def test_pseudo_weight_ramps_up():
    method = _method(pseudo_weight=2.0, rampup_fraction=0.5)
    assert method.pseudo_weight_at(StepContext(0, 100)) == pytest.approx(2.0 * math.exp(-5))
    assert method.pseudo_weight_at(StepContext(25, 100)) == pytest.approx(2.0 * math.exp(-5 * 0.25))
    assert method.pseudo_weight_at(StepContext(50, 100)) == pytest.approx(2.0)
    assert method.pseudo_weight_at(StepContext(99, 100)) == pytest.approx(2.0)
    assert _method(rampup_fraction=0.0).pseudo_weight_at(StepContext(0, 100)) == 1.0


def test_ordinary_ablation_uses_nearest_neighbour_softmax_and_no_tag_loss():
    method = _method(deep_supervision="ordinary")
    batch = _batch()
    method.teachers["teacher"] = FixedLogits(torch.zeros(2, C, 8, 8))
    out = method.training_step(batch, StepContext(iteration=5, max_iterations=10))
    assert set(out.losses) == {"ce", "ds", "pseudo_ce", "pseudo_ds"}
    student = method.nets["student"](batch["image"], return_features=True)
    expected = ordinary_deep_supervision_loss(student.deep, batch["candidates"])
    assert out.losses["ds"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_batch_of_masks_only_never_calls_the_teacher():
    method = _method()
    batch = {k: v[:1] for k, v in _batch().items()}

    class Forbidden(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("the teacher was called on a batch of masks")

    method.teachers["teacher"] = Forbidden()
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    assert out.losses["pseudo_ce"].item() == 0.0 and out.losses["pseudo_ds"].item() == 0.0
    out.total().backward()
    assert all(torch.isfinite(p.grad).all() for p in method.nets["student"].parameters() if p.grad is not None)


def test_bf16_autocast_gives_fp32_losses():
    method = _method()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method.training_step(_batch(), StepContext(iteration=9, max_iterations=10))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.losses.values())


def test_batch_sums_are_global_under_ddp(monkeypatch):
    # DDP averages gradients over ranks: a per-rank batch sum must be scaled by the world size to stay the
    # global batch sum (per-pixel means need nothing). Checked without processes by faking the group.
    import frugalseg.methods.mlds as mlds_module

    method, mean = _method(), _method(reduction="mean")
    assert method.batch_sum_factor() == 1.0
    monkeypatch.setattr(mlds_module, "group_world_size", lambda: 4)
    assert method.batch_sum_factor() == 4.0 and mean.batch_sum_factor() == 1.0
    batch = _batch()
    method.teachers["teacher"] = FixedLogits(torch.zeros(2, C, 8, 8))
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=10))
    student = method.nets["student"](batch["image"], return_features=True)
    boxes = box_positive_map(batch["candidates"], batch["box_label"])
    single = multilabel_deep_supervision_loss(student.deep, batch["candidates"], box_positives=boxes,
                                              box_positive_heads=2)
    assert out.losses["ds"].item() == pytest.approx(4 * single.item(), rel=1e-5)
    assert out.losses["tag"].item() == pytest.approx(4 * global_tag_loss(student.deep[0], batch["presence"]).item())


def test_teacher_is_evaluated_and_follows_the_student():
    method = _method()
    assert method.inference_network() is method.teachers["teacher"]
    student = _method(inference="student")
    assert student.inference_network() is student.nets["student"]
    assert method.ema_pairs == [("teacher", "student")] and method.ema_decay == 0.99
    assert not any(p.requires_grad for p in method.teachers["teacher"].parameters())


# ---------------------------------------------------------------------------------------------------------------
# Registry, options, config.
# ---------------------------------------------------------------------------------------------------------------


def test_registered_and_samples_everything_with_mask_slots():
    assert get_method("mlds") is MLDS and "mlds" in METHODS
    assert MLDS.requirements(MLDSOptions()) == {"sample": "all", "two_stream": True}


@pytest.mark.parametrize(
    "options",
    [
        {"ordinary_deep_supervision": True},  # unknown key (the option is deep_supervision)
        {"deep_supervision": "nearest"},
        {"reduction": "avg"},
        {"activation": "relu"},
        {"ds_weight": -1.0},
        {"box_positive_heads": -1},
        {"rampup_fraction": 1.5},
        {"confidence_threshold": 1.1},
        {"ema_decay": 1.5},
        {"inference": "ensemble"},
    ],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        MLDSOptions.model_validate(options)


def test_unknown_option_in_a_config_names_the_key():
    with pytest.raises(ConfigError, match=r"method\.options\.ordinary: unknown key"):
        build_config({"method": {"name": "mlds", "options": {"ordinary": True}}})


def test_a_network_without_deep_heads_is_refused():
    # when the config is loaded (preflight, before anything is written) ...
    with pytest.raises(ConfigError, match="model.deep_supervision: true"):
        tiny_config("mlds")
    with pytest.raises(ConfigError, match="box_positive_heads = 6"):
        tiny_config("mlds", {"box_positive_heads": 6}, model={"deep_supervision": True})
    # ... and by the method itself, for a config changed after loading
    config = tiny_config("mlds", model={"deep_supervision": True})
    config.model.deep_supervision = False
    with pytest.raises(ValueError, match="model.deep_supervision: true"):
        build_method(config, 1, C)


@pytest.mark.parametrize("schedule", ["paper", "quick"])
def test_shipped_config_is_the_mean_teacher_row_on_the_mixed_budget(schedule):
    mlds = load_config("acdc_mlds", [f"schedule={schedule}"])
    mt = load_config("acdc_mean_teacher", [f"schedule={schedule}", "data.simulate.budget=masks3_boxes_tags"])
    assert mlds.method.name == "mlds" and mlds.model.deep_supervision
    assert mlds.data == mt.data and mlds.train == mt.train and mlds.optim == mt.optim
    assert mlds.model.model_copy(update={"deep_supervision": False}) == mt.model
    assert mlds.data.simulate is not None and mlds.data.simulate.budget == "masks3_boxes_tags"
    options = MLDSOptions.model_validate(mlds.method.options)
    assert options == MLDSOptions()  # the config spells the defaults out
    if schedule == "quick":
        quick = shipped_schedule("quick")
        assert mlds.data.patch_size == tuple(quick["data.patch_size"])
        assert mlds.train.batch_size == quick["train.batch_size"]
        assert mlds.train.iterations == quick["train.iterations"]
        assert (mlds.optim.name, mlds.optim.lr_schedule) == (quick["optim.name"], quick["optim.lr_schedule"])
    ablation = load_config("acdc_mlds", [f"schedule={schedule}", "method.options.deep_supervision=ordinary"])
    assert MLDSOptions.model_validate(ablation.method.options).deep_supervision == "ordinary"


# ---------------------------------------------------------------------------------------------------------------
# End to end on the bundled sample.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deep_supervision", ["multilabel", "ordinary"])
def test_a_few_steps_reduce_the_loss(deep_supervision):
    config = tiny_config("mlds", {"deep_supervision": deep_supervision}, model={"deep_supervision": True},
                         data={"simulate": {"kind": "budget", "budget": "masks3_boxes_tags", "seed": 0}})
    before, after = loss_drops_on_fixed_batch(config)
    assert after < before, (before, after)


def test_trains_from_every_kind_of_annotation_in_one_batch():
    # Masks, boxes (with tags), tags, clicks and unlabelled slices in one batch; every term is finite, the
    # weak terms are not empty, and a few SGD steps on that batch reduce the total.
    config = tiny_config("mlds", {"rampup_fraction": 0.0}, model={"deep_supervision": True})
    data = load_run_data(config, with_val=False)
    items, classes, k = data.train_items, data.source.classes, data.source.num_classes
    sims = {kind: simulate_items(items, classes, k, kind, seed=0).items for kind in ("boxes", "tags", "points")}
    patients = list(dict.fromkeys(it.patient_id for it in items))
    kind_of = dict(zip(patients, ["masks", "boxes", "tags", "points"]))
    annotated: dict[str, Item] = {}
    picks: dict[str, list[int]] = {"masks": [], "boxes": [], "tags": [], "points": [], "unlabelled": []}
    for i, it in enumerate(items):
        kind = kind_of[it.patient_id]
        if kind == "points" and i % 2:
            kind = "unlabelled"  # half of the last patient's slices stay unlabelled
        if kind == "masks":
            annotated[it.item_id] = Item(mask=True)
        elif kind != "unlabelled":
            annotated[it.item_id] = sims[kind][it.item_id]
            if kind == "boxes" and not annotated[it.item_id].boxes:
                continue
        picks[kind].append(i)
    ann = AnnotationFile(classes={str(c): n for c, n in classes.items()}, items=annotated)
    dataset = SliceDataset(items, ann, k, config.data.patch_size, augment=False)
    chosen = [i for kind, n in [("masks", 2), ("boxes", 2), ("tags", 2), ("points", 1), ("unlabelled", 1)]
              for i in picks[kind][len(picks[kind]) // 2:][:n]]
    batch = torch.utils.data.default_collate([dataset[(i, 0)] for i in chosen])
    assert batch["has_mask"].sum() == 2 and (batch["box_label"] >= 0).flatten(1).any(1).sum() == 2

    torch.manual_seed(0)
    method = build_method(config, 1, k)
    method.train()
    opt = torch.optim.SGD(list(method.trainable_parameters()), lr=0.01, momentum=0.9)

    def step(it: int):
        torch.manual_seed(1234)
        return method.training_step(batch, StepContext(iteration=it, max_iterations=10))

    first = step(10)
    assert all(torch.isfinite(v) and v.item() > 0 for v in first.losses.values()), first.losses
    before = first.total().item()
    for it in range(10):
        loss = step(it).total()
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_ema(method.teachers["teacher"], method.nets["student"], 0.5)
    assert step(10).total().item() < before
