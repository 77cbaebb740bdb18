from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from frugalseg.losses.contrastive_variance import (
    ContrastiveVarianceLoss,
    class_mean_intensity,
    contrastive_variance_loss,
    cosine_similarity_matrix,
    variance_maps,
)

# ---------------------------------------------------------------------------------------------------------------
# A toy worked out by hand: 2 images, 2 classes, 3 pixels (a 1x3 image).
#
#   image 0: x = (0, 1, 2)      image 1: x = (2, 1, 0)      (mirrored intensities)
#   both:    p0 = (1, 1/2, 0),  p1 = (0, 1/2, 1)
#
# image 0: c0 = (1*0 + 1/2*1 + 0*2) / (3/2) = 1/3        c1 = (0*0 + 1/2*1 + 1*2) / (3/2) = 5/3
#          z0 = p0 (x - 1/3)^2 = (1*1/9, 1/2*4/9, 0)   = (1/9, 2/9, 0)
#          z1 = p1 (x - 5/3)^2 = (0, 1/2*4/9, 1*1/9)   = (0, 2/9, 1/9)
# image 1: c0 = (1*2 + 1/2*1) / (3/2) = 5/3              c1 = (1/2*1 + 1*0) / (3/2) = 1/3
#          z0 = (1*1/9, 1/2*4/9, 0) = (1/9, 2/9, 0)      z1 = (0, 2/9, 1/9)
#
# So z0 ∝ (1, 2, 0) and z1 ∝ (0, 2, 1) in both images. Cosines: same class 1; different classes
# <(1,2,0),(0,2,1)> / (√5 √5) = 4/5.
# Anchor (image 0, class 0): one positive (image 1, class 0) with s = 1; negatives with
# negatives="all": (image 0, class 1) and (image 1, class 1), both s = 4/5. So
#   ℓ = −log( e^{1/τ} / (e^{1/τ} + 2 e^{0.8/τ}) ) = log(1 + 2 e^{−0.2/τ})
# and by symmetry every one of the 4 anchors has that value, which is then the mean.
# With negatives="other_images" only (image 1, class 1) is a negative: ℓ = log(1 + e^{−0.2/τ}).
# ---------------------------------------------------------------------------------------------------------------


def _toy():
    p = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])  # (K=2, N=3)
    probs = torch.stack([p, p]).unsqueeze(2)  # (B=2, K=2, H=1, W=3)
    image = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]).view(2, 1, 1, 3)
    return probs, image


def test_class_means_and_variance_maps_by_hand():
    probs, image = _toy()
    c = class_mean_intensity(probs, image, eps=0.0)
    assert c.squeeze(-1).flatten().tolist() == pytest.approx([1 / 3, 5 / 3, 5 / 3, 1 / 3])
    z = variance_maps(probs, image, eps=0.0).squeeze(2)
    expected = [1 / 9, 2 / 9, 0.0, 0.0, 2 / 9, 1 / 9]  # (z0, z1), the same in both images
    assert z[0].flatten().tolist() == pytest.approx(expected, abs=1e-7)
    assert z[1].flatten().tolist() == pytest.approx(expected, abs=1e-7)
    s = cosine_similarity_matrix(z.flatten(0, 1))
    assert s[0, 1].item() == pytest.approx(0.8) and s[0, 2].item() == pytest.approx(1.0)


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.1])
def test_cv_loss_by_hand(tau):
    probs, image = _toy()
    all_neg = contrastive_variance_loss(probs, image, tau, input_type="probs")
    assert all_neg.item() == pytest.approx(math.log(1 + 2 * math.exp(-0.2 / tau)), rel=1e-5)
    cross = contrastive_variance_loss(probs, image, tau, input_type="probs", negatives="other_images")
    assert cross.item() == pytest.approx(math.log(1 + math.exp(-0.2 / tau)), rel=1e-5)
    per_anchor = contrastive_variance_loss(probs, image, tau, input_type="probs", reduction="none")
    assert per_anchor.shape == (2, 2)
    assert per_anchor.flatten().tolist() == pytest.approx([math.log(1 + 2 * math.exp(-0.2 / tau))] * 4, rel=1e-5)
    summed = contrastive_variance_loss(probs, image, tau, input_type="probs", reduction="sum")
    assert summed.item() == pytest.approx(4 * all_neg.item(), rel=1e-6)


def test_without_background_there_are_no_negatives_with_two_classes():
    # Only class 1 is left: each anchor has a positive and no negative, so −log(e^s / e^s) = 0.
    probs, image = _toy()
    loss = contrastive_variance_loss(probs, image, 0.5, input_type="probs", include_background=False)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# A plain-Python reference (loops over floats, no tensor algebra) on a random 3-image, 3-class batch.
# ---------------------------------------------------------------------------------------------------------------


def _reference(probs, image, tau, negatives="all", include_background=True, eps=1e-8):
    p = probs.flatten(2).tolist()  # [B][K][N]
    x = image.flatten(2).tolist()  # [B][1][N]
    b_count, k_count, n_count = len(p), len(p[0]), len(p[0][0])
    classes = list(range(k_count)) if include_background else list(range(1, k_count))
    z = {}
    for i in range(b_count):
        for k in classes:
            mass = sum(p[i][k])
            c = sum(p[i][k][j] * x[i][0][j] for j in range(n_count)) / (mass + eps)
            z[i, k] = [p[i][k][j] * (x[i][0][j] - c) ** 2 for j in range(n_count)]

    def cos(a, b):
        dot = sum(u * v for u, v in zip(a, b))
        na = max(math.sqrt(sum(u * u for u in a)), eps)
        nb = max(math.sqrt(sum(v * v for v in b)), eps)
        return dot / (na * nb)

    losses = []
    for i in range(b_count):
        for k in classes:
            negs = [
                math.exp(cos(z[i, k], z[j, kk]) / tau)
                for j in range(b_count)
                for kk in classes
                if kk != k and (negatives == "all" or j != i)
            ]
            terms = []
            for j in range(b_count):
                if j == i:
                    continue
                e_pos = math.exp(cos(z[i, k], z[j, k]) / tau)
                terms.append(-math.log(e_pos / (e_pos + sum(negs))))
            losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("negatives", ["all", "other_images"])
@pytest.mark.parametrize("include_background", [True, False])
def test_cv_loss_matches_plain_python_reference(negatives, include_background):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 2, 3, generator=g) * 2
    image = torch.rand(3, 1, 2, 3, generator=g)
    probs = torch.softmax(logits, dim=1)
    expected = _reference(probs, image, 0.3, negatives, include_background)
    got = contrastive_variance_loss(
        logits, image, 0.3, negatives=negatives, include_background=include_background
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)
    from_probs = contrastive_variance_loss(
        probs, image, 0.3, input_type="probs", negatives=negatives, include_background=include_background
    )
    assert from_probs.item() == pytest.approx(got.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Degenerate inputs: no NaN, ever.
# ---------------------------------------------------------------------------------------------------------------


def test_class_absent_everywhere_gives_finite_loss_and_gradient():
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, generator=g), dim=1)
    probs[:, 2] = 0.0  # class 2 predicted nowhere (probability exactly 0)
    probs = probs / probs.sum(dim=1, keepdim=True)
    probs.requires_grad_(True)
    image = torch.rand(2, 1, 4, 4, generator=g)
    loss = contrastive_variance_loss(probs, image, 0.1, input_type="probs")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(probs.grad).all()
    # The empty class is neither anchor nor negative: the loss equals the loss on the other two classes.
    two = contrastive_variance_loss(probs.detach()[:, :2], image, 0.1, input_type="probs")
    assert loss.item() == pytest.approx(two.item(), rel=1e-6)
    per_anchor = contrastive_variance_loss(probs.detach(), image, 0.1, input_type="probs", reduction="none")
    assert per_anchor[:, 2].tolist() == [0.0, 0.0]


def test_logits_that_underflow_to_zero_probability_stay_finite():
    logits = torch.randn(2, 3, 4, 4)
    logits[:, 1] = -1e4  # softmax gives exactly 0 for class 1
    logits.requires_grad_(True)
    loss = contrastive_variance_loss(logits, torch.rand(2, 1, 4, 4), 0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_constant_image_and_single_image_give_zero_with_gradient_path():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    flat = contrastive_variance_loss(logits, torch.full((2, 1, 4, 4), 0.5), 0.1)  # every map is 0
    flat.backward()
    assert flat.item() == 0.0 and torch.isfinite(logits.grad).all()
    one = torch.randn(1, 3, 4, 4, requires_grad=True)
    single = contrastive_variance_loss(one, torch.rand(1, 1, 4, 4), 0.1)  # B = 1: no positive pair
    single.backward()
    assert single.item() == 0.0 and single.requires_grad and torch.isfinite(one.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# Gradients, invariances, precision.
# ---------------------------------------------------------------------------------------------------------------


def test_gradient_flows_to_the_logits_of_every_image():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 8, 8, generator=g, requires_grad=True)
    loss = contrastive_variance_loss(logits, torch.rand(3, 1, 8, 8, generator=g), 0.1)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad.abs().flatten(1).sum(dim=1) > 0).all()


def test_descending_the_cv_loss_lowers_it():
    # A few SGD steps on free logits must reduce the loss: the gradient points somewhere useful.
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 3, 8, 8, generator=g, requires_grad=True)
    image = torch.rand(4, 1, 8, 8, generator=g)
    first = contrastive_variance_loss(logits, image, 0.5)
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        contrastive_variance_loss(logits, image, 0.5).backward()
        opt.step()
    assert contrastive_variance_loss(logits, image, 0.5).item() < first.item()


@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0), shift=st.floats(-5.0, 5.0))
def test_invariances(seed, scale, shift):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 3, 4, 5, generator=g)
    image = torch.rand(3, 1, 4, 5, generator=g)
    ref = contrastive_variance_loss(logits, image, 0.2).item()
    assert math.isfinite(ref) and ref >= 0
    # Permuting the images of the batch (with their predictions) does not change the loss.
    perm = torch.randperm(3, generator=g)
    assert contrastive_variance_loss(logits[perm], image[perm], 0.2).item() == pytest.approx(ref, rel=1e-5)
    # Relabelling the classes consistently in every image does not change it (background included).
    cperm = torch.randperm(3, generator=g)
    assert contrastive_variance_loss(logits[:, cperm], image, 0.2).item() == pytest.approx(ref, rel=1e-5)
    # The same geometric change of every image and prediction (here a flip) does not change it.
    assert contrastive_variance_loss(logits.flip(-1), image.flip(-1), 0.2).item() == pytest.approx(ref, rel=1e-5)
    # An affine change of intensity scales every map by scale² and cosines ignore scale.
    affine = contrastive_variance_loss(logits, image * scale + shift, 0.2).item()
    assert affine == pytest.approx(ref, rel=1e-4, abs=1e-5)


def test_bf16_autocast_computes_in_fp32():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 16, 16, generator=g)
    image = torch.rand(2, 1, 16, 16, generator=g)
    ref = contrastive_variance_loss(logits, image, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = contrastive_variance_loss(logits, image, 0.1)
    assert out.dtype == torch.float32 and out.item() == pytest.approx(ref.item(), rel=1e-6)
    # bf16 inputs (as an autocast network returns them) are upcast, not computed in bf16.
    low = logits.bfloat16().requires_grad_(True)
    out_low = contrastive_variance_loss(low, image.bfloat16(), 0.1)
    out_low.backward()
    ref_low = contrastive_variance_loss(low.detach().float(), image.bfloat16().float(), 0.1)
    assert out_low.dtype == torch.float32 and out_low.item() == pytest.approx(ref_low.item(), rel=1e-6)
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()


def test_cuda_if_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    logits = torch.randn(2, 4, 16, 16, device="cuda", requires_grad=True)
    image = torch.rand(2, 1, 16, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = contrastive_variance_loss(logits, image, 0.1)
    loss.backward()
    ref = contrastive_variance_loss(logits.detach().cpu(), image.cpu(), 0.1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4) and torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# Options and the module wrapper.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_type": "softmax"}, "input_type must be one of 'logits', 'probs'"),
        ({"negatives": "same_image"}, "negatives must be one of 'all', 'other_images'"),
        ({"reduction": "avg"}, "reduction must be one of 'mean', 'sum', 'none'"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"eps": -1.0}, "eps must be > 0"),
        ({"eps": 0.0}, "eps must be > 0"),  # a zero floor turns an empty class into 0/0 = NaN
    ],
)
def test_bad_options_raise_value_error_listing_allowed_values(kwargs, match):
    logits, image = torch.randn(2, 2, 3, 3), torch.rand(2, 1, 3, 3)
    kwargs = {"temperature": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        contrastive_variance_loss(logits, image, **kwargs)
    with pytest.raises(ValueError, match=match):
        ContrastiveVarianceLoss(**kwargs)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="image must be"):
        contrastive_variance_loss(torch.randn(2, 2, 3, 3), torch.rand(2, 1, 3, 4))
    with pytest.raises(ValueError, match="image must be"):
        contrastive_variance_loss(torch.randn(2, 2, 3, 3), torch.rand(3, 1, 3, 3))


def test_module_matches_function_and_accepts_enum_or_string():
    probs, image = _toy()
    module = ContrastiveVarianceLoss(0.5, input_type="probs", negatives="other_images")
    assert module(probs, image).item() == pytest.approx(math.log(1 + math.exp(-0.4)), rel=1e-5)
    assert "negatives=other_images" in repr(module)
