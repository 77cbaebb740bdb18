from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from frugalseg.config import build_config, load_config
from frugalseg.engine.run_data import load_run_data
from frugalseg.errors import ConfigError
from frugalseg.losses.distillation import soft_distillation_kl
from frugalseg.methods import METHODS, build_method, get_method
from frugalseg.methods.action import ACTION, STAGES, ACTIONOptions, window_crops
from frugalseg.methods.anchor_queue import AnchorQueue
from frugalseg.train import train_run
from frugalseg.training import Stage, StepContext
from frugalseg.training.checkpoint import load_checkpoint
from frugalseg.training.schedules import split_iterations
from frugalseg.training.stages import StagePlan
from tests.helpers import loss_drops_on_fixed_batch, run_ddp_workers, tiny_config

# Small enough for seconds on a CPU: a narrow U-Net (tiny_config), short queues and few AnCo samples.
SMALL = {"global_dim": 16, "queue_size": 6, "representation_dim": 8, "num_queries": 16, "num_negatives": 32}
MASKS3 = {"simulate": {"kind": "budget", "budget": "masks3", "seed": 0}}


def _config(iterations: int = 9, **options: object):
    return tiny_config("action", {**SMALL, **options}, data=MASKS3,
                       train={"iterations": iterations, "checkpoint_every": 100})


@pytest.fixture(scope="module")
def sample_data():
    return load_run_data(_config())


def _batch(data, mask_items: int = 4, others: int = 4):
    from frugalseg.data.dataset import SliceDataset

    ds = SliceDataset(data.train_items, data.annotations, data.source.num_classes, (64, 64))
    masks = ds.mask_indices[:mask_items]
    rest = [i for i in range(len(ds)) if i not in set(ds.mask_indices)][:others]
    return torch.utils.data.default_collate([ds[(i, 7)] for i in masks + rest])


def _method(data, **options: object) -> ACTION:
    torch.manual_seed(0)
    return build_method(_config(**options), data.source.in_channels, data.source.num_classes)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# Registry, options, shipped config.
# ---------------------------------------------------------------------------------------------------------------


def test_registered_with_two_stream_sampling():
    assert get_method("action") is ACTION and "action" in METHODS
    assert ACTION.requirements(ACTIONOptions()) == {"sample": "all", "two_stream": True}
    assert ACTION.ddp_find_unused_parameters


@pytest.mark.parametrize(
    "options",
    [{"stage_split": [0, 0, 0]}, {"stage_split": [1, -1, 1]}, {"blur_sigma": [1.0, 0.5]}, {"queue_size": 0},
     {"strong_threshold": 1.5}, {"k1": 0.01}],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValidationError):
        ACTIONOptions.model_validate(options)


def test_unknown_option_in_a_config_names_the_key():
    with pytest.raises(ConfigError, match=r"method\.options\.k1: unknown key"):
        build_config({"method": {"name": "action", "options": {"k1": 0.01}}})


def test_shipped_config_paper_and_quick():
    paper = load_config("acdc_action")
    method = build_method(paper, 1, 4)
    stages = method.stages(paper.train.iterations)
    assert paper.data.patch_size == (256, 256) and paper.train.iterations == 90000
    assert [(s.name, s.iterations) for s in stages] == [("global", 30000), ("local", 30000), ("finetune", 30000)]
    assert [(s.batch_size, s.mask_items_per_batch) for s in stages[:2]] == [(6, 3), (6, 3)]  # official 3 + 3
    plan = StagePlan(stages, paper.train.iterations)
    assert plan.batch_shape(2, paper.train.batch_size, paper.data.mask_items_per_batch) == (8, 4)  # 4 + 4
    assert dict(stages[2].optimizer) == {"nesterov": True}
    assert paper.data.simulate is not None and paper.data.simulate.budget == "masks3"
    assert sum(p.numel() for p in method.nets["student"].parameters()) == 1_813_764  # the SSL4MIS/ACTION U-Net

    quick = load_config("acdc_action", ["schedule=quick"])
    mt = load_config("acdc_mean_teacher", ["schedule=quick"])
    # the quick rows compare like with like: same budget, input, batch mix and iterations as mean_teacher
    assert quick.data == mt.data and quick.train == mt.train and quick.model == mt.model and quick.optim == mt.optim
    q_stages = build_method(quick, 1, 4).stages(quick.train.iterations)
    lengths = [s.iterations for s in q_stages]  # the CPU schedule in thirds
    assert sum(lengths) == quick.train.iterations and max(lengths) - min(lengths) <= 1
    assert all(s.batch_size is None for s in q_stages)
    assert dict(q_stages[2].optimizer) == {}  # AdamW has no Nesterov momentum
    assert load_config("acdc_action", ["schedule=quick", "method.options.anco=false"]).method.options["anco"] is False


def test_stage_lengths_scale_with_the_iterations():
    assert split_iterations(20, [1, 1, 1]) == [7, 7, 6]
    assert split_iterations(90000, [1, 1, 1]) == [30000] * 3
    assert split_iterations(10, [1, 0, 1]) == [5, 0, 5]
    cfg = load_config("acdc_action", ["schedule=quick", "train.iterations=20"])
    assert [s.iterations for s in build_method(cfg, 1, 4).stages(20)] == [7, 7, 6]


# ---------------------------------------------------------------------------------------------------------------
# The anchor queue: order, shapes, state.
# ---------------------------------------------------------------------------------------------------------------


def test_queue_is_first_in_first_out_with_wrap_around():
    q = AnchorQueue(4, (2,))
    assert q.anchors.shape == (4, 2) and int(q.pointer) == 0
    torch.testing.assert_close(q.anchors.norm(dim=1), torch.ones(4))  # random unit rows
    keys = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    q.enqueue(keys)
    torch.testing.assert_close(q.anchors[:3], torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]]))
    assert int(q.pointer) == 3
    q.enqueue(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))  # slot 3, then wraps to slot 0
    torch.testing.assert_close(q.anchors, torch.tensor([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]))
    assert int(q.pointer) == 1
    # more keys than slots: the last 4 survive where sequential writes would leave them
    many = torch.stack([torch.tensor([float(i), 1.0]) for i in range(6)])
    q.enqueue(many)  # writes slots 1,2,3,0,1,2: slot 1 <- key 4, slot 2 <- key 5, slot 3 <- key 2, slot 0 <- key 3
    expected = torch.nn.functional.normalize(many[[3, 4, 5, 2]], dim=1)
    torch.testing.assert_close(q.anchors, expected)
    assert int(q.pointer) == (1 + 6) % 4
    with pytest.raises(ValueError, match="do not fit"):
        q.enqueue(torch.zeros(1, 3))


def test_lazy_queue_takes_its_shape_at_first_use_and_from_a_checkpoint():
    q = AnchorQueue(3)
    assert not q.initialised
    q.ensure_shape((5, 4))
    assert q.anchors.shape == (3, 5, 4)
    torch.testing.assert_close(q.anchors.norm(dim=-1), torch.ones(3, 5))
    q.enqueue(torch.ones(2, 5, 4))
    fresh = AnchorQueue(3)
    fresh.load_state_dict(q.state_dict())
    assert torch.equal(fresh.anchors, q.anchors) and int(fresh.pointer) == 2
    assert torch.equal(AnchorQueue(3, (5, 4)).anchors, AnchorQueue(3, (5, 4)).anchors)  # same on every rank


def test_windows_cover_the_map_with_half_overlap():
    maps = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    crops, count = window_crops(maps, 0.25)  # 4x4 windows, stride 2: offsets 0, 2, ..., 12 -> 7 x 7
    assert count == 49 and crops.shape == (2 * 49, 3, 4, 4)
    torch.testing.assert_close(crops[0], maps[0, :, 0:4, 0:4])
    torch.testing.assert_close(crops[1], maps[0, :, 0:4, 2:6])
    torch.testing.assert_close(crops[7], maps[0, :, 2:6, 0:4])
    torch.testing.assert_close(crops[49 + 48], maps[1, :, 12:16, 12:16])


# ---------------------------------------------------------------------------------------------------------------
# Stage switching: which losses when, which parameters learn, the teacher at stage iii.
# ---------------------------------------------------------------------------------------------------------------


def test_stage_of_each_iteration(sample_data):
    method = _method(sample_data)
    names = [method.stage_of(StepContext(iteration=i, max_iterations=9)) for i in range(9)]
    assert names == ["global"] * 3 + ["local"] * 3 + ["finetune"] * 3
    assert method.stage_of(StepContext(iteration=0, max_iterations=9, stage="finetune")) == "finetune"
    skip = _method(sample_data, stage_split=[1, 0, 2])
    assert [skip.stage_of(StepContext(iteration=i, max_iterations=9)) for i in (0, 2, 3, 8)] == [
        "global", "global", "finetune", "finetune"]


def _grads(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_losses_and_trained_parameters_per_stage(sample_data):
    batch = _batch(sample_data)
    expected = {
        "global": {"global"},
        "local": {"global", "local", "ce", "dice"},
        "finetune": {"ce", "dice", "unsup", "anco"},
    }
    for stage in STAGES:
        method = _method(sample_data)
        ctx = StepContext(iteration=0, max_iterations=9, stage=stage)
        out = method.training_step(batch, ctx)
        assert set(out.losses) == expected[stage], stage
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.losses.values())
        out.total().backward()
        student = method.nets["student"]
        assert _grads(student.encoder)
        assert _grads(student.decoder) == (stage != "global")  # stage i leaves the decoder as initialised
        assert _grads(method.nets["global_projector"]) == (stage != "finetune")
        assert _grads(method.nets["local_projector"]) == (stage == "local")
        assert _grads(method.nets["representation"]) == (stage == "finetune")
        assert not any(p.requires_grad for p in method.teachers.parameters())
    assert out.weights == {"ce": 0.5, "dice": 0.5, "unsup": 1.0, "anco": 0.01}
    no_anco = _method(sample_data, anco=False)
    assert "representation" not in no_anco.nets
    out = no_anco.training_step(batch, StepContext(iteration=0, max_iterations=9, stage="finetune"))
    assert set(out.losses) == {"ce", "dice", "unsup"}


def test_global_loss_is_the_kl_against_the_queue(sample_data):
    method = _method(sample_data, view_jitter_p=0.0, view_blur_p=0.0)  # no photometric view: exact comparison
    method.eval()  # no dropout, running BN statistics: the forward below is repeatable
    batch = _batch(sample_data)
    out = method.training_step(batch, StepContext(iteration=0, max_iterations=9, stage="global"))
    with torch.no_grad():
        z_s = method.nets["global_predictor"](method.nets["global_projector"](
            method.nets["student"](batch["image"], return_features=True).features[0]))
        z_t = method.teachers["global_projector"](
            method.teachers["teacher"](batch["image"], return_features=True).features[0])
    expected = soft_distillation_kl(z_s, z_t, method.global_queue.anchors, 0.1, 0.01)
    assert out.losses["global"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_keys_are_enqueued_after_the_step(sample_data):
    method = _method(sample_data)
    batch = _batch(sample_data, mask_items=2, others=2)
    before = method.global_queue.anchors.clone()
    ctx = StepContext(iteration=3, max_iterations=9, stage="local")
    method.training_step(batch, ctx)
    assert torch.equal(method.global_queue.anchors, before)  # the loss used the old queue
    pending = {k: v.clone() for k, v in method._pending.items()}
    method.on_step_end(ctx)
    torch.testing.assert_close(method.global_queue.anchors[:4], pending["global"])
    assert method.local_queue.anchors.shape == (6, 49, 4 * 8 * 8)  # 49 windows of 16 px on 64x64, C·8²
    torch.testing.assert_close(method.local_queue.anchors[:4], pending["local"])
    assert int(method.global_queue.pointer) == 4 and int(method.local_queue.pointer) == 4
    method.on_step_end(ctx)  # nothing pending: nothing enqueued twice
    assert int(method.global_queue.pointer) == 4


def test_teacher_is_reinitialised_from_the_student_at_stage_iii(sample_data):
    method = _method(sample_data)
    with torch.no_grad():
        for p in method.nets["student"].parameters():
            p.add_(1.0)
    teacher, student = method.teachers["teacher"], method.nets["student"]
    method.on_stage_start(Stage("local", 3), StepContext(iteration=3, max_iterations=9, stage="local"))
    assert not torch.equal(next(teacher.parameters()), next(student.parameters()))
    method.on_stage_start(Stage("finetune", 3), StepContext(iteration=6, max_iterations=9, stage="finetune"))
    for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(t, s), name


@pytest.mark.parametrize("split", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], ids=STAGES)
def test_a_few_steps_of_each_stage_reduce_its_loss(split, sample_data):
    before, after = loss_drops_on_fixed_batch(_config(stage_split=split), steps=8, data=sample_data)
    assert after < before, (before, after)


# ---------------------------------------------------------------------------------------------------------------
# One run through the engine: stage checkpoints, learning rate, logs, resume.
# ---------------------------------------------------------------------------------------------------------------


def test_run_checkpoints_each_stage_and_restarts_the_schedule(tmp_path, sample_data):
    cfg = _config()
    train_run(cfg, tmp_path / "run", progress=False, run_data=sample_data)
    ckpts = tmp_path / "run" / "checkpoints"
    assert {p.name for p in ckpts.iterdir()} >= {"stage_global.pt", "stage_local.pt", "stage_finetune.pt", "last.pt"}
    assert [load_checkpoint(ckpts / f"stage_{s}.pt")["iteration"] for s in STAGES] == [3, 6, 9]
    nesterov = [load_checkpoint(ckpts / f"stage_{s}.pt")["optimizer"]["param_groups"][0]["nesterov"] for s in STAGES]
    assert nesterov == [False, False, True]
    with (tmp_path / "run" / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["stage"])) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    lr = [float(r["lr"]) for r in rows]  # logged after the step: the rate of the next iteration
    assert lr[2] == pytest.approx(0.01) and lr[5] == pytest.approx(0.01)  # a new stage starts at the base rate
    assert lr[0] == pytest.approx(0.01 * (2 / 3) ** 0.9) and lr[3] == pytest.approx(lr[0])
    assert rows[0]["local"] == "" and float(rows[4]["local"]) > 0 and float(rows[7]["anco"]) > 0  # widened header


@pytest.mark.parametrize("killed_at", [4, 6], ids=["mid-stage-ii", "at-stage-iii-start"])
def test_resume_lands_in_the_right_stage(tmp_path, sample_data, killed_at):
    cfg = _config()
    train_run(cfg, tmp_path / "full", progress=False, run_data=sample_data)
    train_run(cfg, tmp_path / "killed", progress=False, run_data=sample_data, stop_at=killed_at)
    train_run(cfg, tmp_path / "killed", resume=True, progress=False, run_data=sample_data)
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert full["method"].keys() == resumed["method"].keys()
    assert "global_queue.anchors" in full["method"] and "local_queue.pointer" in full["method"]
    for key in full["method"]:
        assert torch.equal(full["method"][key], resumed["method"][key]), key
    stage_iii = load_checkpoint(tmp_path / "killed" / "checkpoints" / "stage_finetune.pt")
    assert stage_iii["iteration"] == 9


# ---------------------------------------------------------------------------------------------------------------
# Under DDP every rank enqueues the keys of all ranks.
# ---------------------------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        opts = ACTIONOptions.model_validate({**SMALL, "queue_size": 5})
        from frugalseg.nets import UNet

        method = ACTION(opts, lambda: UNet(features=(4, 8, 8, 8, 8), dropout=(0, 0, 0, 0, 0)), 4)
        keys = torch.full((2, 16), float(rank + 1))
        keys[:, rank] = 10.0
        method._pending = {"global": keys}
        method.on_step_end(StepContext(iteration=0, max_iterations=3, stage="global"))
        torch.save({"anchors": method.global_queue.anchors, "pointer": method.global_queue.pointer},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_enqueue_all_keys_in_rank_order(tmp_path):
    world = 2
    run_ddp_workers(_ddp_worker, tmp_path, world)
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    keys = []
    for r in range(world):
        k = torch.full((2, 16), float(r + 1))
        k[:, r] = 10.0
        keys.append(k)
    expected = torch.nn.functional.normalize(torch.cat(keys), dim=1)
    for g in got:
        torch.testing.assert_close(g["anchors"][:4], expected)
        assert int(g["pointer"]) == 4
    assert torch.equal(got[0]["anchors"], got[1]["anchors"])  # the untouched slot is the same seeded draw
