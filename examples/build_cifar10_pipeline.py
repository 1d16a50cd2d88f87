"""Build a CIFAR-10 MimicDiffusion pipeline folder from Hub models (needs network), e.g.

    python examples/build_cifar10_pipeline.py --output pipelines/cifar10-mimic \
        --unet google/ddpm-cifar10-32 --classifier resnet18 --classifier-weights my_cifar_resnet18.safetensors

The paper's CIFAR setting: 100 steps of the 1000-step linear DDPM schedule (the scheduler default).
Then evaluate with configs/cifar10-ddpm-wrn.yaml. Any diffusers UNet2DModel folder works for --unet.
"""
import argparse
import json

from mimic_diffusers.assemble import assemble_pipeline, load_classifier, save_pipeline_folder


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--unet", default="google/ddpm-cifar10-32", help="UNet2DModel folder or Hub id")
    p.add_argument("--unet-subfolder", default=None)
    p.add_argument("--classifier", default="resnet18", help="timm architecture name or a TimmClassifier folder")
    p.add_argument("--classifier-weights", default=None, help="safetensors state dict of the timm model")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--mean", type=float, nargs=3, default=[0.4914, 0.4822, 0.4465])
    p.add_argument("--std", type=float, nargs=3, default=[0.2471, 0.2435, 0.2616])
    p.add_argument("--scheduler-options", default="{}", help="JSON MimicDiffusionScheduler options")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    from diffusers import UNet2DModel

    unet_config = UNet2DModel.load_config(args.unet, subfolder=args.unet_subfolder)
    classifier = load_classifier(args.classifier, unet_config["in_channels"], unet_config["sample_size"],
                                 args.num_classes, args.classifier_weights, mean=args.mean, std=args.std)
    pipe = assemble_pipeline(args.unet, classifier, json.loads(args.scheduler_options), args.unet_subfolder)
    save_pipeline_folder(pipe, args.output, dataset="uoft-cs/cifar10")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
