"""The one training loop every experiment uses.

Algorithms plug in as an ``Objective``: given the model and a batch it returns the loss to
back-propagate (plain cross-entropy, KD, and later AST's selective step). The loop owns everything
else: optimiser, schedule, mixed precision, progress, validation, checkpoints and resume.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runtime
from .data.device_loader import ComposeBatch, DeviceLoader, RandomAffine, RandomCropFlip
from .data.splits import ImageSplits
from .energy import meter_for
from .evaluate import loss_and_accuracy, predict_logits
from .fileio import atomic_save, atomic_write_json  # noqa: F401  (re-exported: older imports name them here)


@dataclass
class TrainConfig:
    """Plain values with defaults; every field can be overridden from a notebook or the CLI."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # on conv and linear weights; not on BatchNorm parameters and biases
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to zero, stepped every batch
    label_smoothing: float = 0.0
    augment_shift: float = 0.0  # random translation in pixels; 0 with the two below: no augmentation
    augment_rotate: float = 0.0  # degrees
    augment_scale: tuple[float, float] = (1.0, 1.0)
    augment_crop_pad: int = 0  # random crop after this much reflect padding (CIFAR-style)
    augment_flip: bool = False  # random horizontal flip
    eval_batch_size: int = 1024
    amp: str = "auto"  # see runtime.select_precision
    channels_last: bool = True
    seed: int = 0
    deterministic: bool = False
    progress: bool = True

    def augmentation(self):
        """The batched augmentation these settings describe, or None."""
        steps = []
        if self.augment_shift != 0 or self.augment_rotate != 0 or tuple(self.augment_scale) != (1.0, 1.0):
            steps.append(RandomAffine(self.augment_shift, self.augment_rotate, tuple(self.augment_scale)))
        if self.augment_crop_pad or self.augment_flip:
            steps.append(RandomCropFlip(self.augment_crop_pad, self.augment_flip))
        if not steps:
            return None
        return steps[0] if len(steps) == 1 else ComposeBatch(steps)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment_scale"] = list(self.augment_scale)
        return d


# Fields that may change between an interrupted run and its resumption without changing the result.
RESUME_FREE_FIELDS = {"progress", "eval_batch_size"}


class StepOutput(NamedTuple):
    loss: torch.Tensor  # scalar to back-propagate
    logits: torch.Tensor  # logits of the samples that were learned from, for running accuracy
    targets: torch.Tensor  # their labels


class Objective:
    """Cross-entropy on the whole batch. Algorithms subclass this and override ``step``."""

    name = "ce"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> StepOutput:
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits, y)

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor,
                        x: torch.Tensor | None = None) -> torch.Tensor:
        """This objective's loss for each sample of ``logits`` (whose mean is ``step``'s loss), for selection rules
        that learn from part of a batch (kdlib.sparse). ``x``: the inputs, for losses that need them (a teacher)."""
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)

    def epoch_indices(self, epoch: int) -> torch.Tensor | None:
        """The training rows epoch ``epoch`` iterates (in a seeded shuffle), or None for all of them. Called
        before ``on_epoch_start``; the loop passes it to ``train_loader.set_epoch``."""
        return None

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_validation(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """Called with the epoch's validation logits and labels (CPU) before the checkpoint is written;
        adaptive algorithms update themselves here. Returns extra values for the history."""
        return {}

    def epoch_stats(self) -> dict:
        """Extra per-epoch values for the history (an algorithm's temperature, activation rate...)."""
        return {}

    def settings(self) -> dict:
        """What defines this objective's computation; a checkpoint resumes only under the same settings."""
        return {"objective": self.name, "label_smoothing": self.label_smoothing}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear from 1/warmup_steps up to 1, then cosine down to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def schedule_position(epoch: int, steps_done: int, epoch_steps: int, full_epoch_steps: int) -> float:
    """Where the learning-rate schedule stands after ``steps_done`` of an epoch of ``epoch_steps`` steps, in steps of
    a full epoch: epoch progress, not a step count. An epoch that trains on fewer rows (a pruning rule's, see
    ``Objective.epoch_indices``) then spans the same stretch of warm-up and cosine as a full epoch, so the run ends
    at the schedule's end with the same LR per epoch as full training; counting steps would stretch the schedule
    past the last epoch (the LR would never decay to zero) by however many steps pruning saved. A full epoch gives
    exactly the step count: epoch * full + steps_done."""
    return epoch * full_epoch_steps + steps_done * full_epoch_steps / epoch_steps


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )


class CheckpointError(RuntimeError):
    pass


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """``weights_only=True``: a checkpoint from elsewhere cannot run code when loaded."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). Delete it to train this run "
            "again from the start, or point OUT_DIR somewhere else."
        ) from exc


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int  # 0-based
    best_val_accuracy: float
    train_seconds: float  # wall-clock of the training passes, validation excluded
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def energy_joules(self) -> float | None:
        """GPU energy of the training passes (NVML); None where it could not be measured."""
        values = [h.get("energy_joules") for h in self.history]
        return None if not values or any(v is None for v in values) else float(sum(values))

    @property
    def samples_backpropagated(self) -> int:
        return int(sum(h["samples_backpropagated"] for h in self.history))

    @property
    def samples_forwarded(self) -> int:
        return int(sum(h["samples_forwarded"] for h in self.history))


def _sync(device: torch.device) -> None:
    # The current stream only: students trained concurrently on their own streams do not wait for each other.
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def fit(model: nn.Module, data: ImageSplits | None, config: TrainConfig, objective: Objective | None = None,
        device: torch.device | None = None, checkpoint_dir: str | Path | None = None,
        callbacks: tuple[Callable[[int, dict], None], ...] = (), desc: str = "train",
        train_loader=None, val_loader=None, write_checkpoints: bool = True,
        checkpoint_minutes: float | None = None, data_fingerprint: str | None = None, sync=None) -> FitResult:
    """Train ``model`` on ``data.train``, validate each epoch on ``data.val``, keep the best weights.

    ``train_loader``/``val_loader`` replace the in-memory loaders built from ``data`` (for data that does
    not fit in memory, e.g. ``image_store.StoreLoader``): anything with ``len``, ``set_epoch`` and
    batches of (images, labels, indices) on the device; ``set_epoch(epoch, indices=rows)`` where the objective
    trains an epoch on part of the rows (``Objective.epoch_indices``). ``write_checkpoints=False`` (data-parallel ranks
    other than 0) resumes from ``checkpoint_dir`` but never writes to it. ``checkpoint_minutes`` also saves
    ``last.pt`` inside an epoch once that many minutes have passed since the last save (long epochs on a
    session with a time limit); resuming from it replays the epoch's batches up to the saved step without
    training on them (the data order and augmentation draws come from (seed, epoch)), restores the random
    state and the objective's counters, and ends with the same weights as an uninterrupted run.

    With ``checkpoint_dir`` every epoch is saved (``last.pt``) and the best by validation accuracy
    (``best.pt``); calling ``fit`` again with the same folder resumes after the last saved epoch and
    ends with the same weights as an uninterrupted run. On return the model holds the best weights.
    A checkpoint resumes only with the same configuration, objective settings and data: ``data_fingerprint``
    (by default ``data.fingerprint()``) is saved in it and compared on resume.

    ``sync`` (a ``distributed.RankSync``; by default the objective's): data-parallel ranks sum their sample
    counts, training loss/accuracy tallies and GPU energy every epoch, before the checkpoint is written, so
    ``last.pt`` and ``history.json`` hold the run's counts, not rank 0's.

    Randomness a model draws itself (dropout) comes from this run's own copy of torch's global state
    (``runtime.RunRandomState``), so runs on threads (``hpmkd.run_concurrently``) do not disturb each other.
    """
    device = device or runtime.select_device()
    precision = runtime.select_precision(device, config.amp)
    objective = objective or Objective(config.label_smoothing)
    sync = sync if sync is not None else getattr(objective, "sync", None)
    runtime.seed_everything(config.seed, config.deterministic)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    if train_loader is None or val_loader is None:
        mean, std = data.channel_stats()
    if train_loader is None:
        train_loader = DeviceLoader(data.train_x, data.train_y, config.batch_size, device, mean, std, shuffle=True,
                                    drop_last=len(data.train_y) > config.batch_size, augment=config.augmentation(),
                                    seed=config.seed, channels_last=config.channels_last)
    if val_loader is None:
        val_loader = DeviceLoader(data.val_x, data.val_y, config.eval_batch_size, device, mean, std,
                                  channels_last=config.channels_last)
    train_loader.set_epoch(0)  # all rows: the schedule counts in steps of a full epoch
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        rows = getattr(train_loader, "num_rows", None)
        held = f"{rows} training images" if rows is not None else "too few training images"
        raise ValueError(f"no training step: {held} make no full batch of {config.batch_size} (the last partial batch "
                         "is dropped). Use more data or a smaller batch size.")
    if data_fingerprint is None and data is not None:
        data_fingerprint = data.fingerprint()
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
    optimizer = build_optimizer(model, config)
    position = [0.0]  # the schedule's position, set before each scheduler.step(): see schedule_position
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: warmup_cosine(position[0], warmup_steps, total_steps))
    scaler = precision.grad_scaler()

    history: list[dict] = []
    best_val, best_epoch, train_seconds, start_epoch = -1.0, -1, 0.0, 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    save_dir = ckpt_dir if write_checkpoints else None
    if last_path is not None and last_path.exists():
        state = load_checkpoint(last_path)
        saved = {k: v for k, v in state["config"].items() if k not in RESUME_FREE_FIELDS}
        wanted = {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}
        if "objective_settings" in state:  # absent in checkpoints written before settings were recorded
            saved.update(state["objective_settings"])
            wanted.update(objective.settings())
        if data_fingerprint is not None:
            saved["data_fingerprint"], wanted["data_fingerprint"] = state.get("data_fingerprint"), data_fingerprint
        if saved != wanted:
            changed = {k: (saved.get(k), wanted.get(k)) for k in wanted if saved.get(k) != wanted.get(k)}
            if "data_fingerprint" in changed:
                old = changed["data_fingerprint"][0]
                raise CheckpointError(
                    f"{last_path} was trained on other data (fingerprint "
                    f"{old[:12] + '...' if old else 'not recorded: an older kdlib'} -> {data_fingerprint[:12]}...). "
                    "Use another OUT_DIR for this data, or delete the folder to start over."
                )
            raise CheckpointError(
                f"{last_path} was written with a different configuration {changed} (saved -> now). "
                "Use another OUT_DIR for the new configuration, or delete the folder to start over."
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        objective.load_state_dict(state["objective"])
        history, best_val, best_epoch = state["history"], state["best_val_accuracy"], state["best_epoch"]
        train_seconds, start_epoch = state["train_seconds"], state["epoch"] + 1
        mid_epoch = state.get("mid_epoch")
        if mid_epoch is not None:  # saved inside the epoch: that epoch is resumed, not skipped
            start_epoch = state["epoch"]
    else:
        mid_epoch = None
    resumed_from = start_epoch
    meter = meter_for(device)  # the training GPU only; None on a CPU
    rng = runtime.RunRandomState(device)
    group = runtime.concurrent_group_size()
    if sync is not None:
        energy_scope = f"sum over {sync.world_size} ranks, each metering its own GPU"
    elif group and group > 1:
        energy_scope = f"{device} shared by {group} concurrent runs: the group's energy, not this run's"
    else:
        energy_scope = f"{device} only"

    def run_state(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "objective": objective.state_dict(), "epoch": epoch,
                "history": history, "best_val_accuracy": best_val, "best_epoch": best_epoch,
                "train_seconds": train_seconds, "config": config.to_dict(), "objective_settings": objective.settings(),
                "data_fingerprint": data_fingerprint}

    last_save = time.perf_counter()
    initial_steps = start_epoch * steps_per_epoch + (mid_epoch["step"] if mid_epoch else 0)
    bar = tqdm(total=total_steps, initial=initial_steps, desc=desc, disable=not config.progress,
               dynamic_ncols=True, mininterval=1.0)
    for epoch in range(start_epoch, config.epochs):
        # Everything random in an epoch derives from (seed, epoch): resuming reproduces it exactly.
        rng.seed(config.seed * 1_000_003 + epoch)  # as torch.manual_seed did, in this run's own copy
        rows = objective.epoch_indices(epoch)  # a pruning rule's rows for this epoch, None for all
        if rows is None:
            train_loader.set_epoch(epoch)
        else:
            train_loader.set_epoch(epoch, indices=rows)
        epoch_steps = len(train_loader)
        objective.on_epoch_start(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, skip, carried_seconds, carried_energy = 0, 0, 0.0, 0.0
        if mid_epoch is not None and epoch == start_epoch:
            skip, seen = mid_epoch["step"], mid_epoch["seen"]
            loss_sum += mid_epoch["loss_sum"]
            correct += mid_epoch["correct"]
            carried_seconds, carried_energy = mid_epoch["seconds"], mid_epoch["energy"]
            objective.load_state_dict(state["objective"])  # its counters for the part of the epoch already done
            rng.load(mid_epoch["rng"], mid_epoch.get("cuda_rng"))
        _sync(device)
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        for step, (x, y, index) in enumerate(train_loader):
            if step < skip:
                continue  # already learned from before the interruption; the loader still drew its randomness
            with precision.autocast(), rng.active():
                out = objective.step(model, x, y, index)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            position[0] = schedule_position(epoch, step + 1, epoch_steps, steps_per_epoch)
            scheduler.step()
            n = len(out.targets)
            loss_sum += out.loss.detach().float() * n
            correct += (out.logits.detach().argmax(1) == out.targets).sum()
            seen += n
            bar.update(1)
            if step % 25 == 0 or step == epoch_steps - 1:
                elapsed = time.perf_counter() - t0
                bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{loss_sum.item() / max(seen, 1):.4f}",
                                acc=f"{correct.item() / max(seen, 1):.4f}", lr=f"{scheduler.get_last_lr()[0]:.4f}",
                                img_s=f"{(step + 1 - skip) * config.batch_size / max(elapsed, 1e-9):.0f}")
            if (checkpoint_minutes is not None and save_dir and step < epoch_steps - 1
                    and time.perf_counter() - last_save >= 60 * checkpoint_minutes):
                _sync(device)
                part_energy = meter.stop() if meter is not None else None
                if meter is not None:
                    meter.start()
                carried_energy = None if carried_energy is None or part_energy is None else carried_energy + part_energy
                mid = {"step": step + 1, "seen": seen, "loss_sum": loss_sum.item(), "correct": int(correct.item()),
                       "seconds": carried_seconds + time.perf_counter() - t0, "energy": carried_energy,
                       "rng": rng.cpu_state, "cuda_rng": rng.cuda_state}
                carried_seconds, t0 = mid["seconds"], time.perf_counter()
                atomic_save({**run_state(epoch), "mid_epoch": mid}, last_path)
                last_save = time.perf_counter()
        _sync(device)
        epoch_seconds = carried_seconds + time.perf_counter() - t0
        energy = meter.stop() if meter is not None else None
        if energy is not None:  # plus the parts measured before mid-epoch saves (None if any was unavailable)
            energy = None if carried_energy is None else energy + carried_energy
        train_seconds += epoch_seconds
        val_logits, val_labels = predict_logits(model, val_loader, precision)
        val_loss, val_acc = loss_and_accuracy(val_logits, val_labels)
        adaptive_stats = objective.on_validation(epoch, val_logits, val_labels)
        stats = objective.epoch_stats()
        forwarded, backpropagated = stats.get("samples_forwarded", seen), stats.get("samples_backpropagated", seen)
        loss_total, correct_total, seen_total = loss_sum.item(), correct.item(), seen
        if sync is not None:  # the run's counts are the ranks' sums, in the checkpoint written below too
            totals = sync.sum(torch.tensor([loss_total, correct_total, seen, forwarded, backpropagated,
                                            float("nan") if energy is None else energy],
                                           dtype=torch.float64, device=device)).tolist()
            loss_total, correct_total = totals[0], totals[1]
            seen_total, forwarded, backpropagated = (int(round(v)) for v in totals[2:5])
            energy = None if math.isnan(totals[5]) else totals[5]  # None if any rank could not read its GPU
        record = {
            "epoch": epoch + 1,
            "lr": scheduler.get_last_lr()[0],
            "train_loss": loss_total / max(seen_total, 1),
            "train_accuracy": correct_total / max(seen_total, 1),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "epoch_seconds": epoch_seconds,
            "images_per_second": epoch_steps * config.batch_size / max(epoch_seconds, 1e-9),
            "energy_joules": energy,
            "energy_scope": energy_scope if energy is not None else None,
            **adaptive_stats,
            **stats,
            "samples_forwarded": forwarded,
            "samples_backpropagated": backpropagated,
        }
        history.append(record)
        if val_acc > best_val:
            best_val, best_epoch = val_acc, epoch
            if save_dir:
                atomic_save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_acc}, ckpt_dir / "best.pt")
            else:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if save_dir:
            atomic_save(run_state(epoch), last_path)
            atomic_write_json(history, ckpt_dir / "history.json")
            last_save = time.perf_counter()
        for callback in callbacks:
            callback(epoch, record)
    bar.close()

    if ckpt_dir and not write_checkpoints:
        pass  # a non-writing rank keeps its last weights; rank 0 holds (and evaluates) the best
    elif ckpt_dir and (ckpt_dir / "best.pt").exists():
        model.load_state_dict(load_checkpoint(ckpt_dir / "best.pt", map_location=device)["model"])
    elif best_epoch >= 0 and resumed_from < config.epochs:
        model.load_state_dict(best_state)
    return FitResult(history, best_epoch, best_val, train_seconds, resumed_from)
