import json

import numpy as np
import pytest
import torch

from conftest import run_kdlib, tiny_splits
from reading import check_reads_as_saved
from kdlib import results_io, runs
from kdlib.data.splits import ImageSplits
from kdlib.experiments import cifar10_ast as exp


def tiny_rgb() -> ImageSplits:
    return tiny_splits(128, 32, 32, channels=3, size=16)


def test_config_validation():
    with pytest.raises(ValueError, match="demo, cpu-real, quick, full"):
        exp.make_config("huge")
    with pytest.raises(ValueError, match="no AST epoch"):
        exp.make_config("demo", epochs=1)
    with pytest.raises(ValueError, match="TARGET_RATE"):
        exp.make_config("demo", target_rate=1.5)
    with pytest.raises(ValueError, match="SCORING"):
        exp.make_config("demo", scoring="magic")
    with pytest.raises(ValueError, match="too few for the frontier: full@0.75 and full@0.5 both train 2"):
        exp.make_config("demo", epochs=3)
    with pytest.raises(ValueError, match="BN_RECALIBRATION_BATCHES"):
        exp.make_config("demo", bn_recalibration_batches=-1)
    assert exp.make_config("full").scoring == "stale"
    assert exp.make_config("demo", bn_recalibration_batches=4).bn_recalibration_batches == 4


def test_the_quick_and_full_presets_run_the_rule_the_recorded_calibration_chose():
    """benchmarks/results_cpu_cifar10_real.txt is the calibration's output (cifar_calibration_table.py); its choice
    and the presets must agree, so a new calibration that chooses otherwise fails here until the presets follow."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "results_cpu_cifar10_real.txt").read_text()
    choice = text.split("## The quick and full presets' rule")[1].split("\n\n")[1]
    rule = choice.split(" (")[0]
    assert exp.CHOSEN_RULE == rule
    assert exp.CHOSEN_METHODS == ("full", *exp.FRONTIER_METHODS, "ast", "random@ast", rule, exp.control_of(rule))
    # and the presets' settings are the chosen candidate's: "rule (rate 0.3, 'stale' scoring, ...)"
    settings = choice.split(" (")[1].split(")")[0]
    for preset in ("quick", "full"):
        cfg = exp.make_config(preset)
        assert cfg.methods == list(exp.CHOSEN_METHODS)
        if "rate " in settings:
            assert f"rate {cfg.target_rate:g}," in settings, (preset, settings)
        if "scoring" in settings:
            assert f"'{cfg.scoring}' scoring" in settings, (preset, settings)
        assert ("BatchNorm recomputed" in settings) == bool(cfg.bn_recalibration_batches), (preset, settings)


def test_speedup_is_the_measured_ratio():
    runs = [
        {"method": "full", "model": "m", "params": 10, "seed": 0, "test_accuracy": 0.9, "val_accuracy": 0.9,
         "train_seconds": 10.0, "epochs": 3, "samples_backpropagated": 300, "energy_joules": 500.0},
        {"method": "ast", "model": "m", "params": 10, "seed": 0, "test_accuracy": 0.88, "val_accuracy": 0.88,
         "train_seconds": 4.0, "epochs": 3, "samples_backpropagated": 90, "energy_joules": 250.0},
        {"method": "random", "model": "m", "params": 10, "seed": 0, "test_accuracy": 0.8, "val_accuracy": 0.8,
         "train_seconds": 5.0, "epochs": 3, "samples_backpropagated": 90, "energy_joules": None},
    ]
    cfg = exp.make_config("demo")
    data = tiny_rgb()
    summary = {s["method"]: s for s in exp.results(cfg, data, runs, torch.device("cpu"))["summary"]}
    assert summary["full"]["speedup_vs_full"] == 1.0
    assert summary["ast"]["speedup_vs_full"] == pytest.approx(2.5)
    assert summary["ast"]["energy_ratio_vs_full"] == pytest.approx(2.0)
    assert summary["random"]["energy_joules_mean"] is None and summary["random"]["energy_ratio_vs_full"] is None


def test_the_demo_methods_on_tiny_data(tmp_path):
    cfg = exp.make_config("demo", epochs=4, target_rate=0.25, progress=False)
    cfg.train.batch_size = 32
    data = tiny_rgb()
    assert cfg.methods == ["full", "full@0.25", "full@0.5", "full@0.75", "ast", "random@ast"]
    records = {m: exp.train_method(m, cfg, data, tmp_path, torch.device("cpu"), seed=0) for m in cfg.methods}
    full, ast, rnd = records["full"], records["ast"], records["random@ast"]
    assert full["samples_backpropagated"] == 4 * 128 and full["optimizer_steps"] == 4 * 4
    assert [records[m]["epochs"] for m in ("full@0.25", "full@0.5", "full@0.75")] == [1, 2, 3]
    assert records["full@0.5"]["samples_backpropagated"] == 2 * 128
    # warm-up epoch in full, then about a quarter of each batch
    assert 128 + 3 * 0.15 * 128 <= ast["samples_backpropagated"] <= 128 + 3 * 0.45 * 128
    assert ast["samples_forwarded"] == 128 + 3 * 128 + (ast["samples_backpropagated"] - 128)  # scoring + learning
    # the control: each epoch as many samples as ast learned from in that epoch, in expectation; the same steps
    for mine, theirs in zip(rnd["history"], ast["history"]):
        assert abs(mine["samples_backpropagated"] - theirs["samples_backpropagated"]) <= 8 * 4  # a bucket a batch
    assert rnd["optimizer_steps"] == ast["optimizer_steps"] == 16
    assert full["energy_joules"] is None  # no GPU here: not measured, not estimated
    trace = np.load(ast["selection_trace"])
    assert trace["scores"].shape == (12, 32) and trace["selected"].dtype == bool and rnd["selection_trace"] is None
    assert all(len(h["batch_rates"]) == 4 for h in ast["history"][1:])
    assert (ast["rule"], ast["rate"], rnd["rule"], rnd["rate"], rnd["matched_to"], full["rule"]) == (
        "ast", 0.25, "random", "matched", "ast", None)


def test_infobatch_and_its_random_pruning_control_take_the_same_steps_seed_by_seed(tmp_path):
    """The issue's done-when: --methods full infobatch random-prune@infobatch."""
    cfg = exp.make_config("cpu-real", seeds=[0, 1], epochs=4, progress=False,
                          methods=["full", "infobatch", "random-prune@infobatch"])
    cfg.train.batch_size, cfg.model_kwargs = 16, {"width": 0.125}
    records, _ = exp.run_all(cfg, tiny_rgb(), tmp_path, torch.device("cpu"), progress=False)
    by = {(r["method"], r["seed"]): r for r in records}
    for seed in (0, 1):
        ib, control = by[("infobatch", seed)], by[("random-prune@infobatch", seed)]
        assert control["optimizer_steps"] == ib["optimizer_steps"] < by[("full", seed)]["optimizer_steps"]
        assert [h["epoch_rows"] for h in control["history"]] == [h["epoch_rows"] for h in ib["history"]]
        assert control["samples_backpropagated"] == ib["samples_backpropagated"]


def test_methods_are_checked():
    assert exp.make_config("cpu-real").methods == list(exp.CALIBRATION_METHODS)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        exp.make_config("demo", methods=["full", "magic"])
    with pytest.raises(ValueError, match="must include 'full'"):
        exp.make_config("demo", methods=["ast", "random"])
    with pytest.raises(ValueError, match="'infobatch' must run too"):
        exp.make_config("demo", methods=["full", "random-prune@infobatch"])
    with pytest.raises(ValueError, match="repeats"):
        exp.make_config("demo", methods=["full", "ast", "ast"])


def test_interleaved_runs_equal_runs_one_after_another(tmp_path):
    """Pausing after every epoch and resuming from the checkpoint changes nothing a run computes."""

    cfg = exp.make_config("demo", seeds=[0], epochs=3, target_rate=0.25, progress=False,
                          methods=["full", "full@0.5", "ast", "random@ast", "selective-backprop+accumulate",
                                   "random@selective-backprop+accumulate"])
    cfg.train.batch_size, cfg.model_kwargs = 32, {"width": 0.25}
    data = tiny_rgb()
    straight = {m: exp.train_method(m, cfg, data, tmp_path / "a", torch.device("cpu"), 0) for m in cfg.methods}
    records, trained = exp.run_all(cfg, data, tmp_path / "b", torch.device("cpu"), progress=False)
    assert [r["method"] for r in records] == cfg.methods
    assert [(t["method"], t["epoch"]) for t in trained[:6]] == [
        ("full", 1), ("full@0.5", 1), ("ast", 1), ("random@ast", 1), ("selective-backprop+accumulate", 1),
        ("random@selective-backprop+accumulate", 1)]
    for r in records:
        s = straight[r["method"]]
        assert (r["test_accuracy"], r["samples_backpropagated"]) == (s["test_accuracy"], s["samples_backpropagated"])
        assert [h["val_loss"] for h in r["history"]] == [h["val_loss"] for h in s["history"]]
        np.testing.assert_array_equal(r["test_predictions"], s["test_predictions"])
    again, trained_again = exp.run_all(cfg, data, tmp_path / "b", torch.device("cpu"), progress=False)
    # nothing trains again, and the timeline of the session that trained them is kept
    assert trained_again == trained and [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in records]


def test_demo_finds_cifar10_image_folders(input_root):
    from conftest import write_cifar_tree

    write_cifar_tree(input_root / "cifar10-pngs", per_class=3, test_per_class=None)
    cfg = exp.make_config("demo")
    source = exp.locate_data(cfg)
    assert not source.embedded and source.name == "CIFAR-10 (PNG image folders)"
    data = exp.load_data(cfg, source=source)
    assert "carved from train/" in data.info()["notes"][0]


@pytest.mark.notebook
def test_demo_notebook_end_to_end(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("KDLIB_INPUT_ROOT", str(tmp_path / "no-input"))  # the embedded digits, whatever is attached here
    out = tmp_path / "out"
    started = time.perf_counter()
    proc = run_kdlib("run", "cifar10-ast", "--preset", "demo", "--out", str(out))
    print(f"cifar10-ast demo notebook: {time.perf_counter() - started:.0f} s wall-clock")  # the README's figure (-s)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results_io.validate_results(results) == []
    assert results["experiment"] == "cifar10-ast" and "not CIFAR-10" in results["dataset"]["name"]
    summary = {s["method"]: s for s in results["summary"]}
    assert set(summary) == {"full", "full@0.25", "full@0.5", "full@0.75", "ast", "random@ast"}
    # the speed-up's formula is worked by hand in test_results_assembly; here: it comes from the times the run
    # folders' records measured (demo: seeds 0 and 1), not from anything else
    seconds = {(r["method"], r["seed"]): runs.read_record(runs.record_path(out, r["method"], r["seed"]), None)
               ["train_seconds"] for r in results["runs"]}
    assert sorted(seconds) == sorted((m, s) for m in summary for s in (0, 1))
    full = (seconds[("full", 0)] + seconds[("full", 1)]) / 2
    assert summary["full"]["speedup_vs_full"] == 1.0
    for method in ("ast", "random@ast", "full@0.5"):
        assert summary[method]["speedup_vs_full"] == pytest.approx(full / ((seconds[(method, 0)] + seconds[(method, 1)]) / 2))
    assert all(s["energy_joules_mean"] is None for s in summary.values())
    assert summary["ast"]["samples_backpropagated_mean"] < summary["full"]["samples_backpropagated_mean"]
    for figure in ("samples", "accuracy_curves", "controller_trace", "cost", "frontier", "comparisons", "epoch_timeline",
                   "selection_evidence", "controller_replay"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
    # the methods ran interleaved: every method's first epoch before any method's second
    slices = results["interleaved_epochs"]
    assert {(s["method"], s["epoch"]) for s in slices[:6]} == {(m, 1) for m in summary}
    # the verdicts the notebook prints read from this run's numbers: per rule one against the frontier, its control
    # and full training at the same epochs, each with its interval and Holm's p; the control against the frontier
    comparisons = {(c["method"], c["baseline"]): c for c in results["comparisons"]}
    assert set(comparisons) == {("ast", "frontier"), ("ast", "random@ast"), ("ast", "full"), ("random@ast", "frontier")}
    for c in comparisons.values():
        assert c["seeds"] == [0, 1] and all(k in c for k in ("difference_mean", "ci_low", "ci_high", "p_value_holm"))
    executed = (out / "02_cifar10_ast.ipynb").read_text()
    for c in comparisons.values():
        assert c["text"].split(":")[0] in executed  # "ast BEATS training less", "ast cannot be told apart ...", ...
    assert ("ast BEATS training less" in executed) == (comparisons[("ast", "frontier")]["verdict"] == "beats")
    check_reads_as_saved(out / "02_cifar10_ast.ipynb")  # as a shared link shows it
