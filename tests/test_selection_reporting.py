"""AST's cost report: speed-ups that survive a drifting machine, and the ceiling they cannot pass."""

import pytest

from kdlib.results_io import build_results
from kdlib.experiments import selection_reporting as reporting
from kdlib.experiments import selection
from kdlib.sparse import cost

N = 1000  # samples per full epoch


def run(method, seed, seconds, forwarded, backpropagated, accuracy=0.8, energy=None):
    """A record as train_and_test writes it: per-epoch seconds and counts, and their totals."""
    history = [{"epoch": i + 1, "epoch_seconds": s, "samples_forwarded": f, "samples_backpropagated": b,
                "val_accuracy": accuracy, "energy_joules": energy}
               for i, (s, f, b) in enumerate(zip(seconds, forwarded, backpropagated))]
    return {"method": method, "model": "m", "params": 1, "seed": seed, "test_accuracy": accuracy,
            "val_accuracy": accuracy, "train_seconds": float(sum(seconds)), "epochs": len(seconds),
            "samples_forwarded": sum(forwarded), "samples_backpropagated": sum(backpropagated),
            "energy_joules": None if energy is None else energy * len(seconds), "history": history}


def summary(runs, **kwargs):
    results = build_results("x", "demo", {}, {}, runs, reference="full")
    cost.add_cost_ratios(results, runs, **kwargs)
    return {row["method"]: row for row in results["summary"]}


def test_compute_units_and_the_ceiling_at_a_realised_rate():
    assert cost.compute_units(N, N) == 3 * N  # full training: a forward and a backward per sample
    # forward scoring at a = 0.3: every sample scored (1), 0.3 of them learned from (1 + 2)
    forward = cost.compute_units(N + 300, 300)
    assert forward == 1900 and cost.speedup_ceiling(3 * N, forward) == pytest.approx(3 / 1.9)
    # stale scores: only the learned samples pass forward: 1 / a
    assert cost.speedup_ceiling(3 * N, cost.compute_units(300, 300)) == pytest.approx(1 / 0.3)
    assert cost.above_ceiling(1.75, 1.58) and not cost.above_ceiling(1.70, 1.58)  # 10% tolerance


def test_a_drifting_machine_is_flagged_and_the_median_epoch_ratio_is_reported_beside_the_total():
    # the case: full's epochs swing between 5 and 17 s (background load), AST's stay at 1.1 s
    full = run("full", 0, [5, 17, 17, 5, 17], [N] * 5, [N] * 5)
    ast = run("ast", 0, [1.1] * 5, [N] + [N + 300] * 4, [N] + [300] * 4)
    rows = summary([full, ast])
    row = rows["ast"]
    assert row["speedup_vs_full"] == pytest.approx(61 / 5.5)
    assert row["speedup_median_epoch"] == pytest.approx(17 / 1.1)
    assert row["epoch_speedup_range"] == pytest.approx([5 / 1.1, 17 / 1.1])
    assert row["epoch_speedup_quartiles"] == pytest.approx([5 / 1.1, 17 / 1.1])
    assert row["realised_rate"] == pytest.approx(2200 / 5000)
    assert row["speedup_ceiling"] == pytest.approx(15000 / (3 * N + 4 * 1900))
    assert row["speedup_ceiling_median_epoch"] == pytest.approx(3 / 1.9)
    assert row["speedup_above_ceiling"]
    assert "above its ceiling" in row["speedup_note"] and "not a result" in row["speedup_note"]
    assert "realised rate 0.44" in row["speedup_note"]
    assert rows["full"]["speedup_vs_full"] == 1.0 and not rows["full"]["speedup_above_ceiling"]
    assert rows["full"]["speedup_note"] == ""


def test_a_steady_machine_gives_a_credible_speedup_and_the_paired_spread():
    full = [run("full", s, [3.0, 3.2, 2.8, 3.0], [N] * 4, [N] * 4) for s in (0, 1)]
    rnd = [run("random", s, [3.0, 1.0, 1.0, 1.6], [N] + [300] * 3, [N] + [300] * 3) for s in (0, 1)]
    row = summary(full + rnd)["random"]
    assert row["speedup_vs_full"] == pytest.approx(12.0 / 6.6)
    assert row["speedup_median_epoch"] == pytest.approx(3.0 / 1.3)  # medians of pooled epochs: 3.0 and (1.0+1.6)/2
    ratios = sorted([1.0, 3.2, 2.8, 3.0 / 1.6] * 2)
    assert row["epoch_speedup_range"] == pytest.approx([ratios[0], ratios[-1]])
    assert row["speedup_ceiling"] == pytest.approx(4 * 3 * N / (3 * N + 3 * 900))
    assert not row["speedup_above_ceiling"] and row["speedup_note"] == ""


def test_runs_without_histories_keep_the_totals():
    bare = [{k: v for k, v in r.items() if k != "history"} for r in
            (run("full", 0, [2.0], [N], [N]), run("ast", 0, [1.5], [N + 300], [300]))]
    row = summary(bare)["ast"]
    assert row["speedup_vs_full"] == pytest.approx(2 / 1.5) and row["speedup_median_epoch"] is None
    assert row["speedup_ceiling"] == pytest.approx(3 / 1.9) and not row["speedup_above_ceiling"]


def test_per_epoch_basis_when_the_reference_ran_fewer_epochs():
    full = run("full", 0, [4.0, 4.0], [N] * 2, [N] * 2)
    ast = run("ast", 0, [4.0] + [2.0] * 4, [N] + [N + 300] * 4, [N] + [300] * 4)
    row = summary([full, ast], per_epoch=True)["ast"]
    assert row["speedup_vs_full"] == pytest.approx(4.0 / 2.4)
    assert row["realised_rate"] == pytest.approx((2200 / 5) / N)
    assert row["speedup_ceiling"] == pytest.approx(3 * N / ((3 * N + 4 * 1900) / 5))


# ---- rules against their controls -------------------------------------------------------------------------------



def shootout_runs(ast_acc, sb_acc, random_acc, full_acc, sb_backprop=2200):
    """3 seeds: full (5 s), ast and selective-backprop at about 0.3 of full's samples, random at 0.3."""
    runs = []
    for seed in range(3):
        runs.append(run("full", seed, [1.0] * 5, [N] * 5, [N] * 5, full_acc[seed]))
        runs.append(run("ast", seed, [1.0] + [0.6] * 4, [N] + [N + 300] * 4, [N] + [300] * 4, ast_acc[seed]))
        runs.append(run("random", seed, [1.0] + [0.5] * 4, [N] + [300] * 4, [N] + [300] * 4, random_acc[seed]))
        sb = (sb_backprop - N) // 4
        runs.append(run("selective-backprop", seed, [1.0] + [0.6] * 4, [N] + [N + sb] * 4, [N] + [sb] * 4,
                        sb_acc[seed]))
    return runs


def shootout(runs):
    results = build_results("x", "demo", {}, {}, runs, reference="full")
    cost.add_cost_ratios(results, runs)
    return results


def test_the_budget_table_compares_each_rule_with_its_control_samples_and_steps():
    runs = shootout_runs([0.7] * 3, [0.8] * 3, [0.8] * 3, [0.8] * 3, sb_backprop=3600)
    runs = [{**r, "method": "random@ast" if r["method"] == "random" else r["method"], "optimizer_steps": 50}
            for r in runs]
    runs += [{**r, "method": "random@selective-backprop"} for r in runs if r["method"] == "random@ast"]
    results = selection.results("x", "demo", {}, {}, runs, {})
    budgets = reporting.budget_frame(results).set_index("method")
    assert budgets.loc["ast", "control"] == "random@ast" and budgets.loc["ast", "same budget"]
    assert budgets.loc["selective-backprop", "budget difference"] == pytest.approx(3600 / 2200 - 1)
    assert not budgets.loc["selective-backprop", "same budget"]
    assert budgets.loc["ast", "optimizer steps"] == 50 and budgets.loc["full", "epochs"] == 5
    frame = reporting.comparison_frame(results).set_index(["method", "against"])
    assert frame.loc[("ast", "random@ast"), "difference (points)"] == pytest.approx(-10.0)
    assert {"95% CI low", "95% CI high", "Holm p", "verdict"} <= set(frame.columns)


def test_the_frontier_and_comparison_figures_are_drawn(tmp_path):
    runs = shootout_runs([0.7, 0.71, 0.69], [0.8] * 3, [0.8] * 3, [0.8, 0.81, 0.79])
    runs = [{**r, "method": "random@ast" if r["method"] == "random" else r["method"]} for r in runs]
    runs += [{**r, "method": "full@0.5", "train_seconds": r["train_seconds"] / 2, "test_accuracy": 0.75,
              "samples_forwarded": r["samples_forwarded"] // 2, "samples_backpropagated": r["samples_backpropagated"] // 2}
             for r in runs if r["method"] == "full"]
    results = selection.results("x", "demo", {}, {}, runs, {})
    reporting.plot_frontier(results, tmp_path / "frontier.png")
    reporting.plot_comparisons(results, tmp_path / "comparisons.png")
    assert (tmp_path / "frontier.png").stat().st_size > 10_000 and (tmp_path / "comparisons.png").stat().st_size > 10_000


def test_selection_evidence_and_the_summary_table(tmp_path):
    import numpy as np

    runs = shootout_runs([0.7] * 3, [0.8] * 3, [0.8] * 3, [0.8] * 3)
    for r in runs:
        warm = r["method"] != "full"
        for h in r["history"]:
            h["warmup"] = warm and h["epoch"] == 1
            h["train_loss"] = {"ast": 3.0, "random": 1.0}.get(r["method"], 1.5) if h["epoch"] > 1 else 2.0
            h["val_accuracy"] = 0.5 if h["epoch"] == 1 else (0.3 if r["method"] == "ast" else 0.6)
        r["per_class_accuracy"] = [0.9, 0.5] if r["method"] == "ast" else [0.9, 0.8]
        if r["method"] == "ast":
            path = tmp_path / f"trace{r['seed']}.npz"
            np.savez(path, scores=np.array([[3.0, 1.0, 0.5, 0.5]]), selected=np.array([[True, False, False, False]]))
            r["selection_trace"] = str(path)
    e = reporting.selection_evidence(runs, "ast", "random", classes=["cat", "dog"])
    assert (e["learned_loss"], e["control_learned_loss"]) == (3.0, 1.0)
    assert e["first_selective_epoch_val_change"] == pytest.approx(-0.2)
    assert e["control_first_selective_epoch_val_change"] == pytest.approx(0.1)
    assert e["worst_class"] == "dog" and e["worst_class_gap"] == pytest.approx(-0.3)
    assert (e["score_selected_mean"], e["score_unselected_mean"]) == (3.0, pytest.approx(2 / 3))
    assert "3.000 against 1.000 for random's (3.0x)" in e["text"] and "dog (-30.0 points of test accuracy)" in e["text"]
    comparisons = [{"method": "ast", "baseline": "random", "kind": "control", "seeds": [0, 1, 2]}]
    reporting.plot_selection_evidence(runs, comparisons, ["cat", "dog"], tmp_path / "why.png")
    assert (tmp_path / "why.png").stat().st_size > 1000

    results = shootout(runs)
    table = reporting.ast_summary_table(results).set_index("method")
    assert table.loc["ast", "rate vs full"] == "0.440" and table.loc["ast", "ceiling"] == "1.42x"
    assert table.loc["ast", "GPU energy (J)"] == "n/a" and "timing check" not in table.columns
    assert "top-5 (%)" not in table.columns
    results["summary"][1]["test_top5_mean"], results["summary"][1]["speedup_above_ceiling"] = 0.9512, True
    table = reporting.ast_summary_table(results).set_index("method")
    assert table.loc["ast", "top-5 (%)"] == "95.12" and table.loc["ast", "timing check"].startswith("ABOVE CEILING")


def test_the_ceiling_at_a_rate_is_one_formula_hand_worked():
    # a scoring forward of every sample (1) and a forward and backward of the 30% learned (3 x 0.3): 3 / 1.9
    assert cost.ceiling_at_rate(0.3, scoring_forward=True) == pytest.approx(3 / 1.9)
    assert cost.ceiling_at_rate(0.3, scoring_forward=False) == pytest.approx(1 / 0.3)
    assert cost.ceiling_at_rate(1.0, scoring_forward=False) == 1.0
    # the same as the ratio of a run's own counts
    assert cost.ceiling_at_rate(0.3, True) == pytest.approx(cost.speedup_ceiling(cost.compute_units(N, N),
                                                                                 cost.compute_units(N + 300, 300)))
    with pytest.raises(ValueError, match="rate must be in"):
        cost.ceiling_at_rate(0.0, True)
