"""HPM-KD end to end on a tiny generated split: the plan's decisions and what they cost, every ablation variant and
what it had to do, the cache's hits, cost records that survive a re-run, KD's search being HPM-KD's, and 'all
switches off' giving KD's student."""

import dataclasses
import json

import pytest
import torch

from conftest import tiny_splits
from kdlib import runs
from kdlib.distill.hpmkd import COMPONENTS, HPMKDSettings
from kdlib.experiments import hpmkd_pipeline as steps
from kdlib.experiments import mnist_kd
from kdlib.experiments.common import train_and_test
from kdlib.models import create_model
from kdlib.train import TrainConfig

CPU = torch.device("cpu")
STUDENT = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False, channels_last=False)
SETTINGS = HPMKDSettings(max_assistants=1, chain_epsilon=-1.0,  # accept the assistant whatever it gains
                         assistant_epochs=1, chain_probe_epochs=1, temperatures=(2.0, 4.0), alphas=(0.5,),
                         probe_epochs=1, probe_budget_epochs=2, probe_fraction=0.5, assistant_fraction=0.75)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("hpmkd")
    data = tiny_splits(n_train=96, n_val=32, n_test=32)
    config = dataclasses.replace(STUDENT, epochs=1)
    teacher, _ = train_and_test("teacher", "resnet18_mnist", data, config, out, CPU)
    ctx = steps.HPMKDContext(data, out, CPU, teacher, "mobilenet_student", STUDENT, 4.0, 0.7, SETTINGS, [0, 1])
    trained_before_planning = _finished(out)
    decisions = steps.plan(ctx)
    ctx.trained_by_plan = _finished(out) - trained_before_planning
    variants = {None: steps.train_variant(ctx, decisions)}
    for component in COMPONENTS:
        variants[component] = steps.train_variant(ctx, decisions, component)
    return ctx, decisions, variants


def _finished(out):
    return {p.parent.name for p in (out / "runs").glob("*/record.json")}


def _predictions(variants, component, seed):
    return next(r["test_predictions"] for r in variants[component][0] if r["seed"] == seed)


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
        record = runs.read_record(run_dir / runs.RECORD_FILE, None)
        assert "test_accuracy" not in record and "test_predictions" not in record
    assert decisions["cache"]["hits"] > 0  # the probes and the chain reused the teacher's logits


def test_the_plan_trains_on_shares_of_the_split_and_counts_what_it_spent(tiny_world):
    """96 training images. Probes and scoring students train on half (48), the assistant on 72 (0.75): epochs x
    share. Two probes and two scoring students of 1 epoch: 2 x 0.5 each. The assistant: 1 epoch x 0.75 x its FLOPs
    over the student's; its logit tables (the chain probe's 48 images, the students' 96), a third of that per pass."""
    ctx, decisions, _ = tiny_world
    planning = decisions["planning"]
    student = create_model("mobilenet_student", 4, 1)
    assistant = create_model("mobilenet_student", 4, 1, width=decisions["stages"][1]["width"])
    ratio = steps.forward_flops(assistant, ctx.data) / steps.forward_flops(student, ctx.data)
    assert ratio > 1.5  # the assistant is wider: each of its epochs costs more than a student's
    epochs = planning["student_epochs"]
    assert (epochs["probes"], epochs["chain_probes"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert epochs["assistants"] == pytest.approx(0.75 * ratio, rel=1e-3)
    assert epochs["assistant_logits"] == pytest.approx((0.5 + 1.0) * ratio / 3, rel=1e-3)
    assert epochs["total"] == pytest.approx(2.0 + 0.75 * ratio + 0.5 * ratio, rel=1e-3)
    assert (planning["probe_images"], planning["assistant_images"]) == (48, 72)
    assert planning["seconds"] == pytest.approx(planning["search_seconds"] + planning["chain_seconds"])
    assert planning["search_seconds"] > 0 and planning["chain_seconds"] > 0
    probe = runs.read_record(runs.record_path(ctx.out, "probe-T2-a0.5", 0), None)
    assistant_run = runs.read_record(runs.record_path(ctx.out, "assistant1of1-T2-a0.5", 0), None)
    assert probe["identity"]["data_fingerprint"] != assistant_run["identity"]["data_fingerprint"] != ctx.data.fingerprint()
    assert ctx.trained_by_plan == {"probe-T2-a0.5-seed0", "probe-T4-a0.5-seed0", "chain0-probe-seed0",
                                   "chain1-probe-seed0", "assistant1of1-T2-a0.5-seed0"}


def test_a_training_subset_keeps_the_whole_splits_normalisation_and_the_same_images():
    data = tiny_splits(n_train=96, n_val=32, n_test=32)
    half = steps.training_subset(data, 0.5)
    assert len(half.train_y) == 48 and torch.equal(half.val_x, data.val_x) and torch.equal(half.test_y, data.test_y)
    assert torch.equal(steps.training_subset(data, 0.5).train_x, half.train_x)  # seeded: the same images each time
    assert half.channel_stats() == data.channel_stats()  # so a frozen model sees each image as in the whole split
    rows = [next(i for i in range(96) if torch.equal(data.train_x[i], x)) for x in half.train_x[:5]]
    assert torch.equal(data.train_y[rows], half.train_y[:5])  # images keep their labels
    assert steps.training_subset(data, 1.0) is data
    with pytest.raises(ValueError, match="probe_fraction"):
        HPMKDSettings(probe_fraction=0.0)


def test_cost_records_count_the_plan_in_the_total(tiny_world):
    _, decisions, variants = tiny_world
    _, cost = variants[None]
    assert cost["planning_seconds"] == decisions["planning"]["seconds"] > 0
    assert cost["total_seconds"] == pytest.approx(cost["planning_seconds"] + cost["student_seconds"])
    assert cost["student_epochs"] == {"planning": decisions["planning"]["student_epochs"]["total"], "training": 2,
                                      "total": decisions["planning"]["student_epochs"]["total"] + 2}
    # without the configuration manager there is no search to pay for; without the chain, no assistant
    no_config = variants["config_manager"][1]["student_epochs"]["planning"]
    no_chain = variants["progressive"][1]["student_epochs"]["planning"]
    assert no_chain == pytest.approx(decisions["planning"]["student_epochs"]["probes"])
    assert no_config == pytest.approx(decisions["planning"]["student_epochs"]["total"]
                                      - decisions["planning"]["student_epochs"]["probes"], rel=1e-3)


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
    _, _, variants = tiny_world
    for component in ("parallel", "cache"):
        for seed in (0, 1):
            assert _predictions(variants, None, seed) == _predictions(variants, component, seed)
    _, full_cost = variants[None]
    _, no_cache_cost = variants["cache"]
    _, no_parallel_cost = variants["parallel"]
    assert full_cost["parallel"] and not no_parallel_cost["parallel"]
    # the plan trained on a share of the split: each teacher's table of the whole split is computed once, by the
    # first seed's student, and read by the second; the validation tables come from the plan's entries
    teachers = len(variants[None][0][0]["teachers"])
    assert full_cost["cache"]["misses"] == teachers and full_cost["cache"]["hits"] >= teachers
    assert no_cache_cost["cache"]["hits"] == 0 and no_cache_cost["cache"]["misses"] > 0


def test_rerun_returns_the_saved_runs_and_their_original_cost(tiny_world):
    ctx, decisions, variants = tiny_world
    records, cost = steps.train_variant(ctx, decisions, "cache")
    assert [r["test_accuracy"] for r in records] == [r["test_accuracy"] for r in variants["cache"][0]]
    assert cost == variants["cache"][1]
    again = steps.plan(ctx)  # everything loaded: the planning seconds are those of the call that trained the runs
    assert again["planning"] == decisions["planning"]


def test_kd_tuned_searches_with_the_configuration_managers_runs(tiny_world):
    ctx, decisions, _ = tiny_world
    before = _finished(ctx.out)
    search = steps.configuration_search(ctx, True, ctx.cache(True))
    assert _finished(ctx.out) == before  # the same runs: nothing trained again
    assert search["probes"] == decisions["probes"]
    assert (search["temperature"], search["alpha"]) == (decisions["temperature"], decisions["alpha"])
    assert search["seconds"] == decisions["planning"]["search_seconds"]
    assert search["student_epochs"] == decisions["planning"]["student_epochs"]["probes"]


def _record(teachers, temperatures, components=None):
    return {"teachers": teachers, "initial_temperature": temperatures[0],
            "components": components or dict.fromkeys(COMPONENTS, True),
            "history": [{"temperature": t} for t in temperatures]}


def test_a_component_with_nothing_to_do_is_named_and_one_that_acted_is_not():
    full = {"temperature": 6.0, "alpha": 0.5, "stages": ["teacher"], "assistants": 0}
    moved = [_record(["teacher"], [6.0, 6.0, 7.5])]
    still = [_record(["teacher"], [6.0, 6.0, 6.0]), _record(["teacher"], [6.0, 6.0])]
    short = [_record(["teacher"], [6.0, 6.0])]
    assert "no assistant" in steps.idle_reason("progressive", full, dict(full), still)
    assert "nothing to weigh" in steps.idle_reason("multi_teacher", full, dict(full), still)
    assert "rose by at least min_progress" in steps.idle_reason("meta_temperature", full, dict(full), still)
    assert "can first change for a third epoch" in steps.idle_reason("meta_temperature", full, dict(full), short)
    assert steps.idle_reason("meta_temperature", full, dict(full), moved) is None
    assert "cost" in steps.idle_reason("parallel", full, dict(full), still)
    assert steps.idle_reason("config_manager", full, {**full, "temperature": 4.0, "alpha": 0.7}, still) is None
    assert "default" in steps.idle_reason("config_manager", {**full, "temperature": 4.0, "alpha": 0.7},
                                          {**full, "temperature": 4.0, "alpha": 0.7}, still)
    chain = {**full, "stages": ["teacher", "assistant1 (width 2)"], "assistants": 1}
    two = [_record(["teacher", "assistant1 (width 2)"], [6.0, 6.0])]
    assert steps.idle_reason("multi_teacher", chain, dict(chain), two) is None
    assert steps.idle_reason("progressive", chain, dict(full), two) is None  # its plan differs: it acted
    # re-planned without it, the chain came out otherwise: the component acted in planning, whatever the students did
    assert steps.idle_reason("meta_temperature", full, dict(chain), still) is None
    off = [_record(["teacher"], [6.0, 6.0], {**dict.fromkeys(COMPONENTS, True), "meta_temperature": False})]
    assert "off in hpmkd" in steps.idle_reason("meta_temperature", full, dict(full), off)


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


def test_kd_at_hpmkd_cost_trains_hpmkds_student_epochs_with_its_schedule_stretched(tmp_path):
    """HPM-KD's 2.6 student-epoch equivalents per student (0.6 planning + 2 training) round to 3 epochs of KD; the
    student's 0.5-epoch warm-up of 2 epochs stretches to 0.75 of 3."""
    assert [mnist_kd.kd_at_hpmkd_cost_epochs({"student_epochs": {"total": t}}) for t in (2.6, 2.49, 2.5, 0.2)] == [
        3, 2, 3, 1]
    data = tiny_splits(n_train=64, n_val=32, n_test=32)
    cfg = mnist_kd.make_config("demo", seeds=[0], progress=False)
    cfg.student = dataclasses.replace(STUDENT, epochs=2, warmup_epochs=0.5)
    cfg.teacher = dataclasses.replace(STUDENT, epochs=1)
    teacher, _ = mnist_kd.train_teacher(cfg, data, tmp_path, CPU)
    (record,), cost = mnist_kd.train_kd_at_hpmkd_cost(cfg, data, tmp_path, CPU, teacher,
                                                       {"student_epochs": {"total": 2.6}})
    assert record["method"] == "kd@hpmkd-cost" and record["epochs"] == 3 and len(record["history"]) == 3
    assert record["identity"]["train"]["warmup_epochs"] == pytest.approx(0.75)
    assert (record["identity"]["objective"]["temperature"], record["identity"]["objective"]["alpha"]) == (4.0, 0.7)
    assert cost["student_epochs"] == {"planning": 0.0, "training": 3, "total": 3.0}
    assert cost["total_seconds"] == cost["student_seconds"] == record["train_seconds"]
