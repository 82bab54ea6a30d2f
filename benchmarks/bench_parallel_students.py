"""Wall-clock of training several students at the same time on one device (HPM-KD's parallel
component) against training them one after another.

N MobileNet students (one per seed) learn by KD from a fixed table of teacher logits on the embedded
digits, with kdlib's loop. Sequential: one ``fit`` after another. Concurrent: ``run_concurrently``
(one thread each; one CUDA stream each on a GPU). Both are run twice in the order sequential,
concurrent, sequential, concurrent, because this VM's speed drifts; each ratio printed is sequential /
concurrent from the same pair. On a CPU the weights are also compared bit for bit.
Run: python benchmarks/bench_parallel_students.py [--students 2 --epochs 2 --device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from kdlib import runtime
from kdlib.data.mnist import load_digits_28
from kdlib.distill.hpmkd import HPMKDObjective, run_concurrently
from kdlib.distill.teacher_source import TeacherSource
from kdlib.models import create_model
from kdlib.train import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = runtime.select_device(args.device)
    data = load_digits_28(seed=0)
    torch.manual_seed(0)
    table = torch.randn(len(data.train_y), 10, device=device) * 3  # the teacher's logits: fixed, as if cached
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.1, warmup_epochs=1, progress=False)

    def students():
        models = []
        for seed in range(args.students):
            runtime.seed_everything(seed)
            models.append(create_model("mobilenet_student", 10, 1))
        return models

    def jobs(models):
        return [lambda m=m, s=s: fit(m, data, dataclasses.replace(config, seed=s),
                                     HPMKDObjective([TeacherSource("teacher", table=table)]), device)
                for s, m in enumerate(models)]

    print(f"{args.students} students x {args.epochs} epochs of {len(data.train_y)} images, batch {args.batch_size}, "
          f"device {device} ({runtime.hardware_info(device).get('device_name', '')}), torch threads {torch.get_num_threads()}")
    for repeat in range(2):
        sequential_models = students()
        t0 = time.perf_counter()
        for job in jobs(sequential_models):
            job()
        sequential = time.perf_counter() - t0
        concurrent_models = students()
        t0 = time.perf_counter()
        run_concurrently(jobs(concurrent_models), device)
        concurrent = time.perf_counter() - t0
        same = all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for a, b in zip(sequential_models, concurrent_models)
                   for k in a.state_dict())
        print(f"pair {repeat + 1}: sequential {sequential:.2f} s, concurrent {concurrent:.2f} s, "
              f"speed-up {sequential / concurrent:.2f}x, weights bit-identical: {same}")


if __name__ == "__main__":
    main()
