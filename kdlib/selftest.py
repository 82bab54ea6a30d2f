"""``python -m kdlib selftest [--device cuda|cpu] [--out DIR]``: check, on the machine at hand, each GPU path the
experiments rely on, before spending a GPU session on them. Meant to take under 3 minutes on a T4.

Each check is a row: ``pass``, ``fail`` or ``skipped``, the figure it measured, and the reason. On a CPU the
GPU rows are listed as skipped (with why) and their CPU equivalents run instead (fp32 step, thread-parallel
students, gloo for the two-rank check). Rows and the hardware go to ``selftest.json``. The figures are
measurements of this run, never estimates; timings on a shared machine drift.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn as nn

from . import runtime

TARGET = 0.3  # the AST rows' activation rate
GPU_CHECKS = {"fp16", "bf16", "energy", "streams", "store gpu", "gpu decode", "nccl", "seeds on two gpus"}


def _row(name: str, status: str, figure: str = "", reason: str = "", gpu: bool = False, **extra) -> dict:
    return {"check": name, "status": status, "figure": figure, "reason": reason, "gpu_row": gpu, **extra}


def _net(width: int = 16, batchnorm: bool = True, dropout: float = 0.0, classes: int = 4) -> nn.Module:
    norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
    layers = [nn.Conv2d(3, width, 3, padding=1), norm(width), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(width, 2 * width, 3, padding=1), norm(2 * width), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
              nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(2 * width, classes))


def _data(n: int, size: int, classes: int = 4, seed: int = 0):
    """Synthetic images whose mean brightness of one channel encodes the label (learnable, so scores move)."""
    from .data.splits import ImageSplits

    g = torch.Generator().manual_seed(seed)

    def part(m):
        y = torch.randint(0, classes, (m,), generator=g)
        x = torch.randint(0, 160, (m, 3, size, size), generator=g, dtype=torch.uint8)
        x[torch.arange(m), y % 3] += (40 * (y // 3 + 1)).to(torch.uint8).view(-1, 1, 1)
        return x, y

    (tx, ty), (vx, vy), (sx, sy) = part(n), part(max(64, n // 8)), part(64)
    return ImageSplits("selftest synthetic", "generated", tx, ty, vx, vy, sx, sy, classes=[str(i) for i in range(classes)])


def _sizes(device: torch.device) -> dict:
    """Problem sizes: big enough on a GPU that the figures mean something, small on a CPU (CI)."""
    if device.type == "cuda":
        return {"n": 4096, "image": 32, "batch": 256, "width": 32, "epochs": 4}
    return {"n": 192, "image": 16, "batch": 32, "width": 8, "epochs": 2}


# ---- the checks ---------------------------------------------------------------------------------------------

def _amp_step(device: torch.device, amp: str) -> dict:
    precision = runtime.select_precision(device, amp)
    model = _net().to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision.grad_scaler()
    x = torch.randn(64, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (64,), device=device)
    with precision.autocast():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    finite = bool(torch.isfinite(loss)) and all(torch.isfinite(p).all() for p in model.parameters())
    ok = finite and logits.dtype == (precision.amp_dtype or torch.float32)
    return {"ok": ok, "figure": f"loss {loss.item():.4f}, logits {str(logits.dtype).replace('torch.', '')}, "
                                f"scale {scaler.get_scale() if precision.use_grad_scaler else 'off'}"}


def check_fp16(device):
    name = "fp16 autocast + GradScaler step"
    if device.type != "cuda":
        return _row(name, "skipped", reason=f"needs a CUDA GPU (running on {device})", gpu=True)
    r = _amp_step(device, "fp16")
    return _row(name, "pass" if r["ok"] else "fail", r["figure"], "" if r["ok"] else "non-finite loss/weights", gpu=True)


def check_bf16(device):
    name = "bf16 autocast step"
    if device.type != "cuda":
        return _row(name, "skipped", reason=f"needs a CUDA GPU (running on {device})", gpu=True)
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        return _row(name, "skipped", reason=f"{torch.cuda.get_device_name(device)} has no native bf16 (fp16 is used)",
                    gpu=True)
    r = _amp_step(device, "bf16")
    return _row(name, "pass" if r["ok"] else "fail", r["figure"], "" if r["ok"] else "non-finite loss/weights", gpu=True)


def check_fp32_cpu(device):
    name = "fp32 step (the CPU's precision)"
    if device.type == "cuda":
        return _row(name, "skipped", reason="the fp16/bf16 rows ran instead")
    r = _amp_step(device, "off")
    return _row(name, "pass" if r["ok"] else "fail", r["figure"])


def check_channels_last(device):
    name = f"channels_last forward+backward ({device.type})"
    torch.manual_seed(0)
    model = _net().to(device).eval()
    x = torch.randn(32, 3, 32, 32, device=device)
    reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    xl = x.contiguous(memory_format=torch.channels_last)
    out = model(xl)
    out.sum().backward()
    weight_layout = model[0].weight.is_contiguous(memory_format=torch.channels_last)
    diff = (out - reference).abs().max().item()
    ok = weight_layout and diff < 1e-3
    return _row(name, "pass" if ok else "fail", f"max |diff| vs contiguous {diff:.2e}, weights channels_last "
                f"{weight_layout}", "" if ok else "layout not kept or outputs differ")


def check_energy(device):
    name = "NVML energy of the training GPU"
    if device.type != "cuda":
        return _row(name, "skipped", reason=f"needs a CUDA GPU with NVML (running on {device})", gpu=True)
    from .energy import meter_for

    meter = meter_for(device)
    if not meter.available:
        return _row(name, "fail", reason="NVML not readable here (nvidia-ml-py missing, or no driver access)", gpu=True)
    a = torch.randn(4096, 4096, device=device)
    meter.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize(device)
    joules, seconds = meter.stop(), time.perf_counter() - t0
    ok = joules is not None and joules > 0
    return _row(name, "pass" if ok else "fail", f"{joules:.1f} J in {seconds:.1f} s of matmuls ({joules / seconds:.0f} W "
                f"mean), {meter.method}" if joules is not None else "no reading", "" if ok else "no positive reading",
                gpu=True, joules=joules)


def _students(device, parallel: bool, dropout: float, sizes: dict, count: int = 2):
    from .distill.hpmkd import run_concurrently
    from .train import TrainConfig, fit

    data = _data(sizes["n"], sizes["image"])
    config = TrainConfig(epochs=2, batch_size=sizes["batch"], lr=0.05, warmup_epochs=0, progress=False,
                         channels_last=device.type == "cuda")
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(_net(sizes["width"], dropout=dropout))
    jobs = [lambda m=m, s=s: fit(m, data, dataclasses.replace(config, seed=s), None, device)
            for s, m in enumerate(models)]
    t0 = time.perf_counter()
    if parallel:
        run_concurrently(jobs, device, max_concurrent=count)
    else:
        for job in jobs:
            job()
    return time.perf_counter() - t0, models


def check_streams(device, sizes):
    name = "parallel students on CUDA streams vs sequential"
    if device.type != "cuda":
        return _row(name, "skipped", reason=f"needs a CUDA GPU (running on {device}; see the thread row)", gpu=True)
    _students(device, False, 0.0, sizes)  # warm-up: cuDNN autotuning and allocations out of the timing
    sequential, _ = _students(device, False, 0.0, sizes)
    parallel, _ = _students(device, True, 0.0, sizes)
    return _row(name, "pass", f"2 students x 2 epochs: sequential {sequential:.2f} s, on streams {parallel:.2f} s "
                f"({sequential / parallel:.2f}x)", "measured; no target (a busy GPU overlaps less)", gpu=True,
                sequential_seconds=sequential, parallel_seconds=parallel)


def check_threads(device, sizes):
    name = "parallel dropout students on threads equal sequential (CPU)"
    if device.type == "cuda":
        return _row(name, "skipped", reason="the CUDA streams row ran instead")
    small = {**sizes, "n": 128}
    sequential, a = _students(device, False, 0.3, small)
    parallel, b = _students(device, True, 0.3, small)
    same = all(torch.equal(x.state_dict()[k], y.state_dict()[k]) for x, y in zip(a, b) for k in x.state_dict())
    return _row(name, "pass" if same else "fail", f"bit-identical weights: {same}; sequential {sequential:.2f} s, "
                f"threads {parallel:.2f} s", "" if same else "concurrent runs disturbed each other's random state")


def check_ast(device, scoring: str, sizes: dict) -> dict:
    from .sparse import make_selective_objective
    from .sparse.cost import above_ceiling, compute_units, speedup_ceiling
    from .train import TrainConfig, fit

    name = f"AST step at a = {TARGET} ({scoring} scoring) vs its ceiling"
    data = _data(sizes["n"], sizes["image"])
    config = TrainConfig(epochs=sizes["epochs"], batch_size=sizes["batch"], lr=0.05, warmup_epochs=0, progress=False,
                         channels_last=device.type == "cuda")
    full_epochs = []  # full training runs before and after AST: a machine whose speed drifts hits both sides

    def full_run():
        torch.manual_seed(0)
        full_epochs.extend(h["epoch_seconds"] for h in fit(_net(sizes["width"]), data, config, None, device).history[1:])

    full_run()
    ast_config = dataclasses.replace(config, epochs=sizes["epochs"] + 2)  # warm-up, first AST epoch, steady ones
    objective = make_selective_objective("ast", None, len(data.train_y), TARGET, scoring=scoring, warmup_epochs=1)
    torch.manual_seed(0)
    ast = fit(_net(sizes["width"]), data, ast_config, objective, device)
    selective = ast.history[1:]
    steady = selective[1:]
    full_run()
    full_epoch = statistics.median(full_epochs)  # first epochs left out: autotuning and allocations
    steady_epoch = statistics.median(h["epoch_seconds"] for h in steady)
    processed = len(data.train_y) // config.batch_size * config.batch_size
    rate = sum(h["samples_backpropagated"] for h in steady) / (processed * len(steady))
    # from the runs' own counts (forward-only and learned samples), as every notebook's cost table does
    ceiling = speedup_ceiling(compute_units(processed, processed),
                              statistics.mean(compute_units(h["samples_forwarded"], h["samples_backpropagated"])
                                              for h in steady))
    sizes_seen = max(len(h["learning_pass_sizes"]) for h in selective)
    new_shapes = selective[0]["epoch_seconds"] - steady_epoch
    ok = abs(rate - TARGET) <= 0.15 and sizes_seen <= 16
    speedup = full_epoch / steady_epoch
    # A speed-up above its ceiling is a measurement error (the machine's speed changed between the runs), not a result.
    credible = not above_ceiling(speedup, ceiling)
    figure = (f"speed-up {speedup:.2f}x of ceiling {ceiling:.2f}x at realised a = {rate:.3f}"
              + ("" if credible else " (ABOVE its ceiling: a timing error on a busy machine, not a result)") + "; "
              f"first AST epoch {selective[0]['epoch_seconds']:.2f} s vs {steady_epoch:.2f} s steady "
              f"(new shapes cost {new_shapes:+.2f} s, {sizes_seen} distinct learning-pass sizes)")
    reason = "measured; no speed target" if ok else f"realised rate {rate:.3f} or {sizes_seen} sizes out of bounds"
    return _row(name, "pass" if ok else "fail", figure, reason, speedup=speedup, speedup_credible=credible, ceiling=ceiling,
                realised_rate=rate, first_epoch_extra_seconds=new_shapes, distinct_sizes=sizes_seen)


def check_store(device) -> dict:
    from PIL import Image

    from .data.image_store import RandomResizedCropFlip, StoreLoader, build_store

    name = "store loader crops on the GPU" if device.type == "cuda" else "store loader crops (CPU)"
    with tempfile.TemporaryDirectory() as tmp:
        g = torch.Generator().manual_seed(0)
        items = []
        for i in range(48):
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(torch.randint(0, 255, (40, 48, 3), generator=g, dtype=torch.uint8).numpy()).save(path)
            items.append((str(path), i % 4))
        store = build_store(items, Path(tmp) / "store", size=36, workers=1, progress=False)
        loader = StoreLoader(store, store.valid_indices, 16, device, [0.5] * 3, [0.25] * 3,
                             augment=RandomResizedCropFlip(32), shuffle=True, drop_last=True)
        t0 = time.perf_counter()
        batches = list(loader)
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        seconds = time.perf_counter() - t0
    x, y, _ = batches[0]
    ok = (len(batches) == 3 and tuple(x.shape) == (16, 3, 32, 32) and x.device.type == device.type
          and bool(torch.isfinite(x).all()))
    return _row(name, "pass" if ok else "fail", f"{len(batches)} batches of {tuple(x.shape)} on {x.device}, "
                f"{1000 * seconds / len(batches):.1f} ms/batch", "" if ok else "wrong shape, device or values",
                gpu=device.type == "cuda")


def check_gpu_decode(device, n: int = 384, size: int = 160) -> dict:
    """The store's GPU decoder on ``n`` generated ImageNet-sized JPEGs: images/s against PIL's draft-mode decode
    (one process, on a sample), no file left to PIL, and pixels close to PIL's (a wrong crop or resize is not)."""
    import io

    import numpy as np
    from PIL import Image

    from .data.image_store import decode_batch, decode_resized

    name = "store JPEG decode on the GPU (nvJPEG) vs PIL"
    if device.type != "cuda":
        return _row(name, "skipped", reason=f"needs a CUDA GPU (running on {device}; the store decodes with PIL)",
                    gpu=True)
    rng = np.random.default_rng(0)
    datas = []
    for i in range(n):
        w, h = (500, 375) if i % 3 else (375, 500)  # ImageNet's usual shapes, both orientations
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i % 5 + 1)) % 256, (yy * 2) % 256, (xx + yy) // 4 % 256], -1)
        buf = io.BytesIO()
        Image.fromarray(np.clip(base + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)).save(buf, "JPEG",
                                                                                                   quality=90)
        datas.append(buf.getvalue())
    decode_batch(datas[:16], size, device)  # warm-up: nvJPEG handles and kernels out of the timing
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    arrays, by_pil = decode_batch(datas, size, device)
    gpu_seconds = time.perf_counter() - t0
    sample = 64
    t0 = time.perf_counter()
    reference = [decode_resized(d, size) for d in datas[:sample]]
    pil_seconds = time.perf_counter() - t0
    decoded = all(a is not None and a.shape == (size, size, 3) for a in arrays)
    diff = float(np.mean([np.abs(a.astype(np.int16) - r).mean() for a, r in zip(arrays, reference)])) if decoded else -1
    ok = decoded and not any(by_pil) and 0 <= diff < 10
    return _row(name, "pass" if ok else "fail",
                f"{n} JPEGs 500x375 -> {size}px: GPU {n / gpu_seconds:.0f} img/s, PIL draft {sample / pil_seconds:.0f} "
                f"img/s (one process); {sum(by_pil)} left to PIL; mean |GPU - PIL| {diff:.2f} levels",
                "" if ok else "an image not decoded, left to PIL, or its pixels far from PIL's (crop or resize wrong)",
                gpu=True, gpu_images_per_second=n / gpu_seconds, pil_images_per_second=sample / pil_seconds,
                pil_fallback=sum(by_pil), mean_abs_diff=diff)


def check_store_gpu_skipped(device):
    return _row("store loader crops on the GPU", "skipped", reason=f"needs a CUDA GPU (ran on {device} instead)", gpu=True)


def _rank_run(rank: int, world_size: int, device_type: str, batchnorm: bool):
    """One rank (or the one process) of the two-rank check: AST with forward scoring on fixed synthetic data."""
    from torch.nn.parallel import DistributedDataParallel

    from .data.device_loader import DeviceLoader
    from .distributed import RankSync, ShardedLoader, sync_batchnorm
    from .sparse import make_selective_objective
    from .train import TrainConfig, fit

    torch.set_num_threads(1)
    device = torch.device(f"cuda:{rank}" if device_type == "cuda" else "cpu")
    data = _data(256, 16)
    mean, std = data.channel_stats()
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0, progress=False, channels_last=False,
                         deterministic=True)
    loader = DeviceLoader(data.train_x, data.train_y, config.batch_size, device, mean, std, shuffle=True,
                          drop_last=True, seed=config.seed)
    torch.manual_seed(0)
    model, sync = _net(8, batchnorm=batchnorm), None
    if world_size > 1:
        model, _ = sync_batchnorm(model, device)
        model = DistributedDataParallel(model.to(device), device_ids=[rank] if device_type == "cuda" else None)
        loader, sync = ShardedLoader(loader, rank, world_size), RankSync()
    objective = make_selective_objective("ast", None, len(data.train_y), 0.4, warmup_epochs=1, sync=sync, size_bucket=1)
    result = fit(model, data, config, objective, device, train_loader=loader)
    return {"selected": [h["samples_backpropagated"] for h in result.history],
            "thresholds": [t for h in result.history for t in h["batch_thresholds"]]}


def _two_ranks(device_type: str, batchnorm: bool, tolerance: float) -> tuple[bool, str]:
    from .distributed import launch

    ranks = launch(_rank_run, 2, device_type, batchnorm, backend="nccl" if device_type == "cuda" else "gloo")
    single = _rank_run(0, 1, device_type, batchnorm)
    same_counts = ranks[0]["selected"] == ranks[1]["selected"] == single["selected"]
    gap = max(abs(a - b) for a, b in zip(ranks[0]["thresholds"], single["thresholds"]))
    ranks_agree = ranks[0]["thresholds"] == ranks[1]["thresholds"]
    ok = same_counts and ranks_agree and gap <= tolerance
    return ok, (f"selected per epoch {ranks[0]['selected']} (2 ranks) vs {single['selected']} (1 process); "
                f"max threshold gap {gap:.1e}; ranks agree {ranks_agree}")


def check_nccl(device):
    name = "two-rank NCCL run (SyncBatchNorm + AST) equals one process's selection"
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if count < 2:
        return _row(name, "skipped", reason=f"needs two GPUs (found {count})", gpu=True)
    ok, figure = _two_ranks("cuda", batchnorm=True, tolerance=1e-3)
    return _row(name, "pass" if ok else "fail", figure, "" if ok else "the ranks' selection differs from one process's",
                gpu=True)


def check_gloo(device):
    name = "two-rank gloo run (AST, CPU) equals one process's selection"
    if device.type == "cuda" and torch.cuda.device_count() >= 2:
        return _row(name, "skipped", reason="the NCCL row ran instead")
    ok, figure = _two_ranks("cpu", batchnorm=False, tolerance=1e-9)
    return _row(name, "pass" if ok else "fail", figure, "BatchNorm-free model: SyncBatchNorm runs only on GPUs"
                + ("" if ok else "; the ranks' selection differs from one process's"))


def _seed_group_run(seeds: list[int], device: torch.device) -> list[float]:
    """A worker of the seed-split row: each seed's small net trained on fixed synthetic data; its accuracies."""
    from .data.device_loader import DeviceLoader
    from .evaluate import loss_and_accuracy, predict_logits
    from .train import TrainConfig, fit

    data, accuracies = _data(8192, 32), []
    for seed in seeds:
        config = TrainConfig(epochs=6, batch_size=256, lr=0.05, warmup_epochs=0, progress=False, seed=seed)
        torch.manual_seed(seed)
        model = _net(64)
        fit(model, data, config, None, device)
        mean, std = data.channel_stats()
        loader = DeviceLoader(data.test_x, data.test_y, 256, device, mean, std)
        logits, labels = predict_logits(model, loader, runtime.select_precision(device, config.amp))
        accuracies.append(loss_and_accuracy(logits, labels)[1])
    return accuracies


def check_seeds_on_two_gpus(device):
    """Two seeds split over two GPUs (``kdlib.devices``, as mnist-kd and cifar10-ast do) against both on one: the
    wall-clock of each (worker start-up included) and the seeds' accuracies, which must agree."""
    from .devices import run_across

    name = "two seeds on two GPUs (seeds split over devices) against both on one"
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if count < 2:
        return _row(name, "skipped", reason=f"needs two GPUs (found {count})", gpu=True)
    gpus = [torch.device("cuda:0"), torch.device("cuda:1")]
    t0 = time.perf_counter()
    (one,) = run_across(_seed_group_run, [[0, 1]], gpus[:1])
    one_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    split = [a for part in run_across(_seed_group_run, [[0], [1]], gpus) for a in part]
    two_seconds = time.perf_counter() - t0
    gap = max(abs(a - b) for a, b in zip(one, split))
    ok = gap <= 0.02  # the same seeds; cuDNN may pick other kernels on the other GPU
    return _row(name, "pass" if ok else "fail",
                f"one GPU {one_seconds:.1f} s, two GPUs {two_seconds:.1f} s ({one_seconds / two_seconds:.2f}x); "
                f"accuracies {[round(a, 4) for a in one]} vs {[round(a, 4) for a in split]}",
                "" if ok else "a seed's accuracy differs between one GPU and two by more than 0.02", gpu=True,
                one_gpu_seconds=one_seconds, two_gpu_seconds=two_seconds)


def run(device: str | torch.device | None = None, out: str | Path | None = None, progress=print) -> dict:
    """Every check on ``device`` (default: a GPU when there is one); writes ``out/selftest.json``."""
    device = runtime.select_device(str(device) if device is not None else None)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    runtime.seed_everything(0)
    sizes = _sizes(device)
    cuda = device.type == "cuda"
    checks = [
        ("fp16", lambda: check_fp16(device)), ("bf16", lambda: check_bf16(device)),
        ("fp32", lambda: check_fp32_cpu(device)), ("channels_last", lambda: check_channels_last(device)),
        ("energy", lambda: check_energy(device)), ("streams", lambda: check_streams(device, sizes)),
        ("threads", lambda: check_threads(device, sizes)),
        ("ast forward", lambda: check_ast(device, "forward", sizes)),
        ("ast stale", lambda: check_ast(device, "stale", sizes)),
        ("store gpu", lambda: check_store(device) if cuda else check_store_gpu_skipped(device)),
        ("store cpu", lambda: None if cuda else check_store(device)),
        ("gpu decode", lambda: check_gpu_decode(device)),
        ("nccl", lambda: check_nccl(device)), ("gloo", lambda: check_gloo(device)),
        ("seeds on two gpus", lambda: check_seeds_on_two_gpus(device)),
    ]
    rows, t_all = [], time.perf_counter()
    for label, check in checks:
        t0 = time.perf_counter()
        try:
            row = check()
        except Exception as exc:  # a failing check is a row, not the end of the self-test
            row = _row(label, "fail", reason=f"{type(exc).__name__}: {exc}", gpu=label in GPU_CHECKS,
                       traceback=traceback.format_exc(limit=3))
        if row is None:
            continue
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        progress(f"{row['status']:>7}  {row['check']}: {row['figure'] or row['reason']}")
    result = {"device": str(device), "hardware": runtime.hardware_info(device), "rows": rows,
              "seconds": round(time.perf_counter() - t_all, 1),
              "passed": all(r["status"] != "fail" for r in rows),
              "note": "figures measured by this run; timings on a shared machine drift"}
    out = Path(out) if out is not None else runtime.default_out_dir("selftest")
    out.mkdir(parents=True, exist_ok=True)
    (out / "selftest.json").write_text(json.dumps(result, indent=2))
    result["path"] = str(out / "selftest.json")
    return result


def main(device: str | None = None, out: str | Path | None = None) -> int:
    result = run(device, out)
    counts = {s: sum(r["status"] == s for r in result["rows"]) for s in ("pass", "fail", "skipped")}
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped in {result['seconds']} s "
          f"on {result['hardware']['device_name']}; {result['path']}")
    return 0 if result["passed"] else 1


__all__ = ["run", "main"]
