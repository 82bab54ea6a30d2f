"""Statistics over runs: paired tests of one method against another over seeds, McNemar's test on paired test
predictions, and p-values against a baseline, Holm-corrected across the methods compared with it."""

from __future__ import annotations

import numpy as np


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values, in their order: the i-th smallest of m is multiplied
    by m - i + 1, then made no smaller than the one before it (and at most 1). None (no test) stays None and is
    not counted in m. Rejecting where the adjusted p < alpha keeps the chance of any false claim in the family
    at most alpha."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def compare_methods(results: dict, method: str, baseline: str, alpha: float = 0.05,
                    holm_family: tuple[float, int] | None = None) -> dict:
    """Difference of test accuracy between two methods over the seeds both ran, with a paired t-test
    (and a Wilcoxon signed-rank test) when there are at least two such seeds, and a sentence whose
    wording follows the numbers. The t-test's p-value is the one the sentence judges by; given
    ``holm_family`` (this comparison's Holm-adjusted p, the number of tests in its family), the adjusted one."""
    acc = {(r["method"], r["seed"]): r["test_accuracy"] for r in results["runs"]}
    seeds = sorted({s for m, s in acc if m == method} & {s for m, s in acc if m == baseline})
    if not seeds:
        raise ValueError(f"no seed ran both {method!r} and {baseline!r}")
    diffs = np.array([acc[(method, s)] - acc[(baseline, s)] for s in seeds])
    interval = paired_interval(diffs)
    p_value, wilcoxon_p = interval["p_value"], None
    if p_value is not None and np.any(diffs != 0):
        from scipy.stats import wilcoxon

        wilcoxon_p = float(wilcoxon(diffs).pvalue)
    mean = interval["difference_mean"]
    holm_p, family = holm_family if p_value is not None and holm_family else (p_value, 1)
    text = (f"{method} - {baseline}: {100 * mean:+.2f} points of test accuracy (mean over {len(seeds)} seed(s)"
            + (f"; 95% CI {100 * interval['ci_low']:+.2f} to {100 * interval['ci_high']:+.2f})"
               if interval["ci_low"] is not None else ")"))
    if p_value is None:
        text += "; too few seeds (or identical differences) for a paired test, so no claim of a difference is made."
    else:
        text += f"; paired t-test p = {p_value:.3g}"
        if family > 1:
            text += f", Holm-adjusted over the {family} comparisons with {baseline} p = {holm_p:.3g}"
        text += (f" < {alpha}: the difference is significant at this level." if holm_p < alpha
                 else f" >= {alpha}: the difference is not significant.")
    if wilcoxon_p is not None:
        text += f" (Wilcoxon signed-rank p = {wilcoxon_p:.3g}"
        floor = wilcoxon_floor(int(np.count_nonzero(diffs)))
        text += (f"; with {np.count_nonzero(diffs)} non-zero difference(s) it cannot go below {floor:.3g}.)"
                 if floor >= alpha else ".)")
    return {"method": method, "baseline": baseline, "seeds": seeds, "difference_mean": mean,
            "ci_low": interval["ci_low"], "ci_high": interval["ci_high"], "p_value": p_value,
            "p_value_holm": holm_p, "holm_family_size": family if p_value is not None else 0,
            "wilcoxon_p": wilcoxon_p, "text": text}


def paired_interval(differences, confidence: float = 0.95) -> dict:
    """Mean of paired differences (one per seed) with its ``confidence`` t-interval and the two-sided one-sample
    t-test's p-value (the paired t-test). Fewer than two differences: no interval and no p. Identical differences:
    the interval is that point, and no p (a t-test needs spread)."""
    d = np.asarray(differences, dtype=float)
    mean = float(d.mean()) if len(d) else None
    out = {"difference_mean": mean, "ci_low": None, "ci_high": None, "p_value": None, "n": int(len(d))}
    if len(d) < 2:
        return out
    if np.all(d == d[0]):
        out["ci_low"] = out["ci_high"] = mean
        return out
    from scipy.stats import ttest_1samp

    test = ttest_1samp(d, 0.0)
    ci = test.confidence_interval(confidence)
    out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(test.pvalue))
    return out


def apply_holm(comparisons: list[dict]) -> list[dict]:
    """Holm's correction across one family of comparisons (dicts with ``p_value``, None where untested): each gets
    ``p_value_holm`` and ``holm_family_size`` (the number of tested comparisons in the family), in place."""
    adjusted = holm([c.get("p_value") for c in comparisons])
    family = sum(p is not None for p in adjusted)
    for c, p in zip(comparisons, adjusted):
        c["p_value_holm"], c["holm_family_size"] = p, family if p is not None else 0
    return comparisons


def compare_pairs(results: dict, pairs, alpha: float = 0.05) -> list[dict]:
    """``compare_methods`` for each (method, baseline) of ``pairs``, in order, leaving out a pair that shares no
    seed (a method that did not run)."""
    runs = {(r["method"], r["seed"]) for r in results["runs"]}
    return [compare_methods(results, method, baseline, alpha) for method, baseline in pairs
            if any((method, s) in runs and (baseline, s) in runs for _, s in runs)]


def compare_with_baseline(results: dict, baseline: str, methods: list[str] | None = None,
                          alpha: float = 0.05) -> list[dict]:
    """``compare_methods`` of each method (default: every method of the summary but ``baseline``) against
    ``baseline``, with Holm's correction across the comparisons that have a p-value: each carries its raw
    (``p_value``) and adjusted (``p_value_holm``) p, and its sentence judges by the adjusted one. A method that
    shares no seed with the baseline is left out."""
    methods = [s["method"] for s in results["summary"]] if methods is None else list(methods)
    single = []
    for method in methods:
        if method == baseline:
            continue
        try:
            single.append(compare_methods(results, method, baseline, alpha))
        except ValueError:
            continue
    adjusted = holm([c["p_value"] for c in single])
    family = sum(p is not None for p in adjusted)
    return [compare_methods(results, c["method"], baseline, alpha, (p, family) if p is not None else None)
            for c, p in zip(single, adjusted)]


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
    # name the winner of each significant seed: "significant in 1 of 2" alone reads as a verdict without a side
    wins = [method if r["only_a_correct"] > r["only_b_correct"] else baseline for r in rows if r["p_value"] < alpha]
    sides = "" if not wins else " (" + ", ".join(f"{n} for {m}" for m, n in
                                                  ((m, wins.count(m)) for m in dict.fromkeys(wins))) + ")"
    text = (f"McNemar {method} vs {baseline} (per seed, not corrected for the seeds): significant (p < {alpha}) "
            f"in {significant} of {len(rows)} seed(s){sides}; "
            + ", ".join(f"seed {r['seed']}: only {method} right on {r['only_a_correct']}, only {baseline} on "
                        f"{r['only_b_correct']}, p = {r['p_value']:.3g}" for r in rows) + ".")
    return {"method": method, "baseline": baseline, "per_seed": rows, "significant_seeds": significant, "text": text}


def add_p_values(results: dict, baseline: str) -> list[dict]:
    """Each summary row gets its paired t-test p-value against ``baseline``, raw (``p_value_vs_<baseline>``) and
    Holm-adjusted across the rows compared with it (``p_value_vs_<baseline>_holm``); None where not computable.
    Returns the comparisons (``compare_with_baseline``)."""
    comparisons = {c["method"]: c for c in compare_with_baseline(results, baseline)}
    for row in results["summary"]:
        if row["method"] != baseline:
            c = comparisons.get(row["method"], {})
            row[f"p_value_vs_{baseline}"] = c.get("p_value")
            row[f"p_value_vs_{baseline}_holm"] = c.get("p_value_holm")
    return list(comparisons.values())
