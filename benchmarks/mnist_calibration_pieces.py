"""What one epoch of each mnist-kd model costs on real MNIST here: the pieces the cpu-real preset is sized from.

For the student (mobilenet_student), the teachers (timm:resnet18, resnet18_mnist) and the assistants of one- and
two-assistant chains (width-scaled students, sizes geometric between the timm teacher and the student): the
parameters, the forward FLOPs per image over the student's (torch.utils.flop_counter) and the seconds of one epoch
of the whole training split (the training pass, validation excluded), extrapolated from one timed epoch on its first ``--images`` images (batch 128, no
augmentation, as cpu-real trains). Run it alone: another process on the cores changes every figure.

Run: python benchmarks/mnist_calibration_pieces.py --data DIR [--images 6400]
"""

from __future__ import annotations

import argparse

import torch

from kdlib.data.mnist import load_mnist, mnist_source
from kdlib.distill.hpmkd import geometric_sizes, width_for_parameters
from kdlib.experiments.hpmkd_pipeline import forward_flops
from kdlib.models import count_parameters, create_model
from kdlib.train import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder holding MNIST (IDX files)")
    parser.add_argument("--images", type=int, default=6400, help="training images in the timed epoch")
    args = parser.parse_args()
    data = load_mnist(files=mnist_source(args.data, download=False).files)
    subset = data.__class__(data.name, data.source, data.train_x[:args.images], data.train_y[:args.images],
                            data.val_x[:1000], data.val_y[:1000], data.test_x, data.test_y, classes=data.classes)
    subset.__dict__["_channel_stats"] = data.channel_stats()
    count = lambda width: count_parameters(create_model("mobilenet_student", 10, 1, width=width))  # noqa: E731
    teacher_params = count_parameters(create_model("timm:resnet18", 10, 1))
    models = [("mobilenet_student", {}), ("timm:resnet18", {}), ("resnet18_mnist", {})]
    for assistants in (1, 2):
        models += [("mobilenet_student", {"width": round(width_for_parameters(size, count), 3)})
                   for size in geometric_sizes(teacher_params, count(1.0), assistants)]
    student_flops = forward_flops(create_model("mobilenet_student", 10, 1), data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {data.info()['n_train']:,} training images; "
          f"timed epochs of {args.images:,}")
    for name, kwargs in models:
        model = create_model(name, num_classes=10, in_chans=1, **kwargs)
        flops = forward_flops(model, data)
        result = fit(model, subset, TrainConfig(epochs=1, batch_size=128, lr=0.05, progress=False),
                     device=torch.device("cpu"))
        seconds = result.train_seconds * len(data.train_y) / args.images  # the training pass, validation excluded
        print(f"{name:18s} {str(kwargs):17s} {count_parameters(model):>11,} parameters  "
              f"forward FLOPs {flops / student_flops:5.2f}x the student's  {seconds:6.0f} s per epoch of the whole split",
              flush=True)


if __name__ == "__main__":
    main()
