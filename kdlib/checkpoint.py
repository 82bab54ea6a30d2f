"""Checkpoints and resume for the training loop (``train.fit``).

A run's checkpoint folder holds ``last.pt`` (the whole run state, written after every epoch), ``best.pt``
(the weights of the best epoch by validation accuracy) and ``history.json`` (the per-epoch history, readable
without torch). Calling ``fit`` again with the same folder resumes after the last saved epoch and ends with the
same weights as an uninterrupted run. A checkpoint resumes only under the same configuration (less
``RESUME_FREE_FIELDS``), objective settings and data fingerprint; anything else is refused with a message that
names what changed.

Mid-epoch saves (``minutes``: long epochs on a session with a time limit) write ``last.pt`` inside an epoch once
that many minutes have passed since the last save, with ``mid_epoch``: the partial epoch's step, tallies,
wall-clock, energy and random state. Resuming from it replays the epoch's batches up to the saved step without
training on them (the data order and augmentation draws come from (seed, epoch)), restores the random state and
the objective's counters, and ends with the same weights as an uninterrupted run.

A folder opened with ``write=False`` (data-parallel ranks other than 0) is resumed from but never written to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .fileio import atomic_save, atomic_write_json, check_kept
from .interrupt import RunInterrupted

# Fields that may change between an interrupted run and its resumption without changing the result.
RESUME_FREE_FIELDS = {"progress", "eval_batch_size"}


class CheckpointError(RuntimeError):
    pass


def says_interrupt(fit):
    """Decorates ``train.fit``: Ctrl-C during training becomes a ``RunInterrupted`` line saying what its checkpoint
    folder keeps (the epochs ``history.json`` records) and how to resume, instead of a traceback."""
    import functools
    import inspect
    import json

    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        try:
            return fit(*args, **kwargs)
        except RunInterrupted:
            raise
        except KeyboardInterrupt:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            desc, folder = bound.arguments["desc"], bound.arguments["checkpoint_dir"]
            if folder is None:
                raise RunInterrupted(f"{desc} stopped; it keeps no checkpoint, so it starts over when run again") from None
            try:
                epochs = len(json.loads((Path(folder) / "history.json").read_text()))
            except (OSError, ValueError):
                epochs = 0
            kept = (f"and its last checkpoint ({Path(folder) / 'last.pt'}, after epoch {epochs})" if epochs else
                    "(none of this one: no epoch of it had finished)")
            raise RunInterrupted(f"{desc} stopped; every finished run is kept {kept}: run the same command (or cell) "
                                 "again to resume from there") from None
    return wrapper


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """``weights_only=True``: a checkpoint from elsewhere cannot run code when loaded."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). Delete it to train this run "
            "again from the start, or point OUT_DIR somewhere else."
        ) from exc


def check_resumable(state: dict, path: Path, config: dict, objective_settings: dict,
                    data_fingerprint: str | None) -> None:
    """Raise ``CheckpointError`` naming what differs unless ``state`` was written under the same configuration
    (``TrainConfig.to_dict()``, less ``RESUME_FREE_FIELDS``), objective settings and data."""
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path} carries no run identity (its configuration is not recorded: an older kdlib, or "
                              "not a kdlib checkpoint), so it cannot be checked against this run. Delete the folder "
                              f"{path.parent} to train this run again, or point OUT_DIR somewhere else.")
    saved = {k: v for k, v in state["config"].items() if k not in RESUME_FREE_FIELDS}
    wanted = {k: v for k, v in config.items() if k not in RESUME_FREE_FIELDS}
    if "objective_settings" in state:  # absent in checkpoints written before settings were recorded
        saved.update(state["objective_settings"])
        wanted.update(objective_settings)
    if data_fingerprint is not None:
        saved["data_fingerprint"], wanted["data_fingerprint"] = state.get("data_fingerprint"), data_fingerprint
    if saved == wanted:
        return
    changed = {k: (saved.get(k), wanted.get(k)) for k in wanted if saved.get(k) != wanted.get(k)}
    if "data_fingerprint" in changed:
        old = changed["data_fingerprint"][0]
        raise CheckpointError(
            f"{path} was trained on other data (fingerprint "
            f"{old[:12] + '...' if old else 'not recorded: an older kdlib'} -> {data_fingerprint[:12]}...). "
            "Use another OUT_DIR for this data, or delete the folder to start over."
        )
    raise CheckpointError(
        f"{path} was written with a different configuration {changed} (saved -> now). "
        "Use another OUT_DIR for the new configuration, or delete the folder to start over."
    )


def _epoch_name(epoch) -> str:
    return str(epoch + 1) if isinstance(epoch, int) else repr(epoch)


def _load_part(part, state, name: str, path: Path) -> None:
    """``part.load_state_dict(state)``; weights of another model (other shapes or names) are a CheckpointError."""
    try:
        part.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: its {name} state does not fit this run's ({type(exc).__name__}: {first}). It was "
                              f"written for another model; delete the folder {path.parent} to train this run "
                              "again.") from exc


# What last.pt holds beside its identity: everything a resumed run goes on from.
RUN_STATE = ("model", "optimizer", "scheduler", "scaler", "objective", "epoch", "history", "best_val_accuracy",
             "best_epoch", "train_seconds")


@dataclass
class Progress:
    """How far a run has come: what ``last.pt`` carries besides the weights and the optimiser's state."""

    history: list[dict] = field(default_factory=list)
    best_val_accuracy: float = -1.0
    best_epoch: int = -1  # 0-based; -1 before the first validation
    train_seconds: float = 0.0
    start_epoch: int = 0  # the first epoch this call trains
    mid_epoch: dict | None = None  # the partial epoch ``start_epoch`` when it was saved inside that epoch

    def steps_done(self, steps_per_epoch: int) -> int:
        return self.start_epoch * steps_per_epoch + (self.mid_epoch["step"] if self.mid_epoch else 0)


class Checkpoints:
    """One run's checkpoint folder (``folder`` None: nothing saved, the best weights kept in memory) and the
    training state it saves and restores: model, optimiser, schedule, grad scaler and objective."""

    def __init__(self, folder: str | Path | None, model, optimizer, scheduler, scaler, objective, config,
                 data_fingerprint: str | None, write: bool = True, minutes: float | None = None):
        self.folder = Path(folder) if folder else None
        self.last_path = self.folder / "last.pt" if self.folder else None
        self.write, self.minutes = write and self.folder is not None, minutes
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.objective, self.config, self.data_fingerprint = objective, config, data_fingerprint
        self._saved_objective = None  # the objective's state in the last.pt resumed from
        self._best_weights = None  # without a folder
        self._progress = Progress()  # what resume() found; fit() goes on from it
        self._last_save = time.perf_counter()

    def resume(self) -> Progress:
        """Load ``last.pt`` if there is one (after checking it fits this run) and say where training goes on."""
        if self.last_path is not None:  # written earlier in this session and gone: the folder vanished mid-run
            check_kept(self.last_path)
            check_kept(self.folder / "history.json")  # the timelines count epochs from it
        if self.last_path is None or not self.last_path.exists():
            self._progress = Progress()
            return self._progress
        state = load_checkpoint(self.last_path)
        check_resumable(state, self.last_path, self.config.to_dict(), self.objective.settings(), self.data_fingerprint)
        missing = [key for key in RUN_STATE if key not in state]
        if missing:
            raise CheckpointError(f"{self.last_path} lacks {', '.join(missing)}: it is not a whole run's state (a best.pt "
                                  f"copied over it?). Delete the folder {self.folder} to train this run again.")
        for part in ("model", "optimizer", "scheduler", "scaler", "objective"):
            _load_part(getattr(self, part), state[part], part, self.last_path)
        self._saved_objective = state["objective"]
        mid_epoch = state.get("mid_epoch")
        # Saved inside an epoch: that epoch is resumed, not skipped.
        start_epoch = state["epoch"] if mid_epoch is not None else state["epoch"] + 1
        self._progress = Progress(state["history"], state["best_val_accuracy"], state["best_epoch"],
                                  state["train_seconds"], start_epoch, mid_epoch)
        return self._progress

    def restore_mid_epoch(self, progress: Progress, rng) -> dict:
        """At the start of the epoch saved inside: the objective's counters and the random state as they were at
        the save (``rng``: the run's ``runtime.RunRandomState``). Returns the partial epoch's tallies."""
        mid = progress.mid_epoch
        self.objective.load_state_dict(self._saved_objective)
        rng.load(mid["rng"], mid.get("cuda_rng"))
        return mid

    def identity(self) -> dict:
        """What ``check_resumable`` checks: ``last.pt`` and ``best.pt`` both carry it."""
        return {"config": self.config.to_dict(), "objective_settings": self.objective.settings(),
                "data_fingerprint": self.data_fingerprint}

    def state(self, epoch: int, progress: Progress) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "objective": self.objective.state_dict(), "epoch": epoch, "history": progress.history,
                "best_val_accuracy": progress.best_val_accuracy, "best_epoch": progress.best_epoch,
                "train_seconds": progress.train_seconds, **self.identity()}

    def mid_epoch_due(self, step: int, steps_per_epoch: int) -> bool:
        """True when ``minutes`` have passed since the last save and ``step`` is not the epoch's last."""
        return (self.minutes is not None and self.write and step < steps_per_epoch - 1
                and time.perf_counter() - self._last_save >= 60 * self.minutes)

    def save_mid_epoch(self, epoch: int, progress: Progress, mid_epoch: dict) -> None:
        atomic_save({**self.state(epoch, progress), "mid_epoch": mid_epoch}, self.last_path)
        self._last_save = time.perf_counter()

    def save_epoch(self, epoch: int, progress: Progress) -> None:
        """After an epoch's validation: ``best.pt`` if the epoch is the best so far, ``last.pt``, ``history.json``."""
        if progress.best_epoch == epoch:
            if self.write:
                atomic_save({"model": self.model.state_dict(), "epoch": epoch,
                             "val_accuracy": progress.best_val_accuracy, **self.identity()}, self.folder / "best.pt")
            elif self.folder is None:
                self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.write:
            atomic_save(self.state(epoch, progress), self.last_path)
            atomic_write_json(progress.history, self.folder / "history.json")
            self._last_save = time.perf_counter()

    def restore_best(self, device) -> None:
        """Put the best epoch's weights in the model. A rank that does not write keeps its last weights; rank 0
        holds (and evaluates) the best."""
        if self.folder is not None and not self.write:
            return
        if self.folder is None:
            if self._best_weights is not None:
                self.model.load_state_dict(self._best_weights)
            return
        progress, path = self._progress, self.folder / "best.pt"
        if progress.best_epoch < 0:
            return  # no epoch validated yet
        if not path.exists():
            raise CheckpointError(f"{path} is missing, though {self.last_path.name} records epoch "
                                  f"{progress.best_epoch + 1} as the best: the best weights are lost. Delete the folder "
                                  f"{self.folder} to train this run again.")
        state = load_checkpoint(path, map_location=device)
        check_resumable(state, path, self.config.to_dict(), self.objective.settings(), self.data_fingerprint)
        # The best epoch and its accuracy must be the ones this run's last.pt records: a best.pt copied in from
        # another run made with the same settings would otherwise be taken for this run's.
        if state.get("epoch") != progress.best_epoch or state.get("val_accuracy") != progress.best_val_accuracy:
            raise CheckpointError(
                f"{path} holds epoch {_epoch_name(state.get('epoch'))} (validation accuracy {state.get('val_accuracy')}), "
                f"but this run's {self.last_path.name} records epoch {progress.best_epoch + 1} (validation accuracy "
                f"{progress.best_val_accuracy}) as its best: it is not this run's. Delete the folder {self.folder} "
                "to train this run again.")
        _load_part(self.model, state["model"], "model", path)
