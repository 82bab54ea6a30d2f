"""Time per epoch-equivalent of full training and of AST at several activation rates, in both scoring modes.

Everything runs in one process through kdlib's own loop (``fit``) and the ``ast`` rule's objective, on the same model
and data. For each configuration the first epoch is a full warm-up and the next ones let the PI controller settle; the last
``--timed`` epochs are timed (training passes only). The speed-up printed is full's seconds per epoch divided by the
configuration's, beside the ceiling at the activation rate actually realised (``kdlib.sparse.cost.speedup_ceiling``
from the epochs' own counts; a forward counts 1, a backward 2):
  scoring forward: 3 / (1 + 3a)  (one scoring forward of the whole batch + forward/backward of a fraction a)
  stale scores:    1 / a         (no scoring forward)
Run: python benchmarks/bench_ast_step.py [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

from kdlib import runtime
from kdlib.data.mnist import load_digits_images
from kdlib.data.splits import ImageSplits
from kdlib.models import create_model
from kdlib.sparse import make_selective_objective
from kdlib.sparse.cost import compute_units, speedup_ceiling
from kdlib.train import TrainConfig, fit


def seconds_per_epoch(data: ImageSplits, model_name: str, model_kwargs: dict, config: TrainConfig, timed: int,
                      device: torch.device, objective=None) -> tuple[float, float, float]:
    """(mean seconds of the last `timed` epochs, their realised activation rate, their mean compute units)."""
    torch.manual_seed(0)
    result = fit(create_model(model_name, **model_kwargs), data, config, objective, device=device)
    last = result.history[-timed:]
    processed = (len(data.train_y) // config.batch_size) * config.batch_size * timed  # drop_last batches
    units = sum(compute_units(h["samples_forwarded"], h["samples_backpropagated"]) for h in last) / timed
    return (sum(h["epoch_seconds"] for h in last) / timed, sum(h["samples_backpropagated"] for h in last) / processed,
            units)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per configuration, the last --timed timed")
    parser.add_argument("--timed", type=int, default=3)
    parser.add_argument("--model", default="airbench_net")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.4, 0.2, 0.1])
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = runtime.select_device(args.device)
    digits = load_digits_images(size=32, digit_box=24, channels=3, name="digits 32x32 RGB")
    reps = -(-args.n // len(digits.train_y))
    data = ImageSplits("digits tiled", "bench", digits.train_x.repeat(reps, 1, 1, 1)[:args.n],
                       digits.train_y.repeat(reps)[:args.n], digits.val_x, digits.val_y, digits.test_x, digits.test_y)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, warmup_epochs=0, augment_crop_pad=2,
                         progress=False)
    kwargs = {"width": args.width} if args.model == "airbench_net" else {}
    print(f"device {device} ({runtime.hardware_info(device)['device_name']}), precision "
          f"{runtime.select_precision(device).name}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.model} {kwargs}, {args.n} images 3x32x32 per epoch, batch {args.batch_size}, "
          f"mean of the last {args.timed} of {args.epochs} epochs")
    # Full training is timed before and after the AST configurations; their mean is the baseline, and the
    # two figures show how much this machine's speed drifted during the benchmark.
    full_before, _, full_units = seconds_per_epoch(data, args.model, kwargs, config, args.timed, device)
    rows = []
    for scoring in ("forward", "stale"):
        for target in args.rates:
            # one warm-up epoch of full training, as real runs have: a random model's scores say little
            objective = make_selective_objective("ast", None, len(data.train_y), target, scoring=scoring,
                                                 warmup_epochs=1)
            seconds, rate, units = seconds_per_epoch(data, args.model, kwargs, config, args.timed, device, objective)
            rows.append((scoring, target, rate, seconds, units))
    full_after, _, _ = seconds_per_epoch(data, args.model, kwargs, config, args.timed, device)
    full = (full_before + full_after) / 2
    print(f"full step: {full:.3f} s/epoch (before the AST runs {full_before:.3f}, after {full_after:.3f})")
    print(f"{'scoring':>9} {'target a':>8} {'realised a':>10} {'s/epoch':>8} {'speed-up':>8} {'ceiling':>8} {'of ceiling':>10}")
    for scoring, target, rate, seconds, units in rows:
        ceiling = speedup_ceiling(full_units, units)
        speedup = full / seconds
        print(f"{scoring:>9} {target:8.2f} {rate:10.3f} {seconds:8.3f} {speedup:7.2f}x {ceiling:7.2f}x {speedup / ceiling:9.0%}")


if __name__ == "__main__":
    main()
