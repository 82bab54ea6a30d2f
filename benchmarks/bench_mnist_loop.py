"""Images/s of kdlib's training loop against a plain DataLoader loop, same model, data and augmentation.

Both train SimpleCNN with SGD on the same 28x28 images (the embedded digits, tiled to --n images) with
random shifts of up to 2 pixels: kdlib with the data on the device and one batched affine warp per
batch; the plain loop with a Dataset whose __getitem__ applies torchvision's RandomAffine to one image
at a time, through a DataLoader, as most tutorials write it. Each runs a warm-up epoch, then the
timed epochs; the ratio printed is kdlib / plain. Run: python benchmarks/bench_mnist_loop.py
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from kdlib import runtime
from kdlib.data.mnist import load_digits_28
from kdlib.data.splits import ImageSplits
from kdlib.models import create_model
from kdlib.train import TrainConfig, fit


class AugmentedImages(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: float, std: float):
        self.x, self.y = x, y
        self.transform = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.RandomAffine(degrees=0, translate=(2 / 28, 2 / 28)),
                                     v2.Normalize([mean], [std])])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def plain_loop(data: ImageSplits, epochs: int, batch_size: int, workers: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = create_model("simplecnn").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    (mean,), (std,) = data.channel_stats()
    loader = DataLoader(AugmentedImages(data.train_x, data.train_y, mean, std), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=workers, persistent_workers=workers > 0)
    seen, elapsed = 0, 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up
        t0 = time.perf_counter()
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if epoch > 0:
                seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch > 0:
            elapsed += time.perf_counter() - t0
    return seen / elapsed


def kdlib_loop(data: ImageSplits, epochs: int, batch_size: int, device: torch.device, channels_last: bool = True) -> float:
    torch.manual_seed(0)
    config = TrainConfig(epochs=epochs + 1, batch_size=batch_size, lr=0.05, augment_shift=2.0, progress=False,
                         channels_last=channels_last)
    result = fit(create_model("simplecnn"), data, config, device=device)
    timed = result.history[1:]  # epoch 1 warms up
    return sum(h["images_per_second"] * h["epoch_seconds"] for h in timed) / sum(h["epoch_seconds"] for h in timed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="training images (the digits tiled)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to compare")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = runtime.select_device(args.device)
    digits = load_digits_28()
    reps = -(-args.n // len(digits.train_y))
    data = ImageSplits("digits tiled", "bench", digits.train_x.repeat(reps, 1, 1, 1)[:args.n],
                       digits.train_y.repeat(reps)[:args.n], digits.val_x, digits.val_y, digits.test_x, digits.test_y)
    print(f"device {device} ({runtime.hardware_info(device)['device_name']}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.n} images of 28x28, batch {args.batch_size}, {args.epochs} timed epochs")
    ours = kdlib_loop(data, args.epochs, args.batch_size, device)
    print(f"kdlib loop (data on device, batched affine):   {ours:8.0f} images/s")
    contiguous = kdlib_loop(data, args.epochs, args.batch_size, device, channels_last=False)
    print(f"kdlib loop, channels_last off:                 {contiguous:8.0f} images/s")
    for workers in args.workers:
        plain = plain_loop(data, args.epochs, args.batch_size, workers, device)
        print(f"plain DataLoader loop, {workers} workers:              {plain:8.0f} images/s   ratio kdlib/plain = {ours / plain:.2f}x "
              f"({contiguous / plain:.2f}x without channels_last)")


if __name__ == "__main__":
    main()
