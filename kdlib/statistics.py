"""Statistics over runs: paired tests of one method against another over seeds, McNemar's test on paired test
predictions, and p-values against a baseline."""

from __future__ import annotations

import numpy as np


def compare_methods(results: dict, method: str, baseline: str, alpha: float = 0.05) -> dict:
    """Difference of test accuracy between two methods over the seeds both ran, with a paired t-test
    (and a Wilcoxon signed-rank test) when there are at least two such seeds, and a sentence whose
    wording follows the numbers. The t-test's p-value is the one the sentence judges by."""
    acc = {(r["method"], r["seed"]): r["test_accuracy"] for r in results["runs"]}
    seeds = sorted({s for m, s in acc if m == method} & {s for m, s in acc if m == baseline})
    if not seeds:
        raise ValueError(f"no seed ran both {method!r} and {baseline!r}")
    diffs = np.array([acc[(method, s)] - acc[(baseline, s)] for s in seeds])
    p_value = wilcoxon_p = None
    if len(seeds) >= 2 and np.any(diffs != diffs[0]):
        from scipy.stats import ttest_rel, wilcoxon

        p_value = float(ttest_rel([acc[(method, s)] for s in seeds], [acc[(baseline, s)] for s in seeds]).pvalue)
        if np.any(diffs != 0):
            wilcoxon_p = float(wilcoxon(diffs).pvalue)
    mean = float(diffs.mean())
    text = f"{method} - {baseline}: {100 * mean:+.2f} points of test accuracy (mean over {len(seeds)} seed(s))"
    if p_value is None:
        text += "; too few seeds (or identical differences) for a paired test, so no claim of a difference is made."
    elif p_value < alpha:
        text += f"; paired t-test p = {p_value:.3g} < {alpha}: the difference is significant at this level."
    else:
        text += f"; paired t-test p = {p_value:.3g} >= {alpha}: the difference is not significant."
    if wilcoxon_p is not None:
        text += f" (Wilcoxon signed-rank p = {wilcoxon_p:.3g}"
        floor = wilcoxon_floor(int(np.count_nonzero(diffs)))
        text += (f"; with {np.count_nonzero(diffs)} non-zero difference(s) it cannot go below {floor:.3g}.)"
                 if floor >= alpha else ".)")
    return {"method": method, "baseline": baseline, "seeds": seeds, "difference_mean": mean, "p_value": p_value,
            "wilcoxon_p": wilcoxon_p, "text": text}


def wilcoxon_floor(nonzero_differences: int) -> float:
    """The smallest p-value the exact two-sided Wilcoxon signed-rank test can give: every one of the n non-zero
    differences on the same side, 2 * (1/2)^n. Zero differences are dropped before ranking, so they do not count:
    5 or fewer non-zero differences can never reach p < 0.05, whatever the number of seeds."""
    return min(1.0, 2.0 * 0.5 ** nonzero_differences)


def mcnemar(predictions_a, predictions_b, labels) -> dict:
    """Exact McNemar test on paired test predictions: b = samples only A gets right, c = only B; under
    the null each discordant sample is a fair coin, so p = two-sided binomial(min(b, c); b + c, 1/2)."""
    from scipy.stats import binomtest

    a_right = np.asarray(predictions_a) == np.asarray(labels)
    b_right = np.asarray(predictions_b) == np.asarray(labels)
    b, c = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    p = float(binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
    return {"only_a_correct": b, "only_b_correct": c, "p_value": p}


def mcnemar_by_seed(runs: list[dict], method: str, baseline: str, labels, alpha: float = 0.05) -> dict:
    """McNemar's test of ``method`` against ``baseline`` on each seed both ran, from the test predictions their
    run records carry, and a sentence on how many were significant."""
    predictions = {(r["method"], r["seed"]): r["test_predictions"] for r in runs if "test_predictions" in r}
    seeds = sorted({s for m, s in predictions if m == method} & {s for m, s in predictions if m == baseline})
    if not seeds:
        raise ValueError(f"no seed has test predictions of both {method!r} and {baseline!r}")
    rows = [{"seed": seed, **mcnemar(predictions[(method, seed)], predictions[(baseline, seed)], labels)}
            for seed in seeds]
    significant = sum(r["p_value"] < alpha for r in rows)
    text = (f"McNemar {method} vs {baseline}: significant (p < {alpha}) in {significant} of {len(rows)} seed(s); "
            + ", ".join(f"seed {r['seed']}: {r['only_a_correct']} vs {r['only_b_correct']} discordant, "
                        f"p = {r['p_value']:.3g}" for r in rows) + ".")
    return {"method": method, "baseline": baseline, "per_seed": rows, "significant_seeds": significant, "text": text}


def add_p_values(results: dict, baseline: str) -> None:
    """Each summary row gets its paired t-test p-value against ``baseline`` (None where not computable)."""
    for row in results["summary"]:
        if row["method"] == baseline:
            continue
        try:
            row[f"p_value_vs_{baseline}"] = compare_methods(results, row["method"], baseline)["p_value"]
        except ValueError:
            row[f"p_value_vs_{baseline}"] = None
