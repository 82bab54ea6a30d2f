"""Each experiment's results assembly, from hand-made run records: the summary, the measured ratios and the
comparisons each notebook states, worked by hand."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import ttest_rel

from conftest import tiny_splits
from kdlib import results_io
from kdlib.evaluate import confusion_matrix
from kdlib.experiments import cifar10_ast, imagenet100_ast, mnist_kd

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


def test_mnist_kd_results_state_p_values_with_holm_the_comparisons_and_mcnemar():
    """32 test images. Wrong answers per seed 0, 1, 2: direct 8, 10, 9; kd 4, 6, 7; hpmkd 0, 1, 0 (its wrong
    ones among kd's). McNemar hpmkd vs kd: only hpmkd right on 4, 5, 7 images, only kd on none, so
    p = 2 * (1/2)^b = 0.125, 0.0625, 0.015625: significant on 1 of 3 seeds."""
    data = tiny_splits(n_test=32)
    labels = data.test_y.numpy()
    wrong = {"direct": (8, 10, 9), "kd": (4, 6, 7), "hpmkd": (0, 1, 0)}
    runs = [_record("teacher", 0, 4000, labels, labels)]
    runs += [_record(m, s, 100, _wrong_on(labels, n[s]), labels) for m, n in wrong.items() for s in range(3)]
    runs += [_record("hpmkd-no-cache", 0, 100, labels, labels)]  # the ablation ran seed 0 only
    decisions = {"temperature": 4.0, "alpha": 0.7, "_stages": ["not JSON"]}
    costs = [{"method": "hpmkd", "seeds": [0, 1, 2], "wall_seconds": 3.0}]
    res = mnist_kd.results(mnist_kd.make_config("demo", seeds=[0, 1, 2]), data, runs, CPU, decisions, costs)

    assert results_io.validate_results(res) == []
    assert not any(k in r for r in res["runs"] for k in ("test_predictions", "history", "confusion_matrix"))
    assert res["hpmkd"] == {"plan": {"temperature": 4.0, "alpha": 0.7}, "costs": costs}
    summary = {s["method"]: s for s in res["summary"]}
    assert list(summary) == ["teacher", "direct", "kd", "hpmkd", "hpmkd-no-cache"]
    assert summary["kd"]["test_accuracy_mean"] == pytest.approx(1 - 17 / 96)
    assert summary["kd"]["retention"] == pytest.approx(1 - 17 / 96) and summary["kd"]["compression"] == 40.0
    # against kd: direct and hpmkd on three seeds each (a family of two); teacher and the ablation on one (no test)
    acc = {m: [1 - n / 32 for n in w] for m, w in wrong.items()}
    p_direct, p_hpmkd = (ttest_rel(acc[m], acc["kd"]).pvalue for m in ("direct", "hpmkd"))
    assert p_hpmkd < p_direct < 2 * p_hpmkd  # so Holm: hpmkd's p x 2, direct's x 1 lifted to hpmkd's
    assert summary["direct"]["p_value_vs_kd"] == pytest.approx(p_direct)
    assert p_hpmkd < 0.05 < 2 * p_hpmkd and summary["hpmkd"]["p_value_vs_kd"] == pytest.approx(p_hpmkd)
    assert summary["hpmkd"]["p_value_vs_kd_holm"] == pytest.approx(2 * p_hpmkd)
    assert summary["direct"]["p_value_vs_kd_holm"] == pytest.approx(2 * p_hpmkd)
    assert summary["teacher"]["p_value_vs_kd"] is None and summary["hpmkd-no-cache"]["p_value_vs_kd_holm"] is None
    kd_vs_direct, hpmkd_vs_kd = res["comparisons"]
    assert (kd_vs_direct["method"], kd_vs_direct["baseline"]) == ("kd", "direct")
    assert kd_vs_direct["difference_mean"] == pytest.approx((4 + 4 + 2) / 3 / 32)
    assert kd_vs_direct["holm_family_size"] == 1 and kd_vs_direct["p_value_holm"] == kd_vs_direct["p_value"]
    assert (hpmkd_vs_kd["method"], hpmkd_vs_kd["baseline"]) == ("hpmkd", "kd")
    assert hpmkd_vs_kd["p_value_holm"] == pytest.approx(2 * p_hpmkd) and hpmkd_vs_kd["holm_family_size"] == 2
    assert "not significant" in hpmkd_vs_kd["text"]  # raw p < 0.05, but not once corrected for the two tests
    (mcnemar,) = res["mcnemar"]
    assert [(r["only_a_correct"], r["only_b_correct"]) for r in mcnemar["per_seed"]] == [(4, 0), (5, 0), (7, 0)]
    assert [r["p_value"] for r in mcnemar["per_seed"]] == pytest.approx([0.125, 0.0625, 0.015625])
    assert mcnemar["significant_seeds"] == 1
    table = results_io.summary_frame(res).set_index("method")
    assert table.loc["hpmkd", "p vs kd"] == f"{p_hpmkd:.3g}" and table.loc["hpmkd", "Holm p vs kd"] == f"{2 * p_hpmkd:.3g}"
    assert table.loc["kd", "p vs kd"] == ""
    assert table.loc["teacher", "p vs kd"] == "n/a"


def _ast_record(method, seed, seconds, epochs, accuracy, backpropagated, **extra):
    return {"method": method, "model": "m", "params": 10, "seed": seed, "test_accuracy": accuracy,
            "val_accuracy": accuracy, "train_seconds": seconds * epochs, "epochs": epochs,
            "samples_backpropagated": backpropagated, "energy_joules": None,
            "history": [{"epoch": e + 1, "epoch_seconds": seconds, "energy_joules": None} for e in range(epochs)],
            **extra}


def test_cifar10_ast_results_measure_the_speed_up_as_a_ratio_of_means_and_compare_each_rule_with_its_control():
    """Two seeds, one epoch each. Train seconds: full 10, 12 (mean 11); ast 4, 7 (mean 5.5): speed-up 11 / 5.5 =
    2.0 (the mean of the per-seed ratios, 2.5 and 1.71, would say 2.11); random 8, 14: 1.0. AST is compared with
    random, its control at the same budget, and with full; McNemar per seed reads the records' test predictions."""
    data = tiny_splits(channels=3)
    labels = data.test_y.tolist()
    wrong = [(y + 1) % 10 for y in labels]
    seconds = {"full": (10, 12), "ast": (4, 7), "random": (8, 14)}
    accuracy = {"full": (0.90, 0.92), "ast": (0.89, 0.90), "random": (0.80, 0.83)}
    # seed 0: ast right on the first 3 test images that random gets wrong, and no other difference
    predictions = {"ast": labels, "random": wrong[:3] + labels[3:], "full": labels}
    methods = ("full", "ast", "random")
    runs = [_ast_record(m, s, seconds[m][s], 1, accuracy[m][s], 1000 if m == "full" else 300,
                        test_predictions=predictions[m]) for m in methods for s in (0, 1)]
    res = cifar10_ast.results(cifar10_ast.make_config("demo"), data, runs, CPU)

    assert results_io.validate_results(res) == []
    summary = {s["method"]: s for s in res["summary"]}
    assert [summary[m]["speedup_vs_full"] for m in methods] == pytest.approx([1.0, 2.0, 1.0])
    assert summary["ast"]["retention"] == pytest.approx(0.895 / 0.91)
    (ast_vs_random,) = res["comparisons"]
    assert (ast_vs_random["method"], ast_vs_random["control"], ast_vs_random["baseline"]) == ("ast", "random", "random")
    assert ast_vs_random["difference_mean"] == pytest.approx(0.08)
    assert ast_vs_random["versus_reference"]["difference_mean"] == pytest.approx(-0.015)
    assert [(r["only_a_correct"], r["only_b_correct"]) for r in ast_vs_random["mcnemar"]["per_seed"]] == [(3, 0), (3, 0)]
    assert "test_predictions" not in res["runs"][0]  # the records carry them; results.json does not
    table = cifar10_ast.ast_summary_table(res).set_index("method")
    assert list(table["speed-up (measured)"]) == ["1.00x", "2.00x", "1.00x"]
    assert table.loc["ast", "backprop samples"] == "300" and table.loc["full", "backprop samples"] == "1,000"
    assert set(table["GPU energy (J)"]) == {"n/a"} and "retention (%)" not in table and "top-5 (%)" not in table
    only_full = cifar10_ast.results(cifar10_ast.make_config("demo"), data, runs[:2], CPU)
    assert only_full["comparisons"] == []  # nothing ran to compare with


def test_imagenet100_ast_results_compare_per_epoch_when_the_baseline_ran_fewer_epochs():
    """The full preset: the baseline's 4 epochs of 10 s against AST's 10 of 4 s. Per epoch 10 / 4 = 2.5x (the
    totals, 40 s against 40 s, would say 1.0x)."""
    cfg = imagenet100_ast.make_config("full")
    assert cfg.baseline_epochs == 4
    runs = [_ast_record("full", 0, 10.0, 4, 0.80, 4000, test_top5=0.95),
            _ast_record("ast", 0, 4.0, 10, 0.82, 3000, test_top5=0.96)]
    data = SimpleNamespace(info={"name": "d", "source": "s", "n_train": 1, "n_val": 1, "n_test": 1})
    res = imagenet100_ast.results(cfg, data, runs, CPU)

    assert results_io.validate_results(res) == []
    full, ast = res["summary"]
    assert ast["speedup_vs_full"] == pytest.approx(2.5) and ast["speedup_basis"] == "seconds per epoch"
    assert (full["test_top5_mean"], ast["test_top5_mean"]) == (0.95, 0.96)
    (comparison,) = res["comparisons"]
    assert (comparison["method"], comparison["baseline"]) == ("ast", "full")
    assert comparison["difference_mean"] == pytest.approx(0.02) and comparison["p_value"] is None  # one seed
    table = imagenet100_ast.ast_summary_table(res).set_index("method")
    assert table.loc["ast", "speed-up (measured)"] == "2.50x per epoch"
    assert table.loc["ast", "top-5 (%)"] == "96.00"
