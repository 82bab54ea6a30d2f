"""HPM-KD end to end on a tiny generated split: the plan's decisions, every ablation variant, the cache's
hits, cost records that survive a re-run, and 'all switches off' giving KD's student."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import tiny_splits
from kdlib import runs
from kdlib.distill.hpmkd import COMPONENTS, HPMKDSettings
from kdlib.experiments import hpmkd_pipeline as steps
from kdlib.experiments import mnist_kd
from kdlib.experiments.common import train_and_test
from kdlib.train import TrainConfig

CPU = torch.device("cpu")
STUDENT = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False, channels_last=False)
SETTINGS = HPMKDSettings(max_assistants=1, chain_epsilon=-1.0,  # accept the assistant whatever it gains
                         assistant_epochs=1, chain_probe_epochs=1, temperatures=(2.0, 4.0), alphas=(0.5,),
                         probe_epochs=1, probe_budget_epochs=2)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("hpmkd")
    data = tiny_splits(n_train=96, n_val=32, n_test=32)
    config = dataclasses.replace(STUDENT, epochs=1)
    teacher, _ = train_and_test("teacher", "resnet18_mnist", data, config, out, CPU)
    ctx = steps.HPMKDContext(data, out, CPU, teacher, "mobilenet_student", STUDENT, 4.0, 0.7, SETTINGS, [0, 1])
    decisions = steps.plan(ctx)
    variants = {None: steps.train_variant(ctx, decisions)}
    for component in COMPONENTS:
        variants[component] = steps.train_variant(ctx, decisions, component)
    return ctx, decisions, variants


def _predictions(ctx, method, seed):
    return np.load(ctx.out / "runs" / f"{method}-seed{seed}" / "test_predictions.npy")


def test_plan_records_its_probes_and_chain_without_touching_test_data(tiny_world):
    ctx, decisions, _ = tiny_world
    probes = decisions["probes"]
    assert [(p["temperature"], p["alpha"]) for p in probes] == [(2.0, 0.5), (4.0, 0.5)]
    best = max(probes, key=lambda p: (p["val_accuracy"], -p["val_loss"]))
    assert (decisions["temperature"], decisions["alpha"]) == (best["temperature"], best["alpha"])
    assert decisions["assistants"] == 1 and [c["assistants"] for c in decisions["chain_candidates"]] == [0, 1]
    teacher_params, assistant_params = (s["params"] for s in decisions["stages"])
    assert 0 < assistant_params < teacher_params
    assert (ctx.out / "hpmkd" / "plan.json").exists()
    for run_dir in (ctx.out / "runs").glob("probe-*"):
        assert not (run_dir / "test_predictions.npy").exists()
    assert decisions["cache"]["hits"] > 0  # the probes and the chain reused the teacher's logits


def test_every_variant_removes_exactly_its_component(tiny_world):
    ctx, decisions, variants = tiny_world
    full, _ = variants[None]
    assert [r["seed"] for r in full] == [0, 1]
    assert full[0]["teachers"] == ["teacher", "assistant1 (width " + str(decisions["stages"][1]["width"]) + ")"]
    weights = full[0]["history"][-1]["teacher_weights"]
    assert len(weights) == 2 and sum(weights.values()) == pytest.approx(1.0, abs=1e-4)
    assert full[0]["initial_temperature"] == decisions["temperature"]

    no_progressive = variants["progressive"][0][0]
    assert no_progressive["teachers"] == ["teacher"]
    no_multi = variants["multi_teacher"][0][0]
    assert "teacher_weights" not in no_multi["history"][-1] and len(no_multi["teachers"]) == 2  # sees teacher + assistant
    no_meta = variants["meta_temperature"][0][0]
    assert {h["temperature"] for h in no_meta["history"]} == {decisions["temperature"]}
    assert all("next_temperature" in h for h in full[0]["history"])
    no_config = variants["config_manager"][0][0]
    assert (no_config["initial_temperature"], no_config["alpha"]) == (4.0, 0.7)


def test_a_component_that_takes_part_in_planning_is_removed_from_the_plan_too(tiny_world):
    ctx, decisions, variants = tiny_world
    assert decisions["alpha"] == 0.5  # the probes' only alpha: hpmkd's assistant is distilled at alpha 0.5
    plans = {c: variants[c][1]["plan"] for c in COMPONENTS}
    assert all(plans[c]["replanned"] for c in steps.REPLANNED)
    assert not plans["parallel"]["replanned"] and not plans["cache"]["replanned"]
    assert "not re-planned" in plans["cache"]["text"]
    # Without the configuration manager the assistants are distilled at the default T and alpha, not the probed ones.
    no_config = json.loads((ctx.out / "hpmkd" / "plan-hpmkd-no-config-manager.json").read_text())
    assert (no_config["temperature"], no_config["alpha"], no_config["probes"]) == (4.0, 0.7, [])
    assert [c["assistants"] for c in no_config["chain_candidates"]] == [0, 1]
    assert (runs.run_dir(ctx.out, "assistant1of1-T4-a0.7", 0) / "record.json").exists()
    # Without the chain, T and alpha are hpmkd's; without multi-teacher or the meta-temperature the chain is
    # scored by students without them (their own probe runs).
    assert (plans["progressive"]["assistants"], plans["progressive"]["temperature"]) == (0, decisions["temperature"])
    for component in ("multi_teacher", "meta_temperature"):
        own = json.loads((ctx.out / "hpmkd" / f"plan-{steps.method_name(component)}.json").read_text())
        assert own["temperature"] == decisions["temperature"] and len(own["chain_candidates"]) == 2
        assert (runs.run_dir(ctx.out, "chain1-probe-" + steps.method_name(component)[len("hpmkd-"):], 0)
                / "record.json").exists()


def test_parallel_and_cache_change_cost_not_results(tiny_world):
    ctx, _, variants = tiny_world
    for component in ("parallel", "cache"):
        method = steps.method_name(component)
        for seed in (0, 1):
            assert np.array_equal(_predictions(ctx, "hpmkd", seed), _predictions(ctx, method, seed))
    _, full_cost = variants[None]
    _, no_cache_cost = variants["cache"]
    _, no_parallel_cost = variants["parallel"]
    assert full_cost["parallel"] and not no_parallel_cost["parallel"]
    assert full_cost["cache"]["misses"] == 0 and full_cost["cache"]["hits"] > 0  # all from the plan's entries
    assert no_cache_cost["cache"]["hits"] == 0 and no_cache_cost["cache"]["misses"] > 0


def test_rerun_returns_the_saved_runs_and_their_original_cost(tiny_world):
    ctx, decisions, variants = tiny_world
    records, cost = steps.train_variant(ctx, decisions, "cache")
    assert [r["test_accuracy"] for r in records] == [r["test_accuracy"] for r in variants["cache"][0]]
    assert cost == variants["cache"][1]


def test_unknown_component_is_named():
    with pytest.raises(ValueError, match="progressive, meta_temperature"):
        steps.method_name("attention")
    with pytest.raises(ValueError, match="ABLATE names unknown"):
        mnist_kd.make_config("demo", ablate=["memory"])


def test_all_switches_off_trains_the_kd_student(tmp_path):
    data = tiny_splits(n_train=96, n_val=32, n_test=32)
    cfg = mnist_kd.make_config("demo", seeds=[0], teacher_epochs=1, student_epochs=2, progress=False,
                               components={c: False for c in COMPONENTS})
    cfg.student = dataclasses.replace(cfg.student, batch_size=32, channels_last=False)
    cfg.teacher = dataclasses.replace(cfg.teacher, batch_size=32, channels_last=False)
    teacher, _ = mnist_kd.train_teacher(cfg, data, tmp_path, CPU)
    _, kd = mnist_kd.train_student("kd", cfg, data, tmp_path, CPU, 0, teacher=teacher)
    decisions = mnist_kd.plan_hpmkd(cfg, data, tmp_path, CPU, teacher)
    assert decisions["probes"] == [] and decisions["assistants"] == 0
    (hp,), _ = mnist_kd.train_hpmkd(cfg, data, tmp_path, CPU, teacher, decisions)
    assert hp["test_accuracy"] == kd["test_accuracy"] and hp["val_accuracy"] == kd["val_accuracy"]
    kd_weights = torch.load(tmp_path / "runs" / "kd-seed0" / "best.pt", weights_only=True)["model"]
    hp_weights = torch.load(tmp_path / "runs" / "hpmkd-seed0" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(kd_weights[k], hp_weights[k]) for k in kd_weights)
