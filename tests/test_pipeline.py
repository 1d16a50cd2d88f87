"""MimicDiffusionPipeline behaviour on tiny random UNets (seconds on CPU)."""

import os

import numpy as np
import pytest
import torch
from conftest import gen, tiny_pipeline, tiny_unet
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from mimic_diffusers import (
    DiffPurePipeline,
    GDMPPipeline,
    MimicDiffusionPipeline,
    MimicDiffusionScheduler,
)
from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.scheduling_mimic import OPTION_DOCS

SHIPPED = shipped_pipeline_path()


def purify(pipe, x, seed=0, steps=20, **kw):
    return pipe(x, num_inference_steps=steps, generator=gen(seed), output_type="pt", **kw).images


def test_output_types_and_range(pipe):
    x = torch.rand(2, 1, 16, 16)
    pt = purify(pipe, x)
    assert pt.shape == x.shape and pt.min() >= 0 and pt.max() <= 1
    arr = pipe(x, num_inference_steps=5, output_type="np").images
    assert arr.shape == (2, 16, 16, 1)
    pil = pipe(x, num_inference_steps=5, output_type="pil").images
    assert len(pil) == 2 and pil[0].size == (16, 16)
    out = pipe(x, num_inference_steps=5, output_type="pt", return_dict=False)
    assert isinstance(out, tuple)


def test_accepts_pil_numpy_and_lists(pipe):
    a = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    from_np = purify(pipe, a)
    from_pil = purify(pipe, Image.fromarray(a))
    from_list = purify(pipe, [torch.from_numpy(a).float().div(255).unsqueeze(0)])
    torch.testing.assert_close(from_np, from_pil)
    torch.testing.assert_close(from_np, from_list)


def count_unet_backwards(pipe):
    calls = []
    handle = pipe.unet.conv_in.register_full_backward_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("window,steps", [((0.5, 0.2), 100), ((0.79, 0.11), 50), ((1.0, 0.0), 20)])
def test_window_respected_by_counting_unet_backward_calls(window, steps):
    pipe = tiny_pipeline(guidance_window_start=window[0], guidance_window_end=window[1])
    calls, handle = count_unet_backwards(pipe)
    purify(pipe, torch.rand(1, 1, 16, 16), steps=steps)
    handle.remove()
    ts = DDIMScheduler(timestep_spacing="trailing")
    ts.set_timesteps(steps)
    expected = sum(1 for t in ts.timesteps if window[1] * 1000 <= t <= window[0] * 1000)
    assert len(calls) == expected > 0


def test_no_guidance_equals_plain_ddpm_sampling():
    pipe = tiny_pipeline(long_range=False, short_range=False)
    calls, handle = count_unet_backwards(pipe)
    x = torch.rand(2, 1, 16, 16)
    ours = purify(pipe, x, seed=3)
    assert calls == []
    # the same ancestral sampling written with diffusers' own scheduler, same noise order
    ref = DDIMScheduler(timestep_spacing="trailing")
    ref.set_timesteps(20)
    g = gen(3)
    latents = randn_tensor(x.shape, generator=g)
    with torch.no_grad():
        for t in ref.timesteps:
            noise = randn_tensor(x.shape, generator=g)
            latents = ref.step(pipe.unet(latents, t).sample, t, latents, eta=1.0, variance_noise=noise).prev_sample
    torch.testing.assert_close(ours, ((latents + 1) / 2).clamp(0, 1))
    # guidance_scale=0 is also exactly no guidance
    torch.testing.assert_close(purify(tiny_pipeline(guidance_scale=0.0), x, seed=3), ours)


def test_guidance_changes_output_and_pulls_toward_reference():
    x = torch.rand(2, 1, 16, 16)
    plain = purify(tiny_pipeline(long_range=False, short_range=False), x)
    guided = purify(tiny_pipeline(step_size_rule="constant", guidance_scale=20.0), x)
    assert (guided - x).abs().mean() < (plain - x).abs().mean()


def test_determinism_with_generator(pipe):
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(purify(pipe, x, seed=5), purify(pipe, x, seed=5))
    assert not torch.equal(purify(pipe, x, seed=5), purify(pipe, x, seed=6))


@pytest.mark.parametrize("rule", ["paper", "dps", "official"])
def test_batch_independence(rule):
    pipe = tiny_pipeline(step_size_rule=rule)
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    both = pipe(torch.cat([a, b]), num_inference_steps=20, generator=[gen(1), gen(2)], output_type="pt").images
    alone = pipe(a, num_inference_steps=20, generator=[gen(1)], output_type="pt").images
    other = pipe(
        torch.cat([a, torch.zeros_like(b)]), num_inference_steps=20, generator=[gen(1), gen(9)], output_type="pt"
    ).images
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(other[:1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_prediction_types_and_ddim_ddpm_steps(prediction_type, eta):
    x = torch.rand(1, 1, 16, 16)
    on = purify(
        tiny_pipeline(prediction_type=prediction_type, eta=eta, step_size_rule="constant", guidance_scale=5.0), x
    )
    off = purify(tiny_pipeline(prediction_type=prediction_type, eta=eta, long_range=False, short_range=False), x)
    assert torch.isfinite(on).all() and not torch.equal(on, off)


def test_no_graph_survives_a_step(pipe):
    seen = []

    def check(p, i, t, tensors):
        seen.append(tensors["latents"].requires_grad or tensors["latents"].grad_fn is not None)
        return {}

    pipe(
        torch.rand(1, 1, 16, 16),
        num_inference_steps=20,
        output_type="pt",
        callback_on_step_end=check,
        callback_on_step_end_tensor_inputs=["latents"],
    )
    assert len(seen) == 20 and not any(seen)


def test_save_load_round_trip_restores_every_option(tmp_path):
    pipe = tiny_pipeline(
        guidance_window_start=0.6,
        guidance_window_end=0.1,
        distance="l2",
        short_range=False,
        sr_direction="up",
        step_size_rule="dps",
        guidance_scale=0.3,
        eta=0.5,
    )
    pipe.save_pretrained(tmp_path)
    names = {os.path.relpath(os.path.join(r, f), tmp_path) for r, _, fs in os.walk(tmp_path) for f in fs}
    assert (
        "unet/diffusion_pytorch_model.safetensors" in names
        and "classifier/diffusion_pytorch_model.safetensors" in names
    )
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    loaded = MimicDiffusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    for key, value in pipe.scheduler.config.items():
        if key.startswith("_"):
            continue
        assert loaded.scheduler.config[key] == value, key
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(purify(loaded, x), purify(pipe, x))
    torch.testing.assert_close(loaded.classify(x), pipe.classify(x))


def test_other_schedulers_are_converted_keeping_their_betas():
    pipe = MimicDiffusionPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
    assert isinstance(pipe.scheduler, MimicDiffusionScheduler)
    assert pipe.scheduler.config.beta_schedule == "squaredcos_cap_v2"


def test_baselines_share_the_loop():
    x = torch.rand(2, 1, 16, 16)
    diffpure = DiffPurePipeline(unet=tiny_unet(), scheduler=DDPMScheduler())
    diffpure.set_progress_bar_config(disable=True)
    assert diffpure.scheduler.config.purification_start == 0.1
    calls, handle = count_unet_backwards(diffpure)
    out = purify(diffpure, x, steps=100)
    assert calls == [] and out.shape == x.shape
    # DiffPure starts near the input: closer to it than pure-noise sampling
    gdmp = GDMPPipeline(unet=tiny_unet(), scheduler=DDPMScheduler())
    gdmp.set_progress_bar_config(disable=True)
    calls, handle = count_unet_backwards(gdmp)
    g_out = purify(gdmp, x, steps=100)
    assert calls == []  # GDMP guides x_t directly: no gradient through the UNet
    unguided = gdmp.scheduler.from_preset("gdmp", guidance_scale=0.0)
    plain = purify(GDMPPipeline(unet=gdmp.unet, scheduler=unguided), x, steps=100)
    assert not torch.equal(g_out, plain)


def test_classify_needs_classifier():
    pipe = tiny_pipeline(classifier=False)
    with pytest.raises(ValueError, match="no classifier"):
        pipe.classify(torch.rand(1, 1, 16, 16))


def test_device_placement_with_accelerate(pipe):
    from accelerate import Accelerator

    device = Accelerator(cpu=True).device
    pipe.to(device)
    assert pipe.device.type == device.type
    assert purify(pipe, torch.rand(1, 1, 16, 16), steps=5).device.type == device.type


@pytest.mark.parametrize("preset", ["mimic", "diffpure", "gdmp"])
def test_speedups_keep_results_identical(preset):
    x = torch.rand(2, 1, 16, 16)
    fast = tiny_pipeline()
    fast.scheduler = MimicDiffusionScheduler.from_preset(preset)
    plain = tiny_pipeline()
    plain.scheduler = MimicDiffusionScheduler.from_preset(preset)
    plain.inference_mode_outside_window = False
    reference = purify(plain, x, steps=50)
    torch.testing.assert_close(purify(fast, x, steps=50), reference, atol=1e-5, rtol=0)


def test_channels_last_matches_on_the_smooth_path():
    """channels_last changes float rounding (~1e-7). Unguided sampling stays within 1e-5; with the L1
    guidance a rounding flip of sign(x0_hat - x_adv) can grow, so channels_last is opt-in only."""
    x = torch.rand(2, 1, 16, 16)
    plain = tiny_pipeline(long_range=False, short_range=False)
    fast = tiny_pipeline(long_range=False, short_range=False).enable_channels_last()
    torch.testing.assert_close(purify(fast, x, steps=50), purify(plain, x, steps=50), atol=1e-5, rtol=0)


def recipe(scheduler) -> dict:
    return {k: scheduler.config[k] for k in OPTION_DOCS}


@pytest.mark.parametrize("cls, preset", [(DiffPurePipeline, "diffpure"), (GDMPPipeline, "gdmp")])
def test_baselines_loaded_from_a_mimic_folder_run_their_own_recipe(tmp_path, cls, preset):
    """A guided MimicDiffusion folder loaded as a baseline keeps only its beta schedule: the baseline purifies
    exactly as the same pipeline switched to the baseline's preset."""
    mimic = tiny_pipeline(guidance_scale=16.0, sr_direction="up", beta_end=0.03)
    mimic.save_pretrained(tmp_path)
    baseline = cls.from_pretrained(tmp_path)
    baseline.set_progress_bar_config(disable=True)
    assert type(baseline) is cls
    assert recipe(baseline.scheduler) == recipe(MimicDiffusionScheduler.from_preset(preset))
    assert baseline.scheduler.config.beta_end == 0.03  # the folder's beta schedule is kept
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(purify(baseline, x), purify(mimic.with_scheduler_options(preset=preset), x))
    # a folder already of the baseline's recipe keeps its knobs (t*)
    deeper = baseline.with_scheduler_options(purification_start=0.2)
    deeper.save_pretrained(tmp_path / "deeper")
    assert cls.from_pretrained(tmp_path / "deeper").scheduler.config.purification_start == 0.2


@pytest.mark.skipif(not os.path.isdir(SHIPPED), reason="needs the shipped pipeline folder")
def test_the_shipped_folder_loaded_as_diffpure_runs_diffpure():
    diffpure = DiffPurePipeline.from_pretrained(SHIPPED)
    assert not diffpure.scheduler.is_guided and diffpure.scheduler.config.purification_start == 0.1
    assert recipe(diffpure.scheduler) == recipe(MimicDiffusionScheduler.from_preset("diffpure"))


@pytest.mark.skipif(not os.path.isdir(SHIPPED), reason="needs the shipped pipeline folder")
def test_the_shipped_recipe_is_the_preset_and_scale_the_docs_name():
    """The shipped MNIST scheduler is the `mimic-paper` preset at its own scale, as docs/presets.md and the option
    table of docs/method.md say (with the scale and H's direction written there)."""
    shipped = MimicDiffusionScheduler.from_pretrained(SHIPPED, subfolder="scheduler")
    scale = shipped.config.guidance_scale
    assert recipe(shipped) == recipe(MimicDiffusionScheduler.from_preset("mimic-paper", guidance_scale=scale))
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
    with open(os.path.join(docs, "presets.md")) as f:
        assert f"The shipped MNIST pipeline is `mimic-paper` with `guidance_scale={scale:g}`" in f.read()
    with open(os.path.join(docs, "method.md")) as f:
        method = f.read()
    assert f"**{scale:g} in the shipped MNIST pipeline**" in method
    assert f'**`"{shipped.config.sr_direction}"` in the shipped MNIST pipeline**' in method


def test_baselines_refuse_a_scheduler_outside_their_recipe():
    with pytest.raises(ValueError, match=r"DiffPurePipeline runs the 'diffpure' recipe.*'long_range': True"):
        DiffPurePipeline(unet=tiny_unet(), scheduler=MimicDiffusionScheduler())
    diffpure = DiffPurePipeline(unet=tiny_unet(), scheduler=DDPMScheduler())
    assert diffpure.with_scheduler_options(purification_start=0.2).scheduler.config.purification_start == 0.2
    with pytest.raises(ValueError, match="short_range"):
        diffpure.with_scheduler_options(short_range=True)
    with pytest.raises(ValueError, match="GDMPPipeline runs the 'gdmp' recipe"):
        GDMPPipeline(unet=tiny_unet(), scheduler=DDPMScheduler()).with_scheduler_options(preset="mimic")
    diffpure.scheduler = MimicDiffusionScheduler()  # replaced behind the constructor's back: refused at call time
    with pytest.raises(ValueError, match="DiffPurePipeline runs the 'diffpure' recipe"):
        diffpure(torch.rand(1, 1, 16, 16), output_type="pt")


def test_a_preset_resets_every_option_and_keeps_only_the_beta_schedule():
    """`with_scheduler_options(preset=X, **overrides)`: the library defaults, then X, then the overrides, on the
    pipeline's beta schedule; nothing of the pipeline's or an earlier preset's options is left over."""
    pipe = tiny_pipeline(guidance_scale=16.0, guidance_window_start=0.6, beta_end=0.03)
    paper = pipe.with_scheduler_options(preset="mimic-paper")
    assert paper.scheduler.config.sr_direction == "up" and paper.scheduler.config.guidance_window_start == 0.5
    mimic = paper.with_scheduler_options(preset="mimic")
    library = MimicDiffusionScheduler.from_preset("mimic")
    assert isinstance(library, MimicDiffusionScheduler)
    assert recipe(mimic.scheduler) == recipe(library) == recipe(MimicDiffusionScheduler())
    assert mimic.scheduler.config.sr_direction == "down" and mimic.scheduler.config.guidance_scale is None
    assert mimic.scheduler.config.beta_end == 0.03
    assert recipe(MimicDiffusionScheduler.from_preset("mimic", base_config=pipe.scheduler.config)) == recipe(library)
    tuned = paper.with_scheduler_options(preset="gdmp", guidance_scale=0.1)
    assert recipe(tuned.scheduler) == recipe(MimicDiffusionScheduler.from_preset("gdmp", guidance_scale=0.1))
    # without a preset: the current options stay, only the overrides change
    wide = paper.with_scheduler_options(guidance_window_start=0.79)
    assert recipe(wide.scheduler) == {**recipe(paper.scheduler), "guidance_window_start": 0.79}
