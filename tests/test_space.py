"""The Gradio Space (examples/space/app.py): its functions, then one purification clicked through in Chromium.

One tiny pipeline folder and one app instance serve the whole module (importing gradio and building
the MNIST split take most of the time).
"""

import importlib.util
import os
import socket
import sys

import pytest
import torch
from conftest import gen, tiny_pipeline
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr  # noqa: E402

SPACE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "space")
CHROMIUM = "/usr/bin/chromium"


def import_by_path(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(SPACE_DIR, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there, and app.py imports space_io
    spec.loader.exec_module(module)
    return module


# as `python app.py` would import them, with the Space's folder on the path (without changing sys.path here)
import_by_path("space_io", "space_io.py")
app = import_by_path("mimic_space_app", "app.py")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space") / "mnist-tiny"
    tiny_pipeline(size=28).save_pretrained(folder)
    os.environ["MIMIC_PIPELINE"] = str(folder)  # the app's own way of finding its pipeline
    try:
        return app.load_pipeline()
    finally:
        del os.environ["MIMIC_PIPELINE"]


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def png(path, size, mode="L"):
    Image.new(mode, size, 128).save(path)
    return str(path)


def test_bad_uploads_get_clear_errors(tmp_path):
    with pytest.raises(gr.Error, match="no image uploaded"):
        app.load_upload(None)
    with pytest.raises(gr.Error, match="notes.png is not an image"):
        app.load_upload(write(tmp_path / "notes.png", b"hello, not a picture"))
    with pytest.raises(gr.Error, match="too large: 2.5 MB, the limit is 2 MB"):
        app.load_upload(write(tmp_path / "big.png", b"\0" * (5 * 2**19)))
    with pytest.raises(gr.Error, match="wrong size: 4x4 px"):
        app.load_upload(png(tmp_path / "tiny.png", (4, 4)))
    with pytest.raises(gr.Error, match="wrong size: 3000x20 px"):
        app.load_upload(png(tmp_path / "wide.png", (3000, 20)))
    with pytest.raises(gr.Error, match="damaged"):
        Image.effect_noise((28, 28), 50).save(tmp_path / "noise.png")
        app.load_upload(write(tmp_path / "cut.png", (tmp_path / "noise.png").read_bytes()[:200]))


def test_upload_is_converted_to_28px_grayscale(tmp_path):
    x, note = app.load_upload(png(tmp_path / "rgb.png", (56, 40), mode="RGB"))
    assert x.shape == (1, 1, 28, 28) and 0 <= x.min() <= x.max() <= 1
    assert note == "upload resized from 56x40 to 28x28 grayscale"
    x, note = app.load_upload(png(tmp_path / "digit.png", (28, 28)))
    torch.testing.assert_close(x, torch.full((1, 1, 28, 28), 128 / 255))


def test_bad_options_and_index_are_reported(pipe):
    x, label = app.mnist_digit(pipe, 0)
    with pytest.raises(gr.Error, match="guidance_window_start .* must be greater"):
        app.purify_and_classify(pipe, x, label, guidance_window_start=0.2, guidance_window_end=0.5)
    with pytest.raises(gr.Error, match="digit index must be an integer in 0..999"):
        app.mnist_digit(pipe, 1000)


@pytest.mark.parametrize("attack", [app.NO_ATTACK, app.PGD])
def test_purification_returns_images_labels_and_trajectory(pipe, attack):
    x, label = app.mnist_digit(pipe, 3)
    data = app.mnist_test_split()
    assert label == data[3]["label"] and x.shape == (1, 1, 28, 28)
    options = dict(guidance_window_start=0.6, guidance_window_end=0.2, distance="l2", short_range=False)
    out = app.purify_and_classify(pipe, x, label, attack, eps=0.1, num_inference_steps=10, seed=1, **options)

    linf = float((out.adversarial - x).abs().max())
    assert linf == 0 if attack == app.NO_ATTACK else 0 < linf <= 0.1 + 1e-6
    assert out.adversarial.min() >= 0 and out.adversarial.max() <= 1
    # the purification is the pipeline's own, with the options applied to a copy of its scheduler
    purifier = app.guided_pipeline(pipe, **options)
    expected = purifier(out.adversarial, num_inference_steps=10, generator=gen(1), output_type="pt").images
    torch.testing.assert_close(out.purified, expected, rtol=0, atol=0)
    assert pipe.scheduler.config.distance == "l1"  # the shared pipeline is untouched
    # x0_hat is kept for the guided steps only: t in [200, 600] of 999, 899, ..., 99
    assert [t for t, _ in out.trajectory] == [599, 499, 399, 299]
    for name, image in (("clean", x), ("adversarial", out.adversarial), ("purified", out.purified)):
        probs = out.probabilities[name]
        assert set(probs) == {str(k) for k in range(10)} and abs(sum(probs.values()) - 1) < 1e-5
        assert max(probs, key=probs.get) == str(int(pipe.classify(image).argmax()))
    strip = app.trajectory_strip(out.trajectory)
    assert strip.size == (4 * 28 * app.UPSCALE + 3 * 2 * app.UPSCALE, 28 * app.UPSCALE)


def test_the_guidance_controls_start_at_the_pipelines_options(pipe):
    """The accordion's controls start at the loaded pipeline's own options (for the shipped pipeline: the shipped
    default), H's direction included, so a click without changes purifies as the pipeline does."""
    options = dict(sr_direction="up", guidance_scale=4.0, distance="l2")
    demo = app.build_demo(pipe.with_scheduler_options(**options))
    values = {block.label: block.value for block in demo.blocks.values() if hasattr(block, "value")}
    assert values["Short-range operator H (resamples)"] == "up" and values["Distance"] == "l2"
    assert values["Guidance scale (empty: the rule's default)"] == 4.0


def test_bpda_choice_follows_the_import(monkeypatch, pipe):
    calls = []

    def fake_bpda(pipe_, images01, labels, eps, steps=10, eot=1, num_inference_steps=100, generator=None):
        calls.append((labels.tolist(), eps, steps, eot, num_inference_steps, generator.initial_seed()))
        return (images01 + eps).clamp(0, 1)

    monkeypatch.setattr(app, "bpda_attack", fake_bpda)
    assert app.BPDA in app.available_attacks()
    x, label = app.mnist_digit(pipe, 0)
    out = app.purify_and_classify(pipe, x, label, app.BPDA, eps=0.2, num_inference_steps=5, seed=7)
    assert calls == [([label], 0.2, app.ATTACK_STEPS, 1, 5, 7)]
    torch.testing.assert_close(out.adversarial, (x + 0.2).clamp(0, 1))
    monkeypatch.setattr(app, "bpda_attack", None)
    assert app.available_attacks() == [app.NO_ATTACK, app.PGD]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_browser_purification(pipe, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (run .ci/install-browser)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="python playwright not installed (pip install playwright)"
    )
    demo = app.build_demo(pipe)
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.locator("#index input").fill("7")
            page.get_by_label(app.PGD).check()
            steps = page.locator("#steps input[type=number]")
            steps.fill("5")
            steps.press("Enter")
            page.locator("#purify").click()
            info = page.locator("#info")
            info.get_by_text("Purified with 5 steps").wait_for(timeout=60_000)
            text = info.inner_text()
            x, truth = app.mnist_digit(pipe, 7)
            assert f"MNIST test digit #7, true label {truth}" in text and "Attack: PGD" in text
            # the page shows what the app's function computes for the same choices (seed 0, default options)
            expected = app.purify_and_classify(pipe, x, truth, app.PGD, 0.3, 5, 0).probabilities
            for name in ("clean", "adversarial", "purified"):
                assert page.locator(f"#{name}-image img").get_attribute("src")
                lines = page.locator(f"#{name}-label").inner_text().split("\n")
                assert lines[0] == f"{name.capitalize()} prediction" and lines[3].endswith("%")
                assert lines[1] == max(expected[name], key=expected[name].get)
            assert page.locator("#trajectory img").evaluate("img => img.naturalWidth") > 0
            screenshot = tmp_path / "space.png"  # outside the source tree: examples/space/screenshot.py makes
            page.screenshot(path=str(screenshot), full_page=True)  # the committed one with the trained pipeline
            assert screenshot.stat().st_size > 10_000
            browser.close()
    finally:
        demo.close()
