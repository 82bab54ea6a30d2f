"""HPM-KD's own tables and figures: the ablation table and the traces of the meta-temperature and the
multi-teacher weights."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluate import mean_std
from ..plots import pyplot, save_figure
from ..statistics import compare_methods, holm


def ablation_frame(runs: list[dict], costs: list[dict], reference: str = "hpmkd", baseline: str = "kd") -> pd.DataFrame:
    """One row per HPM-KD variant and the baseline, each on the seeds the variant ran: test accuracy
    (mean ± sample std), the difference to ``reference`` on those same seeds, the paired t-test p-value
    against ``baseline`` (raw, and Holm-adjusted across the table's rows), the wall-clock of training the
    variant's group of seeds, the plan its students used (re-planned without the component, or not, and why)
    and, when every run record carries its test predictions, whether the variant's
    equal the reference's on every seed (a removed component that had nothing to act on, or one that changes
    only cost)."""
    acc = {(r["method"], r["seed"]): r["test_accuracy"] for r in runs}
    predictions = {(r["method"], r["seed"]): r["test_predictions"] for r in runs if "test_predictions" in r}
    same_column = set(predictions) == set(acc)
    wall = {c["method"]: c["wall_seconds"] for c in costs}
    plans = {c["method"]: c["plan"]["text"] for c in costs if "plan" in c}
    rows, p_values = [], []
    for method in [reference, *[c["method"] for c in costs if c["method"] != reference], baseline]:
        seeds = sorted(s for m, s in acc if m == method)
        if method in (reference, baseline):  # shown on the ablation's seeds
            ablation_seeds = sorted({s for c in costs if c["method"] != reference for s in c["seeds"]}) or seeds
            seeds = [s for s in seeds if s in ablation_seeds]
        values = [acc[(method, s)] for s in seeds]
        mean, std = mean_std(values)
        delta = [acc[(method, s)] - acc[(reference, s)] for s in seeds if (reference, s) in acc]
        p = None
        if method != baseline:
            try:
                p = compare_methods({"runs": [r for r in runs if r["seed"] in seeds]}, method, baseline)["p_value"]
            except ValueError:
                p = None
        p_values.append(p)
        rows.append({
            "method": method,
            "seeds": len(seeds),
            "test acc (%)": f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""),
            f"vs {reference} (points)": f"{100 * float(np.mean(delta)):+.2f}" if delta and method != reference else "",
            f"p vs {baseline}": f"{p:.3g}" if p is not None else "n/a",
            f"Holm p vs {baseline}": "",
            "group wall-clock (s)": f"{wall[method]:.1f}" if method in wall else "",
            "plan": plans.get(method, ""),
        })
        if same_column:
            rows[-1][f"same predictions as {reference}"] = "" if method == reference else all(
                np.array_equal(predictions[(method, s)], predictions[(reference, s)]) for s in seeds)
    for row, p in zip(rows, holm(p_values)):
        row[f"Holm p vs {baseline}"] = f"{p:.3g}" if p is not None else "n/a"
    return pd.DataFrame(rows)


def plot_hpmkd_traces(runs: list[dict], path=None):
    """The temperature each epoch used (meta-temperature) and the mean weight of each teacher
    (multi-teacher), per run."""
    plt = pyplot()
    fig, (ax_t, ax_w) = plt.subplots(1, 2, figsize=(11, 3.6))
    for r in runs:
        label = f"{r['method']} (seed {r['seed']})"
        epochs = [h["epoch"] for h in r["history"]]
        ax_t.plot(epochs, [h.get("temperature") for h in r["history"]], marker="o", label=label)
        weights = [h.get("teacher_weights") for h in r["history"]]
        if all(weights):
            for name in weights[0]:
                ax_w.plot(epochs, [w[name] for w in weights], marker=".", label=f"{name}, {label}")
    ax_t.set(xlabel="epoch", ylabel="temperature T", title="Meta-temperature: T used each epoch")
    ax_w.set(xlabel="epoch", ylabel="mean weight", title="Multi-teacher: mean per-sample weight", ylim=(0, 1))
    if not ax_w.lines:
        ax_w.text(0.5, 0.5, "one teacher only: nothing to weigh", ha="center", va="center", transform=ax_w.transAxes)
    for ax in (ax_t, ax_w):
        if ax.lines:
            ax.legend(fontsize=7)
    return save_figure(fig, path)
