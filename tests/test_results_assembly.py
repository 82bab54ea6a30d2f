"""Each experiment's results assembly, from hand-made run records: the summary, the measured ratios and the
comparisons each notebook states, worked by hand."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import t, ttest_rel

from conftest import tiny_splits
from kdlib import results_io
from kdlib.evaluate import confusion_matrix
from kdlib.experiments import cifar10_ast, hpmkd_reporting, imagenet100_ast, mnist_kd

CPU = torch.device("cpu")


def _record(method, seed, params, predictions, labels, **extra):
    predictions = np.asarray(predictions)
    return {"method": method, "model": "m", "params": params, "seed": seed,
            "test_accuracy": float(np.mean(predictions == labels)), "val_accuracy": 0.5, "train_seconds": 1.0,
            "epochs": 2, "test_predictions": predictions.tolist(), "test_labels": np.asarray(labels).tolist(),
            "history": [{"epoch": 1}], "confusion_matrix": confusion_matrix(predictions, labels, 4).tolist(), **extra}


def _wrong_on(labels, n):
    """The labels with the first n answers wrong (4 classes)."""
    predictions = labels.copy()
    predictions[:n] = (predictions[:n] + 1) % 4
    return predictions


def _holm(p_values):
    """Holm by hand for a small family: the i-th smallest times (m - i), never below the one before, at most 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [None] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _mnist_cost(method, seeds=(0, 1, 2), planning=0.0, training=2, **extra):
    return {"method": method, "seeds": list(seeds), "parallel": False, "student_seconds": 10.0,
            "planning_seconds": 5.0 * planning, "total_seconds": 10.0 + 5.0 * planning,
            "student_epochs": {"planning": planning, "training": training, "total": planning + training}, **extra}


def test_mnist_kd_results_compare_hpmkd_with_each_kd_in_one_holm_family_and_the_ablation_with_hpmkd():
    """32 test images. Wrong answers per seed 0, 1, 2: direct 8, 10, 9; kd 4, 6, 7; kd-tuned 3, 4, 6;
    kd@hpmkd-cost 1, 1, 2; hpmkd 0, 1, 0 (its wrong ones among everyone's); hpmkd-no-cache as hpmkd (cost only);
    hpmkd-no-config-manager 2, 4, 3. McNemar hpmkd vs kd: only hpmkd right on 4, 5, 7 images, only kd on none, so
    p = 2 * (1/2)^b = 0.125, 0.0625, 0.015625; vs kd-tuned on 3, 3, 6: 0.25, 0.25, 0.03125."""
    data = tiny_splits(n_test=32)
    labels = data.test_y.numpy()
    wrong = {"direct": (8, 10, 9), "kd": (4, 6, 7), "kd-tuned": (3, 4, 6), "kd@hpmkd-cost": (1, 1, 2),
             "hpmkd": (0, 1, 0), "hpmkd-no-cache": (0, 1, 0), "hpmkd-no-config-manager": (2, 4, 3),
             "hpmkd-no-progressive": (1, 1, 2)}
    runs = [_record("teacher", 0, 4000, labels, labels)]
    runs += [_record(m, s, 100, _wrong_on(labels, n[s]), labels) for m, n in wrong.items() for s in range(3)]
    decisions = {"temperature": 4.0, "alpha": 0.7, "_stages": ["not JSON"]}
    costs = [_mnist_cost("kd"), _mnist_cost("kd-tuned", planning=0.5), _mnist_cost("kd@hpmkd-cost", training=5),
             _mnist_cost("hpmkd", planning=2.5, plan={"text": "the full pipeline's"}),
             _mnist_cost("hpmkd-no-cache", planning=2.5, component="cache", nothing_to_do="changes cost"),
             _mnist_cost("hpmkd-no-config-manager", planning=2.0, component="config_manager", nothing_to_do=None),
             # said to have had nothing to do, yet different on two seeds: still out of the Holm family (not a finding)
             _mnist_cost("hpmkd-no-progressive", planning=0.5, component="progressive", nothing_to_do="no assistant")]
    res = mnist_kd.results(mnist_kd.make_config("demo", seeds=[0, 1, 2]), data, runs, CPU, decisions, costs)

    assert results_io.validate_results(res) == []
    assert not any(k in r for r in res["runs"] for k in ("test_predictions", "history", "confusion_matrix"))
    assert res["hpmkd"]["plan"] == {"temperature": 4.0, "alpha": 0.7}
    assert [c["method"] for c in res["hpmkd"]["costs"]] == ["hpmkd", "hpmkd-no-cache", "hpmkd-no-config-manager",
                                                            "hpmkd-no-progressive"]
    summary = {s["method"]: s for s in res["summary"]}
    assert summary["kd"]["test_accuracy_mean"] == pytest.approx(1 - 17 / 96)
    assert summary["kd"]["retention"] == pytest.approx(1 - 17 / 96) and summary["kd"]["compression"] == 40.0

    acc = {m: np.array([1 - n / 32 for n in w]) for m, w in wrong.items()}
    kd_vs_direct, *hpmkd_vs = res["comparisons"]
    assert (kd_vs_direct["method"], kd_vs_direct["baseline"]) == ("kd", "direct")
    assert kd_vs_direct["difference_mean"] == pytest.approx((4 + 4 + 2) / 3 / 32)
    assert kd_vs_direct["holm_family_size"] == 1 and kd_vs_direct["p_value_holm"] == kd_vs_direct["p_value"]
    # HPM-KD's verdict: against tuned KD first, then plain KD and KD given its compute, as one Holm family of three
    baselines = ["kd-tuned", "kd", "kd@hpmkd-cost"]
    assert [(c["method"], c["baseline"]) for c in hpmkd_vs] == [("hpmkd", b) for b in baselines]
    raw = [ttest_rel(acc["hpmkd"], acc[b]).pvalue for b in baselines]
    for c, b, p, p_holm in zip(hpmkd_vs, baselines, raw, _holm(raw)):
        diffs = acc["hpmkd"] - acc[b]
        half = t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
        assert c["difference_mean"] == pytest.approx(diffs.mean())
        assert (c["ci_low"], c["ci_high"]) == (pytest.approx(diffs.mean() - half), pytest.approx(diffs.mean() + half))
        assert c["p_value"] == pytest.approx(p) and c["p_value_holm"] == pytest.approx(p_holm)
        assert c["holm_family_size"] == 3 and c["family"] == "hpmkd against KD"
    assert hpmkd_vs[0]["difference_mean"] == pytest.approx(4 / 32)  # (3 + 3 + 6) / 3 answers of 32
    # The ablation: each variant minus hpmkd on the same seeds; the cost-only row is not a finding
    no_cache, no_config, no_chain = res["ablation"]
    assert not no_chain["counted"] and no_chain["p_value"] is not None and no_chain["p_value_holm"] is None
    assert (no_cache["counted"], no_cache["nothing_to_do"]) == (False, "changes cost")
    assert no_cache["difference_mean"] == 0 and no_cache["p_value"] is None and no_cache["p_value_holm"] is None
    assert no_config["counted"] and no_config["difference_mean"] == pytest.approx(-(2 + 3 + 3) / 3 / 32)
    assert no_config["p_value"] == pytest.approx(ttest_rel(acc["hpmkd-no-config-manager"], acc["hpmkd"]).pvalue)
    assert no_config["p_value_holm"] == no_config["p_value"] and no_config["holm_family_size"] == 1
    assert no_config["ci_high"] < 0  # removing the configuration manager hurt on every seed
    mcnemar = {m["baseline"]: m for m in res["mcnemar"]}
    assert [(r["only_a_correct"], r["only_b_correct"]) for r in mcnemar["kd"]["per_seed"]] == [(4, 0), (5, 0), (7, 0)]
    assert [r["p_value"] for r in mcnemar["kd"]["per_seed"]] == pytest.approx([0.125, 0.0625, 0.015625])
    assert [r["p_value"] for r in mcnemar["kd-tuned"]["per_seed"]] == pytest.approx([0.25, 0.25, 0.03125])

    table = hpmkd_reporting.comparisons_frame(res["comparisons"]).set_index("comparison")
    assert table.loc["hpmkd - kd-tuned", "difference (points) [95% CI]"] == (
        f"+12.50 [{100 * hpmkd_vs[0]['ci_low']:+.2f}, {100 * hpmkd_vs[0]['ci_high']:+.2f}]")
    assert table.loc["hpmkd - kd-tuned", "Holm p"] == f"{_holm(raw)[0]:.3g} (of 3)"
    ablation = hpmkd_reporting.ablation_frame(res, runs).set_index("method")
    assert list(ablation.index) == ["hpmkd", "hpmkd-no-cache", "hpmkd-no-config-manager", "hpmkd-no-progressive"]
    assert ablation.loc["hpmkd-no-cache", "counted"] == "no: changes cost"
    assert ablation.loc["hpmkd-no-config-manager", "counted"] == "yes"
    assert list(ablation["same predictions as hpmkd"]) == ["", True, False, False]
    assert ablation.loc["hpmkd-no-config-manager", "vs hpmkd (points) [95% CI]"].startswith("-8.33 [")
    assert ablation.loc["hpmkd", "plan"] == "the full pipeline's"
    costs_table = hpmkd_reporting.cost_frame(res["costs"]).set_index("method")
    assert costs_table.loc["hpmkd", "total per student (student epochs)"] == "4.50"
    assert costs_table.loc["hpmkd", "total (s)"] == "22.5"  # 12.5 s planning + 10 s training
    found = hpmkd_reporting.findings(res)
    assert any(line.startswith("Compute per student") and "hpmkd 4.50 (2.50 planning + 2 training)" in line
               for line in found)
    assert any("not findings: hpmkd-no-cache (changes cost); hpmkd-no-progressive (no assistant)" in line
               for line in found)


def _ast_record(method, seed, seconds, epochs, accuracy, backpropagated, **extra):
    return {"method": method, "model": "m", "params": 10, "seed": seed, "test_accuracy": accuracy,
            "val_accuracy": accuracy, "train_seconds": seconds * epochs, "epochs": epochs,
            "samples_backpropagated": backpropagated, "energy_joules": None,
            "history": [{"epoch": e + 1, "epoch_seconds": seconds, "energy_joules": None} for e in range(epochs)],
            **extra}


def test_cifar10_ast_results_measure_the_speed_up_as_a_ratio_of_means_and_judge_each_rule_three_ways():
    """Two seeds, one epoch each. Train seconds: full 10, 12 (mean 11); ast 4, 7 (mean 5.5): speed-up 11 / 5.5 =
    2.0 (the mean of the per-seed ratios, 2.5 and 1.71, would say 2.11); random@ast 8, 14: 1.0. The frontier's clock
    is each method's median epoch over the seeds (one epoch here: the mean of two): full@0.5 5.5 s, full 11 s, ast
    5.5 s, random@ast 11 s. AST is judged against the frontier at its own time (5.5 s: full@0.5's accuracy on each
    seed, 0.85 and 0.86), against its control and against full at the same epochs; McNemar per seed reads the
    records' test predictions."""
    data = tiny_splits(channels=3)
    labels = data.test_y.tolist()
    wrong = [(y + 1) % 10 for y in labels]
    seconds = {"full": (10, 12), "full@0.5": (5, 6), "ast": (4, 7), "random@ast": (8, 14)}
    accuracy = {"full": (0.90, 0.92), "full@0.5": (0.85, 0.86), "ast": (0.89, 0.90), "random@ast": (0.80, 0.83)}
    # seed 0: ast right on the first 3 test images that random gets wrong, and no other difference
    predictions = {"ast": labels, "random@ast": wrong[:3] + labels[3:], "full": labels, "full@0.5": labels}
    methods = ("full", "full@0.5", "ast", "random@ast")
    runs = [_ast_record(m, s, seconds[m][s], 1, accuracy[m][s], 1000 if m == "full" else 300,
                        test_predictions=predictions[m], samples_forwarded=1000 if m == "full" else 300)
            for m in methods for s in (0, 1)]
    res = cifar10_ast.results(cifar10_ast.make_config("demo"), data, runs, CPU)

    assert results_io.validate_results(res) == []
    summary = {s["method"]: s for s in res["summary"]}
    assert [summary[m]["speedup_vs_full"] for m in methods] == pytest.approx([1.0, 2.0, 2.0, 1.0])
    by = {(c["method"], c["baseline"]): c for c in res["comparisons"]}
    assert set(by) == {("ast", "frontier"), ("ast", "random@ast"), ("ast", "full"), ("random@ast", "frontier")}
    frontier = by[("ast", "frontier")]
    assert [p["cost"] for p in frontier["per_seed"]] == [5.5, 5.5] and summary["ast"]["train_seconds_robust"] == 5.5
    assert [p["frontier"] for p in frontier["per_seed"]] == pytest.approx([0.85, 0.86])
    assert frontier["outside"] == [] and frontier["difference_mean"] == pytest.approx(0.04)
    # random@ast at 11 s is full training's cost: compared with full (0.90, 0.92)
    assert [p["frontier"] for p in by[("random@ast", "frontier")]["per_seed"]] == pytest.approx([0.90, 0.92])
    control = by[("ast", "random@ast")]
    assert control["difference_mean"] == pytest.approx(0.08) and control["ci_low"] is not None
    assert by[("ast", "full")]["difference_mean"] == pytest.approx(-0.015)
    assert [(r["only_a_correct"], r["only_b_correct"]) for r in control["mcnemar"]["per_seed"]] == [(3, 0), (3, 0)]
    tested = [c for c in res["comparisons"] if c["p_value"] is not None]  # identical differences have no test
    assert tested and {c["holm_family_size"] for c in tested} == {len(tested)}
    assert "test_predictions" not in res["runs"][0]  # the records carry them; results.json does not
    table = cifar10_ast.ast_summary_table(res).set_index("method")
    assert list(table["speed-up (measured)"]) == ["1.00x", "2.00x", "2.00x", "1.00x"]
    assert table.loc["ast", "backprop samples"] == "300" and table.loc["full", "backprop samples"] == "1,000"
    assert set(table["GPU energy (J)"]) == {"n/a"} and "retention (%)" not in table and "top-5 (%)" not in table
    only_full = cifar10_ast.results(cifar10_ast.make_config("demo"), data, runs[:2], CPU)
    assert only_full["comparisons"] == []  # nothing ran to compare with


def test_imagenet100_ast_results_compare_ratios_of_totals_at_equal_epochs():
    """The full preset gives every method the same epochs (the frontier fewer by design) and two seeds: speed-up
    and energy are ratios of totals. Full: 10 epochs of 10 s; AST 10 of 4 s: 100 / 40 = 2.5x."""
    cfg = imagenet100_ast.make_config("full")
    assert cfg.methods == ["full", "full@0.25", "full@0.5", "full@0.75", "ast", "random@ast"] and len(cfg.seeds) >= 2
    assert not hasattr(cfg, "baseline_epochs")
    runs = [_ast_record("full", 0, 10.0, 10, 0.80, 4000, test_top5=0.95, energy_joules=1000.0),
            _ast_record("ast", 0, 4.0, 10, 0.82, 3000, test_top5=0.96, energy_joules=500.0),
            _ast_record("random@ast", 0, 3.0, 10, 0.81, 3000, test_top5=0.94, energy_joules=400.0)]
    data = SimpleNamespace(info={"name": "d", "source": "s", "n_train": 1, "n_val": 1, "n_test": 1},
                           val=SimpleNamespace(labels=np.zeros(3, dtype=int)), test_rows=np.arange(3))
    res = imagenet100_ast.results(cfg, data, runs, CPU)

    assert results_io.validate_results(res) == []
    full, ast, _ = res["summary"]
    assert ast["speedup_vs_full"] == pytest.approx(2.5) and ast["speedup_basis"] == "training seconds"
    assert ast["energy_ratio_vs_full"] == pytest.approx(2.0)
    assert (full["test_top5_mean"], ast["test_top5_mean"]) == (0.95, 0.96)
    by = {(c["method"], c["baseline"]): c for c in res["comparisons"]}
    assert set(by) == {("ast", "random@ast"), ("ast", "full")}  # no frontier ran here
    assert by[("ast", "full")]["difference_mean"] == pytest.approx(0.02) and by[("ast", "full")]["p_value"] is None
    table = imagenet100_ast.ast_summary_table(res).set_index("method")
    assert table.loc["ast", "speed-up (measured)"] == "2.50x"
    assert table.loc["ast", "top-5 (%)"] == "96.00"
