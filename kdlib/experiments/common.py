"""Steps shared by every experiment: train one model once, test it once, remember the result."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import runs, runtime
from ..data.device_loader import DeviceLoader
from ..data.splits import ImageSplits
from ..evaluate import confusion_matrix, loss_and_accuracy, per_class_accuracy, predict_logits
from ..models import count_parameters, create_model
from ..objective import Objective
from ..fileio import atomic_write_json, claim_folder
from ..train import FitResult, TrainConfig, fit


def prepare_out_dir(out_dir: str | Path | None, experiment: str) -> Path:
    if out_dir is not None and (not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip()):
        raise ValueError(f"OUT_DIR={out_dir!r}: name a folder (a string), or None for the default")
    out = Path(out_dir) if out_dir else runtime.default_out_dir(experiment)
    problem = out_dir_problem(out, "OUT_DIR")
    if problem:
        raise ValueError(problem)
    claim_folder(out)  # a folder deleted or replaced mid-run then stops the run (fileio.FolderVanishedError)
    (out / "figures").mkdir(exist_ok=True)
    if runtime.detect_platform() == "kaggle":  # a new version starts empty: continue the previous version's runs
        from ..sessions import restore_previous_output

        restore_previous_output(experiment, out)
    return out


def out_dir_problem(out: Path, name: str = "--out") -> str | None:
    """Why ``out`` cannot hold a run (one line naming ``name``, the parameter or option), or None when it can; the
    folder is made if missing."""
    import tempfile

    if out.exists() and not out.is_dir():
        return f"{name} {str(out)!r} is a file, not a folder: name a folder (it is created if missing)"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"{name} {str(out)!r} cannot be written ({exc.strerror or exc}): choose a folder you can write to"
    return None


def make_test_loader(data: ImageSplits, device: torch.device, config: TrainConfig) -> DeviceLoader:
    mean, std = data.channel_stats()
    return DeviceLoader(data.test_x, data.test_y, config.eval_batch_size, device, mean, std,
                        channels_last=config.channels_last)


def train_and_test(method: str, model_name: str, data: ImageSplits, config: TrainConfig, out_dir: Path,
                   device: torch.device, objective: Objective | None = None, model: nn.Module | None = None,
                   evaluate_test: bool = True, callbacks: tuple = (), **model_kwargs) -> tuple[nn.Module, dict]:
    """Train ``model_name`` with ``objective``, keep the best epoch by validation accuracy, then use
    the test split once. Checkpoints and the record (test predictions included) live in the run's folder
    (``kdlib.runs``):
    calling again resumes an interrupted run, or returns a finished one without touching test data, in
    both cases only if the data and every setting are the ones it was made with (else ``RunMismatchError``).
    ``evaluate_test=False`` (probe runs that only inform a choice) never touches the test split. ``callbacks``:
    ``fit``'s, called after each epoch's checkpoint (one that raises stops the run there; calling again resumes it)."""
    run_dir = runs.run_dir(out_dir, method, config.seed)
    objective = objective or Objective(config.label_smoothing)
    identity = runs.identity(method, model_name, model_kwargs, config.to_dict(), objective.settings(),
                             data.fingerprint(), evaluate_test=evaluate_test)
    record_path = runs.record_path(out_dir, method, config.seed)
    finished = runs.read_record(record_path, identity) if record_path.exists() else None
    # Seed before building the model, so its initial weights depend on the seed alone.
    runtime.seed_everything(config.seed, config.deterministic)
    if model is None:
        model = create_model(model_name, num_classes=data.num_classes, in_chans=data.in_chans, **model_kwargs)
    result: FitResult = fit(model, data, config, objective, device, checkpoint_dir=run_dir, callbacks=callbacks,
                            desc=f"{method} seed {config.seed}")
    if finished is not None:
        return model, finished
    if not evaluate_test:
        record = {"method": method, "model": model_name, "params": count_parameters(model), "seed": config.seed,
                  "val_accuracy": result.best_val_accuracy, "val_loss": result.history[result.best_epoch]["val_loss"],
                  "best_epoch": result.best_epoch + 1, "train_seconds": result.train_seconds, "epochs": config.epochs,
                  "history": result.history, "identity": identity, **where_trained(device)}
        runs.write_record(out_dir, record)
        return model, record
    precision = runtime.select_precision(device, config.amp)
    logits, labels = predict_logits(model, make_test_loader(data, device, config), precision)
    _, test_acc = loss_and_accuracy(logits, labels)
    predictions = logits.argmax(1).numpy()
    cm = confusion_matrix(predictions, labels.numpy(), data.num_classes)
    record = {
        "method": method,
        "model": model_name,
        "params": count_parameters(model),
        "seed": config.seed,
        "test_accuracy": test_acc,
        "val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch + 1,
        "train_seconds": result.train_seconds,
        "samples_backpropagated": result.samples_backpropagated,
        "samples_forwarded": result.samples_forwarded,
        "optimizer_steps": result.optimizer_steps,
        "energy_joules": result.energy_joules,
        "epochs": config.epochs,
        "per_class_accuracy": per_class_accuracy(cm).tolist(),
        "confusion_matrix": cm.tolist(),
        "test_predictions": predictions.tolist(),
        "test_labels": labels.tolist(),
        "history": result.history,
        "identity": identity,
        **where_trained(device),
    }
    runs.write_record(out_dir, record)
    return model, record


def where_trained(device: torch.device) -> dict:
    """A record's device and torch thread count: with the seeds split over devices (``kdlib.devices``), each run
    names where it trained."""
    return {"device": str(device), "torch_threads": torch.get_num_threads()}


def warm_up(model: nn.Module, loader, config: TrainConfig, device: torch.device, steps: int = 3) -> None:
    """A few untimed training steps of a throwaway ``model`` on ``loader``'s first batches, before an interleaved
    schedule starts: the process's one-time costs (thread pools, kernel and allocator set-up, cuDNN autotuning of
    the full-batch shapes) would otherwise fall on whichever method trains first."""
    precision = runtime.select_precision(device, config.amp)
    model.to(device=device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = precision.grad_scaler()
    loader.set_epoch(0)
    for step, (x, y, _) in enumerate(loader):
        if step >= steps:
            break
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Parameters are checked for type and range where they enter (the notebook's parameters cell, the CLI), each with
# one line naming the notebook parameter and its command-line option; nothing is coerced (2.5 epochs is refused, not 2).
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit: seed 2**32 would run exactly as seed 0
MAX_EPOCHS = 1000  # 30x the longest preset (cifar10-ast full: 30); a bound that keeps a run's plan in memory and time


def parameter(name: str) -> str:
    """A parameter as both its users know it: 'EPOCHS (--epochs)'."""
    return f"{name} (--{name.lower().replace('_', '-')})"


def _is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seeds(seeds) -> list[int]:
    """SEEDS as a list of distinct whole numbers in [0, 2**32); a repeated seed would count one run twice in the
    statistics."""
    if isinstance(seeds, (range, np.ndarray)) and np.ndim(seeds) == 1:
        seeds = list(seeds)
    if not isinstance(seeds, (list, tuple)):
        example = f"[{seeds}]" if _is_whole(seeds) else "[0, 1, 2]"
        raise ValueError(f"{parameter('SEEDS')}={seeds!r} must be a list of seeds, e.g. {example}")
    wrong = [s for s in seeds if not (_is_whole(s) and 0 <= s < SEED_LIMIT)]
    if wrong:
        raise ValueError(f"{parameter('SEEDS')}={list(seeds)!r}: {wrong[0]!r} is not a seed; seeds are whole numbers "
                         f"from 0 to {SEED_LIMIT - 1}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError(f"{parameter('SEEDS')} must name at least one seed")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"SEEDS={seeds} repeats {repeated}: each seed must appear once (a repeated seed would be "
                         "counted as two runs in the mean, the spread and the tests)")
    return seeds


def check_epochs(value, name: str = "EPOCHS", minimum: int = 1) -> int:
    """A number of epochs: a whole number from ``minimum`` to MAX_EPOCHS."""
    if not (_is_whole(value) and minimum <= value <= MAX_EPOCHS):
        raise ValueError(f"{parameter(name)}={value!r}: epochs are whole numbers from {minimum} to {MAX_EPOCHS}")
    return int(value)


def check_rate(value, name: str = "TARGET_RATE") -> float:
    """A fraction of samples: a number in (0, 1]."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value <= 1):
        raise ValueError(f"{parameter(name)}={value!r}: the rate is a fraction of the samples, a number in (0, 1]")
    return float(value)


def check_choice(value, choices, name: str) -> str:
    """One of ``choices`` (strings), given as a string."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


def check_count(value, most: int, name: str, of: str) -> int:
    """How many of something there are ``most`` of: a whole number from 1 to ``most``."""
    if not (_is_whole(value) and 1 <= value <= most):
        raise ValueError(f"{parameter(name)}={value!r}: a whole number from 1 to {most} (how many of {of}, of which "
                         f"there are {most})")
    return int(value)


def check_switches(value, known, name: str) -> dict[str, bool]:
    """A dict that switches some of ``known`` on or off: known keys, True or False values (a string 'no' would read
    as on)."""
    known = list(known)
    if not isinstance(value, dict):
        raise ValueError(f"{name}={value!r} must be a dict of switches, e.g. {{{known[0]!r}: False}}")
    unknown = [k for k in value if k not in known]
    if unknown:
        raise ValueError(f"{name} names unknown {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    wrong = {k: v for k, v in value.items() if not isinstance(v, bool)}
    if wrong:
        raise ValueError(f"{name}={value!r}: switches are True or False, not {next(iter(wrong.values()))!r}")
    return dict(value)


def check_names(value, known, name: str) -> list[str]:
    """A list of distinct names from ``known``; a single name given as a string is refused, not split into letters."""
    known = list(known)
    if not isinstance(value, (list, tuple)):
        example = f"[{value!r}]" if isinstance(value, str) else f"[{known[0]!r}]"
        raise ValueError(f"{parameter(name)}={value!r} must be a list of names, e.g. {example}")
    unknown = [v for v in value if not isinstance(v, str) or v not in known]
    if unknown:
        raise ValueError(f"{name} names unknown {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    if len(set(value)) != len(value):
        raise ValueError(f"{parameter(name)}={list(value)} repeats a name")
    return list(value)


def make_ast_config(presets: dict, preset: str, seeds=None, epochs: int | None = None, target_rate: float | None = None,
                    scoring: str | None = None, progress: bool = True):
    """An AST notebook's preset with its parameters applied (seeds, epochs, target rate, scoring), each
    checked with a message that names the parameter."""
    cfg = presets[check_choice(preset, presets, "PRESET")]
    if seeds is not None:
        cfg.seeds = check_seeds(seeds)
    if epochs is not None:
        cfg.train.epochs = check_epochs(epochs)
        if cfg.train.epochs <= cfg.warmup_epochs:
            raise ValueError(f"{parameter('EPOCHS')}={epochs} leaves no AST epoch after {cfg.warmup_epochs} warm-up "
                             "epoch(s)")
    if target_rate is not None:
        cfg.target_rate = check_rate(target_rate)
    if scoring is not None:
        cfg.scoring = check_choice(scoring, ("forward", "stale"), "SCORING")
    cfg.train.progress = progress
    return cfg
