"""Opt-in speed-ups against the plain path: one UNet forward and one backward per guided step,
torch.compile (equal to 1e-5), mixed-precision autocast (bounded difference, never the default)."""

import pytest
import torch
from conftest import gen, tiny_pipeline
from diffusers import DDIMScheduler


def purify(pipe, x, steps=20, seed=0):
    return pipe(x, num_inference_steps=steps, generator=gen(seed), output_type="pt").images


def test_one_unet_forward_per_step_and_one_backward_per_guided_step():
    """Both guidance terms share the step's single UNet forward and one backward pass."""
    pipe = tiny_pipeline()  # long and short range on
    forwards, backwards = [], []
    h1 = pipe.unet.register_forward_hook(lambda *a: forwards.append(1))
    h2 = pipe.unet.conv_in.register_full_backward_hook(lambda *a: backwards.append(1))
    purify(pipe, torch.rand(2, 1, 16, 16), steps=50)
    h1.remove(), h2.remove()
    ts = DDIMScheduler(timestep_spacing="trailing")
    ts.set_timesteps(50)
    guided = sum(1 for t in ts.timesteps if 200 <= t <= 500)
    assert len(forwards) == 50
    assert len(backwards) == guided == 15


@pytest.mark.slow  # about 25 s of compiling on 2 CPU cores: an opt-in toggle, checked with -m slow
def test_torch_compile_matches_plain_path():
    """Unguided sampling through the compiled UNet equals the plain path to 1e-5. Guided steps also
    differentiate the compiled UNet; its input gradient is compared for one step, because over a
    whole run the guidance step size (1/alpha-bar^2 up to ~150 in the window) amplifies the ~1e-7
    rounding differences of fused kernels (measured: 4.5e-5 after 20 L2-guided steps)."""
    x = torch.rand(2, 1, 16, 16)
    plain = tiny_pipeline(long_range=False, short_range=False)
    compiled = tiny_pipeline(long_range=False, short_range=False).compile_unet()
    torch.testing.assert_close(purify(compiled, x), purify(plain, x), atol=1e-5, rtol=0)

    latents, reference = torch.randn(2, 1, 16, 16), torch.rand(2, 1, 16, 16) * 2 - 1
    grads = []
    for unet in (plain.unet, compiled.unet):
        xt = latents.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = (unet(xt, 400).sample - reference).abs().mean()
            grads.append(torch.autograd.grad(loss, xt)[0])
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5 * float(grads[0].abs().max()), rtol=0)


def test_autocast_is_opt_in_and_bounded_on_the_smooth_path():
    x = torch.rand(2, 1, 16, 16)
    plain = tiny_pipeline(long_range=False, short_range=False)
    assert plain.autocast_dtype is None
    fast = tiny_pipeline(long_range=False, short_range=False).enable_autocast(torch.bfloat16)
    out, ref = purify(fast, x, steps=50), purify(plain, x, steps=50)
    assert out.dtype == ref.dtype == torch.float32
    difference = (out - ref).abs()
    assert 0 < difference.max() < 0.1 and difference.mean() < 0.01  # bf16 rounding, not a different sampler
    guided = tiny_pipeline().enable_autocast(torch.bfloat16)
    images = purify(guided, x, steps=20)
    assert torch.isfinite(images).all() and images.dtype == torch.float32
    assert torch.equal(purify(fast.enable_autocast(None), x, steps=50), ref)  # switched off = plain path


def test_autocast_rejects_bad_dtype():
    with pytest.raises(ValueError, match="enable_autocast: dtype"):
        tiny_pipeline().enable_autocast(torch.float64)


def test_benchmark_reports_every_mode_as_a_ratio_to_the_unguided_floor(tmp_path):
    from mimic_diffusers.profiling import MODES, markdown, run_benchmark

    tiny_pipeline().save_pretrained(tmp_path)
    result = run_benchmark(str(tmp_path), "cpu", batches=(2,), steps=20, repeats=1, memory_steps=(), gradient_steps=())
    assert set(result["timing"]) == {f"{mode}/b2" for mode in MODES}
    assert result["timing"]["unguided/b2"]["ratio_to_unguided"] == 1.0
    assert all(t["seconds"] > 0 and t["images_per_s"] > 0 for t in result["timing"].values())
    table = markdown(result)
    assert "| mimic | 2 |" in table and "memory" not in table  # no empty sections
