"""The attack derivative through a chain with several guided steps, in float64 with the smooth surrogate:
autograd equals finite differences, checkpointing changes no number, the feedback cut equals an
independent few-line implementation, and plain autograd through MimicDiffusion is masked."""

import pytest
import torch
from conftest import gen, tiny_pipeline
from torch.nn.attention import SDPBackend, sdpa_kernel

from mimic_diffusers.attacks import PurifyThenClassify, gradient_diagnostics
from mimic_diffusers.attacks.chain import DifferentiableChain
from mimic_diffusers.guidance import guidance_loss, make_abs

STEPS, TAU = 10, 0.5  # 10 of 1000 steps: timesteps 499, 399, 299 fall in the window 50%..20% T


@pytest.fixture(scope="module")
def chain():
    pipe = tiny_pipeline(clip_sample=False, step_size_rule="constant", guidance_scale=30.0)
    pipe.unet.double()
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=gen(3)) * 0.8 + 0.1
    w = torch.randn(x.shape, dtype=torch.float64, generator=gen(4))
    return pipe, x, w


def guided_steps(pipe):
    pipe.scheduler.set_timesteps(STEPS)
    return sum(bool(pipe.scheduler.in_window(t)) for t in pipe.scheduler.purification_timesteps())


def objective(pipe, x, w, feedback=True, checkpoint=True):
    chain = DifferentiableChain(
        sign_surrogate="tanh", surrogate_tau=TAU, checkpoint_steps=checkpoint, guidance_feedback=feedback
    )
    out = pipe(x, num_inference_steps=STEPS, generator=gen(0), output_type="pt", chain=chain).images
    return (out * w).sum()


def input_grad(fn, x):
    xg = x.clone().requires_grad_(True)
    return torch.autograd.grad(fn(xg), xg)[0]


def feedback_cut_reference(pipe, x, w):
    """The feedback-cut chain written out from its definition: each guided step adds
    g = -grad_{x_t} L(x0_hat(x_t), y) computed at a DETACHED copy of x_t (so dg/dx_t is dropped, dg/dy
    kept); the unguided part of every step keeps its graph. Same noise draws as the pipeline."""
    s, g = pipe.scheduler, gen(0)
    s.set_timesteps(STEPS)
    y = x * 2 - 1
    latents = torch.randn(x.shape, generator=g, dtype=x.dtype)
    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
        for t in s.timesteps:
            latents = reference_step(pipe, s, t, latents, y, torch.randn(x.shape, generator=g, dtype=x.dtype))
    return (((latents + 1) / 2).clamp(0, 1) * w).sum()


def reference_step(pipe, s, t, latents, y, noise):
    """One DDPM step (graph kept) plus, inside the window, the guidance computed at a detached x_t."""
    prev = s.step(pipe.unet(latents, t).sample, t, latents, eta=1.0, variance_noise=noise).prev_sample
    if not s.in_window(t):
        return prev
    leaf = latents.detach().requires_grad_(True)
    x0_hat = s.step(pipe.unet(leaf, t).sample, t, leaf, eta=1.0, variance_noise=noise).pred_original_sample
    c = s.config
    loss = guidance_loss(
        x0_hat,
        y,
        alpha_bar=s.alpha_bar(t),
        distance=c.distance,
        long_range=c.long_range,
        short_range=c.short_range,
        sr_factor=c.sr_factor,
        sr_direction=c.sr_direction,
        step_size_rule=c.step_size_rule,
        guidance_scale=s.effective_guidance_scale(),
        abs_fn=make_abs("tanh", TAU),
    )
    return prev - torch.autograd.grad(loss, leaf, create_graph=True)[0]


def test_the_chain_has_several_guided_steps(chain):
    assert guided_steps(chain[0]) >= 3


def test_exact_gradient_equals_central_finite_differences(chain):
    """Feedback kept: autograd (second order, checkpointed) equals central differences of the forward."""
    pipe, x, w = chain
    grad = input_grad(lambda v: objective(pipe, v, w), x)
    d = torch.randn(x.shape, dtype=x.dtype, generator=gen(5))
    # inputs that require grad take the float64 path end to end (plain inputs are validated in float32)
    f = lambda v: objective(pipe, v.clone().requires_grad_(True), w).item()  # noqa: E731
    h = 1e-6
    fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
    assert grad.abs().sum() > 0
    assert (grad * d).sum().item() == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize("feedback", [True, False], ids=["feedback-kept", "feedback-cut"])
def test_checkpointing_changes_no_gradient(chain, feedback):
    pipe, x, w = chain
    checkpointed = input_grad(lambda v: objective(pipe, v, w, feedback, checkpoint=True), x)
    plain = input_grad(lambda v: objective(pipe, v, w, feedback, checkpoint=False), x)
    torch.testing.assert_close(checkpointed, plain, rtol=1e-10, atol=1e-12)


def test_feedback_cut_equals_independent_implementation(chain):
    """The pipeline's feedback cut (a zero-valued autograd Function carrying dg/dy) equals the chain
    written from its definition; the forward is unchanged and the gradient differs from the exact one."""
    pipe, x, w = chain
    cut = input_grad(lambda v: objective(pipe, v, w, feedback=False), x)
    reference = input_grad(lambda v: feedback_cut_reference(pipe, v, w), x)
    torch.testing.assert_close(cut, reference, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(objective(pipe, x, w, feedback=False), feedback_cut_reference(pipe, x, w))
    exact = input_grad(lambda v: objective(pipe, v, w, feedback=True), x)
    assert cut.abs().sum() > 0 and not torch.allclose(cut, exact)


def test_autograd_through_mimic_is_masked_and_the_chain_gradients_are_not():
    """The paper's protocol sees an exactly zero gradient; BPDA and both chain gradients do not."""
    pipe = tiny_pipeline(step_size_rule="constant", guidance_scale=30.0)
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([1, 2])
    kw = dict(num_inference_steps=10)
    assert gradient_diagnostics(PurifyThenClassify(pipe, "autograd", **kw), x, y)["zero_grad_fraction"] == 1.0
    for mode in ("bpda", "exact", "feedback-cut"):
        assert gradient_diagnostics(PurifyThenClassify(pipe, mode, **kw), x, y)["zero_grad_fraction"] == 0.0
