"""How long a cifar10-ast preset will take on this machine, from a short measured run of the same configuration.

For one seed, every method of the preset trains its first ``--epochs`` epochs (the warm-up epoch of full training,
then selective ones) exactly as the notebook's runs would (same data, config and interleaving: each run pauses after
every epoch and resumes from its checkpoint), in a scratch folder. The estimate extrapolates, per method: warm-up
epochs at the measured warm-up epoch's seconds, selective epochs at the mean measured selective epoch's (InfoBatch's
last full-data epochs at the warm-up epoch's, for its control too), plus every epoch's measured overhead outside
the training pass (validation, checkpoint, resume); times the seeds; plus loading the data. Frontier points count
their own epochs. The machine's load is printed: on a shared machine the figure moves with it.

Run: python benchmarks/estimate_cifar_shootout.py --preset cpu-real --data /tmp/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from kdlib import runtime
from kdlib.experiments import cifar10_ast as exp, selection


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-real")
    parser.add_argument("--data", help="DATA_DIR, as given to `python -m kdlib run cifar10-ast --data`")
    parser.add_argument("--epochs", type=int, default=2, help="epochs measured per method (>= warm-up + 1)")
    parser.add_argument("--methods", nargs="+", help="default: the preset's")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    cfg = exp.make_config(args.preset, methods=args.methods, progress=False)
    device = runtime.select_device(args.device)
    started = time.perf_counter()
    data = exp.load_data(cfg, args.data)
    load_seconds = time.perf_counter() - started
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; device {device}, "
          f"{torch.get_num_threads()} threads; {data.name}: {len(data.train_y):,} train, {len(data.val_y):,} val, "
          f"{len(data.test_y):,} test (loaded in {load_seconds:.0f} s)")
    print(f"preset {cfg.preset}: {cfg.train.epochs} epochs, {cfg.warmup_epochs} warm-up, seeds {cfg.seeds}, "
          f"{cfg.model} {cfg.model_kwargs}, batch {cfg.train.batch_size}, rate {cfg.target_rate}")
    measured = {}
    seed = cfg.seeds[0]
    with tempfile.TemporaryDirectory() as scratch:
        for epoch in range(args.epochs):  # interleaved as the notebook runs them: each control after its rule
            for method in cfg.methods:
                if epoch >= min(args.epochs, selection.epochs_of(method, cfg.train.epochs)):
                    continue
                t0 = time.perf_counter()
                exp.train_method(method, cfg, data, Path(scratch), device, seed, stop_after=epoch + 1)
                wall = time.perf_counter() - t0
                seconds = selection.run_history(Path(scratch), method, seed)[epoch]["epoch_seconds"]
                epochs, overheads = measured.setdefault(method, ([], []))
                epochs.append(seconds)
                overheads.append(wall - seconds)
    for method, (epochs, overheads) in measured.items():
        print(f"  {method}: epoch seconds {[round(s, 1) for s in epochs]}, "
              f"overhead per epoch {[round(s, 1) for s in overheads]}")
    total = load_seconds
    w = cfg.warmup_epochs
    for method in cfg.methods:
        epochs, overheads = measured[method]
        E = selection.epochs_of(method, cfg.train.epochs)
        first, selective = epochs[0], sum(epochs[w:]) / max(1, len(epochs[w:]))
        spec = selection.parse_method(method)
        if spec.is_full:
            per_seed = E * sum(epochs) / len(epochs)
        else:
            prunes = "infobatch" in (spec.rule, spec.parent)
            final_full = math.ceil((1 - cfg.infobatch_delta) * E - 1e-9) if prunes else 0
            per_seed = (w + final_full) * first + (E - w - final_full) * selective
        per_seed += E * sum(overheads) / len(overheads)
        total += per_seed * len(cfg.seeds)
        print(f"  {method}: about {per_seed / 60:.1f} min per seed")
    print(f"estimate for the whole preset: {total / 60:.0f} min ({total / 3600:.1f} h) at this load "
          f"(load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
