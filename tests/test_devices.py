"""Seeds across devices (kdlib.devices): the partition, the checks, and, with two CPU worker processes standing in
for two GPUs, results equal to a one-device run of the same seeds with the same threads, apart from device names
and seconds; a failing worker is one line naming its device."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import tiny_splits
from kdlib import devices
from kdlib.distill.hpmkd import HPMKDSettings
from kdlib.experiments import cifar10_ast, mnist_kd, selection
from kdlib.train import TrainConfig

CPU = torch.device("cpu")
# what may differ between a split run and a one-device run of the same seeds
WHERE_AND_WHEN = {"device", "train_seconds", "history", "energy_joules", "selection_trace"}


def test_seeds_are_dealt_round_robin_and_every_seed_once():
    assert devices.partition_seeds([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert devices.partition_seeds([7, 3], 3) == [[7], [3], []]
    assert devices.partition_seeds([5], 1) == [[5]]
    with pytest.raises(ValueError):
        devices.partition_seeds([0], 0)
    assert devices.threads_per_worker(2, cores=2) == 1 and devices.threads_per_worker(2, cores=4) == 2
    assert devices.threads_per_worker(3, cores=2) == 1


def test_devices_are_checked_in_one_line():
    assert devices.select_devices(["cpu", "cpu"]) == [CPU, CPU]
    assert devices.select_devices(None, "cpu") == [CPU]
    if not torch.cuda.is_available():
        assert devices.select_devices() == [CPU]  # nothing visible: DEVICE's choice, the CPU
    assert devices.select_devices(("cpu",)) == [CPU]
    for bad, words in (("cpu cpu", "not a list"), ([], "names no device"), (["tpu"], "DEVICES")):
        with pytest.raises(ValueError, match=words):
            devices.select_devices(bad)
    with pytest.raises(ValueError, match="both set"):
        devices.select_devices(["cpu"], "cpu")
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="THREADS"):
            devices.check_threads(bad)
    assert devices.check_threads(None) is None and devices.check_threads(3) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpus_named_where_there_are_none_are_refused_as_devices_entries():
    with pytest.raises(RuntimeError, match=r"DEVICES \(--devices\) entry 'cuda:0' was asked for but no CUDA GPU is "
                                           r"visible.*or set DEVICES=None to run on the CPU"):
        devices.select_devices(["cuda:0", "cuda:1"])


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in WHERE_AND_WHEN}


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if not any(w in k for w in ("seconds", "energy", "per_second"))}
            for h in history]


def _same_runs(split: list[dict], single: list[dict]) -> None:
    assert [(r["method"], r["seed"]) for r in split] == [(r["method"], r["seed"]) for r in single]
    for a, b in zip(split, single):
        assert _comparable(a) == _comparable(b), (a["method"], a["seed"])
        assert _untimed(a["history"]) == _untimed(b["history"]), (a["method"], a["seed"])
        assert a["torch_threads"] == b["torch_threads"] == 1


def test_cifar_seeds_split_over_two_cpu_workers_equal_one_device(tmp_path):
    cfg = cifar10_ast.make_config("demo", seeds=[0, 1], epochs=2, target_rate=0.3, progress=False,
                                  methods=["full", "full@0.5", "ast", "random@ast"])
    cfg.train.batch_size, cfg.model_kwargs = 32, {"width": 0.25}
    data = tiny_splits(96, 32, 32, channels=3, size=16)
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the one-device run with a worker's threads
        single, _ = cifar10_ast.run_all(cfg, data, tmp_path / "one", CPU, progress=False)
    finally:
        torch.set_num_threads(threads_before)
    split, timeline = cifar10_ast.run_all(cfg, data, tmp_path / "two", [CPU, CPU], progress=False, threads=1)
    _same_runs(split, single)
    # each worker ran its own interleaved schedule, and the merged timeline names where each epoch trained
    assert {(t["seed"], t["device"], t["worker"]) for t in timeline} == {(0, "cpu", "cpu worker 0"),
                                                                        (1, "cpu", "cpu worker 1")}
    assert json.loads((tmp_path / "two" / selection.TIMELINE_FILE).read_text()) == timeline
    for seeds in ([0], [1]):
        kept = json.loads((tmp_path / "two" / selection.worker_timeline_file(seeds)).read_text())
        assert {t["seed"] for t in kept} == set(seeds)
        assert [t["method"] for t in kept[:4]] == ["full", "full@0.5", "ast", "random@ast"]
    results = cifar10_ast.results(cfg, data, split, [CPU, CPU], interleaved_epochs=timeline)
    assert results["hardware"]["devices"] == ["cpu", "cpu"]
    # a rerun trains nothing again, and gives the same records
    again, _ = cifar10_ast.run_all(cfg, data, tmp_path / "two", [CPU, CPU], progress=False, threads=1)
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in split]


def _fail_on_seed_one(seeds, device):
    if 1 in seeds:
        raise ValueError("seed 1 cannot train here")
    return seeds


def test_a_failing_worker_names_its_device_and_the_others_result_is_not_mixed_in():
    with pytest.raises(RuntimeError, match=r"cpu worker 1 \(seeds \[1\]\) failed: ValueError: seed 1 cannot train"):
        devices.run_across(_fail_on_seed_one, [[0], [1]], [CPU, CPU], threads=1)
    assert devices.run_across(_fail_on_seed_one, [[0, 2], []], [CPU, CPU], threads=1) == [[0, 2], None]


def _tiny_mnist_config(seeds):
    cfg = mnist_kd.make_config("demo", seeds=seeds, progress=False, ablate=["meta_temperature", "parallel"])
    cfg.student = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False, channels_last=False)
    cfg.teacher = dataclasses.replace(cfg.student, epochs=1)
    cfg.hpmkd = HPMKDSettings(max_assistants=1, chain_epsilon=-1.0,  # the assistant is taken: every stage is exercised
                              assistant_epochs=1, chain_probe_epochs=1, temperatures=(2.0, 4.0), alphas=(0.5,),
                              probe_epochs=1, probe_budget_epochs=2, probe_fraction=0.5, assistant_fraction=0.75)
    return cfg


def _mnist_pipeline(cfg, data, out, device, threads=None):
    """The notebook's training cells, in order."""
    teacher, teacher_run = mnist_kd.train_teacher(cfg, data, out, device)
    direct = mnist_kd.train_students("direct", cfg, data, out, device, threads=threads)
    kd = mnist_kd.train_students("kd", cfg, data, out, device, teacher, threads)
    search = mnist_kd.tune_kd(cfg, data, out, device, teacher)
    tuned, _ = mnist_kd.train_kd_tuned(cfg, data, out, device, teacher, search, threads)
    decisions = mnist_kd.plan_hpmkd(cfg, data, out, device, teacher)
    hpmkd, hpmkd_cost = mnist_kd.train_hpmkd(cfg, data, out, device, teacher, decisions, threads=threads)
    long, _ = mnist_kd.train_kd_at_hpmkd_cost(cfg, data, out, device, teacher, hpmkd_cost, threads)
    ablation, ablation_costs = mnist_kd.train_ablation(cfg, data, out, device, teacher, decisions, hpmkd, hpmkd_cost,
                                                       threads)
    return [teacher_run, *direct, *kd, *tuned, *hpmkd, *long, *ablation], hpmkd_cost, ablation_costs


def test_mnist_student_seeds_split_over_two_cpu_workers_equal_one_device(tmp_path):
    cfg = _tiny_mnist_config([0, 1, 2])
    data = tiny_splits(n_train=96, n_val=32, n_test=32)
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what devices.prepare does for CPU workers: the parent computes as a worker would
        single, single_cost, _ = _mnist_pipeline(cfg, data, tmp_path / "one", CPU)
        split, split_cost, ablation_costs = _mnist_pipeline(cfg, data, tmp_path / "two", [CPU, CPU], threads=1)
    finally:
        torch.set_num_threads(threads_before)
    _same_runs(split, single)
    assert {r["seed"] for r in split if r["method"] == "hpmkd"} == {0, 1, 2}
    for r_split, r_single in zip(split, single):
        np.testing.assert_array_equal(r_split["test_predictions"], r_single["test_predictions"])
    # HPM-KD's cost: the plan counted once, the groups' student compute summed, the wait the slowest group's
    groups = split_cost["groups"]
    assert [g["seeds"] for g in groups] == [[0, 2], [1]] and split_cost["seeds"] == [0, 1, 2]
    assert split_cost["student_seconds"] == pytest.approx(sum(g["wall_seconds"] for g in groups))
    assert split_cost["wall_seconds"] == max(g["wall_seconds"] for g in groups)
    assert split_cost["total_seconds"] == pytest.approx(split_cost["planning_seconds"] + split_cost["student_seconds"])
    assert split_cost["plan"] == single_cost["plan"] and split_cost["student_epochs"] == single_cost["student_epochs"]
    saved = json.loads((tmp_path / "two" / "hpmkd" / "cost-hpmkd.json").read_text())
    assert saved["groups"] == groups
    assert [c["method"] for c in ablation_costs] == ["hpmkd-no-meta-temperature", "hpmkd-no-parallel"]
