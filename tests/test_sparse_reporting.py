"""AST's cost report: speed-ups that survive a drifting machine, and the ceiling they cannot pass."""

import pytest

from kdlib.report import build_results
from kdlib.sparse import reporting

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
    reporting.add_cost_ratios(results, runs, **kwargs)
    return {row["method"]: row for row in results["summary"]}


def test_compute_units_and_the_ceiling_at_a_realised_rate():
    assert reporting.compute_units(N, N) == 3 * N  # full training: a forward and a backward per sample
    # forward scoring at a = 0.3: every sample scored (1), 0.3 of them learned from (1 + 2)
    forward = reporting.compute_units(N + 300, 300)
    assert forward == 1900 and reporting.speedup_ceiling(3 * N, forward) == pytest.approx(3 / 1.9)
    # stale scores: only the learned samples pass forward: 1 / a
    assert reporting.speedup_ceiling(3 * N, reporting.compute_units(300, 300)) == pytest.approx(1 / 0.3)
    assert reporting.above_ceiling(1.75, 1.58) and not reporting.above_ceiling(1.70, 1.58)  # 10% tolerance


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
