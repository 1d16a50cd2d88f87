"""Classifier components imported from timm ids (`local-dir:` here, no network) and transformers folders."""

import json
import os

import numpy as np
import pytest
import timm
import torch
from conftest import tiny_unet

import mimic_diffusers.classifier_transformers  # noqa: F401  (diffusers resolves the class from sys.modules)
from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier
from mimic_diffusers.classifier_transformers import TransformersClassifier
from mimic_diffusers.defaults import shipped_pipeline_path

MEAN, STD = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)


def normalise(x, mean=MEAN, std=STD):
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def images(seed=0, size=32):
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=10, in_chans=3, channels=[4, 8, 8, 8]).eval()
    folder = tmp_path_factory.mktemp("timm")
    timm.models.save_for_hf(
        model, folder, safe_serialization=True, data_config=dict(mean=MEAN, std=STD, input_size=(3, 32, 32))
    )
    return model, folder


@pytest.fixture(scope="module")
def transformers_folder(tmp_path_factory):
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    model = ResNetForImageClassification(
        ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    ).eval()
    folder = tmp_path_factory.mktemp("transformers")
    model.save_pretrained(folder)
    processor = ViTImageProcessor(image_mean=list(MEAN), image_std=list(STD), size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    return model, folder


def check_round_trip(classifier, cls, folder):
    x = images(1)
    classifier.save_pretrained(folder)
    names = os.listdir(folder)
    assert any(n.endswith(".safetensors") for n in names) and not any(n.endswith(".bin") for n in names)
    reloaded = cls.from_pretrained(folder, use_safetensors=True).eval()
    torch.testing.assert_close(reloaded(x), classifier(x), rtol=0, atol=0)
    x = x.clone().requires_grad_(True)
    reloaded(x)[:, 3].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    return reloaded


def check_pipeline_round_trip(classifier, folder, module, class_name):
    pipe = MimicDiffusionPipeline(
        unet=tiny_unet(channels=3, size=32), scheduler=MimicDiffusionScheduler(), classifier=classifier
    )
    pipe.save_pretrained(folder)
    assert json.loads((folder / "model_index.json").read_text())["classifier"] == [module, class_name]
    loaded = MimicDiffusionPipeline.from_pretrained(folder)
    assert type(loaded.classifier).__name__ == class_name
    x = images(2)
    torch.testing.assert_close(loaded.classifier(x), classifier(x), rtol=0, atol=0)


def test_timm_local_dir_import_save_load_and_pipeline(timm_folder, tmp_path):
    model, folder = timm_folder
    classifier = TimmClassifier.from_timm(f"local-dir:{folder}")
    config = classifier.config
    assert (config.model_name, config.source) == ("resnet10t", f"local-dir:{folder}")
    assert (config.num_classes, config.in_chans, config.image_size) == (10, 3, 32)
    assert config.model_kwargs["channels"] == [4, 8, 8, 8]
    np.testing.assert_allclose(config.mean, MEAN)
    np.testing.assert_allclose(config.std, STD)
    x = images()
    torch.testing.assert_close(classifier(x), model(normalise(x)))
    check_round_trip(classifier, TimmClassifier, tmp_path / "classifier")
    check_pipeline_round_trip(classifier, tmp_path / "pipe", "mimic_diffusers.classifier", "TimmClassifier")


def test_timm_fixed_size_vit_and_channel_override(tmp_path):
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2
    ).eval()
    timm.models.save_for_hf(vit, tmp_path / "vit", safe_serialization=True, data_config=dict(mean=MEAN, std=STD))
    classifier = TimmClassifier.from_timm(f"local-dir:{tmp_path / 'vit'}")
    assert classifier.config.model_kwargs["img_size"] == [32, 32]
    torch.testing.assert_close(classifier(images()), vit(normalise(images())))
    check_round_trip(classifier, TimmClassifier, tmp_path / "vit-classifier")
    gray = TimmClassifier.from_timm(f"local-dir:{tmp_path / 'vit'}", in_chans=1, num_classes=5)
    assert (gray.config.in_chans, gray.config.num_classes, len(gray.config.mean)) == (1, 5, 1)
    assert gray(torch.rand(2, 1, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize("model_id", ["no_such_arch_xyz", "local-dir:/nonexistent/folder", "org/name"])
def test_timm_unknown_model_id(model_id):
    with pytest.raises(ValueError, match="model_id="):
        TimmClassifier.from_timm(model_id)


def test_old_timm_config_without_source_still_loads():
    classifier = TimmClassifier.from_pretrained(
        os.path.join(shipped_pipeline_path(), "classifier"), use_safetensors=True
    )
    assert classifier.config.source is None


def test_transformers_folder_import_save_load_and_pipeline(transformers_folder, tmp_path):
    model, folder = transformers_folder
    classifier = TransformersClassifier.from_transformers(str(folder))
    np.testing.assert_allclose(classifier.config.mean, MEAN)
    np.testing.assert_allclose(classifier.config.std, STD)
    assert classifier.config.image_size == {"height": 32, "width": 32} and classifier.config.source == str(folder)
    x = images()
    torch.testing.assert_close(classifier(x), model(pixel_values=normalise(x)).logits)
    check_round_trip(classifier, TransformersClassifier, tmp_path / "classifier")
    check_pipeline_round_trip(
        classifier, tmp_path / "pipe", "mimic_diffusers.classifier_transformers", "TransformersClassifier"
    )


def test_transformers_rescale_factor_folded_into_mean_std(transformers_folder, tmp_path):
    """A processor that rescales by 1/127.5 (and one that does not normalise): [0, 1] inputs must reach the
    model exactly as the processor's own output for the same uint8 image."""
    from transformers import ViTImageProcessor

    model, folder = transformers_folder
    pixels = (images(3) * 255).round().to(torch.uint8)
    for options in (
        dict(rescale_factor=1 / 127.5, image_mean=[1.0, 1.0, 1.0], image_std=[1.0, 1.0, 1.0]),
        dict(do_normalize=False),
    ):
        target = tmp_path / str(len(os.listdir(tmp_path)))
        model.save_pretrained(target)
        processor = ViTImageProcessor(do_resize=False, **options)
        processor.save_pretrained(target)
        classifier = TransformersClassifier.from_transformers(str(target))
        expected = model(**processor(images=list(pixels), return_tensors="pt")).logits
        torch.testing.assert_close(classifier(pixels.float() / 255), expected, rtol=1e-4, atol=1e-4)


def test_transformers_without_processor_falls_back_and_errors_name_model_id(transformers_folder, tmp_path):
    model, _ = transformers_folder
    model.save_pretrained(tmp_path / "bare")
    classifier = TransformersClassifier.from_transformers(str(tmp_path / "bare"))
    assert list(classifier.config.mean) == [0.5] * 3 and list(classifier.config.std) == [0.5] * 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_id="):
        TransformersClassifier.from_transformers(str(tmp_path / "empty"))


def test_load_classifier_sources_and_the_build_command(timm_folder, transformers_folder, tmp_path):
    """One spec string per source, as `build-pipeline --classifier` takes it; a saved folder of any
    component loads by its class; bad specs fail naming the spec."""
    from mimic_diffusers import RobustBenchClassifier
    from mimic_diffusers.assemble import list_classifier_sources, load_classifier

    assert list_classifier_sources() == ["robustbench", "timm", "transformers"]
    model, folder = timm_folder
    x = images(3)
    torch.testing.assert_close(load_classifier(f"timm:local-dir:{folder}")(x), model(normalise(x)))
    reference, tfolder = transformers_folder
    with torch.no_grad():
        torch.testing.assert_close(
            load_classifier(f"transformers:{tfolder}")(x), reference(pixel_values=normalise(x)).logits
        )
    wrn = RobustBenchClassifier(architecture="wrn-28-10", depth=10, width=1).eval()
    torch.save(wrn.model.state_dict(), tmp_path / "ckpt.pt")
    from safetensors.torch import save_file

    save_file(wrn.model.state_dict(), tmp_path / "ckpt.safetensors")
    with pytest.raises(ValueError, match="needs weights"):
        load_classifier("robustbench:wrn-28-10")
    small = {"depth": 10, "width": 1, "robustbench_name": "Standard"}
    for weights in (tmp_path / "ckpt.pt", tmp_path / "ckpt.safetensors"):
        loaded = load_classifier("robustbench:wrn-28-10", weights=str(weights), options=small)
        torch.testing.assert_close(loaded(x), wrn(x))
        assert loaded.config.robustbench_name == "Standard"
    wrn.save_pretrained(tmp_path / "wrn-folder")
    torch.testing.assert_close(load_classifier(str(tmp_path / "wrn-folder"))(x), wrn(x))
    # the build command takes the same spec and assembles a loadable folder
    unet = tmp_path / "unet"
    tiny_unet(channels=3, size=32).save_pretrained(unet)
    out = tmp_path / "pipeline"
    from mimic_diffusers.cli import main

    code = main(
        [
            "build-pipeline",
            "--unet",
            str(unet),
            "--classifier",
            "robustbench:wrn-28-10",
            "--classifier-weights",
            str(tmp_path / "ckpt.pt"),
            "--classifier-options",
            json.dumps(small),
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    pipe = MimicDiffusionPipeline.from_pretrained(out)
    torch.testing.assert_close(pipe.classifier(x), wrn(x))
    assert "RobustBench Standard (cifar10, Linf)" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown source 'torchvision'"):
        load_classifier("torchvision:resnet50")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="must hold a saved"):
        load_classifier(str(tmp_path / "empty"))
