"""MNIST distillation: a ResNet-18 teacher, a directly trained student and a Hinton-KD student.

The teacher is trained once (seed ``seeds[0]``); each student method runs once per seed, so the
spread over seeds is the students' own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import runtime
from ..data.device_loader import DeviceLoader
from ..data.mnist import load_digits_28, load_mnist
from ..data.splits import ImageSplits
from ..distill.kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, KDObjective, precompute_teacher_logits
from ..report import build_results
from ..train import TrainConfig
from .common import prepare_out_dir, train_and_test

EXPERIMENT = "mnist-kd"


@dataclass
class MnistKDConfig:
    preset: str
    dataset: str  # 'digits' (embedded, offline) or 'mnist'
    seeds: list[int]
    teacher: TrainConfig
    student: TrainConfig
    teacher_model: str = "resnet18_mnist"
    student_model: str = "mobilenet_student"
    temperature: float = DEFAULT_TEMPERATURE
    alpha: float = DEFAULT_ALPHA
    data_seed: int = 0  # fixes the train/val(/test) split; the same for every training seed
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["teacher"], d["student"] = self.teacher.to_dict(), self.student.to_dict()
        return d


def _presets() -> dict[str, MnistKDConfig]:
    # Budgets for the CPU demo are set so the whole notebook runs in about 2-3 minutes on 2 cores.
    # Students in the demo train without augmentation, so the teacher's logits are computed once.
    demo = MnistKDConfig(
        "demo", "digits", [0, 1],
        teacher=TrainConfig(epochs=3, batch_size=64, lr=0.05, warmup_epochs=0.5, augment_shift=1.0),
        student=TrainConfig(epochs=10, batch_size=64, lr=0.1, warmup_epochs=1),
    )
    quick = MnistKDConfig(
        "quick", "mnist", [0],
        teacher=TrainConfig(epochs=2, lr=0.05, augment_shift=2.0),
        student=TrainConfig(epochs=3, lr=0.1, augment_shift=2.0),
    )
    full = MnistKDConfig(
        "full", "mnist", [0, 1, 2],
        teacher=TrainConfig(epochs=15, lr=0.05, augment_shift=2.0, augment_rotate=10.0, augment_scale=(0.9, 1.1)),
        student=TrainConfig(epochs=20, lr=0.1, augment_shift=2.0, augment_rotate=10.0, augment_scale=(0.9, 1.1)),
    )
    return {"demo": demo, "quick": quick, "full": full}


PRESETS = tuple(_presets())


def make_config(preset: str = "demo", seeds: list[int] | None = None, teacher_epochs: int | None = None,
                student_epochs: int | None = None, progress: bool = True, **overrides) -> MnistKDConfig:
    """The preset's configuration with the notebook's overrides applied."""
    presets = _presets()
    if preset not in presets:
        raise ValueError(f"PRESET={preset!r}: choose one of {', '.join(presets)}")
    cfg = presets[preset]
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("SEEDS must name at least one seed")
        cfg.seeds = seeds
    for name, value in (("teacher", teacher_epochs), ("student", student_epochs)):
        if value is not None:
            if int(value) < 1:
                raise ValueError(f"{name} epochs must be >= 1, got {value}")
            getattr(cfg, name).epochs = int(value)
    for field_name, value in overrides.items():
        if not hasattr(cfg, field_name):
            raise ValueError(f"unknown setting {field_name!r}")
        setattr(cfg, field_name, value)
    cfg.teacher.progress = cfg.student.progress = progress
    return cfg


def load_data(cfg: MnistKDConfig, data_dir: str | Path | None = None, download: bool = True) -> ImageSplits:
    """The embedded digits for the demo preset (unless DATA_DIR is given); MNIST otherwise."""
    if cfg.dataset == "digits" and data_dir is None:
        return load_digits_28(seed=cfg.data_seed)
    return load_mnist(data_dir, seed=cfg.data_seed, download=download)


def _seeded(config: TrainConfig, seed: int) -> TrainConfig:
    return dataclasses.replace(config, seed=seed)


def train_teacher(cfg: MnistKDConfig, data: ImageSplits, out_dir: Path, device: torch.device):
    return train_and_test("teacher", cfg.teacher_model, data, _seeded(cfg.teacher, cfg.seeds[0]), out_dir, device)


def train_student(method: str, cfg: MnistKDConfig, data: ImageSplits, out_dir: Path, device: torch.device,
                  seed: int, teacher: torch.nn.Module | None = None):
    """method 'direct' (labels only) or 'kd' (Hinton KD from ``teacher``)."""
    config = _seeded(cfg.student, seed)
    if method == "direct":
        return train_and_test("direct", cfg.student_model, data, config, out_dir, device)
    if method != "kd":
        raise ValueError(f"unknown student method {method!r}")
    if teacher is None:
        raise ValueError("the 'kd' student needs the trained teacher")
    table = None
    if config.augmentation() is None:
        # Without augmentation the student always sees the same inputs: one teacher pass serves all epochs.
        mean, std = data.channel_stats()
        loader = DeviceLoader(data.train_x, data.train_y, config.eval_batch_size, device, mean, std,
                              channels_last=config.channels_last)
        table = precompute_teacher_logits(teacher, loader, runtime.select_precision(device, config.amp))
    objective = KDObjective(teacher, cfg.temperature, cfg.alpha, config.label_smoothing, teacher_logits=table)
    return train_and_test("kd", cfg.student_model, data, config, out_dir, device, objective=objective)


def results(cfg: MnistKDConfig, data: ImageSplits, runs: list[dict], device: torch.device) -> dict:
    slim = [{k: v for k, v in r.items() if k not in ("history", "confusion_matrix")} for r in runs]
    return build_results(EXPERIMENT, cfg.preset, data.info(), runtime.hardware_info(device), slim, cfg.to_dict())


__all__ = ["EXPERIMENT", "MnistKDConfig", "PRESETS", "make_config", "load_data", "train_teacher", "train_student",
           "results", "prepare_out_dir"]
