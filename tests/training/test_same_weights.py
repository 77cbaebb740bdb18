"""A refactor of the training code must not change what training computes: the weights stay bit-identical.

Each shipped method trains a few iterations on the bundled sample (its ACDC config, ``schedule=quick``,
shrunk to a 64x64 patch and a small U-Net, fp32, one thread, fixed seed) and the SHA-256 of its final
state (every tensor of ``last.pt``'s method state, in sorted key order, with dtype and shape) is compared
with ``same_weights_reference.json``, made by the code before the refactor.

Float results depend on the torch build and on the CPU kernels it picks, and oneDNN and MKL choose their
kernels more finely than torch's ``cpu_capability`` says: two machines both reporting AVX512 gave other
weights from the same code (2026-12-07, one of them with AMX). So the reference holds one entry per
machine kind, keyed by the environment *and* a kernel probe (:func:`kernel_probe`, the bits of a few
steps of a small convolutional network in plain torch). Where no entry matches, the test is skipped and
says why. Add this machine's entry with the code before a change (or regenerate every entry, only when a
change of weights is intended, and say so in the commit)::

    python -m tests.training.test_same_weights --add
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import one_thread, sample_root

REFERENCE = Path(__file__).with_name("same_weights_reference.json")
METHODS = ("supervised", "pce", "pscv", "mean_teacher", "mlds", "dii_dcr", "action")
ITERATIONS = 6


def environment() -> dict[str, str]:
    """What float results depend on besides the code: torch's version, the platform, the CPU kernels."""
    return {
        "torch": torch.__version__,
        "platform": f"{platform.system()}-{platform.machine()}",
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def trained_state(method: str, run_dir: Path) -> dict[str, torch.Tensor]:
    """Train ``method`` for :data:`ITERATIONS` iterations and return the method state of ``last.pt``."""
    from frugalseg.config import load_config
    from frugalseg.engine.run_data import load_run_data
    from frugalseg.train import train_run
    from frugalseg.training.checkpoint import load_checkpoint

    overrides = [
        "schedule=quick", f"data.root={sample_root()}", f"train.iterations={ITERATIONS}", "train.batch_size=4",
        "data.mask_items_per_batch=2", "data.patch_size=[64,64]", "model.features=[8,16,32,64,128]",
        "train.precision=off", f"train.checkpoint_every={ITERATIONS}", "train.log_every=3",
        "train.val_every=1000", "train.device=cpu",
        # the optimiser of the reference (the quick schedule before issue #21): the digests pin the training code
        "optim.name=sgd", "optim.lr=0.01", "optim.lr_schedule=poly", "optim.warmup_iterations=0",
    ]
    if method == "action":
        overrides.append("method.options.finetune_nesterov=true")
    if method == "dii_dcr":  # its budget (masks for 7 patients, boxes for the rest) needs more than the sample's 4
        budget = run_dir.parent / "masks2_boxes.yaml"
        budget.write_text("masks:\n  first_patients: 2\nrest:\n  boxes: 1\n")
        overrides.append(f"data.simulate.budget={budget}")
    cfg = load_config(f"acdc_{method}", overrides)
    data = load_run_data(cfg, with_val=False)
    with one_thread():
        train_run(cfg, run_dir, progress=False, run_data=data)
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["method"]


def kernel_probe() -> str:
    """SHA-256 of two SGD steps of a small conv net in plain torch (fp32, one thread, fixed seeds).

    It runs the kernel families the U-Net's training runs (convolution and transposed convolution forward and
    backward, batch norm in training mode, max pooling, bilinear resampling, softmax cross-entropy, SGD with
    momentum), independently of frugalseg's code, so that it tells machines whose kernels round differently
    apart and a refactor cannot change it.
    """
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    with one_thread(), torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.01),
                            nn.ConvTranspose2d(16, 8, 2, stride=2), nn.Conv2d(8, 4, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        image = torch.randn(4, 1, 40, 40)
        label = torch.randint(0, 4, (4, 32, 32))
        theta = torch.tensor([[[0.9, -0.2, 0.05], [0.2, 0.9, -0.05]]]).expand(4, 2, 3)
        for _ in range(2):
            x = F.grid_sample(image, F.affine_grid(theta, [4, 1, 32, 32], align_corners=False), align_corners=False)
            loss = F.cross_entropy(net(x), label) + (1 - torch.softmax(net(x), 1)[:, 1:].mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return state_digest(net.state_dict())


def matching_entry(reference: dict, env: dict[str, str], probe: str) -> dict | None:
    """The reference entry made on a machine of this kind (same environment and kernel probe), if any."""
    return next((e for e in reference["entries"] if e["environment"] == env and e["kernel_probe"] == probe), None)


@pytest.fixture(scope="module")
def reference() -> dict:
    ref = json.loads(REFERENCE.read_text())
    env, probe = environment(), kernel_probe()
    entry = matching_entry(ref, env, probe)
    if entry is None:
        pytest.skip(f"no reference made on a machine of this kind ({env}, kernel probe {probe[:12]}): its float "
                    "results may differ; add one with `python -m tests.training.test_same_weights --add` run by "
                    "the code before a change")
    return entry


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_weights_are_bit_identical_to_reference(method, reference, tmp_path):
    assert state_digest(trained_state(method, tmp_path / method)) == reference["digests"][method]


def test_digest_sees_one_changed_bit():
    state = {"a": torch.zeros(3), "b": torch.arange(4)}
    changed = {"a": torch.tensor([0.0, 0.0, float.fromhex("0x1p-149")]), "b": torch.arange(4)}
    assert state_digest(state) != state_digest(changed)
    assert state_digest(state) == state_digest(dict(reversed(list(state.items()))))


def test_the_probe_is_repeatable():
    assert kernel_probe() == kernel_probe()


def test_an_entry_matches_only_its_machine_kind():
    ref = {"entries": [{"environment": {"torch": "a"}, "kernel_probe": "p", "digests": {}}]}
    assert matching_entry(ref, {"torch": "a"}, "p") is ref["entries"][0]
    assert matching_entry(ref, {"torch": "a"}, "q") is None and matching_entry(ref, {"torch": "b"}, "p") is None


def add_entry() -> None:
    """Train every method here and put this machine kind's digests into the reference (replacing its entry)."""
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        digests = {m: state_digest(trained_state(m, Path(tmp) / m)) for m in METHODS}
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {"iterations": ITERATIONS, "entries": []}
    env, probe = environment(), kernel_probe()
    entries = [e for e in ref["entries"] if matching_entry({"entries": [e]}, env, probe) is None]
    entries.append({"environment": env, "kernel_probe": probe, "digests": digests})
    REFERENCE.write_text(json.dumps({"iterations": ITERATIONS, "entries": entries}, indent=2) + "\n")
    print(f"wrote {REFERENCE} ({len(entries)} machine kinds)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--add"]:
        sys.exit("usage: python -m tests.training.test_same_weights --add")
    add_entry()
