"""Does the contrastive variance loss prefer the true segmentation? A check of PSCV's reconstructed loss.

For batches of ACDC training slices (resized to the quick schedule's 128x128, no augmentation), the CV
loss is evaluated on several predictions of the same batch:

- ``truth``: the ground-truth masks as probabilities (one-hot);
- ``truth, blurred``: the masks smoothed by a Gaussian (soft borders, as a trained network predicts);
- ``truth, shifted``: every mask shifted by (8, 8) pixels (right shapes at the wrong place);
- ``mean shape``: every image given the batch's average mask (position prior, no image content);
- ``uniform``: every class 1/K everywhere;
- each ``--checkpoint``: the softmax of a trained network.

If the loss of ``truth`` is not the lowest, minimising L_CV pulls a network away from the truth: the
evidence for why PSCV's CV term can cost Dice against pCE. Also reported: the mean cosine between
positive pairs (same class, two images) and negative pairs (two classes), for the truth.

    python scripts/pscv_loss_landscape.py --data ../shared/data/ACDC \\
        --checkpoint pce=runs/compare/pce-s0/checkpoints/best.pt --out runs/pscv_landscape.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.data.sources import open_source
from frugalseg.files import replace_marked_block
from frugalseg.losses.contrastive_variance import contrastive_variance_loss, cosine_similarity_matrix, variance_maps
from frugalseg.methods.restore import load_trained_model


def batches(data: Path, size: int, batch: int, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` random batches of (image (B,1,S,S), label (B,S,S)) from the training slices with every class."""
    source = open_source(data)
    items = [it for it in source.training_slices() if it.label is not None and len(np.unique(it.label)) == 4]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pick = [items[i] for i in rng.choice(len(items), batch, replace=False)]
        # stored slices differ in size: resize each to size x size (bilinear image, nearest label)
        image = torch.cat([F.interpolate(torch.from_numpy(it.image)[None, None], size=(size, size),
                                         mode="bilinear", align_corners=True) for it in pick])
        label = torch.cat([F.interpolate(torch.from_numpy(it.label.astype(np.float32))[None, None],
                                         size=(size, size), mode="nearest") for it in pick])
        out.append((image, label[:, 0].long()))
    return out


def blur(probs: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = probs.shape[1]
    out = F.conv2d(probs, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, radius), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(radius, 0), groups=c)
    return out / out.sum(dim=1, keepdim=True)


def positive_negative_cosines(probs: torch.Tensor, image: torch.Tensor) -> tuple[float, float]:
    b, k = probs.shape[:2]
    cos = cosine_similarity_matrix(variance_maps(probs, image).flatten(0, 1)).view(b, k, b, k)
    same_class = torch.eye(k, dtype=torch.bool)[None, :, None, :]
    other_image = ~torch.eye(b, dtype=torch.bool)[:, None, :, None]
    same_class_other_image = same_class & other_image
    other_class = (~same_class).expand(b, k, b, k)
    return cos[same_class_other_image.expand(b, k, b, k)].mean().item(), cos[other_class].mean().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", action="append", default=[], help="label=path of a trained run's checkpoint")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--temperature", type=float, nargs="+", default=[0.1, 0.5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the table here")
    p.add_argument("--doc", type=Path, help="also put the table into this page's block --block")
    p.add_argument("--block", default="landscape")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    data = batches(args.data, args.size, args.batch, args.batches, args.seed)
    models = {}
    for spec in args.checkpoint:
        label, _, path = spec.partition("=")
        models[label] = load_trained_model(path).network.eval()

    def predictions(image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        truth = F.one_hot(label, 4).permute(0, 3, 1, 2).float()
        preds = {
            "truth": truth,
            "truth, blurred (σ = 2 px)": blur(truth, 2.0),
            "truth, shifted by (8, 8) px": torch.roll(truth, (8, 8), dims=(2, 3)),
            "mean shape of the batch": truth.mean(0, keepdim=True).expand_as(truth),
            "uniform": torch.full_like(truth, 0.25),
        }
        with torch.no_grad():
            for name, net in models.items():
                preds[f"trained `{name}` network"] = torch.softmax(net(image).float(), dim=1)
        return preds

    rows: dict[str, dict[str, list[float]]] = {}
    for image, label in data:
        for name, probs in predictions(image, label).items():
            row = rows.setdefault(name, {})
            for t in args.temperature:
                row.setdefault(f"τ={t}", []).append(
                    contrastive_variance_loss(probs, image, t, input_type="probs").item())
            pos, neg = positive_negative_cosines(probs, image)
            row.setdefault("pos", []).append(pos)
            row.setdefault("neg", []).append(neg)
    head = ["prediction", *(f"L_CV (τ = {t})" for t in args.temperature), "mean cos, positives", "mean cos, negatives"]
    lines = [f"{args.batches} batches of {args.batch} ACDC training slices with all four classes, "
             f"{args.size}x{args.size}, no augmentation; mean over batches.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [name, *(f"{statistics.mean(row[f'τ={t}']):.3f}" for t in args.temperature),
                 f"{statistics.mean(row['pos']):.3f}", f"{statistics.mean(row['neg']):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.doc:
        command = " ".join(["python scripts/pscv_loss_landscape.py", *(sys.argv[1:] if argv is None else argv)])
        replace_marked_block(args.doc, args.block, f"Written by:\n\n```\n{command}\n```\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
