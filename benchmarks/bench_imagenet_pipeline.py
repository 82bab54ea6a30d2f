"""Images/s of the ImageNet-100 input pipeline: torchvision ImageFolder + DataLoader (JPEG decoding and
RandomResizedCrop per image in worker processes) against kdlib's decoded store (one-time decode to a
memory-mapped uint8 array, then batched random-resized-crop and flip on the training device).

It writes --n generated JPEGs of ImageNet's typical size (about 500 x 375, smooth content plus noise,
quality 90) in an ImageFolder tree, then in one process: the DataLoader epoch (after a warm-up epoch), the
store build (timed: the one-time cost) with each decoder (PIL's draft mode on --workers processes; nvJPEG on the
GPU with --workers reading threads, where there is a GPU), and the store-loader epoch. Both produce normalised
float batches of --out-size pixels. The ratio printed is store / DataLoader, for epochs after the store exists.
Run: python benchmarks/bench_imagenet_pipeline.py [--n 1500 --workers 2 --device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdlib import runtime
from kdlib.data.image_store import RandomResizedCropFlip, StoreLoader, build_store

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_jpegs(root: Path, n: int, classes: int = 10) -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        w, h = int(rng.integers(400, 600)), int(rng.integers(300, 450))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * 3) % 256, ((xx + yy) // 2) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        path = root / f"n{i % classes:08d}" / f"img_{i:05d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
        items.append((str(path), i % classes))
    return items


def dataloader_epoch(root: Path, out_size: int, batch_size: int, workers: int) -> float:
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.RandomResizedCrop(out_size, scale=(0.25, 1.0)),
                                    transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                    transforms.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), transform), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:  # warm-up: workers start, page cache filled
        pass
    t0, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - t0)


def store_epoch(store, device, out_size: int, batch_size: int) -> float:
    loader = StoreLoader(store, store.valid_indices, batch_size, device, MEAN, STD, shuffle=True,
                         augment=RandomResizedCropFlip(out_size, scale=(0.25, 1.0)))
    for _ in loader:  # warm-up, as above
        pass
    loader.set_epoch(1)
    runtime_sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0, n = time.perf_counter(), 0
    for x, _, _ in loader:
        n += len(x)
    runtime_sync()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--store-size", type=int, default=160)
    parser.add_argument("--out-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = runtime.select_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        items = write_jpegs(root, args.n)
        print(f"{args.n} JPEGs, {args.workers} worker processes, store {args.store_size}px, crops {args.out_size}px, "
              f"batch {args.batch_size}, device {device}, CPU {runtime.cpu_name()} x {os.cpu_count()}")
        baseline = dataloader_epoch(root, args.out_size, args.batch_size, args.workers)
        print(f"ImageFolder + DataLoader: {baseline:.0f} img/s")
        build_store(items[:16], Path(tmp) / "warm-pil", size=args.store_size, workers=1, progress=False,
                    decoder="pil-draft")  # warm-up: imports out of the timing, as for the GPU below
        t0 = time.perf_counter()
        store = build_store(items, Path(tmp) / "store", size=args.store_size, workers=args.workers, progress=False,
                            decoder="pil-draft")
        build = time.perf_counter() - t0
        print(f"store build (once), PIL draft mode on {args.workers} processes: {build:.1f} s, "
              f"{args.n / build:.0f} img/s decoded")
        if torch.cuda.is_available():
            gpu = torch.device("cuda", torch.cuda.current_device()) if device.type != "cuda" else device
            build_store(items[:256], Path(tmp) / "warm", size=args.store_size, workers=args.workers, progress=False,
                        decoder="nvjpeg", device=gpu)  # warm-up: CUDA context and nvJPEG handles out of the timing
            t0 = time.perf_counter()
            on_gpu = build_store(items, Path(tmp) / "store-gpu", size=args.store_size, workers=args.workers,
                                 progress=False, decoder="nvjpeg", device=gpu)
            gpu_build = time.perf_counter() - t0
            print(f"store build (once), nvJPEG on {gpu} ({torch.cuda.get_device_name(gpu)}), {args.workers} reading "
                  f"threads: {gpu_build:.1f} s, {args.n / gpu_build:.0f} img/s decoded ({build / gpu_build:.2f}x PIL); "
                  f"{on_gpu.pil_fallback} file(s) left to PIL")
        else:
            print("store build with nvJPEG: skipped, no CUDA device here (the GPU decoder needs one)")
        fast = store_epoch(store, device, args.out_size, args.batch_size)
        print(f"store + on-device crops: {fast:.0f} img/s" + (" (the crops run on this CPU: no GPU here)"
                                                              if device.type == "cpu" else ""))
        reader = StoreLoader(store, store.valid_indices, args.batch_size, "cpu", MEAN, STD, shuffle=True)
        t0 = time.perf_counter()
        for k in range(len(reader)):
            reader._read(np.arange(k * args.batch_size, min((k + 1) * args.batch_size, len(store))))
        print(f"store reads alone (with the float conversion when the device is a CPU): {len(store) / (time.perf_counter() - t0):.0f} img/s")
        baseline_after = dataloader_epoch(root, args.out_size, args.batch_size, args.workers)
        print(f"ImageFolder + DataLoader again (drift check): {baseline_after:.0f} img/s")
        print(f"ratio store / DataLoader: {fast / baseline:.2f}x (against the second baseline: {fast / baseline_after:.2f}x)")


if __name__ == "__main__":
    main()
