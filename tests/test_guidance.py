"""The guidance terms against hand-computed references on toy models."""

import pytest
import torch

from mimic_diffusers import MimicDiffusionScheduler
from mimic_diffusers.guidance import guidance_loss, l1_distance, l2_distance, make_abs, sr_operator, ste_sign


def operator_matrix(h, w, factor, direction):
    """H as an explicit matrix, built by applying it to every basis image."""
    basis = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    return sr_operator(basis, factor, direction).flatten(1).T  # (out_pixels, in_pixels)


def toy_step(scheduler, x, w, t, reference):
    """A toy 'UNet' eps = w * x: x0_hat = c x with c = (1 - sqrt(1 - abar) w) / sqrt(abar)."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        eps = w * x
        out = scheduler.guided_step(eps, t, x, reference=reference, variance_noise=torch.zeros_like(x))
    plain = scheduler.step(w * x.detach(), t, x.detach(), eta=1.0, variance_noise=torch.zeros_like(x)).prev_sample
    return out, plain


@pytest.mark.parametrize("long_range,short_range", [(True, False), (False, True), (True, True)])
def test_guidance_equals_hand_computed_reference(long_range, short_range):
    torch.manual_seed(0)
    scheduler = MimicDiffusionScheduler(clip_sample=False, long_range=long_range, short_range=short_range)
    scheduler.set_timesteps(100)
    t, w = 399, 0.3
    x, y = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2 - 1
    out, plain = toy_step(scheduler, x, w, t, y)
    abar = float(scheduler.alphas_cumprod[t])
    c = (1 - (1 - abar) ** 0.5 * w) / abar**0.5
    lam = 1.0 / abar**2  # the paper's R_t with sigma(t) = alpha_bar
    expected = torch.zeros(2, 64, dtype=torch.float64)
    x0 = (c * x).flatten(1)
    if long_range:
        expected += lam * c * torch.sign(x0 - y.flatten(1)) / 64
    if short_range:
        H = operator_matrix(8, 8, 4, "down")
        r = x0 @ H.T - y.flatten(1) @ H.T
        expected += lam * c * (torch.sign(r) @ H) / H.shape[0]
    torch.testing.assert_close(out.guidance.flatten(1), -expected)
    torch.testing.assert_close(out.prev_sample, plain - expected.view_as(x))


def test_window_bounds_and_step_size_rules():
    s = MimicDiffusionScheduler()
    s.set_timesteps(100)
    guided = [int(t) for t in s.timesteps if s.in_window(t)]
    assert guided == [t for t in range(999, -1, -10) if 200 <= t <= 500]
    d = torch.tensor([0.5, 2.0])
    for rule, expected in [
        ("dps", 0.7 / d),
        ("constant", 0.7 * torch.ones(2)),
        ("official", 0.7 * 0.25**0.5 * torch.ones(2)),
        ("paper", 0.7 / 0.25**2 * torch.ones(2)),
    ]:
        from mimic_diffusers.guidance import step_size

        torch.testing.assert_close(step_size(rule, 0.7, 0.25, d), expected)


def test_distances_are_per_sample_means():
    a, b = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, -3.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    torch.testing.assert_close(l1_distance(a, b), torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(l2_distance(a, b), torch.tensor([1.0, 3.0]))


def test_sr_operator_directions():
    x = torch.rand(1, 1, 16, 16)
    assert sr_operator(x, 4, "down").shape == (1, 1, 4, 4)
    assert sr_operator(x, 4, "up").shape == (1, 1, 64, 64)
    # 'down' is DPS's antialiased bicubic: a constant image stays constant
    torch.testing.assert_close(sr_operator(torch.full((1, 1, 16, 16), 0.3), 4, "down"), torch.full((1, 1, 4, 4), 0.3))
    with pytest.raises(ValueError, match="sr_direction"):
        sr_operator(x, 4, "sideways")


def test_sign_surrogates_forward_exact_backward_smooth():
    u = torch.tensor([-1.0, -0.01, 0.02, 3.0], requires_grad=True)
    out = ste_sign(u, 0.05)
    assert torch.equal(out, torch.sign(u))
    (g,) = torch.autograd.grad(out.sum(), u)
    torch.testing.assert_close(g, (1 - torch.tanh(u.detach() / 0.05) ** 2) / 0.05)
    # exact |.|: the second derivative w.r.t. the reference is zero (the masking the attacks must beat)
    y = torch.tensor([0.3], requires_grad=True)
    x = torch.tensor([0.5], requires_grad=True)
    for surrogate, zero in [(None, True), ("ste", False), ("tanh", False)]:
        loss = make_abs(surrogate)(x - y).sum()
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        assert torch.allclose(gx.detach(), torch.ones(1), atol=0.01)
        if not gx.requires_grad:
            gy = torch.zeros(1)
        else:
            (gy,) = torch.autograd.grad(gx.sum(), y, allow_unused=True, materialize_grads=True)
        assert (gy.abs().sum() == 0) == zero
    with pytest.raises(ValueError, match="sign_surrogate"):
        make_abs("cubic")


def test_guidance_loss_is_batch_independent():
    torch.manual_seed(1)
    x0, y = torch.randn(3, 1, 8, 8, requires_grad=True), torch.randn(3, 1, 8, 8)
    for rule in ("paper", "dps", "official", "constant"):
        (g_all,) = torch.autograd.grad(guidance_loss(x0, y, alpha_bar=0.3, step_size_rule=rule), x0)
        x1 = x0[:1].detach().requires_grad_(True)
        (g_one,) = torch.autograd.grad(guidance_loss(x1, y[:1], alpha_bar=0.3, step_size_rule=rule), x1)
        torch.testing.assert_close(g_all[:1], g_one)


def test_guidance_scales_with_the_stride_unless_disabled():
    s = MimicDiffusionScheduler(guidance_scale=2.0)
    s.set_timesteps(100)
    assert s.effective_guidance_scale() == 2.0
    s.set_timesteps(20)
    assert s.effective_guidance_scale() == pytest.approx(10.0)
    fixed = MimicDiffusionScheduler(guidance_scale=2.0, guidance_reference_steps=None)
    fixed.set_timesteps(20)
    assert fixed.effective_guidance_scale() == 2.0
    with pytest.raises(ValueError, match="guidance_reference_steps"):
        MimicDiffusionScheduler(guidance_reference_steps=0)
