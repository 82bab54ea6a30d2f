"""Data-parallel training on every GPU of the machine (Kaggle's T4 x2), launched from inside a notebook.

``launch(fn, world_size, *args)`` starts one process per rank (spawn: safe whether or not the notebook has
touched CUDA), sets up the process group (NCCL on GPUs, gloo on CPUs), runs ``fn(rank, world_size, *args)``
in each and returns every rank's result. ``fn`` must be importable (defined in a module, not a cell).

Inside a rank: wrap the model in ``DistributedDataParallel``, give ``fit`` a ``ShardedLoader`` (each rank
takes its slice of every global batch, so together the ranks see exactly the batches one process would)
and give the AST objective a ``RankSync``: the ranks share their samples' scores, so every rank selects from
the global batch exactly as one process would (same normalisation, same threshold, same fallback), keeps
the same controller state, and normalises its loss by the global selected count, so the averaged gradient
equals one process's on the global batch. On GPUs BatchNorm becomes SyncBatchNorm (``sync_batchnorm``), and
``fit`` sums the ranks' sample counts and energy every epoch before its checkpoint (``fit(sync=...)``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist


class RankSync:
    """Collectives over the ranks of the default process group."""

    def __init__(self):
        self.world_size, self.rank = dist.get_world_size(), dist.get_rank()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def gather(self, values: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Every rank's ``values`` (first dimension may differ by rank), concatenated in rank order, and
        where this rank's part starts."""
        whole, offset, _ = self.gather_sizes(values)
        return whole, offset

    def gather_sizes(self, values: torch.Tensor) -> tuple[torch.Tensor, int, list[int]]:
        """As ``gather``, and every rank's first dimension."""
        sizes = torch.zeros(self.world_size, dtype=torch.long, device=values.device)
        sizes[self.rank] = len(values)
        sizes = self.sum(sizes)
        padded = torch.zeros((int(sizes.max()),) + tuple(values.shape[1:]), dtype=values.dtype, device=values.device)
        padded[:len(values)] = values
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        whole = torch.cat([p[:int(n)] for p, n in zip(parts, sizes)])
        return whole, int(sizes[:self.rank].sum()), [int(n) for n in sizes]


class ShardedLoader:
    """Rank ``rank``'s contiguous slice of every batch of ``loader`` (built with the *global* batch size,
    and the same seed on every rank, so all ranks agree on the batches)."""

    def __init__(self, loader, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.loader, self.rank, self.world_size = loader, rank, world_size
        self.batch_size = loader.batch_size // world_size

    def set_epoch(self, epoch: int, indices=None) -> None:
        if indices is None:
            self.loader.set_epoch(epoch)
        else:
            self.loader.set_epoch(epoch, indices=indices)

    @property
    def num_rows(self) -> int:
        return getattr(self.loader, "num_rows", None)

    @property
    def seed(self) -> int:
        return self.loader.seed

    def __copy__(self):
        # a copy iterates other rows (``sparse.batchnorm.random_batches``) without moving this loader's epoch
        return ShardedLoader(copy.copy(self.loader), self.rank, self.world_size)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, index in self.loader:
            size = -(-len(y) // self.world_size)
            part = slice(self.rank * size, (self.rank + 1) * size)
            yield x[part], y[part], index[part]


def sync_batchnorm(model, device) -> tuple:
    """For data-parallel training: BatchNorm layers become ``SyncBatchNorm`` on CUDA, so each rank normalises
    with the statistics of the global batch (for AST: of every rank's selected samples) as one process would.
    torch's SyncBatchNorm runs only on GPUs (on a CPU it raises "expected input tensor to be on GPU", torch
    2.x, gloo included): on a CPU the model is returned unchanged and each rank normalises its own sub-batch.
    Returns the model and what its BatchNorm does, for the record."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not has_bn:
        return model, "none"
    if torch.device(device).type != "cuda":
        return model, "per rank (SyncBatchNorm needs a GPU; on a CPU each rank normalises its own sub-batch)"
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), "synchronised across ranks (SyncBatchNorm)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, backend: str, out_dir: str, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        # every rank reaches here before any tears its group down: a rank whose peer is gone mid-exchange aborts
        # in gloo ("terminate called without an active exception", SIGABRT; met once in CI's self-check)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def package_on_path():
    """Spawned processes import kdlib afresh: make sure they find the same copy as this process (Kaggle's bundle).
    Set for the spawn only: this process's environment is left as it was."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, previous) if p)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def launch(fn, world_size: int | None = None, *args, backend: str | None = None) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` ranks (default: every GPU, else 1) and return
    the ranks' results in rank order. A rank that fails raises here, with its traceback."""
    import torch.multiprocessing as mp

    world_size = world_size or max(1, torch.cuda.device_count())
    backend = backend or ("nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world_size else "gloo")
    with package_on_path(), tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_rank_main, args=(world_size, _free_port(), backend, out_dir, fn, args),
                           nprocs=world_size, join=True, start_method="spawn")
        return [torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
