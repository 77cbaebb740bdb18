"""What DII's per-instance gradients cost: classifier-only (exact, closed form) against the alternatives.

On one synthetic batch shaped like a ``quick`` (or, with ``--size 256 --batch 24``, a ``paper``) step of
``acdc_dii_dcr`` (the default U-Net, half the batch weak, a few boxes per weak slice), times:

(a) one network's training step (forward + 0.5·(CE + Dice) + backward), for scale;
(b) ours: every instance's gradient w.r.t. the final 3×3 classifier, closed form
    (:func:`frugalseg.losses.instance_weighting.segment_classifier_gradients`), strong gradient included;
(c) the same gradients with ``torch.func.vmap(grad)`` over instances (features copied per instance);
(d) per-instance gradients w.r.t. *every* parameter with ``torch.func.vmap(grad)`` over instances
    (BatchNorm in eval mode: batch statistics are not defined per instance).

(b) and (c) agree to float precision (checked). Prints a Markdown table::

    python benchmarks/dii_instance_gradients.py [--size 128 --batch 8 --boxes 3 --repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from frugalseg.losses.dice import dice_ce_loss
from frugalseg.losses.instance_weighting import cross_entropy_error, segment_classifier_gradients
from frugalseg.nets import UNet


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def synthetic(batch: int, size: int, boxes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels (strong half: random classes; weak half: box masks) and the box segment map."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 1, size, size, generator=g)
    target = torch.randint(0, 4, (batch, size, size), generator=g)
    strong = torch.arange(batch) < batch // 2
    segments = torch.full((batch, size, size), -1)
    k = 0
    for b in range(batch // 2, batch):
        target[b] = 0
        for j in range(boxes):
            y0, x0 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=g))
            target[b, y0 : y0 + size // 4, x0 : x0 + size // 4] = 1 + j % 3
            segments[b, y0 : y0 + size // 4, x0 : x0 + size // 4] = k
            k += 1
    return image, target, strong, segments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--boxes", type=int, default=3, help="boxes per weak slice")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-full", action="store_true", help="skip (d), the slow one")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    net = UNet(num_classes=4).train()
    image, target, strong, segments = synthetic(args.batch, args.size, args.boxes)
    k = int(segments.max()) + 1
    head = net.head

    def step() -> None:
        net.zero_grad()
        ce, dice = dice_ce_loss(net(image), target)
        (0.5 * (ce + dice)).backward()

    out = net(image, return_features=True)
    feats, logits = out.features[-1].detach(), out.logits.detach()
    weak_target = torch.where(segments >= 0, target, -1)
    strong_seg = torch.where(strong.reshape(-1, 1, 1) & (target >= 0), 0, -1)

    def ours() -> torch.Tensor:
        segment_classifier_gradients(feats, cross_entropy_error(logits, target), strong_seg, 1, head)
        sums, counts = segment_classifier_gradients(feats, cross_entropy_error(logits, weak_target), segments, k,
                                                    head)
        return sums / counts.unsqueeze(1)

    owner = torch.tensor([int((segments == i).nonzero()[0, 0]) for i in range(k)])
    masks = torch.stack([(segments[owner[i]] == i) for i in range(k)]).float()
    tgts = target[owner]
    params = {n: p.detach() for n, p in head.named_parameters()}

    def head_loss(prm: dict, f: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        z = functional_call(head, prm, (f.unsqueeze(0),))
        ce = F.cross_entropy(z, t.unsqueeze(0), reduction="none")[0]
        return (ce * m).sum() / m.sum()

    def func_head() -> torch.Tensor:
        g = vmap(grad(head_loss), in_dims=(None, 0, 0, 0))(params, feats[owner], tgts, masks)
        return torch.cat([g["weight"].reshape(k, -1), g["bias"]], dim=1)

    torch.testing.assert_close(ours(), func_head(), rtol=1e-4, atol=1e-6)
    rows = [("(a) one network's training step", timed(step, args.repeats)),
            (f"(b) ours: classifier, closed form ({k} instances + strong)", timed(ours, args.repeats)),
            ("(c) classifier, torch.func vmap(grad)", timed(func_head, args.repeats))]
    if not args.skip_full:
        net.eval()
        all_params = {n: p.detach() for n, p in net.named_parameters()}
        buffers = {n: b for n, b in net.named_buffers()}

        def full_loss(prm: dict, x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            z = functional_call(net, (prm, buffers), (x.unsqueeze(0),))
            ce = F.cross_entropy(z, t.unsqueeze(0), reduction="none")[0]
            return (ce * m).sum() / m.sum()

        def func_full() -> None:
            vmap(grad(full_loss), in_dims=(None, 0, 0, 0))(all_params, image[owner], tgts, masks)

        rows.append(("(d) every parameter, torch.func vmap(grad)", timed(func_full, max(1, args.repeats - 2))))
    print(f"batch {args.batch} x {args.size}², {k} weak instances, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| what | seconds |\n| --- | --- |")
    for name, sec in rows:
        print(f"| {name} | {sec:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
