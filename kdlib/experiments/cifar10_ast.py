"""CIFAR-10 selection shoot-out: full training beside AST and other selection rules at matched budgets.

Methods (``CifarASTConfig.methods`` picks which run):
- ``full``: ordinary training, the reference of every ratio;
- ``ast``: threshold + PI controller on significance, at ``target_rate``;
- ``random``: uniform samples at ``target_rate``: the control of ``ast`` and ``selective-backprop``;
- ``selective-backprop``: keep with probability CDF(loss)^beta, beta set by ``target_rate``;
- ``infobatch``: prunes whole batches; its budget follows from the losses (0.74-0.80 of full in the CPU calibration);
- ``random@infobatch``: its control: uniform samples at the rate that backpropagates as many samples as
  ``infobatch`` did on the same seed (``matched_rate``), so it runs once that run has finished.

Every rule has the same warm-up epochs of full training, and the same epochs, model, data and seeds, so at the same
rate they backpropagate about the same number of samples (``budget_frame`` shows how close). The methods run
interleaved epoch by epoch (``interleaved_schedule``): a machine whose speed drifts slows every method alike.
Speed-ups are measured wall-clock ratios against ``full`` on the same hardware in the same run.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import runs, runtime
from ..data.cifar import cifar10_source, load_cifar10
from ..data.discovery import DataSource, embedded_source
from ..data.mnist import load_digits_images
from ..data.splits import ImageSplits
from ..fileio import atomic_write_bytes
from ..objective import Objective
from ..results_io import build_results
from ..sparse import PIController, make_selective_objective
from ..sparse.cost import add_cost_ratios
from .selection_reporting import LOSSLESS_POINTS, ast_summary_table, compare_with_controls
from ..train import TrainConfig
from .common import make_ast_config, prepare_out_dir, train_and_test

EXPERIMENT = "cifar10-ast"
# method -> the selection rule it trains with (None: full training)
RULES = {"full": None, "ast": "ast", "random": "random", "selective-backprop": "selective-backprop",
         "infobatch": "infobatch", "random@infobatch": "random"}
METHODS = tuple(RULES)
# each rule's control at the same budget: what its paired test compares it with
CONTROLS = {"ast": "random", "selective-backprop": "random", "infobatch": "random@infobatch"}
# a method whose rate is another method's realised rate on the same seed
MATCHED_TO = {"random@infobatch": "infobatch"}
# the quick and full presets' methods: full training, the calibrated rule (choose_rule) and its control
CHOSEN_METHODS = ("full", "infobatch", "random@infobatch")
DEMO_DATA_NAME = "digits as 32x32 RGB (scikit-learn's 1,797 real 8x8 digits, upsampled; not CIFAR-10)"
RECORDED_BATCHES = 300


@dataclass
class CifarASTConfig:
    preset: str
    dataset: str  # 'digits': CIFAR-10 when it is here, else the embedded digits (demo); 'cifar10': downloaded if need be
    seeds: list[int]
    train: TrainConfig
    model: str = "airbench_net"
    model_kwargs: dict = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["full", "ast", "random"])
    target_rate: float = 0.10  # the budget of ast, random and selective-backprop: fraction of each batch learned from
    scoring: str = "forward"  # 'forward' (scoring forward pass) or 'stale' (losses from when last seen)
    warmup_epochs: int = 1
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
        # CPU, offline: the embedded digits as RGB and a half-width airbench net, sized for about 2 minutes.
        # Target 0.3, not 0.10: with 64-image batches a 0.10 target learns from 6-sample batches, i.e. about one
        # epoch of data in 11 AST epochs; measured here, that left AST at 55% against 99.9% for full training.
        "demo": CifarASTConfig("demo", "digits", [0, 1], TrainConfig(epochs=12, batch_size=64, lr=0.05, warmup_epochs=1,
                                                                         label_smoothing=0.1, augment_crop_pad=2),
                               model_kwargs={"width": 0.5}, target_rate=0.3, warmup_epochs=1),
        # CPU calibration on real images (the lead's run on CIFAR-10 JPEG copies: DATA_DIR with train/<class>/): every
        # rule at rate 0.3 beside full training, 3 paired seeds, airbench at quarter width, 6 epochs (what 2 CPU cores allow in about 35 minutes).
        "cpu-real": CifarASTConfig("cpu-real", "cifar10", [0, 1, 2],
                                   TrainConfig(epochs=6, batch_size=256, lr=0.1, warmup_epochs=1, label_smoothing=0.1,
                                               **crop_flip),
                                   model_kwargs={"width": 0.25}, methods=list(METHODS), target_rate=0.3,
                                   warmup_epochs=1),
        # quick and full: the rule choose_rule picked from the cpu-real calibration's VALIDATION accuracy
        # (benchmarks/results_cpu_cifar10_real.txt): no candidate was within 0.5 points of full training, and
        # infobatch came closest (-1.12 points at 0.74 of full's backprop samples in 15 epochs; -2.05 at 0.80 in
        # 6), beside its matched control.
        # Rate 0.3 and 'stale' scoring serve METHODS that take them (ast, selective-backprop, random): stale scored
        # better than forward for both rules at 0.3 in the same calibration, at a higher speed-up ceiling.
        "quick": CifarASTConfig("quick", "cifar10", [0], TrainConfig(epochs=6, batch_size=256, lr=0.1, warmup_epochs=1,
                                                                        label_smoothing=0.1, **crop_flip),
                                methods=list(CHOSEN_METHODS), target_rate=0.3, scoring="stale", warmup_epochs=1),
        # Budgets meant for a T4; not yet measured there.
        "full": CifarASTConfig("full", "cifar10", [0], TrainConfig(epochs=30, batch_size=256, lr=0.1, warmup_epochs=2,
                                                                      label_smoothing=0.1, **crop_flip),
                               model="resnet18_cifar", methods=list(CHOSEN_METHODS), target_rate=0.3, scoring="stale",
                               warmup_epochs=2),
    }


PRESETS = tuple(_presets())


def check_methods(methods) -> list[str]:
    """METHODS as a list of known, distinct names that includes 'full' (every ratio's reference) and, for a
    matched control, the method it is matched to."""
    methods = list(methods)
    unknown = [m for m in methods if m not in RULES]
    if unknown:
        raise ValueError(f"METHODS: unknown {unknown}; choose from {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"METHODS={methods} repeats a method")
    if "full" not in methods:
        raise ValueError("METHODS must include 'full': every speed-up and accuracy is measured against it")
    for method, parent in MATCHED_TO.items():
        if method in methods and parent not in methods:
            raise ValueError(f"METHODS: {method!r} takes its rate from {parent!r}'s run, so {parent!r} must run too")
    return methods


def make_config(preset: str = "demo", seeds=None, epochs: int | None = None, target_rate: float | None = None,
                scoring: str | None = None, progress: bool = True, methods=None) -> CifarASTConfig:
    cfg = make_ast_config(_presets(), preset, seeds, epochs, target_rate, scoring, progress)
    cfg.methods = check_methods(methods if methods is not None else cfg.methods)
    return cfg


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


# ---- budgets --------------------------------------------------------------------------------------------------

def epoch_samples(n_train: int, batch_size: int) -> int:
    """Samples a full epoch learns from: the loop drops the last partial batch (when there is more than one)."""
    return n_train // batch_size * batch_size if n_train > batch_size else n_train


def matched_rate(parent: dict, epochs: int, warmup_epochs: int, samples_per_epoch: int) -> float:
    """The rate at which a per-batch rule with ``warmup_epochs`` full epochs first backpropagates as many samples
    over ``epochs`` as ``parent`` (a finished run's record) did: (B - w * P) / ((E - w) * P)."""
    selective = (epochs - warmup_epochs) * samples_per_epoch
    if selective <= 0:
        raise ValueError(f"{epochs} epochs with {warmup_epochs} warm-up epoch(s) leave no epoch to match a budget on")
    rate = (parent["samples_backpropagated"] - warmup_epochs * samples_per_epoch) / selective
    return float(min(1.0, max(rate, 1.0 / samples_per_epoch)))


def method_rate(method: str, cfg: CifarASTConfig, data: ImageSplits, seed: int, records: dict) -> float | None:
    """The rate ``method`` trains at on ``seed``: the preset's target, InfoBatch's own (None), or for a matched
    control the rate of its parent's finished run on that seed (``records``: {(method, seed): record})."""
    if RULES[method] is None or RULES[method] == "infobatch":
        return None
    parent = MATCHED_TO.get(method)
    if parent is None:
        return cfg.target_rate
    if (parent, seed) not in records:
        raise RuntimeError(f"{method} seed {seed} takes its rate from {parent}'s finished run on that seed, which is "
                           "not there: run the methods through run_all (it orders them)")
    return matched_rate(records[(parent, seed)], cfg.train.epochs, cfg.warmup_epochs,
                        epoch_samples(len(data.train_y), cfg.train.batch_size))


def make_objective(method: str, cfg: CifarASTConfig, data: ImageSplits, config: TrainConfig, rate: float | None):
    """The objective ``method`` trains with (None: plain cross-entropy, full training)."""
    rule = RULES[method]
    if rule is None:
        return None
    options = {}
    if rule == "ast":
        options = dict(kp=cfg.kp, ki=cfg.ki, ema_factor=cfg.ema_factor, keep_low=cfg.keep_low)
    elif rule == "infobatch":
        options = dict(epochs=config.epochs, prune_ratio=cfg.infobatch_prune_ratio, delta=cfg.infobatch_delta)
    elif rule == "random":
        # the expected size is exactly rate x batch (not rounded up to the size bucket): the budget of a rule whose
        # realised rate is regulated to the target (ast), or a parent's measured rate (random@infobatch)
        options = dict(exact_rate=True)
    return make_selective_objective(rule, Objective(config.label_smoothing), len(data.train_y), rate, seed=config.seed,
                                    scoring=cfg.scoring, warmup_epochs=cfg.warmup_epochs,
                                    record_batches=RECORDED_BATCHES, **options)


# ---- training -------------------------------------------------------------------------------------------------

class _Pause(Exception):
    """Raised after an epoch's checkpoint to hand the machine to the next method; the run resumes from there."""


def _pause_after(epochs_done: int):
    def callback(epoch: int, record: dict) -> None:
        if epoch + 1 >= epochs_done:
            raise _Pause
    return callback


def train_method(method: str, cfg: CifarASTConfig, data: ImageSplits, out_dir: Path, device: torch.device, seed: int,
                 records: dict | None = None, stop_after: int | None = None):
    """One run of ``method`` (see METHODS); returns its record (as ImageNet-100's ``train_method`` does), or None when paused after ``stop_after``
    epochs (calling again resumes it). ``records``: finished runs, where a matched control finds its parent's."""
    if method not in RULES:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    config = dataclasses.replace(cfg.train, seed=seed)
    rate = method_rate(method, cfg, data, seed, records or {})
    objective = make_objective(method, cfg, data, config, rate)
    callbacks = (_pause_after(stop_after),) if stop_after is not None and stop_after < config.epochs else ()
    try:
        _, record = train_and_test(method, cfg.model, data, config, out_dir, device, objective=objective,
                                       callbacks=callbacks, **cfg.model_kwargs)
    except _Pause:
        return None
    record["rule"], record["rate"] = RULES[method], rate
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


def interleaved_schedule(methods: list[str], seeds: list[int], epochs: int) -> list[tuple[str, int, int]]:
    """The order of (method, seed, epoch) slices: seed by seed, the methods advance one epoch at a time, their
    order rotating every epoch, so that a machine whose speed drifts slows every method alike and no method is
    always first. A matched control (MATCHED_TO) starts once its parent's run on that seed has finished: it runs
    with the next seed's methods (after the last seed, on its own)."""
    independent = [m for m in methods if m not in MATCHED_TO]
    dependent = [m for m in methods if m in MATCHED_TO]
    slices, carried = [], []
    for i, seed in enumerate([*seeds, None]):
        active = ([(m, seed) for m in independent] if seed is not None else []) + carried
        if not active:
            break
        for epoch in range(epochs):
            shift = (i * epochs + epoch) % len(active)
            slices += [(m, s, epoch) for m, s in active[shift:] + active[:shift]]
        carried = [(m, seed) for m in dependent] if seed is not None else []
    return slices


def run_history(out_dir: Path, method: str, seed: int) -> list[dict]:
    """The epochs a run has finished so far (its history.json), [] before its first."""
    path = runs.run_dir(out_dir, method, seed) / "history.json"
    return runs.read_json(path) if path.exists() else []


def run_all(cfg: CifarASTConfig, data: ImageSplits, out_dir: Path, device: torch.device,
            progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Every method and seed of ``cfg``, interleaved epoch by epoch (``interleaved_schedule``); each run pauses
    after its epoch and resumes from its checkpoint at its next turn, with the one training loop. Finished runs
    are read back, not trained again. Returns the records (methods in ``cfg.methods`` order, then seeds) and
    the slices this call trained ({method, seed, epoch, started, seconds}: seconds as the run measured them)."""
    from tqdm.auto import tqdm

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))  # one bar for all below
    schedule = interleaved_schedule(cfg.methods, cfg.seeds, cfg.train.epochs)
    records, trained = {}, []
    session_start = time.time()
    for method, seed, epoch in tqdm(schedule, desc="epochs, all methods interleaved", disable=not progress):
        if (method, seed) in records:
            continue
        last = epoch == cfg.train.epochs - 1
        done_before = len(run_history(out_dir, method, seed))
        started = time.time() - session_start
        out = train_method(method, cfg, data, out_dir, device, seed, records, stop_after=None if last else epoch + 1)
        if out is not None:
            records[(method, seed)] = out
        trained += [{"method": method, "seed": seed, "epoch": h["epoch"], "started": started,
                     "seconds": h["epoch_seconds"]} for h in run_history(out_dir, method, seed)[done_before:]]
    return [records[(m, s)] for m in cfg.methods for s in cfg.seeds], trained




def choose_rule(calibrations: list[dict], lossless_points: float = LOSSLESS_POINTS) -> dict:
    """The rule, rate and scoring mode for the quick and full presets, from calibration runs (``results`` dicts of
    this experiment, e.g. one per rate, scoring mode or epochs, each with its own full training). Candidates: every
    selective method at one rate, scoring and number of epochs (random too: a scored rule is worth choosing only if it beats it; not
    a matched control, whose rate is another run's). Each is measured against the full training of its own
    calibration, on mean VALIDATION accuracy over its seeds. The choice is the lossless candidate (within
    ``lossless_points`` of full) that backpropagated the smallest fraction of full's samples; when none is lossless,
    the candidate closest to its full training (fewest validation points behind; a tie goes to the smaller
    fraction). The test split
    is never read. Returns the choice, every candidate ranked, and a sentence saying why."""
    candidates = {}
    for res in calibrations:
        config, runs = res["config"], res["runs"]
        full = [r for r in runs if r["method"] == "full"]
        if not full:
            raise ValueError(f"a calibration (rate {config['target_rate']}, '{config['scoring']}') has no full "
                             "training to measure its candidates against")
        full_val = float(np.mean([r["val_accuracy"] for r in full]))
        full_samples = float(np.mean([r["samples_backpropagated"] for r in full]))
        for method, rule in RULES.items():
            mine = [r for r in runs if r["method"] == method]
            if rule is None or method in MATCHED_TO or not mine:
                continue
            rated = rule != "infobatch"  # infobatch takes no rate and scores from its own losses
            epochs = config.get("train", {}).get("epochs")  # a budget of its own: candidates at other epochs differ
            key = (method, config["target_rate"] if rated else None,
                   config["scoring"] if rule in ("ast", "selective-backprop") else None, epochs)
            val = float(np.mean([r["val_accuracy"] for r in mine]))
            samples = float(np.mean([r["samples_backpropagated"] for r in mine]))
            candidates[key] = {
                "method": method, "rate": key[1], "scoring": key[2], "epochs": epochs, "seeds": len(mine),
                "val_accuracy": val,
                "full_val_accuracy": full_val, "points_vs_full": 100 * (val - full_val),
                "lossless": 100 * (full_val - val) <= lossless_points,
                "samples_backpropagated": samples, "fraction_of_full": samples / full_samples}
    if not candidates:
        raise ValueError("no calibration run of a selective method to choose from")
    ranked = sorted(candidates.values(), key=lambda c: (not c["lossless"], c["fraction_of_full"] if c["lossless"]
                                                        else -c["points_vs_full"], c["fraction_of_full"]))
    best = ranked[0]
    how = ", ".join(part for part in (f"rate {best['rate']}" if best["rate"] is not None else "its own budget",
                                      f"'{best['scoring']}' scoring" if best["scoring"] else "",
                                      f"{best['epochs']} epochs" if best["epochs"] else "") if part)
    lossless = [c for c in ranked if c["lossless"]]
    if best["lossless"]:
        why = (f"the cheapest of {len(lossless)} lossless candidate(s) of {len(ranked)} (within {lossless_points} "
               "points of full training)")
    else:
        why = f"no candidate of {len(ranked)} is within {lossless_points} points of full training; it comes closest"
    text = (f"{best['method']} ({how}): {why}: {100 * best['val_accuracy']:.2f}% against full's "
            f"{100 * best['full_val_accuracy']:.2f}% ({best['points_vs_full']:+.2f} points) at "
            f"{best['fraction_of_full']:.2f} of full's samples backpropagated, over {best['seeds']} seed(s) "
            "(validation accuracy; the test split was not used).")
    return {"chosen": best, "candidates": ranked, "text": text}


def results(cfg: CifarASTConfig, data: ImageSplits, runs: list[dict], device: torch.device,
            interleaved_epochs: list[dict] | None = None) -> dict:
    """results.json's content from the run records: the summary with each method's measured cost against full
    training, and each rule against its control at the same budget and against full (``compare_with_controls``:
    paired t-test over seeds, McNemar per seed on the test predictions). ``interleaved_epochs``: ``run_all``'s
    slices, kept as they ran."""
    res = build_results(EXPERIMENT, cfg.preset, data.info(), runtime.hardware_info(device), runs, cfg.to_dict(),
                        reference="full")
    add_cost_ratios(res, runs)
    res["comparisons"] = compare_with_controls(res, CONTROLS, runs=runs, labels=data.test_y.numpy())
    if interleaved_epochs is not None:
        res["interleaved_epochs"] = interleaved_epochs
    return res


__all__ = ["EXPERIMENT", "METHODS", "RULES", "CONTROLS", "MATCHED_TO", "CifarASTConfig", "PRESETS", "make_config",
           "check_methods", "locate_data", "load_data", "epoch_samples", "matched_rate", "method_rate",
           "make_objective", "train_method", "interleaved_schedule", "run_all", "LOSSLESS_POINTS", "choose_rule", "results", "ast_summary_table", "prepare_out_dir"]
