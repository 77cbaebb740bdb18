r"""Anatomical contrast (AnCo) with active hard-query and hard-negative sampling (ACTION stage iii).

ACTION (You et al., IPMI 2023) fine-tunes with a pixel-level contrast in the style of ReCo (Liu et al.,
ICLR 2022) on a representation map r (one D-dim embedding per pixel). For every class c present among
the *valid* pixels V (labelled pixels, and unlabelled pixels whose pseudo-label is confident)::

    R^c     = { r(j) : j ∈ V, y(j) = c }                 the class's pixels
    k^c     = mean(R^c)                                    positive key: the class prototype
    G[c, v] = softmax_{v ≠ c}( cos(k^c, k^v) / τ )         class-relation graph (a distribution per row)
    Q^c     = n_q pixels drawn uniformly, with replacement, from the *hard* pixels of c,
              those whose predicted probability of c is below θ_s
    N(q)    = n_k negatives per query: a class v ~ G[c, ·], then a pixel uniformly from R^v
    ℓ(q)    = −log [ e^{cos(q, k^c)/τ} / ( e^{cos(q, k^c)/τ} + Σ_{n ∈ N(q)} e^{cos(q, n)/τ} ) ]
    L_AnCo  = 1/|C| Σ_{c ∈ C} mean_{q ∈ Q^c} ℓ(q)           C: the classes present

A class with no hard pixel contributes 0 but still counts in |C| (as the official ``compute_reco_loss``),
and the loss is 0 when fewer than two classes are present. The graph makes anatomically close classes
(the myocardium for the left ventricle) the likely negatives: those are the "hard negatives". The
positive key and the negatives carry no gradient; only the queries do. Similarities are cosine (the
code and ReCo; the paper writes a dot product).

Sampling (:func:`sample_anatomical_contrast`) and the loss on given samples
(:func:`anatomical_contrast_from_sample`) are separate so that a test can fix the samples and compute the
loss by hand; :func:`anatomical_contrast_loss` composes them. Random draws come from a CPU generator
(default: torch's global one, which the engine seeds and checkpoints, so a resumed run draws the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor

__all__ = [
    "AnCoSample",
    "anatomical_contrast_from_sample",
    "anatomical_contrast_loss",
    "class_prototypes",
    "class_relation_graph",
    "flatten_pixels",
    "sample_anatomical_contrast",
]


@dataclass
class AnCoSample:
    """Which pixels one AnCo evaluation contrasts (indices into the flattened pixels).

    Attributes:
        classes: (P,) int64, the classes present among the valid pixels, ascending.
        queries: per present class, (n_q,) pixel indices of its sampled hard queries, or ``None`` when the
            class has no hard pixel.
        negatives: per present class, (n_q, n_k) pixel indices of each query's negatives (``None`` likewise).
    """

    classes: Tensor
    queries: list[Tensor | None]
    negatives: list[Tensor | None]


def flatten_pixels(rep: Tensor, label: Tensor, valid: Tensor, prob: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, D, H, W), (B, H, W), (B, H, W), (B, C, H, W) maps to per-pixel rows (N, D), (N,), (N,), (N, C).

    The representation is permuted, not copied, when it is stored channels-last (the engine's default).
    """
    if rep.shape[-2:] != label.shape[-2:] or label.shape != valid.shape or prob.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"maps do not fit: rep {tuple(rep.shape)}, label {tuple(label.shape)}, "
                         f"valid {tuple(valid.shape)}, prob {tuple(prob.shape)}")
    d, c = rep.shape[1], prob.shape[1]
    return (rep.permute(0, 2, 3, 1).reshape(-1, d), label.reshape(-1), valid.reshape(-1).bool(),
            prob.permute(0, 2, 3, 1).reshape(-1, c))


@torch.no_grad()
def class_prototypes(rep: Tensor, label: Tensor, valid: Tensor, classes: Tensor) -> Tensor:
    """(P, D) fp32 mean representation of the valid pixels of each class in ``classes`` (no gradient).

    Args:
        rep: (N, D) pixel representations.
        label: (N,) int64 classes (anything where not ``valid``).
        valid: (N,) bool.
        classes: (P,) int64 classes, each with at least one valid pixel.
    """
    members = ((label.unsqueeze(1) == classes.to(label.device).unsqueeze(0)) & valid.unsqueeze(1)).float()
    sums = members.T @ rep.float()
    return sums / members.sum(0).unsqueeze(1)


@torch.no_grad()
def class_relation_graph(prototypes: Tensor, temperature: float) -> Tensor:
    """(P, P) row-stochastic matrix: row c is ``softmax_{v ≠ c}(cos(k^c, k^v) / τ)``, 0 on the diagonal.

    Needs P ≥ 2 (a class alone has no negative class).
    """
    if prototypes.shape[0] < 2:
        raise ValueError("the class-relation graph needs at least two classes")
    k = F.normalize(prototypes.float(), dim=1)
    logits = (k @ k.T) / temperature
    logits.fill_diagonal_(float("-inf"))
    return torch.softmax(logits, dim=1)


def sample_anatomical_contrast(
    label: Tensor,
    valid: Tensor,
    prob: Tensor,
    graph: Tensor,
    classes: Tensor,
    strong_threshold: float,
    num_queries: int,
    num_negatives: int,
    generator: torch.Generator | None = None,
) -> AnCoSample:
    """Draw hard queries and graph-guided hard negatives (module docstring).

    Args:
        label: (N,) int64 pixel classes.
        valid: (N,) bool.
        prob: (N, C) the student's (detached) class probabilities.
        graph: (P, P) from :func:`class_relation_graph` over ``classes``.
        classes: (P,) present classes, ascending.
        strong_threshold: θ_s; a pixel of class c is a hard query when ``prob[:, c] < θ_s``.
        num_queries: n_q per class (with replacement).
        num_negatives: n_k per query.
        generator: CPU generator for every draw (``None``: the global one).
    """
    label, valid, prob = label.cpu(), valid.cpu(), prob.detach().cpu()
    graph = graph.detach().cpu().double()
    members = [torch.nonzero(valid & (label == c)).flatten() for c in classes.tolist()]
    counts = torch.tensor([len(m) for m in members], dtype=torch.int64)
    pool = torch.cat(members)
    offsets = torch.cumsum(counts, 0) - counts
    queries: list[Tensor | None] = []
    negatives: list[Tensor | None] = []
    for i, c in enumerate(classes.tolist()):
        hard = members[i][prob[members[i], c] < strong_threshold]
        if len(hard) == 0:
            queries.append(None)
            negatives.append(None)
            continue
        queries.append(hard[torch.randint(len(hard), (num_queries,), generator=generator)])
        which = torch.multinomial(graph[i], num_queries * num_negatives, replacement=True, generator=generator)
        which = which.reshape(num_queries, num_negatives)
        u = torch.rand(num_queries, num_negatives, generator=generator, dtype=torch.float64)
        within = torch.minimum((u * counts[which]).long(), counts[which] - 1)
        negatives.append(pool[offsets[which] + within])
    return AnCoSample(classes.cpu(), queries, negatives)


def anatomical_contrast_from_sample(rep: Tensor, prototypes: Tensor, sample: AnCoSample, temperature: float) -> Tensor:
    """L_AnCo on given samples: mean InfoNCE of the queries against prototype + negatives, averaged over classes.

    Args:
        rep: (N, D) pixel representations; the gradient reaches the queries' rows only.
        prototypes: (P, D) class prototypes (detached), in the order of ``sample.classes``.
        sample: the queries and negatives.
        temperature: τ (ACTION: 0.5).

    Returns:
        scalar fp32; 0 (with a gradient path) when fewer than two classes are present.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    present = len(sample.classes)
    total = rep.sum().float() * 0.0
    if present < 2:
        return total
    device = rep.device
    keys = F.normalize(prototypes.detach().float().to(device), dim=1)
    dense: Tensor | None = None  # every pixel's unit vector, when that is cheaper than gathering vectors
    for i in range(present):
        q_idx, n_idx = sample.queries[i], sample.negatives[i]
        if q_idx is None or n_idx is None:
            continue
        q = F.normalize(rep[q_idx.to(device)].float(), dim=1)
        positive = (q @ keys[i]).unsqueeze(1)
        n_idx = n_idx.to(device)
        if rep.shape[0] <= n_idx.shape[1] * rep.shape[1]:
            # Fewer pixels than gathered numbers: similarities to every pixel, then pick the sampled ones.
            if dense is None:
                with torch.no_grad():
                    dense = F.normalize(rep.detach().float(), dim=1)
            negative = torch.gather(q @ dense.T, 1, n_idx)
        else:
            with torch.no_grad():
                neg = F.normalize(rep[n_idx].float(), dim=2)
            negative = torch.einsum("qd,qkd->qk", q, neg)
        logits = torch.cat([positive, negative], dim=1) / temperature
        total = total + F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=device))
    return total / present


def anatomical_contrast_loss(
    rep: Tensor,
    label: Tensor,
    valid: Tensor,
    prob: Tensor,
    strong_threshold: float = 0.97,
    temperature: float = 0.5,
    num_queries: int = 256,
    num_negatives: int = 512,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L_AnCo of a batch (module docstring): prototypes, relation graph, sampling, loss.

    Args:
        rep: (B, D, H, W) pixel representations (the representation head's output).
        label: (B, H, W) int64: ground truth on labelled images, pseudo-labels on unlabelled ones.
        valid: (B, H, W) bool: labelled pixels, and unlabelled pixels with a confident pseudo-label.
        prob: (B, C, H, W) the student's class probabilities (detached inside).
        strong_threshold: θ_s (0.97): hard queries have a predicted probability of their class below it.
        temperature: τ (0.5), for the InfoNCE and the relation graph.
        num_queries: hard queries per class (256).
        num_negatives: negatives per query (512).
        generator: CPU generator for the draws (``None``: torch's global one).

    Returns:
        scalar fp32.
    """
    if num_queries < 1 or num_negatives < 1:
        raise ValueError(f"num_queries and num_negatives must be positive; got {num_queries}, {num_negatives}")
    rep_n, label_n, valid_n, prob_n = flatten_pixels(rep, label, valid, prob)
    present = torch.unique(label_n[valid_n])
    if len(present) < 2:
        return rep.sum().float() * 0.0
    prototypes = class_prototypes(rep_n.detach(), label_n, valid_n, present)
    graph = class_relation_graph(prototypes, temperature)
    sample = sample_anatomical_contrast(label_n, valid_n, prob_n, graph, present, strong_threshold, num_queries,
                                        num_negatives, generator)
    return anatomical_contrast_from_sample(rep_n, prototypes, sample, temperature)
