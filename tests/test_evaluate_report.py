import json
import math

import numpy as np
import pytest

from kdlib import plots, results_io, statistics
from kdlib.evaluate import confusion_matrix, mean_std, per_class_accuracy


def test_confusion_and_per_class_hand_case():
    labels = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, 1, 0, 2]
    cm = confusion_matrix(preds, labels, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(cm)
    assert acc[:3].tolist() == [0.5, pytest.approx(2 / 3), 1.0] and math.isnan(acc[3])


def test_mean_and_sample_std():
    mean, std = mean_std([0.97, 0.98, 0.99])
    assert mean == pytest.approx(0.98) and std == pytest.approx(0.01)  # ddof = 1
    assert mean_std([0.5]) == (0.5, None)


def _runs():
    return [
        {"method": "teacher", "model": "big", "params": 1000, "seed": 0, "test_accuracy": 0.99, "val_accuracy": 0.98,
         "train_seconds": 10.0, "epochs": 3},
        *[{"method": m, "model": "small", "params": 25, "seed": s, "test_accuracy": a, "val_accuracy": a,
           "train_seconds": 1.0, "epochs": 5}
          for m, s, a in [("direct", 0, 0.90), ("direct", 1, 0.92), ("direct", 2, 0.91),
                          ("kd", 0, 0.95), ("kd", 1, 0.96), ("kd", 2, 0.955)]],
    ]


def test_summary_retention_and_compression():
    summary = {s["method"]: s for s in results_io.summarize(_runs())}
    assert summary["teacher"]["retention"] == pytest.approx(1.0) and summary["teacher"]["compression"] == 1.0
    assert summary["kd"]["test_accuracy_mean"] == pytest.approx(0.955)
    assert summary["kd"]["test_accuracy_std"] == pytest.approx(0.005)
    assert summary["kd"]["retention"] == pytest.approx(0.955 / 0.99)
    assert summary["direct"]["compression"] == pytest.approx(40.0) and summary["direct"]["n_seeds"] == 3


def test_write_results_and_schema(tmp_path):
    results = results_io.build_results("x", "demo", {"name": "d", "source": "s", "n_train": 1, "n_val": 1, "n_test": 1},
                                   {"device": "cpu"}, _runs())
    paths = results_io.write_results(results, tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert results_io.validate_results(loaded) == []
    assert paths["csv"].read_text().splitlines()[0] == ",".join(results_io.RUN_FIELDS)
    assert "kd" in paths["txt"].read_text()
    bad = dict(results, runs=[dict(_runs()[0], test_accuracy=99.0)])
    assert any("not a fraction" in p for p in results_io.validate_results(bad))
    with pytest.raises(ValueError, match="schema"):
        results_io.write_results(bad, tmp_path)


def test_comparison_wording_follows_the_numbers():
    results = {"runs": _runs()}
    c = statistics.compare_methods(results, "kd", "direct")
    assert c["difference_mean"] == pytest.approx(0.045) and c["p_value"] < 0.05 and "significant at" in c["text"]
    # kd - direct per seed: +0.02, -0.02, +0.01: a mean of +0.33 points that a paired test cannot tell from 0
    mixed = [dict(r, test_accuracy=d["test_accuracy"] + delta)
             for r in _runs() if r["method"] == "kd"
             for d, delta in [(next(x for x in _runs() if x["method"] == "direct" and x["seed"] == r["seed"]),
                               {0: 0.02, 1: -0.02, 2: 0.01}[r["seed"]])]]
    c = statistics.compare_methods({"runs": [r for r in _runs() if r["method"] == "direct"] + mixed}, "kd", "direct")
    assert c["p_value"] > 0.05 and "not significant" in c["text"]
    single = statistics.compare_methods({"runs": [r for r in _runs() if r["seed"] == 0]}, "kd", "direct")
    assert single["p_value"] is None and "no claim" in single["text"]


def test_figures_are_written(tmp_path):
    summary = results_io.summarize(_runs())
    plots.plot_accuracy(summary, tmp_path / "a.png")
    plots.plot_retention(summary, tmp_path / "r.png")
    plots.plot_confusion(np.eye(3, dtype=int) * 5, ["a", "b", "c"], "cm", tmp_path / "c.png")
    plots.plot_histories({"x": [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}]}, tmp_path / "h.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("a.png", "r.png", "c.png", "h.png"))


def test_mcnemar_hand_worked():
    # Ten samples of class 0. A is right on 0..7, B on 0, 1, 8, 9: only-A = 6 (2..7), only-B = 2 (8, 9).
    # Exact two-sided p = 2 * P(X <= 2), X ~ Bin(8, 1/2) = 2 * (1 + 8 + 28) / 256.
    labels = np.zeros(10, dtype=int)
    a = np.array([0] * 8 + [1] * 2)
    b = np.array([0, 0] + [1] * 6 + [0, 0])
    got = statistics.mcnemar(a, b, labels)
    assert (got["only_a_correct"], got["only_b_correct"]) == (6, 2)
    assert got["p_value"] == pytest.approx(74 / 256)
    assert statistics.mcnemar(a, a, labels)["p_value"] == 1.0


def test_mcnemar_by_seed_pairs_the_predictions_the_records_carry():
    labels = np.zeros(10, dtype=int)
    records = [{"method": method, "seed": seed, "test_predictions": preds} for method, seed, preds in (
        ("hpmkd", 0, [0] * 10), ("kd", 0, [1] * 10), ("hpmkd", 1, [0] * 10), ("kd", 1, [0] * 10),
        ("hpmkd", 2, [1] * 10),  # no kd run on seed 2: not paired
        ("teacher", 0, [1] * 10))]
    got = statistics.mcnemar_by_seed(records, "hpmkd", "kd", labels)
    assert [r["seed"] for r in got["per_seed"]] == [0, 1]
    assert got["significant_seeds"] == 1  # seed 0: 10 vs 0 discordant, p = 2 / 1024
    assert got["per_seed"][0]["p_value"] == pytest.approx(2 / 1024) and got["per_seed"][1]["p_value"] == 1.0
    assert "1 of 2 seed(s) (1 for hpmkd)" in got["text"]  # which model won, not only that one did
    assert "seed 0: only hpmkd right on 10, only kd on 0" in got["text"]


def test_p_values_against_kd():
    runs = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in (
        ("kd", 0, 0.90), ("kd", 1, 0.92), ("kd", 2, 0.91),
        ("hpmkd", 0, 0.93), ("hpmkd", 1, 0.94), ("hpmkd", 2, 0.95),
        ("hpmkd-no-cache", 0, 0.93))]
    results = {"runs": runs, "summary": [{"method": m} for m in ("kd", "hpmkd", "hpmkd-no-cache")]}
    statistics.add_p_values(results, "kd")
    from scipy.stats import ttest_rel

    expected = ttest_rel([0.93, 0.94, 0.95], [0.90, 0.92, 0.91]).pvalue
    assert results["summary"][1]["p_value_vs_kd"] == pytest.approx(expected)
    assert results["summary"][2]["p_value_vs_kd"] is None  # one seed: no paired test
    comparison = statistics.compare_methods(results, "hpmkd", "kd")
    assert comparison["wilcoxon_p"] == pytest.approx(0.25)  # 3 positive differences: 2 * (1/2)^3


def test_per_epoch_speedup_compares_energy_per_epoch_too():
    """ImageNet's `full` preset: the baseline runs 4 epochs, AST 10, compared epoch for epoch. Worked by hand:
    full 4 x (10 s, 100 J) = 400 J; AST 10 x (5 s, 40 J) = 400 J. Per epoch: time 10/5 = 2.0x,
    energy 100/40 = 2.5x. Totals would say 400/400 = 1.0x, on a different basis from the speed-up."""
    from kdlib.sparse.cost import add_cost_ratios

    def run(method, epochs, secs, joules):
        return {"method": method, "seed": 0, "train_seconds": epochs * secs, "energy_joules": epochs * joules,
                "samples_backpropagated": 0,
                "history": [{"epoch_seconds": secs, "energy_joules": joules} for _ in range(epochs)]}

    runs = [run("full", 4, 10.0, 100.0), run("ast", 10, 5.0, 40.0)]
    results = {"summary": [{"method": "full"}, {"method": "ast"}]}
    add_cost_ratios(results, runs, per_epoch=True)
    ast = results["summary"][1]
    assert ast["speedup_vs_full"] == pytest.approx(2.0)
    assert ast["energy_ratio_vs_full"] == pytest.approx(2.5)
    assert ast["energy_joules_per_epoch_mean"] == pytest.approx(40.0) and ast["energy_joules_mean"] == pytest.approx(400.0)
    assert ast["energy_basis"] == "joules per epoch"
    add_cost_ratios(results, runs)  # same epochs on both sides: totals, as before
    assert results["summary"][1]["energy_ratio_vs_full"] == pytest.approx(1.0)


def test_the_wilcoxon_caveat_counts_non_zero_differences_not_seeds():
    def compare(differences):
        runs = [{"method": m, "seed": s, "test_accuracy": 0.5 + (d if m == "new" else 0.0)}
                for s, d in enumerate(differences) for m in ("new", "old")]
        return statistics.compare_methods({"runs": runs}, "new", "old")

    # 6 seeds, one of them tied: the test ranks 5 differences, all positive, so p = 2 * (1/2)^5 = 0.0625
    tied = compare([0.01, 0.02, 0.03, 0.04, 0.05, 0.0])
    assert tied["wilcoxon_p"] == pytest.approx(0.0625)
    assert "with 5 non-zero difference(s) it cannot go below 0.0625" in tied["text"]
    # 6 non-zero differences can reach 2 * (1/2)^6 = 0.03125 < 0.05: no caveat
    six = compare([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    assert six["wilcoxon_p"] == pytest.approx(0.03125) and "cannot go below" not in six["text"]
    assert [statistics.wilcoxon_floor(n) for n in (0, 1, 4, 5, 6)] == [1.0, 1.0, 0.125, 0.0625, 0.03125]


def test_holm_adjustment_hand_worked():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04; step-down keeps them non-decreasing: 0.04 -> 0.06
    assert statistics.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert statistics.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]  # None: no test
    assert statistics.holm([0.6, 0.4]) == pytest.approx([0.8, 0.8])  # 0.4 x 2 = 0.8; 0.6 x 1 lifted to 0.8
    assert statistics.holm([0.3, 0.2, 0.1]) == pytest.approx([0.4, 0.4, 0.3])  # 0.1 x 3, 0.2 x 2, 0.3 lifted to 0.4
    assert statistics.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1


def test_comparisons_with_a_baseline_report_raw_and_holm_adjusted_p():
    """Three methods against kd on three seeds, each with a raw p below 0.05 (about 0.00013, 0.035 and 0.044):
    Holm multiplies them by 3, 2 and 1 (0.00038, 0.070, 0.044 lifted to 0.070), so only "a" stays significant."""
    from scipy.stats import ttest_rel

    kd = [0.90, 0.92, 0.91]
    gains = {"a": [0.050, 0.051, 0.052], "b": [0.020, 0.040, 0.030], "c": [0.020, 0.045, 0.035]}
    runs = [{"method": "kd", "seed": s, "test_accuracy": a} for s, a in enumerate(kd)]
    runs += [{"method": m, "seed": s, "test_accuracy": kd[s] + g[s]} for m, g in gains.items() for s in range(3)]
    results = {"runs": runs, "summary": [{"method": m} for m in ("kd", "a", "b", "c")]}
    raw = {m: ttest_rel([kd[s] + g[s] for s in range(3)], kd).pvalue for m, g in gains.items()}
    comparisons = statistics.add_p_values(results, "kd")
    by_method = {c["method"]: c for c in comparisons}
    assert raw["a"] < raw["b"] < raw["c"] < 2 * raw["b"]
    expected = {"a": 3 * raw["a"], "b": 2 * raw["b"], "c": 2 * raw["b"]}  # c's 1 x p is lifted to b's
    for row in results["summary"][1:]:
        m = row["method"]
        assert row["p_value_vs_kd"] == pytest.approx(raw[m]) and by_method[m]["p_value"] == pytest.approx(raw[m])
        assert row["p_value_vs_kd_holm"] == pytest.approx(expected[m]) == by_method[m]["p_value_holm"]
        assert by_method[m]["holm_family_size"] == 3
        assert f"Holm-adjusted over the 3 comparisons with kd p = {expected[m]:.3g}" in by_method[m]["text"]
    assert all(raw[m] < 0.05 for m in raw)
    assert [m for m in raw if expected[m] < 0.05] == ["a"]
    assert "significant at this level" in by_method["a"]["text"]
    assert all("not significant" in by_method[m]["text"] for m in ("b", "c"))
    assert "p_value_vs_kd" not in results["summary"][0]  # the baseline itself


def test_paired_interval_hand_worked():
    # differences 1, 2, 4 points: mean 2.333, sample sd 1.5275, se 0.8819, t(0.975, 2) = 4.3027 -> +-3.795
    out = statistics.paired_interval([0.01, 0.02, 0.04])
    assert out["difference_mean"] == pytest.approx(0.023333, abs=1e-6)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(-0.014612, abs=1e-5), pytest.approx(0.061279, abs=1e-5))
    assert out["p_value"] == pytest.approx(0.11808, abs=1e-4) and out["n"] == 3
    assert statistics.paired_interval([0.01])["ci_low"] is None  # one seed: no interval, no test
    same = statistics.paired_interval([0.02, 0.02])
    assert (same["ci_low"], same["ci_high"], same["p_value"]) == (0.02, 0.02, None)


def test_every_paired_comparison_carries_its_interval_and_holm_applies_to_any_family():
    runs = [{"method": m, "seed": s, "test_accuracy": acc} for m, accs in
            {"a": (0.81, 0.82, 0.84), "b": (0.80, 0.80, 0.80), "c": (0.79, 0.80, 0.80)}.items()
            for s, acc in enumerate(accs)]
    c = statistics.compare_methods({"runs": runs}, "a", "b")
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(-0.014612, abs=1e-5), pytest.approx(0.061279, abs=1e-5))
    assert "95% CI -1.46 to +6.13)" in c["text"]
    family = statistics.apply_holm([c, statistics.compare_methods({"runs": runs}, "b", "c"), {"p_value": None}])
    assert [x["holm_family_size"] for x in family] == [2, 2, 0]
    ps = sorted([family[0]["p_value"], family[1]["p_value"]])
    assert min(x["p_value_holm"] for x in family[:2]) == pytest.approx(2 * ps[0])
    assert family[2]["p_value_holm"] is None
