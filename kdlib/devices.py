"""Seeds across devices: on a machine with several GPUs (Kaggle's T4 x2), each device trains its own share of the
seeds, one worker process per device, and the results merge as if from one run.

Each worker runs its own interleaved schedule of every method for its seeds, so every speed-up is still a ratio
of wall-clocks measured on one device; energy is read per device, as in a one-device run. On a CPU,
``DEVICES=["cpu", "cpu"]`` starts two worker processes, each with its share of the cores: the stand-in that the
tests use for two GPUs (the merged results equal a one-device run's with the same threads, apart from device names
and seconds).

This is not data parallelism (``kdlib.distributed``): no gradient crosses devices, and a run's numbers do not
depend on how many devices there were.
"""

from __future__ import annotations

import os
import queue as queue_module
import sys
import tempfile
import traceback
from pathlib import Path

import torch

DEVICES_HELP = ("name them, e.g. ['cuda:0', 'cuda:1'] (--devices cuda:0 cuda:1), or ['cpu', 'cpu'] for two CPU "
                "workers; None: every visible GPU, else DEVICE")


def select_devices(devices=None, device: str | None = None) -> list[torch.device]:
    """The devices a run trains on. ``devices`` (DEVICES, --devices): a list of device names; None: every visible
    GPU (one: as DEVICE would pick), else ``device`` (DEVICE, --device) alone. A GPU named twice, or both DEVICES
    and DEVICE, is one ValueError line; so is a string where a list belongs."""
    from .runtime import select_device

    if devices is not None and device is not None:
        raise ValueError(f"DEVICES={devices!r} and DEVICE={device!r} are both set: set one (DEVICES for several "
                         "devices, DEVICE for one)")
    if devices is None:
        if device is None and torch.cuda.is_available() and torch.cuda.device_count() > 1:
            return [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
        return [select_device(device)]
    if isinstance(devices, str) or not isinstance(devices, (list, tuple)):
        raise ValueError(f"DEVICES (--devices)={devices!r} is not a list of devices: {DEVICES_HELP}")
    if not devices:
        raise ValueError(f"DEVICES (--devices)=[] names no device: {DEVICES_HELP}")
    chosen = []
    for name in devices:
        try:
            chosen.append(select_device(name))
        except (ValueError, RuntimeError) as exc:  # DEVICE's line, said of DEVICES
            said = str(exc).replace("DEVICE (--device)", "DEVICES (--devices)")
            raise type(exc)(said.replace("DEVICE=", "DEVICES (--devices) entry ").replace(
                "set DEVICES (--devices) entry None", "set DEVICES=None")) from None
    chosen = [torch.device("cuda", d.index or 0) if d.type == "cuda" else d for d in chosen]  # 'cuda' is cuda:0
    gpus = [d for d in chosen if d.type != "cpu"]
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"DEVICES (--devices)={list(devices)!r} names a GPU twice: each GPU trains its own seeds "
                         "once (two workers on one GPU would share it and time each other)")
    return chosen


def partition_seeds(seeds: list[int], count: int) -> list[list[int]]:
    """``seeds`` dealt round-robin to ``count`` devices (seed i to device i mod count), so the shares differ by at
    most one seed; devices beyond the seeds get none (and are not used)."""
    if count < 1:
        raise ValueError(f"{count} devices: at least one is needed")
    return [list(seeds[k::count]) for k in range(count)]


def as_list(devices) -> list:
    """One device, or a list of them, as a list."""
    return list(devices) if isinstance(devices, (list, tuple)) else [devices]


def devices_used(devices, seeds) -> list:
    """The devices that get seeds (``partition_seeds`` gives the first ``len(seeds)``); one device (or one
    seed) trains in this process, as before there were several."""
    return as_list(devices)[:max(1, len(seeds))]


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each worker's torch thread count: its share of the cores (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def check_threads(threads) -> int | None:
    """THREADS (--threads): None (torch's default, or each worker's share of the cores) or a whole number >= 1."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"THREADS (--threads)={threads!r}: give a whole number of torch threads, 1 or more "
                         "(None: torch's default; with several devices, each worker's share of the cores)")
    return threads


def prepare(devices=None, device: str | None = None, threads=None) -> tuple[list[torch.device], int | None]:
    """A notebook's DEVICES, DEVICE and THREADS, checked: the devices to train on (``select_devices``) and the
    threads of each worker. With one device, THREADS (when set) is this process's torch thread count, so a
    one-device run can match a worker's. With several CPU workers this process (which trains what is made once,
    e.g. MNIST's teacher) takes a worker's count too: on a CPU the thread count can change the last bits of a
    result, and the split must compute what one worker would."""
    chosen, threads = select_devices(devices, device), check_threads(threads)
    if threads and len(chosen) == 1:
        torch.set_num_threads(threads)
    elif len(chosen) > 1 and all(d.type == "cpu" for d in chosen):
        torch.set_num_threads(threads or threads_per_worker(len(chosen)))
    return chosen, threads


def describe(devices: list[torch.device], groups: list[list[int]], threads: int | None) -> str:
    """One line: which device trains which seeds, with how many threads."""
    parts = [f"{worker_label(d, k)}: seeds {g}" for k, (d, g) in enumerate(zip(devices, groups)) if g]
    return ("seeds across devices: " + "; ".join(parts)
            + (f" ({threads} torch thread(s) per worker)" if threads else ""))


class _QueueLines:
    """A worker's stdout: each whole line goes to the parent, which prints it (a spawned process's own stdout is
    not the notebook's)."""

    def __init__(self, queue, worker: int):
        self.queue, self.worker, self.pending = queue, worker, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.queue.put(("line", self.worker, line))
        return len(text)

    def flush(self) -> None:
        pass


def _worker_main(worker: int, fn, group, device: str, args, threads, queue, out_dir: str) -> None:
    from .runtime import BATCH_ENV

    os.environ[BATCH_ENV] = "1"  # workers print epoch lines, never bars or widgets
    if threads:
        torch.set_num_threads(threads)
    sys.stdout = _QueueLines(queue, worker)
    try:
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        result = fn(group, torch.device(device), *args)
        torch.save(result, Path(out_dir) / f"worker{worker}.pt")
    except BaseException:
        queue.put(("error", worker, traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        sys.stdout.flush()


def worker_label(device: torch.device, worker: int) -> str:
    return f"cpu worker {worker}" if torch.device(device).type == "cpu" else str(device)


def run_across(fn, groups: list[list[int]], devices: list[torch.device], *args, threads: int | None = None,
               label: str | None = None) -> list:
    """``fn(group, device, *args)`` in one spawned worker per device with a non-empty group, all at once; returns
    their results in ``devices`` order (None for a device with no seeds). ``fn`` must be importable (defined in a
    module). First it prints which device trains which seeds (``describe``, after ``label``). Each worker sets its
    torch threads to ``threads`` (None: its share of the cores). Its printed lines
    come back here prefixed with its device (``[cuda:1] [ast seed 1] epoch ...``). A worker that fails raises
    RuntimeError here, naming the device and its last line; an interrupt stops every worker (each run keeps its
    last checkpoint)."""
    import torch.multiprocessing as mp

    from .distributed import package_on_path

    busy = [k for k, group in enumerate(groups) if group]
    threads = threads or threads_per_worker(len(busy))
    print((f"{label}: " if label else "") + describe(devices, groups, threads), flush=True)
    context = mp.get_context("spawn")
    lines = context.Queue()
    errors: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as out_dir, package_on_path():
        workers = {k: context.Process(target=_worker_main, args=(k, fn, groups[k], str(devices[k]), args, threads,
                                                                 lines, out_dir)) for k in busy}
        try:
            for process in workers.values():
                process.start()
            while True:
                try:
                    kind, k, text = lines.get(timeout=0.2)
                except queue_module.Empty:
                    if not any(p.is_alive() for p in workers.values()):
                        break
                    continue
                if kind == "error":
                    errors[k] = text
                else:
                    print(f"[{worker_label(devices[k], k)}] {text}", flush=True)
            for process in workers.values():
                process.join()
        finally:
            for process in workers.values():
                if process.is_alive():
                    process.terminate()
                    process.join()
        failed = [k for k, p in workers.items() if p.exitcode != 0]
        if failed:
            k = failed[0]
            last = (errors.get(k) or "").strip().splitlines()[-1:] or [f"exit code {workers[k].exitcode}"]
            raise RuntimeError(f"the worker on {worker_label(devices[k], k)} (seeds {groups[k]}) failed: {last[0]}"
                               + (f"\n{errors[k]}" if k in errors else ""))
        return [torch.load(Path(out_dir) / f"worker{k}.pt", weights_only=False) if k in workers else None
                for k in range(len(devices))]


__all__ = ["prepare", "select_devices", "as_list", "devices_used", "partition_seeds", "threads_per_worker", "check_threads", "describe", "run_across",
           "worker_label"]
