from __future__ import annotations

import math

import pytest
import torch

from frugalseg.losses.anatomical_contrast import (
    AnCoSample,
    anatomical_contrast_from_sample,
    anatomical_contrast_loss,
    class_prototypes,
    class_relation_graph,
    flatten_pixels,
    sample_anatomical_contrast,
)


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def _info_nce(q, positive, negatives, tau):
    logits = [_cos(q, positive) / tau] + [_cos(q, n) / tau for n in negatives]
    return -(logits[0] - math.log(sum(math.exp(x) for x in logits)))


# Six pixels in 2-D, three classes: 0 = {p0, p1}, 1 = {p2, p3}, 2 = {p4, p5}.
REP = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 1.0], [-1.0, 0.0], [-1.0, -2.0]]
LABEL = [0, 0, 1, 1, 2, 2]


def test_loss_on_fixed_samples_by_hand():
    rep = torch.tensor(REP)
    label, valid = torch.tensor(LABEL), torch.ones(6, dtype=torch.bool)
    classes = torch.tensor([0, 1, 2])
    protos = class_prototypes(rep, label, valid, classes)
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0.5], [-0.5, 1.0], [-1.0, -1.0]]))
    # class 0: queries p0, p1 with negatives (p2, p4) and (p5, p2); class 1: no hard pixel; class 2: query p4 twice
    sample = AnCoSample(
        classes,
        queries=[torch.tensor([0, 1]), None, torch.tensor([4, 4])],
        negatives=[torch.tensor([[2, 4], [5, 2]]), None, torch.tensor([[0, 2], [1, 3]])],
    )
    tau = 0.5
    p = [[1.0, 0.5], [-0.5, 1.0], [-1.0, -1.0]]
    l0 = (_info_nce(REP[0], p[0], [REP[2], REP[4]], tau) + _info_nce(REP[1], p[0], [REP[5], REP[2]], tau)) / 2
    l2 = (_info_nce(REP[4], p[2], [REP[0], REP[2]], tau) + _info_nce(REP[4], p[2], [REP[1], REP[3]], tau)) / 2
    expected = (l0 + 0.0 + l2) / 3  # a class without hard queries still counts in the mean over classes
    loss = anatomical_contrast_from_sample(rep, protos, sample, tau)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_both_similarity_paths_agree():
    # Few pixels (similarities to every pixel, then gathered) and many (gathered vectors) must give one value.
    g = torch.Generator().manual_seed(0)
    rep = torch.randn(40, 3, generator=g)
    label, valid = torch.arange(40) % 2, torch.ones(40, dtype=torch.bool)
    classes = torch.tensor([0, 1])
    protos = class_prototypes(rep, label, valid, classes)
    q = [torch.tensor([0, 2, 4]), torch.tensor([1, 3, 5])]
    wide = [torch.randint(0, 20, (3, 30), generator=g) * 2 + 1, torch.randint(0, 20, (3, 30), generator=g) * 2]
    narrow = [w[:, :4] for w in wide]
    for negatives in (wide, narrow):  # 40 pixels <= 30 * 3 (dense path); 40 > 4 * 3 (gathered path)
        loss = anatomical_contrast_from_sample(rep, protos, AnCoSample(classes, q, negatives), 0.5)
        expected = 0.0
        for c in (0, 1):
            expected += sum(
                _info_nce(rep[i].tolist(), protos[c].tolist(), [rep[j].tolist() for j in row], 0.5)
                for i, row in zip(q[c].tolist(), negatives[c].tolist())
            ) / 3
        assert loss.item() == pytest.approx(expected / 2, rel=1e-5)


def test_degenerate_batch_has_a_deterministic_loss():
    # One valid pixel per class, both hard: every query is that pixel, every negative the other one.
    rep = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, D=2, H=1, W=2): pixel 0 = (1, 0), pixel 1 = (0, 2)
    label = torch.tensor([[[0, 1]]])
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    prob = torch.full((1, 2, 1, 2), 0.5)
    tau, m = 0.5, 7
    one = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + m * math.exp(0.0)))  # cos(p0, p1) = 0
    loss = anatomical_contrast_loss(rep, label, valid, prob, 0.97, tau, num_queries=3, num_negatives=m)
    assert loss.item() == pytest.approx(one, rel=1e-6)


def test_sampling_draws_hard_queries_and_graph_guided_negatives():
    torch.manual_seed(0)
    n = 300
    label = torch.arange(n) % 3
    valid = torch.ones(n, dtype=torch.bool)
    valid[::7] = False  # invalid pixels are never drawn
    prob = torch.full((n, 3), 0.5)
    prob[torch.arange(0, n, 2), label[::2]] = 0.99  # even pixels are easy for their class
    graph = torch.tensor([[0.0, 0.8, 0.2], [0.5, 0.0, 0.5], [0.1, 0.9, 0.0]])
    g = torch.Generator().manual_seed(3)
    s = sample_anatomical_contrast(label, valid, prob, graph, torch.tensor([0, 1, 2]), 0.97, 64, 200, g)
    for i, c in enumerate((0, 1, 2)):
        q, neg = s.queries[i], s.negatives[i]
        assert q.shape == (64,) and neg.shape == (64, 200)
        assert (label[q] == c).all() and valid[q].all() and (q % 2 == 1).all()  # hard (odd) pixels of c only
        assert valid[neg].all() and (label[neg] != c).all()
        freq = torch.bincount(label[neg].flatten(), minlength=3).double() / neg.numel()
        torch.testing.assert_close(freq, graph[i].double(), atol=0.02, rtol=0)
    again = sample_anatomical_contrast(label, valid, prob, graph, torch.tensor([0, 1, 2]), 0.97, 64, 200,
                                       torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(s.negatives, again.negatives))


def test_relation_graph_by_hand():
    protos = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tau = 0.5
    graph = class_relation_graph(protos, tau)
    c = 1 / math.sqrt(2)
    row0 = [0.0, math.exp(c / tau) / (math.exp(c / tau) + 1.0), 1.0 / (math.exp(c / tau) + 1.0)]
    torch.testing.assert_close(graph[0], torch.tensor(row0))
    torch.testing.assert_close(graph[1], torch.tensor([0.5, 0.0, 0.5]))
    with pytest.raises(ValueError, match="two classes"):
        class_relation_graph(protos[:1], tau)


def test_single_class_gives_zero_and_gradient_reaches_queries_only():
    rep = torch.randn(2, 4, 3, 3, requires_grad=True)
    prob = torch.full((2, 3, 3, 3), 1 / 3)
    zero = anatomical_contrast_loss(rep, torch.zeros(2, 3, 3, dtype=torch.long), torch.ones(2, 3, 3, dtype=torch.bool),
                                    prob)
    assert zero.item() == 0.0 and zero.requires_grad

    flat = torch.tensor(REP, requires_grad=True)
    label, valid = torch.tensor(LABEL), torch.ones(6, dtype=torch.bool)
    protos = class_prototypes(flat, label, valid, torch.tensor([0, 1, 2]))
    sample = AnCoSample(torch.tensor([0, 1, 2]), [torch.tensor([0]), None, None], [torch.tensor([[2, 4]]), None, None])
    anatomical_contrast_from_sample(flat, protos, sample, 0.5).backward()
    assert flat.grad[0].abs().sum() > 0 and flat.grad[1:].abs().sum() == 0  # keys and prototypes: no gradient


def test_flatten_keeps_pixel_order():
    rep = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2).contiguous(
        memory_format=torch.channels_last)
    r, lab, val, pr = flatten_pixels(rep, torch.zeros(2, 2, 2, dtype=torch.long), torch.ones(2, 2, 2),
                                     torch.zeros(2, 4, 2, 2))
    assert r.shape == (8, 3) and lab.shape == (8,) and val.dtype == torch.bool and pr.shape == (8, 4)
    torch.testing.assert_close(r[5], rep[1, :, 0, 1])
    with pytest.raises(ValueError, match="do not fit"):
        flatten_pixels(rep, torch.zeros(2, 3, 3, dtype=torch.long), torch.ones(2, 3, 3), torch.zeros(2, 4, 3, 3))
