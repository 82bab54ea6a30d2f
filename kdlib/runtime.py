"""Where we run (Kaggle / Colab / local), which device and precision, seeding, input/output paths."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Tests (and users with unusual mounts) point this at a folder laid out like /kaggle/input.
INPUT_ROOT_ENV = "KDLIB_INPUT_ROOT"
WORKING_DIR_ENV = "KDLIB_WORKING_DIR"  # likewise for /kaggle/working
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def detect_platform() -> str:
    """'kaggle', 'colab' or 'local'."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or KAGGLE_WORKING.is_dir():
        return "kaggle"
    if "google.colab" in sys.modules:
        return "colab"
    return "local"


BATCH_ENV = "KDLIB_BATCH"  # set by ``python -m kdlib run`` for the kernels it starts


def batch_run() -> bool:
    """Whether this notebook runs with nobody watching: under ``python -m kdlib run`` (papermill) or as a Kaggle
    batch run (Save & Run All, a pushed kernel). Widgets then have no frontend to draw them: explorers show a static
    figure instead (``kdlib.widgets``), and a widget's comm messages cannot stall the run."""
    return os.environ.get(BATCH_ENV) == "1" or os.environ.get("KAGGLE_KERNEL_RUN_TYPE") == "Batch"


def progress_bar(*args, **kwargs):
    """tqdm.auto's bar where someone watches; in a batch run none (a disabled bar that still iterates): a saved
    notebook kept every redraw of a text bar as its own output, the first at 0%, between the epoch lines
    (``report_epoch``), which are a batch run's progress. No widget either: no frontend draws it."""
    if batch_run():
        from tqdm.std import tqdm

        kwargs.pop("disable", None)
        return tqdm(*args, disable=True, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(*args, **kwargs)


def epoch_line(run: str, epoch: int, epochs: int, val_accuracy: float, seconds: float) -> str:
    """One finished epoch as a line, e.g. ``[ast seed 0] epoch 3/8: val accuracy 91.25%, 12.3 s``.
    ``python -m kdlib run`` passes the lines of this form on to the terminal (its EPOCH_LINE; a test keeps the two
    equal)."""
    return f"[{run}] epoch {epoch}/{epochs}: val accuracy {100 * val_accuracy:.2f}%, {seconds:.1f} s"


def report_epoch(run: str, record: dict, epochs: int) -> None:
    """In a batch run, print ``record``'s (a ``train.fit`` epoch record) ``epoch_line``: the one sign of progress
    that reaches a terminal (the bars redraw every 30 s on stderr, which papermill does not stream) and reads well
    in a saved notebook. Interactive sessions have their bars, and print nothing here."""
    if batch_run():
        # one write, so lines that runs on threads print at once do not interleave
        sys.stdout.write(epoch_line(run, record["epoch"], epochs, record["val_accuracy"], record["epoch_seconds"])
                         + "\n")
        sys.stdout.flush()


def input_root() -> Path:
    """The folder under which attached datasets are searched (``/kaggle/input`` unless overridden)."""
    return Path(os.environ.get(INPUT_ROOT_ENV) or KAGGLE_INPUT)


def working_dir() -> Path:
    return Path(os.environ.get(WORKING_DIR_ENV) or KAGGLE_WORKING)


def default_out_dir(experiment: str) -> Path:
    """Kaggle keeps only what is under /kaggle/working; elsewhere results go to ./runs."""
    if detect_platform() == "kaggle":
        return working_dir() / experiment
    return Path("runs") / experiment


def select_device(preferred: str | None = None) -> torch.device:
    """``preferred`` ('cpu', 'cuda', 'cuda:1', 'mps') or the best available device (None). Anything else, or a device
    that is not here, is one ValueError line naming DEVICE (--device)."""
    if preferred is not None:
        how = "name a device: 'cpu', 'cuda', 'cuda:1' or 'mps' (or None: a GPU when there is one, else the CPU)"
        if not isinstance(preferred, str):
            raise ValueError(f"DEVICE (--device)={preferred!r}: {how}")
        try:
            device = torch.device(preferred)
        except RuntimeError:
            raise ValueError(f"DEVICE (--device)={preferred!r} is not a device: {how}") from None
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"DEVICE (--device)={preferred!r}: kdlib trains on a CPU or a CUDA or MPS GPU; {how}")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"DEVICE (--device)={preferred!r} was asked for but no MPS GPU is available here")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"DEVICE={preferred!r} was asked for but no CUDA GPU is visible. "
                "On Kaggle: Settings > Accelerator > GPU T4 x2; on Colab: Runtime > Change runtime type; "
                "or set DEVICE=None to run on the CPU."
            )
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"DEVICE (--device)={preferred!r}: {torch.cuda.device_count()} CUDA GPU(s) are visible, "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def describe_run(source, preset: str, device: torch.device, requested: str | None = None) -> str:
    """The notebook's first line: which data (a ``kdlib.data.discovery.DataSource``), preset and device, and why."""
    if requested:
        why = f"DEVICE={requested!r}"
    elif device.type == "cuda":
        count = torch.cuda.device_count()
        why = f"{count} CUDA GPU{'s' if count > 1 else ''} visible: {torch.cuda.get_device_name(device)}"
    else:
        why = "no CUDA GPU visible"
    return f"data: {source.describe()}; preset {preset}; device {device} ({why})"


@dataclass(frozen=True)
class Precision:
    """Mixed-precision settings for one device."""

    device_type: str
    amp_dtype: torch.dtype | None  # None: plain fp32
    use_grad_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.amp_dtype]

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.use_grad_scaler)


def select_precision(device: torch.device, amp: str = "auto") -> Precision:
    """fp16 autocast + GradScaler on CUDA; bf16 (no scaler) only where the GPU supports it.

    ``amp``: 'auto' (bf16 where supported, else fp16 — a T4 gets fp16), 'fp16', 'bf16' or 'off'.
    The CPU always trains in fp32: CPU autocast is slower than fp32 for these small convnets.
    """
    if amp not in ("auto", "fp16", "bf16", "off"):
        raise ValueError(f"amp={amp!r}: expected 'auto', 'fp16', 'bf16' or 'off'")
    if device.type != "cuda" or amp == "off":
        return Precision(device.type, None, False)
    bf16_ok = torch.cuda.is_bf16_supported(including_emulation=False)
    if amp == "bf16" and not bf16_ok:
        raise ValueError(f"amp='bf16' but {torch.cuda.get_device_name(device)} has no bf16 support; use 'fp16'")
    if amp == "bf16" or (amp == "auto" and bf16_ok):
        return Precision("cuda", torch.bfloat16, False)
    return Precision("cuda", torch.float16, True)


# Held by whoever sets or draws from torch's global (process-wide) random state while runs share the process
# (students trained on threads): see RunRandomState.
GLOBAL_RNG_LOCK = threading.RLock()
_thread = threading.local()


@contextlib.contextmanager
def concurrent_group(size: int):
    """Marks the calling thread as one of ``size`` runs trained at the same time on one device."""
    _thread.group = size
    try:
        yield
    finally:
        _thread.group = None


def concurrent_group_size() -> int | None:
    return getattr(_thread, "group", None)


class RunRandomState:
    """One run's own copy of torch's global random state (CPU and its GPU).

    Everything random that kdlib itself draws (data order, augmentation, AST's random choices) comes from
    per-run ``torch.Generator`` objects. What a model draws (dropout, drop-path) comes from torch's global
    generator, which threads share: two students trained concurrently would interleave their dropout masks,
    and one's per-epoch reseed would reset the other's. ``active()`` wraps a step's forward passes: under
    ``GLOBAL_RNG_LOCK`` it installs this run's state, and keeps what the forward left. The backward draws
    nothing (dropout's masks are saved). A run whose first forward of an epoch draws nothing from the global
    state (no dropout) skips the lock for the rest of the epoch, so concurrency costs it nothing; one that
    does draw has its forwards serialised (the backward and optimiser step still overlap), and equals its
    sequential run bit for bit. Not covered: activation checkpointing, which re-sets the global state in
    backward.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.cpu_state = self.cuda_state = None
        self.draws: bool | None = None  # unknown until a forward has run under this state

    def seed(self, seed: int) -> None:
        """As ``torch.manual_seed(seed)`` would set the global state, without touching it."""
        self.cpu_state = torch.Generator().manual_seed(seed).get_state()
        self.cuda_state = torch.Generator(device=self.device).manual_seed(seed).get_state() if self.cuda else None
        self.draws = None

    def load(self, cpu_state, cuda_state=None) -> None:
        self.cpu_state, self.draws = cpu_state, None
        if self.cuda and cuda_state is not None:
            self.cuda_state = cuda_state

    @contextlib.contextmanager
    def active(self):
        if self.draws is False:
            yield
            return
        with GLOBAL_RNG_LOCK:
            torch.set_rng_state(self.cpu_state)
            if self.cuda:
                torch.cuda.set_rng_state(self.cuda_state, self.device)
            try:
                yield
            finally:
                cpu = torch.get_rng_state()
                cuda = torch.cuda.get_rng_state(self.device) if self.cuda else None
                if self.draws is None:
                    self.draws = not (torch.equal(cpu, self.cpu_state)
                                      and (cuda is None or torch.equal(cuda, self.cuda_state)))
                self.cpu_state, self.cuda_state = cpu, cuda


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch. ``deterministic`` trades speed for bitwise-repeatable GPU runs."""
    with GLOBAL_RNG_LOCK:  # not in the middle of another thread's forward (RunRandomState)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting to be deterministic (see torch.use_deterministic_algorithms).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: torch.device | list[torch.device] | None = None) -> dict:
    """What ran: recorded in every results.json. ``device``: the one device, or the devices the seeds were split
    over (``kdlib.devices``; then ``devices`` lists them, and ``device`` is the first)."""
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    device = devices[0] or select_device()
    info = {
        "platform": detect_platform(),
        "device": str(device),
        "device_name": cpu_name(),
        "cpu_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "torch_threads": torch.get_num_threads(),
    }
    if len(devices) > 1:
        info["devices"] = [str(d) for d in devices]
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
