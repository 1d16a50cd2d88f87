"""Each attack lowers the accuracy of an undefended model; the exact gradient is right; autograd is masked."""
import pytest
import torch

from mimic_diffusers.attacks import PurifyThenClassify, create_attack, gradient_diagnostics
from mimic_diffusers.attacks.autoattack import AutoAttackAdapter
from mimic_diffusers.attacks.cw import CWL2
from mimic_diffusers.attacks.pgd_eot import PGDEOT
from mimic_diffusers.attacks.square import Square

from conftest import gen, tiny_pipeline


class Undefended(torch.nn.Module):
    """A fixed random linear classifier; labels are its own clean predictions (clean accuracy 100%)."""

    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))

    def forward(self, x):
        return self.classifier(x - 0.5)


@pytest.fixture(scope="module")
def undefended():
    torch.manual_seed(0)
    model = Undefended().eval()
    x = torch.rand(16, 1, 16, 16)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("make", [
    lambda m: PGDEOT(m, eps=0.3, norm="Linf", steps=10, eot=2),
    lambda m: PGDEOT(m, eps=3.0, norm="L2", steps=10),
    lambda m: PGDEOT(m, eps=0.3, norm="Linf", steps=10, loss="margin"),
    lambda m: Square(m, eps=0.3, n_queries=200),
    lambda m: CWL2(m, c=10.0, steps=30, lr=0.05),
    lambda m: AutoAttackAdapter(m, eps=0.3, version="standard", n_iter=10, n_queries=50, n_target_classes=2),
    lambda m: AutoAttackAdapter(m, eps=0.3, version="rand", n_iter=10, eot=2),
], ids=["pgd-linf", "pgd-l2", "pgd-margin", "square", "cw", "autoattack-standard", "autoattack-rand"])
def test_attack_lowers_accuracy_of_undefended_model(undefended, make):
    model, x, y = undefended
    assert accuracy(model, x, y) == 1.0
    x_adv = make(model)(x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < 0.5


def test_linf_budget_respected(undefended):
    model, x, y = undefended
    x_adv = PGDEOT(model, eps=0.05, steps=5)(x, y)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6


def test_autograd_through_mimic_is_masked_and_exact_is_not():
    """The paper's protocol sees an exactly zero gradient; BPDA and the exact chain do not."""
    pipe = tiny_pipeline(step_size_rule="constant", guidance_scale=30.0)
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([1, 2])
    kw = dict(num_inference_steps=10)
    assert gradient_diagnostics(PurifyThenClassify(pipe, "autograd", **kw), x, y)["zero_grad_fraction"] == 1.0
    for mode in ("bpda", "exact"):
        assert gradient_diagnostics(PurifyThenClassify(pipe, mode, **kw), x, y)["zero_grad_fraction"] == 0.0


def test_exact_gradient_matches_finite_differences():
    """With the smooth surrogate the whole guided chain is differentiable: autograd (second order,
    checkpointed) equals central differences of the forward."""
    pipe = tiny_pipeline(clip_sample=False, step_size_rule="constant", guidance_scale=30.0, short_range=True)
    pipe.unet.double()
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64) * 0.8 + 0.1
    w, d = torch.randn_like(x), torch.randn_like(x)

    def f(inp, checkpoint=True):
        out = pipe(inp, num_inference_steps=5, generator=gen(0), output_type="pt", differentiable=True,
                   sign_surrogate="tanh", surrogate_tau=0.5, checkpoint_steps=checkpoint).images
        return (out * w).sum()

    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xg), xg)
    xg2 = x.clone().requires_grad_(True)
    (g_plain,) = torch.autograd.grad(f(xg2, checkpoint=False), xg2)
    torch.testing.assert_close(g, g_plain)  # checkpointing changes memory, not the gradient
    h = 1e-3
    fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
    assert (g * d).sum().item() == pytest.approx(fd.item(), rel=1e-3)
    assert g.abs().sum() > 0


def test_guidance_feedback_cut_keeps_forward_and_input_path():
    """guidance_feedback=False changes only the graph: outputs are identical; with one guided step
    (nothing downstream for the cut feedback to act on) the input gradient equals the exact one, with
    several guided steps it differs."""
    pipe = tiny_pipeline(clip_sample=False, step_size_rule="constant", guidance_scale=30.0)
    pipe.unet.double()
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=gen(3))
    w = torch.randn(x.shape, dtype=torch.float64, generator=gen(4))

    def grad_and_out(steps, feedback, checkpoint=True):
        xg = x.clone().requires_grad_(True)
        out = pipe(xg, num_inference_steps=steps, generator=gen(0), output_type="pt", differentiable=True,
                   sign_surrogate="ste", surrogate_tau=0.5, checkpoint_steps=checkpoint, guidance_feedback=feedback).images
        return torch.autograd.grad((out * w).sum(), xg)[0], out.detach()

    (g_full, out_full), (g_cut, out_cut) = grad_and_out(5, True), grad_and_out(5, False)
    assert [bool(pipe.scheduler.in_window(t)) for t in pipe.scheduler.purification_timesteps()].count(True) == 1
    torch.testing.assert_close(out_cut, out_full)
    torch.testing.assert_close(g_cut, g_full)
    (g_full, out_full), (g_cut, out_cut) = grad_and_out(10, True), grad_and_out(10, False)
    torch.testing.assert_close(out_cut, out_full)
    assert g_cut.abs().sum() > 0 and not torch.allclose(g_cut, g_full)
    torch.testing.assert_close(grad_and_out(10, False, checkpoint=False)[0], g_cut)  # recomputing g changes no number


def test_create_attack_rejects_bad_input():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match="unknown attack"):
        create_attack("fgsm-magic", pipe, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        create_attack("bpda-eot", pipe, eps=-0.1)
    with pytest.raises(ValueError, match="norm"):
        create_attack("bpda-eot", pipe, eps=0.1, norm="L0")
    with pytest.raises(ValueError, match="unknown parameters"):
        create_attack("bpda-eot", pipe, eps=0.1, n_queries=10)
    with pytest.raises(ValueError, match="gradient"):
        PurifyThenClassify(pipe, gradient="magic")
    with pytest.raises(ValueError, match="loss must be one of"):
        create_attack("bpda-eot", pipe, eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="guidance_feedback must be True or False"):
        create_attack("exact-pgd-eot", pipe, eps=0.1, guidance_feedback="no")
