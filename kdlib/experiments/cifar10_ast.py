"""CIFAR-10 selection: AST and other selection rules against full training given the same time, and against
controls that change only what each rule changes (``kdlib.experiments.selection`` holds the methods, their order
and the verdicts; this module holds the data, the presets and how one run trains).

The question a run answers for a person with a GPU quota: does a rule give more accuracy for the time than simply
training less? So full training also runs at 1/4, 1/2 and 3/4 of the epochs (the frontier, each schedule
compressed to its horizon), interleaved epoch by epoch with the rules on the same seeds, and each rule is judged at
its own measured wall-clock against that frontier. Speed-ups are measured wall-clock ratios against ``full`` in
the same run; energy is read from the GPU (NVML) or n/a.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import runs, runtime
from ..devices import devices_used
from ..data.cifar import cifar10_source, load_cifar10
from ..data.discovery import DataSource, embedded_source
from ..data.mnist import load_digits_images
from ..data.splits import ImageSplits
from ..fileio import atomic_write_bytes
from ..models import create_model
from ..objective import Objective
from ..sparse import PIController
from ..train import TrainConfig, make_loaders
from . import common, selection
from .common import make_ast_config, prepare_out_dir, train_and_test
from .selection import FRONTIER_METHODS, NON_INFERIORITY_POINTS, choose_rule, control_of  # noqa: F401
from .selection_reporting import ast_summary_table  # noqa: F401  (the notebook's table)

EXPERIMENT = "cifar10-ast"
# the seed's method, judged in every preset beside its control
SEED_METHODS = ("ast", "random@ast")
# quick and full: the frontier, AST and its control, and the rule the calibration chose (choose_rule, on
# validation, by the frontier verdict: benchmarks/results_cpu_cifar10_real.txt) with its control
CHOSEN_RULE = "selective-backprop+accumulate"
CHOSEN_METHODS = ("full", *FRONTIER_METHODS, *SEED_METHODS, *selection.with_controls([CHOSEN_RULE]))
# the calibration (cpu-real): every rule in both batch modes where it has them, each with its control
CALIBRATION_METHODS = ("full", *FRONTIER_METHODS, *selection.with_controls(
    ["ast", "selective-backprop", "infobatch", "ast+accumulate", "selective-backprop+accumulate"]))
DEMO_DATA_NAME = "digits as 32x32 RGB (scikit-learn's 1,797 real 8x8 digits, upsampled; not CIFAR-10)"


@dataclass
class CifarASTConfig:
    preset: str
    dataset: str  # 'digits': CIFAR-10 when it is here, else the embedded digits (demo); 'cifar10': downloaded if need be
    seeds: list[int]
    train: TrainConfig
    model: str = "airbench_net"
    model_kwargs: dict = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["full", *FRONTIER_METHODS, *SEED_METHODS])
    target_rate: float = 0.10  # the budget of ast, random and selective-backprop: fraction of each batch learned from
    scoring: str = "forward"  # 'forward' (scoring forward pass) or 'stale' (losses from when last seen)
    warmup_epochs: int = 1  # full epochs before any rule selects (not the learning rate's warm-up)
    bn_recalibration_batches: int = 0  # > 0: selective runs recompute BatchNorm statistics on this many random batches
    keep_low: float = 0.0  # ast only: > 0 keeps below-threshold samples with this probability, weighted 1/q
    kp: float = PIController.kp
    ki: float = PIController.ki
    ema_factor: float = PIController.ema_factor
    infobatch_prune_ratio: float = 0.5  # InfoBatch's r: the fraction of below-mean-loss samples pruned each epoch
    infobatch_delta: float = 0.875  # InfoBatch's delta: the last 1 - delta of the epochs use all the data
    data_seed: int = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        return d

    def controller(self) -> PIController:
        return PIController(target=self.target_rate, kp=self.kp, ki=self.ki, ema_factor=self.ema_factor)


def _presets() -> dict[str, CifarASTConfig]:
    crop_flip = dict(augment_crop_pad=4, augment_flip=True)
    return {
        # CPU, offline: the embedded digits as RGB and a half-width airbench net, sized for the demo's 4 minutes: the
        # frontier and AST beside its control. Target 0.3, not 0.10: with 64-image batches a 0.10 target learns from
        # 6-sample batches, i.e. about one epoch of data in 11 AST epochs (measured: AST at 55% against 99.9%).
        "demo": CifarASTConfig("demo", "digits", [0, 1], TrainConfig(epochs=8, batch_size=64, lr=0.05, warmup_epochs=1,
                                                                        label_smoothing=0.1, augment_crop_pad=2),
                               model_kwargs={"width": 0.5}, target_rate=0.3, warmup_epochs=1),
        # The CPU calibration on real images (CIFAR-10 JPEG copies: DATA_DIR with train/<class>/): the frontier and
        # every rule with its control, in both batch modes, airbench at quarter width, 3 paired seeds, 6 epochs.
        "cpu-real": CifarASTConfig("cpu-real", "cifar10", [0, 1, 2],
                                   TrainConfig(epochs=6, batch_size=256, lr=0.1, warmup_epochs=1, label_smoothing=0.1,
                                               **crop_flip),
                                   model_kwargs={"width": 0.25}, methods=list(CALIBRATION_METHODS), target_rate=0.3,
                                   scoring="stale", warmup_epochs=1),
        # quick and full: CHOSEN_METHODS (see above). Rate and scoring serve the rules that take them.
        "quick": CifarASTConfig("quick", "cifar10", [0], TrainConfig(epochs=6, batch_size=256, lr=0.1, warmup_epochs=1,
                                                                        label_smoothing=0.1, **crop_flip),
                                methods=list(CHOSEN_METHODS), target_rate=0.3, scoring="stale", warmup_epochs=1),
        # Budgets meant for a T4; not yet measured there.
        "full": CifarASTConfig("full", "cifar10", [0, 1], TrainConfig(epochs=30, batch_size=256, lr=0.1, warmup_epochs=2,
                                                                         label_smoothing=0.1, **crop_flip),
                               model="resnet18_cifar", methods=list(CHOSEN_METHODS), target_rate=0.3, scoring="stale",
                               warmup_epochs=2),
    }


PRESETS = tuple(_presets())


def check_methods(methods) -> list[str]:
    """METHODS checked (``selection.check_methods``): known, distinct, with 'full' and each control's rule."""
    return selection.check_methods(methods)


def make_config(preset: str = "demo", seeds=None, epochs: int | None = None, target_rate: float | None = None,
                scoring: str | None = None, progress: bool = True, methods=None,
                bn_recalibration_batches: int | None = None) -> CifarASTConfig:
    cfg = make_ast_config(_presets(), preset, seeds, epochs, target_rate, scoring, progress)
    return selection.configure(cfg, methods, bn_recalibration_batches)


def locate_data(cfg: CifarASTConfig, data_dir: str | Path | None = None, download: bool = True) -> DataSource:
    """Which data the run uses, and why: CIFAR-10 (pickles or image folders) whenever it is here (DATA_DIR, or under
    /kaggle/input), whatever the preset; otherwise demo takes the embedded digits (never a download), the other
    presets download CIFAR-10 where the network allows, else stop saying what to attach."""
    if cfg.dataset == "digits":
        return (cifar10_source(data_dir, local_only=True)
                or embedded_source(DEMO_DATA_NAME, "sklearn.datasets.load_digits"))
    return cifar10_source(data_dir, download)


def load_data(cfg: CifarASTConfig, data_dir: str | Path | None = None, download: bool = True,
              source: DataSource | None = None) -> ImageSplits:
    """The data ``locate_data`` chose (``source``, else chosen here)."""
    source = source or locate_data(cfg, data_dir, download)
    if source.embedded:
        return load_digits_images(cfg.data_seed, size=32, digit_box=24, channels=3, name=DEMO_DATA_NAME)
    return load_cifar10(seed=cfg.data_seed, files=source.files)


# ---- training -------------------------------------------------------------------------------------------------

def make_objective(method: str, cfg: CifarASTConfig, data: ImageSplits, config: TrainConfig,
                   out_dir: Path | None = None):
    """The objective ``method`` trains with (None: plain cross-entropy, full training)."""
    return selection.make_objective(method, cfg, Objective(config.label_smoothing), len(data.train_y), config, out_dir)


def train_method(method: str, cfg: CifarASTConfig, data: ImageSplits, out_dir: Path, device: torch.device, seed: int,
                 stop_after: int | None = None):
    """One run of ``method`` (see ``selection``); returns its record, or None when paused after ``stop_after``
    epochs (calling again resumes it). A control reads its rule's run on the same seed in ``out_dir``."""
    spec = selection.parse_method(method)
    config = selection.method_config(method, cfg.train, seed)
    objective = make_objective(method, cfg, data, config, out_dir)
    try:
        _, record = train_and_test(method, cfg.model, data, config, out_dir, device, objective=objective,
                                   callbacks=selection.pause_after(stop_after, config.epochs), **cfg.model_kwargs)
    except selection.Pause:
        return None
    record.update(selection.record_fields(spec.name, cfg))
    record["selection_trace"] = _save_trace(objective, runs.run_dir(out_dir, method, seed))
    return record


def _save_trace(objective, folder: Path) -> str | None:
    """The recorded batches' scores and which samples were learned from (``selection_trace.npz``: 'scores' and
    'selected', one row per recorded batch, or per pruned epoch for a rule that prunes epochs)."""
    path = folder / "selection_trace.npz"
    if objective is not None and getattr(objective, "recorded_scores", None):
        shapes = {tuple(s.shape) for s in objective.recorded_scores}
        if len(shapes) == 1:  # restored from the checkpoint on a rerun; one shape per rule (whole batches or epochs)
            buffer = io.BytesIO()
            np.savez(buffer, scores=torch.stack(objective.recorded_scores).numpy(),
                     selected=torch.stack(objective.recorded_selected).numpy())
            atomic_write_bytes(buffer.getvalue(), path)
    return str(path) if path.exists() else None


def run_all(cfg: CifarASTConfig, data: ImageSplits, out_dir: Path, device: torch.device | list[torch.device],
            progress: bool = True, threads: int | None = None,
            timeline_file: str = selection.TIMELINE_FILE) -> tuple[list[dict], list[dict]]:
    """Every method and seed of ``cfg``, interleaved epoch by epoch (``selection.run_all``). ``device``: one device,
    or a list (``kdlib.devices.select_devices``): with several, the seeds are split over them, each device running
    its own interleaved schedule in a worker of ``threads`` torch threads (``selection.run_on_devices``)."""
    devices = devices_used(device, cfg.seeds)
    if len(devices) > 1:
        return selection.run_on_devices(_run_seed_group, cfg.methods, cfg.seeds, devices, out_dir, cfg, data,
                                        out_dir, progress, threads=threads)
    device = devices[0]
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))  # one bar for all below

    def train_slice(method, seed, stop_after):
        return train_method(method, cfg, data, out_dir, device, seed, stop_after=stop_after)

    def warm_up():
        model = create_model(cfg.model, num_classes=data.num_classes, in_chans=data.in_chans, **cfg.model_kwargs)
        common.warm_up(model, make_loaders(data, cfg.train, device)[0], cfg.train, device)

    return selection.run_all(cfg.methods, cfg.seeds, cfg.train.epochs, train_slice, out_dir, progress, warm_up,
                             timeline_file)


def _run_seed_group(seeds: list[int], device: torch.device, timeline_file: str, cfg: CifarASTConfig,
                    data: ImageSplits, out_dir: Path, progress: bool) -> tuple[list[dict], list[dict]]:
    """One device's share of the seeds (a worker of ``selection.run_on_devices``)."""
    return run_all(dataclasses.replace(cfg, seeds=list(seeds)), data, out_dir, device, progress,
                   timeline_file=timeline_file)


def results(cfg: CifarASTConfig, data: ImageSplits, runs: list[dict], device: torch.device | list[torch.device],
            interleaved_epochs: list[dict] | None = None) -> dict:
    """results.json's content from the run records (``selection.results``): the summary with each method's measured
    cost against full training, and the comparisons (the frontier, the controls, non-inferiority; one Holm
    family). ``interleaved_epochs``: ``run_all``'s slices, kept as they ran."""
    extra = {} if interleaved_epochs is None else {"interleaved_epochs": interleaved_epochs}
    hardware = runtime.hardware_info(devices_used(device, cfg.seeds))
    return selection.results(EXPERIMENT, cfg.preset, data.info(), hardware, runs, cfg.to_dict(),
                             labels=data.test_y.numpy(), **extra)


__all__ = ["EXPERIMENT", "SEED_METHODS", "CHOSEN_RULE", "CHOSEN_METHODS", "CALIBRATION_METHODS", "CifarASTConfig",
           "PRESETS", "make_config", "check_methods", "locate_data", "load_data", "make_objective", "train_method",
           "run_all", "choose_rule", "results", "ast_summary_table", "prepare_out_dir"]
