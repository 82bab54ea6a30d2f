"""Data-parallel AST on CPU with two gloo processes: the same threshold on every rank, gradients in sync,
and the same weights as one process training on the global batches."""

import pytest
import torch
import torch.nn as nn

from conftest import tiny_splits
from kdlib.data.device_loader import DeviceLoader
from kdlib.distributed import RankSync, ShardedLoader, launch, sync_batchnorm
from kdlib.objective import Objective
from kdlib.sparse import SelectiveObjective, make_rule, make_selective_objective
from kdlib.train import TrainConfig, fit

GLOBAL_BATCH = 16
CONFIG = TrainConfig(epochs=3, batch_size=GLOBAL_BATCH, lr=0.05, warmup_epochs=0, progress=False, channels_last=False,
                     momentum=0.9)


def _model() -> nn.Module:
    torch.manual_seed(0)  # BatchNorm-free, so per-rank batch statistics play no part
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


OTHER_RULES = {"infobatch": dict(epochs=CONFIG.epochs, prune_ratio=0.5), "selective-backprop": dict(rate=0.5)}


def _train(rank: int, world_size: int, scoring: str = "forward", rule: str = "ast"):
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    data = tiny_splits(n_train=128, n_val=32, n_test=32)
    mean, std = data.channel_stats()
    loader = DeviceLoader(data.train_x, data.train_y, GLOBAL_BATCH, "cpu", mean, std, shuffle=True, drop_last=True,
                          seed=CONFIG.seed)
    model = _model()
    sync = None
    if world_size > 1:
        loader, sync, model = ShardedLoader(loader, rank, world_size), RankSync(), DistributedDataParallel(model)
    # size_bucket=1: no rounding of the learning-pass size. Rounded, each rank rounds its own part (the shapes its
    # device sees), which one process cannot reproduce.
    if rule == "ast":
        objective = make_selective_objective("ast", None, len(data.train_y), 0.5, scoring=scoring, warmup_epochs=1,
                                             sync=sync, size_bucket=1)
    else:
        objective = make_selective_objective(rule, None, len(data.train_y), scoring=scoring, warmup_epochs=1, sync=sync,
                                             size_bucket=1, **OTHER_RULES[rule])
    result = fit(model, data, CONFIG, objective, torch.device("cpu"), train_loader=loader)
    module = model.module if world_size > 1 else model
    thresholds = [t for h in result.history for t in h["batch_thresholds"]]
    selected = [h["samples_backpropagated"] for h in result.history]
    return {"state": {k: v.clone() for k, v in module.state_dict().items()}, "thresholds": thresholds,
            "selected": selected, "table": None if objective.table is None else objective.table.clone()}


@pytest.fixture(scope="module")
def two_ranks():
    return launch(_train, 2, backend="gloo")


def test_every_rank_keeps_the_same_threshold_and_weights(two_ranks):
    a, b = two_ranks
    assert len(a["thresholds"]) == 2 * (128 // GLOBAL_BATCH)  # two AST epochs after the warm-up
    assert a["thresholds"] == b["thresholds"]
    assert len(set(a["thresholds"])) > 1  # the controller did move
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])  # gradients were averaged


def test_two_ranks_equal_one_process_on_the_global_batches(two_ranks):
    single = _train(0, 1)
    a, b = two_ranks
    assert a["selected"] == b["selected"] == single["selected"]  # fit sums the ranks' counts every epoch
    assert a["thresholds"] == pytest.approx(single["thresholds"], abs=1e-9)
    for k, v in single["state"].items():
        assert torch.allclose(a["state"][k], v, atol=1e-5), k


def test_stale_scoring_on_two_ranks_equals_one_process():
    # every rank's stale-score table is the global one, normalised over the global sub-batch
    a, b = launch(_train, 2, "stale", backend="gloo")
    single = _train(0, 1, "stale")
    assert torch.equal(a["table"], b["table"])
    assert torch.allclose(a["table"], single["table"], atol=1e-6)
    assert a["selected"] == b["selected"] == single["selected"]  # fit sums the ranks' counts every epoch
    assert a["thresholds"] == b["thresholds"]
    assert a["thresholds"] == pytest.approx(single["thresholds"], abs=1e-9)
    for k, v in single["state"].items():
        assert torch.allclose(a["state"][k], v, atol=1e-5), k


@pytest.mark.parametrize("rule", sorted(OTHER_RULES))
def test_other_rules_on_two_ranks_equal_one_process(rule):
    # infobatch: every rank's loss table is the global one, so the ranks prune the same rows; selective backprop: the
    # ranks draw from the global batch's losses and share one loss history
    a, b = launch(_train, 2, "forward", rule, backend="gloo")
    single = _train(0, 1, "forward", rule)
    assert a["selected"] == b["selected"] == single["selected"]
    assert single["selected"][1] < 128  # the rule did select
    for k, v in single["state"].items():
        assert torch.allclose(a["state"][k], v, atol=1e-5), k


def test_sharded_loader_splits_each_global_batch():
    data = tiny_splits(n_train=32)
    mean, std = data.channel_stats()
    base = DeviceLoader(data.train_x, data.train_y, 8, "cpu", mean, std, shuffle=True, seed=1)
    parts = [ShardedLoader(base, r, 2) for r in (0, 1)]
    for (_, _, i0), (_, _, i1), (_, _, whole) in zip(parts[0], parts[1], base):
        assert torch.equal(torch.cat([i0, i1]), whole)
    with pytest.raises(ValueError):
        ShardedLoader(base, 2, 2)


def _rank_number(rank: int, world_size: int) -> int:
    return rank


def test_launch_leaves_the_environment_as_it_was(monkeypatch):
    # the ranks get kdlib's folder on PYTHONPATH; this process keeps its own (an isolated subprocess started
    # later, like the simulated Kaggle session, must not find kdlib through it)
    import os

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert launch(_rank_number, 2, backend="gloo") == [0, 1]
    assert os.environ["PYTHONPATH"] == "/elsewhere"


class _CountingAST(SelectiveObjective):
    """Counts, on this rank alone, the samples each epoch learned from."""

    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        self.local = getattr(self, "local", []) + [0]

    def step(self, model, x, y, index):
        out = super().step(model, x, y, index)
        self.local[-1] += len(out.targets)
        return out


def _train_with_checkpoints(rank: int, world_size: int, folder: str):
    from pathlib import Path

    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    data = tiny_splits(n_train=128, n_val=32, n_test=32)
    mean, std = data.channel_stats()
    local = {}
    for method in ("full", "ast"):
        loader = ShardedLoader(DeviceLoader(data.train_x, data.train_y, GLOBAL_BATCH, "cpu", mean, std, shuffle=True,
                                            drop_last=True, seed=CONFIG.seed), rank, world_size)
        sync = RankSync()
        objective = None if method == "full" else _CountingAST(Objective(), make_rule("ast", 0.5), len(data.train_y),
                                                               warmup_epochs=1, sync=sync)
        fit(DistributedDataParallel(_model()), data, CONFIG, objective, torch.device("cpu"), Path(folder) / method,
            train_loader=loader, write_checkpoints=rank == 0, sync=sync)
        local[method] = objective.local if objective else None
    return local


def test_checkpointed_counts_are_the_sums_over_ranks(tmp_path):
    import json

    a, b = launch(_train_with_checkpoints, 2, str(tmp_path), backend="gloo")
    sums = [x + y for x, y in zip(a["ast"], b["ast"])]
    assert a["ast"] != sums  # each rank learned from a part
    for method, learned in (("ast", sums), ("full", [128] * CONFIG.epochs)):
        history = json.loads((tmp_path / method / "history.json").read_text())
        saved = torch.load(tmp_path / method / "last.pt", weights_only=True)["history"]
        for h in (history, saved):
            assert [e["samples_backpropagated"] for e in h] == learned, method
        if method == "full":
            assert [e["samples_forwarded"] for e in history] == learned
        else:  # warm-up epoch forwards each sample once; AST epochs score all of them, then learn from a part
            assert [e["samples_forwarded"] for e in history] == [128] + [128 + s for s in sums[1:]]


def test_batchnorm_is_synchronised_on_gpus_and_said_to_be_per_rank_on_cpus():
    def net():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())

    # converting swaps modules only, so it is checked without a GPU; SyncBatchNorm's forward needs one
    converted, how = sync_batchnorm(net(), torch.device("cuda", 0))
    assert isinstance(converted[1], nn.SyncBatchNorm) and how.startswith("synchronised")
    kept, how = sync_batchnorm(net(), torch.device("cpu"))
    assert type(kept[1]) is nn.BatchNorm2d and "needs a GPU" in how
    assert sync_batchnorm(_model(), torch.device("cuda", 0))[1] == "none"
