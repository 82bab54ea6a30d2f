"""The cost of new input shapes under ``cudnn.benchmark``: cuDNN autotunes its convolution algorithms once per
new shape, so an AST learning pass whose batch size changes every step pays that again and again.

For a ResNet-style convnet: forward+backward time of the first call at each of several batch sizes (a new
shape: autotuning included) against a repeat call at the same size (tuned), with ``cudnn.benchmark`` on; then
the same sweep with it off. Then an epoch-like sequence of learning-pass sizes as AST draws them, rounded to
``default_size_bucket`` or not: the distinct sizes each uses and the time of the whole sequence, first pass.

GPU only: on a CPU it says it is skipped and exits 0 (there is no cuDNN autotuning to measure).
Run: python benchmarks/bench_new_shapes.py [--device cuda:0] [--batch 256] [--image 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from kdlib.sparse import default_size_bucket


def _step(model, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()


def timed(model, size: int, args, device) -> float:
    x = torch.randn(size, 3, args.image, args.image, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (size,), device=device)
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.float16):
        _step(model, x, y)
    torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image", type=int, default=128)
    parser.add_argument("--model", default="resnet18", help="a torchvision model name")
    parser.add_argument("--steps", type=int, default=60, help="learning passes in the AST-like sequence")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_new_shapes: skipped, no CUDA GPU here (cuDNN autotuning is GPU-only; no figures are made up).")
        return
    import torchvision

    device = torch.device(args.device)
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{args.model} at {args.image}px, fp16 autocast, channels_last")
    sizes = [args.batch // 4 + 7, args.batch // 3 + 1, args.batch // 2 + 3]  # sizes AST might draw
    for benchmark in (True, False):
        torch.backends.cudnn.benchmark = benchmark
        model = torchvision.models.__dict__[args.model](num_classes=100).to(device, memory_format=torch.channels_last)
        timed(model, args.batch, args, device)  # allocations and the full batch's tuning out of the way
        for size in sizes:
            first, again = timed(model, size, args, device), timed(model, size, args, device)
            print(f"cudnn.benchmark={benchmark!s:5}  batch {size:4d}: first {1000 * first:8.1f} ms, "
                  f"repeat {1000 * again:7.1f} ms, new-shape cost {1000 * (first - again):8.1f} ms")
    torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    drawn = (args.batch * (0.2 + 0.2 * torch.rand(args.steps, generator=g))).long().clamp(1, args.batch).tolist()
    bucket = default_size_bucket(args.batch)
    rounded = [min(args.batch, -(-k // bucket) * bucket) for k in drawn]
    for label, sequence in (("raw sizes", drawn), (f"rounded to {bucket}", rounded)):
        model = torchvision.models.__dict__[args.model](num_classes=100).to(device, memory_format=torch.channels_last)
        timed(model, args.batch, args, device)
        t0 = time.perf_counter()
        for size in sequence:
            timed(model, size, args, device)
        total = time.perf_counter() - t0
        print(f"{args.steps} AST-like learning passes, {label:14s}: {len(set(sequence)):3d} distinct sizes, "
              f"{total:.2f} s on first sight ({sum(sequence)} samples)")


if __name__ == "__main__":
    main()
