"""ImageNet-100 Adaptive Sparse Training: a pretrained ResNet-50 fine-tuned with full training, with AST and its
random control (and any other rule of ``kdlib.experiments.selection``, the one selection path it shares with
CIFAR-10), from a decoded image store, on one GPU or data-parallel on all of them. Every method trains the same
epochs; the frontier (full training at fractions of them) answers whether a rule beats training less; speed-up and
energy are ratios of totals measured in the same run, the methods interleaved epoch by epoch.

Data: the JPEG folders are indexed (``kdlib.data.imagenet100``), decoded once into memory-mapped stores
(train and val, ``kdlib.data.image_store``) in the working directory, which later sessions reuse. A
selection split (``selection_per_class`` images of each class) is carved from train and picks each run's
best epoch; the val folder (ImageNet's validation images) is the test set, used once per run.

The ``demo`` preset writes the embedded scikit-learn digits as 64x64 RGB JPEGs in an ImageFolder tree
(class folders named like wnids, n00000000..n00000009; *not* ImageNet) and trains a small network from
scratch on the CPU, so every step (discovery, decoding, store, on-device crops, AST) runs offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import runs, runtime
from ..data import image_store, imagenet100
from ..data.discovery import DataSource, embedded_source
from ..data.image_store import CenterCropResize, RandomResizedCropFlip, StoreLoader
from ..evaluate import predict_logits
from ..fileio import atomic_write_json
from ..models import count_parameters, create_model
from ..objective import Objective
from ..sparse import PIController
from ..train import FitResult, TrainConfig, fit
from . import selection
from . import common
from .common import make_ast_config, prepare_out_dir
from .selection import FRONTIER_METHODS
from .selection_reporting import ast_summary_table  # noqa: F401  (the notebook's table)

EXPERIMENT = "imagenet100-ast"
SEED_METHODS = ("ast", "random@ast")  # the seed's method beside its control, in every preset
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
DEMO_NAME = "digits as 64x64 RGB JPEGs (scikit-learn's 1,797 real 8x8 digits; not ImageNet)"


@dataclass
class ImageNetASTConfig:
    preset: str
    dataset: str  # 'digits-jpeg': ImageNet-100 when it is here, else the embedded digits as JPEGs (demo); 'imagenet100'
    seeds: list[int]
    train: TrainConfig
    model: str = "pretrained:resnet50"  # 'pretrained:<timm arch>' or a kdlib/timm model name (from scratch)
    model_kwargs: dict = field(default_factory=dict)
    store_size: int = 160  # shorter side of the decoded store (centre-cropped square)
    crop_size: int = 128  # training crops and validation views
    rrc_scale: tuple = (0.25, 1.0)
    val_crop_fraction: float = 0.875
    methods: list[str] = field(default_factory=lambda: ["full", *SEED_METHODS])
    target_rate: float = 0.3
    scoring: str = "forward"
    warmup_epochs: int = 1  # full epochs before any rule selects (not the learning rate's warm-up)
    bn_recalibration_batches: int = 0  # > 0: selective runs recompute BatchNorm statistics on this many random batches
    selection_per_class: int = 10
    world_size: int | None = None  # None: every GPU (1 on a CPU)
    checkpoint_minutes: float | None = 10.0  # also save inside an epoch after this long (None: per epoch only)
    data_seed: int = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"], d["rrc_scale"] = self.train.to_dict(), list(self.rrc_scale)
        return d

    def controller(self) -> PIController:
        return PIController(target=self.target_rate)


def _presets() -> dict[str, ImageNetASTConfig]:
    return {
        # CPU, offline: about 1,300 digit JPEGs, a half-width airbench net from scratch; the frontier, AST and its
        # control, two seeds (a paired interval needs two), sized for the demo's 4 minutes.
        "demo": ImageNetASTConfig("demo", "digits-jpeg", [0, 1], TrainConfig(epochs=6, batch_size=64, lr=0.05,
                                                                             warmup_epochs=1, label_smoothing=0.1),
                                  model="airbench_net", model_kwargs={"width": 0.5}, store_size=36, crop_size=32,
                                  rrc_scale=(0.5, 1.0), methods=["full", *FRONTIER_METHODS, *SEED_METHODS],
                                  target_rate=0.4, warmup_epochs=1, selection_per_class=10, checkpoint_minutes=None),
        # Kaggle T4 x2 once the store exists (not yet measured there): full, AST and its control, the same epochs.
        "quick": ImageNetASTConfig("quick", "imagenet100", [0], TrainConfig(epochs=3, batch_size=256, lr=0.02,
                                                                            warmup_epochs=0.5, label_smoothing=0.1,
                                                                            weight_decay=5e-5),
                                   store_size=144, crop_size=128, target_rate=0.3, warmup_epochs=1),
        # Kaggle T4 x2 (not yet measured there; docs/kaggle.md gives the estimate): the frontier, AST and its
        # control, every method the same 10 epochs, two paired seeds.
        "full": ImageNetASTConfig("full", "imagenet100", [0, 1], TrainConfig(epochs=10, batch_size=256, lr=0.02,
                                                                             warmup_epochs=1, label_smoothing=0.1,
                                                                             weight_decay=5e-5),
                                  store_size=176, crop_size=160, methods=["full", *FRONTIER_METHODS, *SEED_METHODS],
                                  target_rate=0.3, warmup_epochs=2),
    }


PRESETS = tuple(_presets())


def make_config(preset: str = "demo", seeds=None, epochs: int | None = None, target_rate: float | None = None,
                scoring: str | None = None, progress: bool = True, methods=None,
                bn_recalibration_batches: int | None = None) -> ImageNetASTConfig:
    cfg = make_ast_config(_presets(), preset, seeds, epochs, target_rate, scoring, progress)
    return selection.configure(cfg, methods, bn_recalibration_batches)


def check_methods(methods) -> list[str]:
    """METHODS checked (``selection.check_methods``); the accumulating batch mode runs on one device only."""
    return selection.check_methods(methods)


# ---- data ---------------------------------------------------------------------------------------------------

def write_demo_jpegs(folder: Path, seed: int = 0) -> Path:
    """The embedded digits as an ImageFolder tree of 64x64 RGB JPEGs: train/ (train + validation part of
    the digits) and val/ (their test part)."""
    from PIL import Image

    from ..data.mnist import load_digits_images

    folder = Path(folder)
    done = folder / ".complete"
    if done.exists():
        return folder
    d = load_digits_images(seed, size=64, digit_box=48, channels=3, name=DEMO_NAME)
    splits = {"train": (torch.cat([d.train_x, d.val_x]), torch.cat([d.train_y, d.val_y])), "val": (d.test_x, d.test_y)}
    for split, (x, y) in splits.items():
        for i, (image, label) in enumerate(zip(x, y)):
            path = folder / split / f"n{int(label):08d}" / f"{split}_{i:05d}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=95)
    done.touch()
    return folder


@dataclass
class StoreData:
    """The decoded stores and which rows form each split."""

    train: image_store.ImageStore
    val: image_store.ImageStore
    train_rows: np.ndarray  # rows of ``train`` to learn from
    select_rows: np.ndarray  # rows of ``train`` held out to pick the best epoch
    test_rows: np.ndarray  # valid rows of ``val``
    classes: list[str]
    info: dict

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """What the stores hold (their content digests: every image's label and file bytes, and the image size)
        and which rows form each split."""
        h = hashlib.sha256(f"{self.classes}\n{self.train.meta['source']}\n{self.val.meta['source']}\n".encode())
        for rows in (self.train_rows, self.select_rows, self.test_rows):
            h.update(np.ascontiguousarray(rows, dtype=np.int64).data)
        return h.hexdigest()


def default_store_dir(out_dir: str | Path, keep_in_output: bool | None = None) -> Path:
    """On Kaggle /kaggle/temp/imagenet100-store: out of the version's output (20 GB limit), so a later session
    builds it again unless ``keep_in_output`` (or ``KDLIB_KEEP_STORE=1``) puts it in
    /kaggle/working/imagenet100-store, from where the next version restores it. Elsewhere beside the results."""
    from ..sessions import keep_store_in_output, session_temp_dir

    if runtime.detect_platform() == "kaggle":
        base = runtime.working_dir() if keep_store_in_output(keep_in_output) else session_temp_dir()
        return base / "imagenet100-store"
    return Path(out_dir) / "store"


def locate_data(cfg: ImageNetASTConfig, data_dir: str | Path | None = None) -> DataSource:
    """Which data the run uses, and why: ImageNet-100 whenever it is here (DATA_DIR, or under /kaggle/input),
    whatever the preset; otherwise demo takes the embedded digits as JPEGs, and quick and full stop saying what to
    attach (there is no download). A pretrained model's weights are found (or downloaded) and checked here too
    (``check_pretrained``), so that missing or wrong weights stop the run before the store is decoded."""
    if cfg.dataset == "digits-jpeg":
        source = (imagenet100.imagenet100_source(data_dir, local_only=True)
                  or embedded_source(DEMO_NAME, "sklearn.datasets.load_digits, written as JPEGs"))
    else:
        source = imagenet100.imagenet100_source(data_dir)
    check_pretrained(cfg)
    return source


def check_pretrained(cfg: ImageNetASTConfig) -> str | None:
    """Where a 'pretrained:<arch>' model's weights come from (attached, torch.hub's cache, or downloaded now), after
    checking them; None for a model trained from scratch. One line when they are missing without internet or do not
    fit. Every later ``build_model`` (each rank's too) then finds the same file, with no download."""
    if not cfg.model.startswith("pretrained:"):
        return None
    from ..models.pretrained import check_weights

    return check_weights(cfg.model.split(":", 1)[1])


def load_data(cfg: ImageNetASTConfig, data_dir: str | Path | None = None, store_dir: str | Path | None = None,
              workers: int | None = None, out_dir: str | Path = "runs/imagenet100-ast",
              keep_store: bool | None = None, source: DataSource | None = None) -> StoreData:
    """Index the JPEGs (the data ``locate_data`` chose: ``source``, else chosen here), build (or reuse) the
    decoded stores and carve the selection split. On Kaggle a store kept in an earlier version's output
    (attached with ``--resume-from``) is restored first."""
    work = Path(store_dir) if store_dir else default_store_dir(out_dir, keep_store)
    if runtime.detect_platform() == "kaggle":
        from ..sessions import restore_store

        restore_store(work)
    source = source or locate_data(cfg, data_dir)
    if source.embedded:
        index = imagenet100.index_folder(write_demo_jpegs(work / "demo-jpegs"), expected={"train": 100, "val": 30})
        name, tag = DEMO_NAME, "digits-jpeg"
    else:
        index, name, tag = source.files, source.name, "imagenet100"
    tag = f"{tag}-{cfg.store_size}px"
    train = image_store.build_store(index.train, work / f"{tag}-train", cfg.store_size, workers, progress=cfg.train.progress)
    val = image_store.build_store(index.val, work / f"{tag}-val", cfg.store_size, workers, progress=cfg.train.progress)
    rng = np.random.default_rng(cfg.data_seed)
    select = []
    valid = train.valid_indices
    for c in range(len(index.classes)):
        rows = valid[train.labels[valid] == c]
        select += list(rng.permutation(rows)[:cfg.selection_per_class])
    select_rows = np.sort(np.array(select, dtype=np.int64))
    train_rows = np.setdiff1d(valid, select_rows)
    info = {**index.info(), "name": name, "n_train": int(len(train_rows)), "n_val": int(len(select_rows)),
            "n_test": int(len(val.valid_indices)), "skipped_unreadable": len(train.skipped) + len(val.skipped),
            "store": {"size": cfg.store_size, "train": str(train.folder), "val": str(val.folder),
                      # which decoder wrote the pixels (nvJPEG on a GPU, else PIL), and how many files nvJPEG left to PIL
                      "decoder": train.decoder, "pil_fallback": train.pil_fallback + val.pil_fallback},
            "val_is": f"{cfg.selection_per_class} training images per class, held out to pick the best epoch",
            "test_is": "the data set's validation folder, used once per run"}
    copies = image_store.copies_between(train, val)
    if copies:  # leakage, said where results.json keeps the data's notes
        info["notes"] = [f"{copies:,} of the {len(val.valid_indices):,} test images are exact copies of training images"]
    data = StoreData(train, val, train_rows, select_rows, val.valid_indices, index.classes, info)
    info["fingerprint"] = data.fingerprint()
    return data


def loaders(cfg: ImageNetASTConfig, data: StoreData, device, seed: int):
    train = StoreLoader(data.train, data.train_rows, cfg.train.batch_size, device, IMAGENET_MEAN, IMAGENET_STD,
                        augment=RandomResizedCropFlip(cfg.crop_size, cfg.rrc_scale), shuffle=True, drop_last=True,
                        seed=seed, channels_last=cfg.train.channels_last)
    view = CenterCropResize(cfg.crop_size, cfg.val_crop_fraction)

    def evaluation(store, rows):
        return StoreLoader(store, rows, cfg.train.eval_batch_size, device, IMAGENET_MEAN, IMAGENET_STD, augment=view,
                           channels_last=cfg.train.channels_last)

    return train, evaluation(data.train, data.select_rows), evaluation(data.val, data.test_rows)


# ---- training -----------------------------------------------------------------------------------------------

def build_model(cfg: ImageNetASTConfig, num_classes: int):
    if cfg.model.startswith("pretrained:"):
        from ..models.pretrained import pretrained_model

        return pretrained_model(cfg.model.split(":", 1)[1], num_classes)
    return create_model(cfg.model, num_classes=num_classes, in_chans=3, **cfg.model_kwargs), "random initialisation"


def _objective(method: str, cfg: ImageNetASTConfig, data: StoreData, config: TrainConfig, out_dir, sync=None):
    return selection.make_objective(method, cfg, Objective(config.label_smoothing), len(data.train_rows), config,
                                    out_dir, sync=sync)


def _top_k(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return (logits.topk(min(k, logits.shape[1]), 1).indices == labels[:, None]).any(1).float().mean().item()


def _fit_on_rank(rank: int, world_size: int, method: str, cfg: ImageNetASTConfig, data: StoreData, out_dir: str,
                 seed: int, device_type: str, stop_after: int | None = None):
    """One data-parallel rank (importable, for ``distributed.launch``): returns rank 0's record pieces (None when
    the slice paused after ``stop_after`` epochs)."""
    from torch.nn.parallel import DistributedDataParallel

    from ..distributed import RankSync, ShardedLoader, sync_batchnorm

    device = torch.device(f"cuda:{rank}" if device_type == "cuda" else "cpu")
    if device_type == "cpu":  # ranks share the cores instead of each starting one thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    runtime.seed_everything(seed)
    model, origin = build_model(cfg, data.num_classes)
    model, batchnorm = sync_batchnorm(model, device)  # ResNet-50's BN over the global batch (CUDA only)
    model.to(device)
    config = selection.method_config(method, cfg.train, seed)
    config = dataclasses.replace(config, progress=config.progress and rank == 0)
    train, select, test = loaders(cfg, data, device, seed)
    wrapped = DistributedDataParallel(model, device_ids=[rank] if device_type == "cuda" else None)
    sync = RankSync()  # fit sums the ranks' counts and energy each epoch, before writing the checkpoint
    try:
        result = fit(wrapped, None, config, _objective(method, cfg, data, config, out_dir, sync), device,
                     runs.run_dir(out_dir, method, seed), desc=f"{method} seed {seed} rank {rank}",
                     train_loader=ShardedLoader(train, rank, world_size), val_loader=select,
                     write_checkpoints=rank == 0, checkpoint_minutes=cfg.checkpoint_minutes,
                     data_fingerprint=data.fingerprint(), sync=sync,
                     callbacks=selection.pause_after(stop_after, config.epochs))
    except selection.Pause:
        return None
    if rank != 0:
        return None
    return {**_evaluate(model, result, test, device, config, origin, world_size), "batchnorm": batchnorm}


def _evaluate(model, result: FitResult, test_loader, device, config: TrainConfig, origin: str, world_size: int) -> dict:
    logits, labels = predict_logits(model, test_loader, runtime.select_precision(device, config.amp))
    predictions = logits.argmax(1)  # top-1 from the predictions kept, so the record can be checked against them
    return {"result": dataclasses.asdict(result), "test_top1": (predictions == labels).float().mean().item(),
            "test_top5": _top_k(logits, labels, 5), "test_predictions": predictions.tolist(),
            "test_labels": labels.tolist(),
            "params": count_parameters(model), "weights": origin, "world_size": world_size}


def train_method(method: str, cfg: ImageNetASTConfig, data: StoreData, out_dir: Path, device: torch.device,
                 seed: int, stop_after: int | None = None) -> dict | None:
    """One run of ``method`` (see ``selection``; data-parallel over every GPU when there are several); returns its
    record, or None when paused after ``stop_after`` epochs (calling again resumes it). A finished run's record is
    returned without training or testing again; an interrupted one resumes from its checkpoint."""
    spec = selection.parse_method(method)
    config = selection.method_config(method, cfg.train, seed)
    objective = _objective(method, cfg, data, config, out_dir)
    identity = runs.identity(method, cfg.model, cfg.model_kwargs, config.to_dict(),
                             objective.settings() if objective else {"objective": "ce",
                                                                     "label_smoothing": config.label_smoothing},
                             data.fingerprint(), store_size=cfg.store_size, crop_size=cfg.crop_size,
                             rrc_scale=list(cfg.rrc_scale), val_crop_fraction=cfg.val_crop_fraction)
    record_path = runs.record_path(out_dir, method, seed)
    if record_path.exists():
        return runs.read_record(record_path, identity)
    world_size = cfg.world_size or (torch.cuda.device_count() if device.type == "cuda" else 1)
    if world_size > 1:
        if spec.batch_mode == "accumulate":
            raise ValueError(f"{method}: the accumulating batch mode runs on one device; set world_size=1 or use "
                             f"{method.replace(selection.ACCUMULATE, '')}")
        from ..distributed import launch

        out = launch(_fit_on_rank, world_size, method, cfg, data, str(out_dir), seed, device.type, stop_after)[0]
    else:
        runtime.seed_everything(seed)
        model, origin = build_model(cfg, data.num_classes)
        train, select, test = loaders(cfg, data, device, seed)
        try:
            result = fit(model, None, config, objective, device, runs.run_dir(out_dir, method, seed),
                         desc=f"{method} seed {seed}", train_loader=train, val_loader=select,
                         checkpoint_minutes=cfg.checkpoint_minutes, data_fingerprint=data.fingerprint(),
                         callbacks=selection.pause_after(stop_after, config.epochs))
        except selection.Pause:
            return None
        out = _evaluate(model, result, test, device, config, origin, 1)
    if out is None:
        return None
    result = FitResult(**out["result"])
    record = {
        "method": method, "model": cfg.model, "params": out["params"], "seed": seed, "weights": out["weights"],
        "world_size": out["world_size"], "batchnorm": out.get("batchnorm", "local batch"), "test_accuracy": out["test_top1"], "test_top5": out["test_top5"],
        "val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch + 1,
        "train_seconds": result.train_seconds, "epochs": len(result.history),
        "samples_backpropagated": result.samples_backpropagated, "samples_forwarded": result.samples_forwarded,
        "optimizer_steps": result.optimizer_steps, "energy_joules": result.energy_joules,
        "test_predictions": out["test_predictions"], "test_labels": out["test_labels"], "history": result.history,
        "identity": identity,
        **selection.record_fields(method, cfg),
    }
    runs.write_record(out_dir, record)
    return record


def run_all(cfg: ImageNetASTConfig, data: StoreData, out_dir: Path, device: torch.device,
            progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Every method and seed of ``cfg``, interleaved epoch by epoch (``selection.run_all``)."""
    quiet = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))  # one bar for all below

    def train_slice(method, seed, stop_after):
        return train_method(method, quiet, data, out_dir, device, seed, stop_after=stop_after)

    def warm_up():  # one process trains every slice only on one device; ranks are new processes each slice
        if (cfg.world_size or (torch.cuda.device_count() if device.type == "cuda" else 1)) == 1:
            common.warm_up(build_model(cfg, data.num_classes)[0], loaders(cfg, data, device, cfg.seeds[0])[0],
                           cfg.train, device)

    return selection.run_all(cfg.methods, cfg.seeds, cfg.train.epochs, train_slice, out_dir, progress, warm_up)


def per_epoch_frame(runs: list[dict]):
    """Epoch by epoch: wall-clock, images/s, energy, activation rate and selection accuracy of each run."""
    import pandas as pd

    rows = []
    for r in runs:
        for h in r["history"]:
            rows.append({"method": r["method"], "seed": r["seed"], "epoch": h["epoch"],
                         "epoch (s)": round(h["epoch_seconds"], 1), "images/s": round(h["images_per_second"]),
                         "energy (J)": None if h["energy_joules"] is None else round(h["energy_joules"]),
                         "activation rate": round(h.get("activation_rate", 1.0), 3),
                         "val accuracy (%)": round(100 * h["val_accuracy"], 2)})
    return pd.DataFrame(rows)


def results(cfg: ImageNetASTConfig, data: StoreData, runs: list[dict], device: torch.device,
            interleaved_epochs: list[dict] | None = None) -> dict:
    """results.json's content from the run records (``selection.results``): the summary with top-5 and each
    method's measured cost against full training (ratios of totals: every method trains the same epochs, the
    frontier fewer by design), and the comparisons (the frontier, the controls, non-inferiority; one Holm family)."""
    extra = {} if interleaved_epochs is None else {"interleaved_epochs": interleaved_epochs}
    labels = data.val.labels[data.test_rows]
    res = selection.results(EXPERIMENT, cfg.preset, data.info, runtime.hardware_info(device), runs, cfg.to_dict(),
                            labels=labels, **extra)
    for row in res["summary"]:
        row["test_top5_mean"] = float(np.mean([r["test_top5"] for r in runs if r["method"] == row["method"]]))
    return res


__all__ = ["EXPERIMENT", "SEED_METHODS", "ImageNetASTConfig", "PRESETS", "make_config", "check_methods", "locate_data",
           "check_pretrained", "load_data", "train_method", "run_all", "per_epoch_frame", "results", "ast_summary_table",
           "prepare_out_dir", "write_demo_jpegs"]
