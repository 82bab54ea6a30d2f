"""HPM-KD: hierarchical progressive multi-teacher distillation, as six switchable components.

    progressive       teacher -> assistant(s) -> student; assistants' sizes geometric between teacher
                      and student; the number of assistants chosen by measured validation gain
    meta_temperature  T adapts each epoch to validation progress and the teacher-student gap
                      (``temperature.MetaTemperature``)
    multi_teacher     per-sample weights over the teacher and the assistants (``multi_teacher``)
    config_manager    T and alpha chosen by short probe runs scored on the validation split
    parallel          the seeds' students train at the same time on one device (``run_concurrently``)
    cache             teacher logits on disk, keyed by content hashes, shared by every stage, seed and
                      probe (``cache.LogitCache``)

Each switch that is off removes its component; with all six off the student's loss is exactly Hinton
KD's from the teacher (``kd.kd_loss``) with the configured T and alpha, and training gives the same
weights as ``KDObjective`` (tested).
"""

from __future__ import annotations

import contextlib
import os
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .. import runtime
from ..objective import Objective, StepOutput
from .kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, kd_loss
from .multi_teacher import mixture_probs, multi_teacher_kd_loss, teacher_weights
from .teacher_source import TeacherSource
from .temperature import MetaTemperature, soft_kl

COMPONENTS = ("progressive", "meta_temperature", "multi_teacher", "config_manager", "parallel", "cache")


@dataclass
class HPMKDSettings:
    """Switches and the parameters of each component (defaults used by every preset unless overridden)."""

    components: dict = field(default_factory=lambda: {c: True for c in COMPONENTS})
    # progressive
    max_assistants: int = 1
    chain_epsilon: float = 0.002  # stop adding assistants when the relative validation gain is below this
    chain_probe_epochs: int = 2  # budget of the student runs that score each chain length
    assistant_epochs: int | None = None  # None: the student's budget
    assistant_fraction: float = 1.0  # share of the training split the assistants train on (seeded, the same share each time)
    student_sees_teacher: bool = True  # the final student also learns from the original teacher
    # multi_teacher
    tau: float = 1.0  # entropy regulariser strength of the teacher weights
    # meta_temperature (its initial T is the configured or probed T)
    t_min: float = 1.0
    t_max: float = 10.0
    t_step: float = 0.25
    min_progress: float = 0.002
    gap_high: float = 0.05
    # config_manager
    temperatures: tuple = (2.0, 4.0, 8.0)
    alphas: tuple = (0.5, 0.7, 0.9)
    probe_epochs: int = 2
    probe_budget_epochs: int = 24  # the grid is refused if it needs more probe epochs than this
    # share of the training split the (T, alpha) probes and the chain's scoring students train on: on a CPU a probe
    # of a whole epoch of 55,000 images costs as much as the student it informs
    probe_fraction: float = 1.0

    def __post_init__(self):
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown HPM-KD component(s) {sorted(unknown)}; the components are {', '.join(COMPONENTS)}")
        for name in ("probe_fraction", "assistant_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        self.components = {c: bool(self.components.get(c, True)) for c in COMPONENTS}

    def on(self, component: str) -> bool:
        return self.components[component]

    def without(self, component: str) -> "HPMKDSettings":
        if component not in COMPONENTS:
            raise ValueError(f"unknown HPM-KD component {component!r}; the components are {', '.join(COMPONENTS)}")
        return dataclasses.replace(self, components={**self.components, component: False})

    def all_off(self) -> "HPMKDSettings":
        return dataclasses.replace(self, components={c: False for c in COMPONENTS})

    def meta_temperature(self, initial: float) -> MetaTemperature:
        return MetaTemperature(initial, min(self.t_min, initial), max(self.t_max, initial), self.t_step,
                               self.min_progress, self.gap_high)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["temperatures"], d["alphas"] = list(self.temperatures), list(self.alphas)
        return d


class HPMKDObjective(Objective):
    """The student's loss under HPM-KD.

    One teacher, multi-teacher off: ``kd_loss`` (exactly classic KD). Several teachers, multi-teacher
    off: the mean of the per-teacher KD losses (the student sees each with equal weight). Multi-teacher
    on: KD towards the per-sample weighted mixture. With a ``MetaTemperature`` the temperature changes
    after each validation; it needs the teachers' validation logits (``val_teacher_logits``).
    """

    name = "hpmkd"

    def __init__(self, teachers: Sequence[TeacherSource], temperature: float = DEFAULT_TEMPERATURE,
                 alpha: float = DEFAULT_ALPHA, multi_teacher: bool = False, tau: float = 1.0,
                 meta: MetaTemperature | None = None, val_teacher_logits: Sequence[torch.Tensor] | None = None,
                 label_smoothing: float = 0.0):
        super().__init__(label_smoothing)
        if not teachers:
            raise ValueError("HPMKDObjective needs at least one teacher")
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"HPMKDObjective needs temperature > 0 and 0 <= alpha <= 1, got {temperature}, {alpha}")
        if meta is not None and (val_teacher_logits is None or len(val_teacher_logits) != len(teachers)):
            raise ValueError("the meta-temperature scheduler needs every teacher's validation logits")
        self.teachers, self.alpha, self.multi_teacher, self.tau = list(teachers), alpha, multi_teacher, tau
        self.initial_temperature = self.temperature = float(temperature)
        self.meta, self.val_teacher_logits = meta, val_teacher_logits
        self._weight_sum = torch.zeros(len(self.teachers))
        self._weight_count = 0

    def settings(self) -> dict:
        return {**super().settings(), "teachers": [t.name for t in self.teachers], "temperature": self.initial_temperature,
                "alpha": self.alpha, "multi_teacher": self.multi_teacher, "tau": self.tau,
                "meta_temperature": self.meta.settings() if self.meta else None}

    def on_epoch_start(self, epoch: int) -> None:
        self._weight_sum = torch.zeros(len(self.teachers))
        self._weight_count = 0

    def step(self, model, x, y, index) -> StepOutput:
        outputs = [teacher(x, index) for teacher in self.teachers]
        s = model(x)
        T, ls = self.temperature, self.label_smoothing
        if self.multi_teacher and len(outputs) > 1:
            loss, weights = multi_teacher_kd_loss(s, torch.stack(outputs), y, T, self.alpha, self.tau, ls)
            self._weight_sum += weights.detach().sum(0).cpu()
            self._weight_count += len(y)
        elif len(outputs) == 1:  # one teacher: nothing to weigh, so multi-teacher or not this is classic KD
            loss = kd_loss(s, outputs[0], y, T, self.alpha, ls)
        else:
            loss = sum(kd_loss(s, t, y, T, self.alpha, ls) for t in outputs) / len(outputs)
        return StepOutput(loss, s, y)

    def validation_targets(self, labels: torch.Tensor, temperature: float) -> torch.Tensor:
        """The soft targets the student is asked to match on the validation split, at ``temperature``."""
        stacked = torch.stack([t.float().cpu() for t in self.val_teacher_logits])
        if self.multi_teacher and len(stacked) > 1:
            weights = teacher_weights(stacked, labels, temperature, self.tau)
        else:
            weights = torch.full((len(labels), len(stacked)), 1.0 / len(stacked))
        return mixture_probs(stacked, weights, temperature)

    def on_validation(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        stats = {"temperature": self.temperature}
        if self.meta is not None:
            gap = soft_kl(self.validation_targets(labels, self.temperature), logits, self.temperature)
            accuracy = (logits.argmax(1) == labels).float().mean().item()
            self.temperature = self.meta.update(accuracy, gap)
            stats.update(teacher_student_kl=gap, next_temperature=self.temperature,
                         temperature_decision=self.meta.last_decision)
        return stats

    def epoch_stats(self) -> dict:
        if not self.multi_teacher or not self._weight_count:
            return {}
        mean = (self._weight_sum / self._weight_count).tolist()
        return {"teacher_weights": dict(zip([t.name for t in self.teachers], mean))}

    def state_dict(self) -> dict:
        return {"temperature": self.temperature, "meta": self.meta.state_dict() if self.meta else None,
                "weight_sum": self._weight_sum.clone(), "weight_count": self._weight_count}

    def load_state_dict(self, state: dict) -> None:
        self.temperature = state["temperature"]
        if "weight_sum" in state:
            self._weight_sum, self._weight_count = state["weight_sum"].clone(), state["weight_count"]
        if self.meta is not None and state.get("meta"):
            self.meta.load_state_dict(state["meta"])


# ---- progressive chain -----------------------------------------------------------------------------

def geometric_sizes(teacher_params: int, student_params: int, n_assistants: int) -> list[float]:
    """|theta_i| = |theta_T| * r^(i/L), r = |theta_S| / |theta_T|, for the assistants i = 1..L-1 of a
    chain of L = n_assistants + 1 stages (largest first)."""
    if n_assistants < 0 or student_params <= 0 or teacher_params <= student_params:
        raise ValueError("geometric_sizes needs teacher_params > student_params > 0 and n_assistants >= 0")
    r, stages = student_params / teacher_params, n_assistants + 1
    return [teacher_params * r ** (i / stages) for i in range(1, stages)]


def width_for_parameters(target: float, count: Callable[[float], int], low: float = 0.05, high: float = 16.0,
                         iterations: int = 40) -> float:
    """The width whose model has the parameter count closest to ``target`` (bisection; ``count(width)``
    must grow with the width)."""
    if not count(low) <= target <= count(high):
        raise ValueError(f"no width in [{low}, {high}] gives {target:.0f} parameters")
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    return min((low, high), key=lambda w: abs(count(w) - target))


def stop_adding_stages(previous_accuracy: float, accuracy: float, epsilon: float) -> bool:
    """True when one more assistant raised the validation accuracy by less than ``epsilon``, relatively."""
    return previous_accuracy > 0 and (accuracy - previous_accuracy) / previous_accuracy < epsilon


# ---- adaptive configuration manager ---------------------------------------------------------------

def probe_grid(settings: HPMKDSettings) -> list[tuple[float, float]]:
    """(T, alpha) pairs to probe, refused when they would exceed the stated budget."""
    grid = [(float(t), float(a)) for t in settings.temperatures for a in settings.alphas]
    needed = len(grid) * settings.probe_epochs
    if not grid or needed > settings.probe_budget_epochs:
        raise ValueError(f"the probe grid needs {needed} epochs ({len(grid)} probes x {settings.probe_epochs}); the "
                         f"budget is {settings.probe_budget_epochs}: shrink temperatures/alphas or raise probe_budget_epochs")
    return grid


def choose_configuration(probes: list[dict]) -> dict:
    """The probe with the highest validation accuracy; ties go to the lower validation loss, then the
    earlier probe."""
    if not probes:
        raise ValueError("no probes to choose from")
    return max(enumerate(probes), key=lambda ip: (ip[1]["val_accuracy"], -ip[1]["val_loss"], -ip[0]))[1]


# ---- parallel students -----------------------------------------------------------------------------

def run_concurrently(jobs: Sequence[Callable[[], object]], device: torch.device | None = None,
                     max_concurrent: int | None = None) -> list:
    """Run ``jobs`` at the same time, one thread each, and return their results in order.

    At most ``max_concurrent`` run at once; by default all of them on a GPU, and on a CPU as many as it
    has cores (more threads than cores only queue behind each other).

    PyTorch releases the GIL inside its kernels, so on a CPU one job's Python overlaps another's
    compute; on a GPU each job gets its own CUDA stream, so small kernels of different students
    overlap. Jobs must not share mutable state (create each model before, in the calling thread,
    so initial weights do not depend on thread timing). On a CPU the results equal a sequential run
    bit for bit (tested), dropout models included: each ``fit`` keeps its own copy of torch's global random
    state (``runtime.RunRandomState``). Energy read inside a job is the shared GPU's, i.e. the group's.
    The first exception is raised once every job has ended.
    """
    results: list = [None] * len(jobs)
    errors: list = [None] * len(jobs)
    use_streams = device is not None and torch.device(device).type == "cuda"
    if max_concurrent is None:
        max_concurrent = len(jobs) if use_streams else max(1, os.cpu_count() or 1)
    slots = threading.Semaphore(max(1, max_concurrent))
    launcher = torch.cuda.current_stream(device) if use_streams else None

    def work(i: int) -> None:
        with slots:
            try:
                ctx = contextlib.nullcontext()
                if use_streams:
                    stream = torch.cuda.Stream(device)
                    stream.wait_stream(launcher)  # tensors the caller made (teacher tables) are ready first
                    ctx = torch.cuda.stream(stream)
                with ctx, runtime.concurrent_group(len(jobs)):  # fit labels its energy as the group's
                    results[i] = jobs[i]()
                    if use_streams:
                        torch.cuda.current_stream(device).synchronize()
            except BaseException as exc:  # noqa: BLE001  (re-raised below, in the caller's thread)
                errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,), name=f"kdlib-student-{i}") for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


__all__ = ["COMPONENTS", "HPMKDSettings", "HPMKDObjective", "geometric_sizes", "width_for_parameters",
           "stop_adding_stages", "probe_grid", "choose_configuration", "run_concurrently"]
