import pytest
import torch
from diffusers import UNet2DModel

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier

torch.set_num_threads(1)


def tiny_unet(channels=1, size=16, seed=0, prediction_scale=1.0):
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    return unet.eval()


def tiny_classifier(channels=1, size=16, seed=0):
    torch.manual_seed(seed)
    return TimmClassifier(
        model_name="resnet10t",
        num_classes=10,
        in_chans=channels,
        image_size=size,
        model_kwargs={"channels": [4, 8, 8, 8]},
    ).eval()


def tiny_pipeline(channels=1, size=16, classifier=True, **scheduler_options):
    pipe = MimicDiffusionPipeline(
        unet=tiny_unet(channels, size),
        scheduler=MimicDiffusionScheduler(**scheduler_options),
        classifier=tiny_classifier(channels, size) if classifier else None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe():
    return tiny_pipeline()


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """One saved 28x28 tiny pipeline folder, shared by every test that evaluates from a folder."""
    path = tmp_path_factory.mktemp("tiny-pipe")
    tiny_pipeline(size=28).save_pretrained(path)
    return str(path)
