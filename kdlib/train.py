"""The one training loop every experiment uses.

Algorithms plug in as an ``Objective`` (``kdlib.objective``): given the model and a batch it returns the loss
to back-propagate (plain cross-entropy, KD, AST's selective step). The loop owns everything else: optimiser,
schedule, mixed precision, progress and validation; saving and resuming are ``kdlib.checkpoint``'s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from . import runtime
from .checkpoint import Checkpoints, says_interrupt
from .data.device_loader import ComposeBatch, DeviceLoader, RandomAffine, RandomCropFlip
from .data.splits import ImageSplits
from .energy import meter_for
from .evaluate import loss_and_accuracy, predict_logits
from .objective import Objective


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


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear from 1/warmup_steps up to 1, then cosine down to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Warm-up then cosine over the run's full-epoch steps; step it with ``advance_schedule``."""
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup_steps, total_steps))


def schedule_position(epoch: int, steps_done: int, epoch_steps: int, full_epoch_steps: int) -> float:
    """Where the learning-rate schedule stands after ``steps_done`` of an epoch of ``epoch_steps`` steps, in steps of
    a full epoch: epoch progress, not a step count. An epoch that trains on fewer rows (a pruning rule's, see
    ``Objective.epoch_indices``) then spans the same stretch of warm-up and cosine as a full epoch, so the run ends
    at the schedule's end with the same LR per epoch as full training; counting steps would stretch the schedule
    past the last epoch (the LR would never decay to zero) by however many steps pruning saved. A full epoch gives
    exactly the step count: epoch * full + steps_done."""
    return epoch * full_epoch_steps + steps_done * full_epoch_steps / epoch_steps


def advance_schedule(scheduler, epoch: int, steps_done: int, epoch_steps: int, full_epoch_steps: int) -> None:
    """Move the schedule to ``schedule_position``. ``LambdaLR.step`` adds one to ``last_epoch`` and evaluates the
    factor there; ``last_epoch`` is saved with the scheduler, so a resumed run goes on from the same position."""
    scheduler.last_epoch = schedule_position(epoch, steps_done, epoch_steps, full_epoch_steps) - 1
    scheduler.step()


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

    @property
    def optimizer_steps(self) -> int:
        return int(sum(h.get("optimizer_steps", 0) for h in self.history))


def take_step(out, optimizer, scaler) -> None:
    """One optimizer step on ``out.loss`` (mixed precision through the grad scaler)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out.loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _sync(device: torch.device) -> None:
    # The current stream only: students trained concurrently on their own streams do not wait for each other.
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def make_loaders(data: ImageSplits | None, config: TrainConfig, device: torch.device, train_loader=None,
                 val_loader=None):
    """The in-memory loaders of ``data`` (shuffled and augmented for training), unless given; refuses a training
    loader with no full batch."""
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
    if len(train_loader) == 0:
        rows = getattr(train_loader, "num_rows", None)
        held = f"{rows} training images" if rows is not None else "too few training images"
        raise ValueError(f"no training step: {held} make no full batch of {config.batch_size} (the last partial batch "
                         "is dropped). Use more data or a smaller batch size.")
    return train_loader, val_loader


def energy_scope(device: torch.device, sync) -> str:
    """Whose energy the GPU meter reads."""
    group = runtime.concurrent_group_size()
    if sync is not None:
        return f"sum over {sync.world_size} ranks, each metering its own GPU"
    if group and group > 1:
        return f"{device} shared by {group} concurrent runs: the group's energy, not this run's"
    return f"{device} only"


class EpochTally:
    """One epoch's training pass: loss and accuracy sums kept on the device (no sync per step), samples seen,
    wall-clock and GPU energy. ``saved``: the tallies of a mid-epoch checkpoint (``snapshot``), to go on from."""

    def __init__(self, device: torch.device, meter, saved: dict | None = None):
        self.device, self.meter = device, meter
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.skip, self.seen, self.seconds, self.energy = 0, 0, 0.0, 0.0  # seconds, energy: up to the last snapshot
        self.steps = 0  # optimizer steps taken (an accumulating objective takes fewer than there are batches)
        if saved is not None:  # the steps already learned from are skipped; the loader still draws their randomness
            self.skip, self.seen, self.seconds, self.energy = saved["step"], saved["seen"], saved["seconds"], saved["energy"]
            self.steps = saved.get("optimizer_steps", self.skip)
            self.loss_sum += saved["loss_sum"]
            self.correct += saved["correct"]

    def start(self) -> None:
        _sync(self.device)
        if self.meter is not None:
            self.meter.start()
        self.began = self.t0 = time.perf_counter()

    def add(self, out) -> None:
        self.steps += 1
        n = len(out.targets)
        self.loss_sum += out.loss.detach().float() * n
        self.correct += (out.logits.detach().argmax(1) == out.targets).sum()
        self.seen += n

    def postfix(self, epoch: int, config: TrainConfig, step: int, lr: float) -> dict:
        seen, elapsed = max(self.seen, 1), max(time.perf_counter() - self.began, 1e-9)
        return dict(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{self.loss_sum.item() / seen:.4f}",
                    acc=f"{self.correct.item() / seen:.4f}", lr=f"{lr:.4f}",
                    img_s=f"{(step + 1 - self.skip) * config.batch_size / elapsed:.0f}")

    def stop(self) -> tuple[float, float | None]:
        """Wall-clock and GPU energy of the pass so far (energy None if any part could not be read)."""
        _sync(self.device)
        part = self.meter.stop() if self.meter is not None else None
        now = time.perf_counter()
        seconds, self.t0 = self.seconds + now - self.t0, now
        return seconds, None if self.energy is None or part is None else self.energy + part

    def snapshot(self, step: int, rng) -> dict:
        """The tallies after ``step`` steps, for a mid-epoch checkpoint; the clock and the meter go on."""
        self.seconds, self.energy = self.stop()
        if self.meter is not None:
            self.meter.start()
        return {"step": step, "seen": self.seen, "loss_sum": self.loss_sum.item(), "correct": int(self.correct.item()),
                "seconds": self.seconds, "energy": self.energy, "optimizer_steps": self.steps, "rng": rng.cpu_state,
                "cuda_rng": rng.cuda_state}

    def totals(self, stats: dict, energy: float | None, sync) -> tuple:
        """(loss sum, correct, seen, forwarded, backpropagated, energy) of the epoch: with ``sync``, the ranks'
        sums (energy None if any rank could not read its GPU)."""
        forwarded, backpropagated = stats.get("samples_forwarded", self.seen), stats.get("samples_backpropagated", self.seen)
        if sync is None:
            return self.loss_sum.item(), self.correct.item(), self.seen, forwarded, backpropagated, energy
        totals = sync.sum(torch.tensor([self.loss_sum.item(), self.correct.item(), self.seen, forwarded, backpropagated,
                                        float("nan") if energy is None else energy],
                                       dtype=torch.float64, device=self.device)).tolist()
        return (totals[0], totals[1], *(int(round(v)) for v in totals[2:5]), None if math.isnan(totals[5]) else totals[5])


@says_interrupt  # Ctrl-C: one line saying what is kept, not a traceback
def fit(model: nn.Module, data: ImageSplits | None, config: TrainConfig, objective: Objective | None = None,
        device: torch.device | None = None, checkpoint_dir: str | Path | None = None,
        callbacks: tuple[Callable[[int, dict], None], ...] = (), desc: str = "train",
        train_loader=None, val_loader=None, write_checkpoints: bool = True,
        checkpoint_minutes: float | None = None, data_fingerprint: str | None = None, sync=None) -> FitResult:
    """Train ``model`` on ``data.train``, validate each epoch on ``data.val``; on return it holds the best weights.

    ``train_loader``/``val_loader`` replace the in-memory loaders built from ``data`` (data that does not fit in
    memory, e.g. ``image_store.StoreLoader``): anything with ``len``, ``set_epoch`` and batches of (images,
    labels, indices) on the device, and ``set_epoch(epoch, indices=rows)`` where the objective trains an epoch on part of
    the rows (``Objective.epoch_indices``). ``checkpoint_dir`` saves every epoch and resumes an interrupted run to the
    same weights, ``write_checkpoints=False`` resumes without writing, ``checkpoint_minutes`` also saves inside
    an epoch, and ``data_fingerprint`` (by default ``data.fingerprint()``) guards resuming (``kdlib.checkpoint``).
    ``sync`` (a ``distributed.RankSync``; by default the objective's): data-parallel ranks sum their counts, loss
    and accuracy tallies and GPU energy every epoch, before the checkpoint is written. What a model draws itself
    (dropout) comes from this run's own ``runtime.RunRandomState``, so runs on threads do not disturb each other.
    """
    device = device or runtime.select_device()
    precision = runtime.select_precision(device, config.amp)
    objective = objective or Objective(config.label_smoothing)
    sync = sync if sync is not None else getattr(objective, "sync", None)
    runtime.seed_everything(config.seed, config.deterministic)
    model.to(device=device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    train_loader, val_loader = make_loaders(data, config, device, train_loader, val_loader)
    steps_per_epoch = len(train_loader)
    if data_fingerprint is None and data is not None:
        data_fingerprint = data.fingerprint()
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    scaler = precision.grad_scaler()
    checkpoints = Checkpoints(checkpoint_dir, model, optimizer, scheduler, scaler, objective, config, data_fingerprint,
                              write_checkpoints, checkpoint_minutes)
    progress = checkpoints.resume()
    resumed_from, scope = progress.start_epoch, energy_scope(device, sync)
    meter, rng = meter_for(device), runtime.RunRandomState(device)  # the training GPU's meter (None on a CPU)
    bar = runtime.progress_bar(total=config.epochs * steps_per_epoch, initial=progress.steps_done(steps_per_epoch), desc=desc,
               disable=not config.progress, dynamic_ncols=True, mininterval=1.0)
    for epoch in range(progress.start_epoch, config.epochs):
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
        resuming = progress.mid_epoch is not None and epoch == resumed_from
        tally = EpochTally(device, meter, checkpoints.restore_mid_epoch(progress, rng) if resuming else None)
        tally.start()
        for step, (x, y, index) in enumerate(train_loader):
            if step < tally.skip:
                continue  # learned from before the interruption
            with precision.autocast(), rng.active():
                out = objective.step(model, x, y, index)
            if out is not None:  # None: the objective holds this batch's samples for a later step
                take_step(out, optimizer, scaler)
                tally.add(out)
            # the schedule follows the data seen (epoch progress), stepped or not
            advance_schedule(scheduler, epoch, step + 1, epoch_steps, steps_per_epoch)
            bar.update(1)
            if step % 25 == 0 or step == epoch_steps - 1:
                bar.set_postfix(tally.postfix(epoch, config, step, scheduler.get_last_lr()[0]))
            if checkpoints.mid_epoch_due(step, epoch_steps):
                checkpoints.save_mid_epoch(epoch, progress, tally.snapshot(step + 1, rng))
        with precision.autocast(), rng.active():
            out = objective.final_step(model)
        if out is not None:
            take_step(out, optimizer, scaler)
            tally.add(out)
        objective.before_validation(model, train_loader, epoch)
        epoch_seconds, energy = tally.stop()
        progress.train_seconds += epoch_seconds
        val_logits, val_labels = predict_logits(model, val_loader, precision)
        val_loss, val_acc = loss_and_accuracy(val_logits, val_labels)
        adaptive_stats = objective.on_validation(epoch, val_logits, val_labels)
        stats = objective.epoch_stats()
        loss_sum, correct, seen, forwarded, backpropagated, energy = tally.totals(stats, energy, sync)
        if sync is not None and "epoch_samples" in stats:  # a rank's batches hold its part of the global batch
            stats["epoch_samples"] = int(sync.sum(torch.tensor([stats["epoch_samples"]], dtype=torch.float64,
                                                               device=device)).item())
        record = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
                  "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                  "val_loss": val_loss, "val_accuracy": val_acc, "epoch_seconds": epoch_seconds,
                  "images_per_second": epoch_steps * config.batch_size / max(epoch_seconds, 1e-9),
                  "energy_joules": energy, "energy_scope": scope if energy is not None else None,
                  **adaptive_stats, **stats, "samples_forwarded": forwarded, "samples_backpropagated": backpropagated,
                  "optimizer_steps": tally.steps}
        progress.history.append(record)
        if val_acc > progress.best_val_accuracy:
            progress.best_val_accuracy, progress.best_epoch = val_acc, epoch
        checkpoints.save_epoch(epoch, progress)
        if config.progress:
            runtime.report_epoch(desc, record, config.epochs)
        for callback in callbacks:
            callback(epoch, record)
    bar.close()
    checkpoints.restore_best(device)
    return FitResult(progress.history, progress.best_epoch, progress.best_val_accuracy, progress.train_seconds,
                     resumed_from)
