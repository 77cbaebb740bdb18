"""A refactor of the training code must not change what training computes: the weights stay bit-identical.

Each shipped method trains a few iterations on the bundled sample (its ACDC config, ``schedule=quick``,
shrunk to a 64x64 patch and a small U-Net, fp32, one thread, fixed seed) and the SHA-256 of its final
state (every tensor of ``last.pt``'s method state, in sorted key order, with dtype and shape) is compared
with ``same_weights_reference.json``, made by the code before the refactor.

Float results depend on the torch build and the CPU kernels it picks, so the reference records the torch
version, the platform and torch's CPU capability; where any differs from the running ones the test is
skipped and says why. Regenerate the reference (only when a change of weights is intended, and say so in
the commit) with::

    python -m tests.training.test_same_weights --regenerate
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


@pytest.fixture(scope="module")
def reference() -> dict:
    ref = json.loads(REFERENCE.read_text())
    if ref["environment"] != environment():
        pytest.skip(f"reference made with {ref['environment']}, running {environment()}: float results may differ")
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_weights_are_bit_identical_to_reference(method, reference, tmp_path):
    assert state_digest(trained_state(method, tmp_path / method)) == reference["digests"][method]


def test_digest_sees_one_changed_bit():
    state = {"a": torch.zeros(3), "b": torch.arange(4)}
    changed = {"a": torch.tensor([0.0, 0.0, float.fromhex("0x1p-149")]), "b": torch.arange(4)}
    assert state_digest(state) != state_digest(changed)
    assert state_digest(state) == state_digest(dict(reversed(list(state.items()))))


def regenerate() -> None:
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        digests = {m: state_digest(trained_state(m, Path(tmp) / m)) for m in METHODS}
    REFERENCE.write_text(json.dumps({"environment": environment(), "iterations": ITERATIONS,
                                     "digests": digests}, indent=2) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python -m tests.training.test_same_weights --regenerate")
    regenerate()
