"""HPM-KD's own tables and figures: the comparisons, the ablation and the cost tables, and the traces of the
meta-temperature and the multi-teacher weights."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plots import pyplot, save_figure


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.2f}"


def _difference(c: dict) -> str:
    """'+0.12 [-0.05, +0.29]': the mean paired difference in points with its 95% interval."""
    text = _points(c["difference_mean"])
    return text + (f" [{_points(c['ci_low'])}, {_points(c['ci_high'])}]" if c.get("ci_low") is not None else "")


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def comparisons_frame(comparisons: list[dict]) -> pd.DataFrame:
    """One row per comparison (``mnist_kd.results``' ``comparisons``): the mean paired difference over the seeds both
    ran, in points, with its 95% t-interval, the paired t-test's p and the Holm-corrected p of its family."""
    return pd.DataFrame([{
        "comparison": f"{c['method']} - {c['baseline']}",
        "family": c.get("family", ""),
        "seeds": len(c["seeds"]),
        "difference (points) [95% CI]": _difference(c),
        "p": _p(c["p_value"]),
        "Holm p": _p(c["p_value_holm"]) + (f" (of {c['holm_family_size']})" if c.get("holm_family_size") else ""),
    } for c in comparisons])


def ablation_frame(results: dict, records: list[dict] | None = None, reference: str = "hpmkd") -> pd.DataFrame:
    """One row per HPM-KD variant (``results["ablation"]``) on the seeds it shares with ``reference``: test accuracy
    (mean ± sample std), the paired difference to ``reference`` with its 95% interval, p (raw, and Holm-corrected over
    the rows that count), whether the row counts as a finding (or what its component had nothing to do with), the
    plan its students used, its planning and training wall-clock and, given the run ``records`` with their test
    predictions, whether its predictions equal the reference's on every seed (a component with nothing to act on, or
    one that changes only cost)."""
    summary = {s["method"]: s for s in results["summary"]}
    costs = {c["method"]: c for c in results.get("costs", [])}
    predictions = {(r["method"], r["seed"]): r["test_predictions"] for r in records or [] if "test_predictions" in r}
    rows = []
    for c in [{"method": reference, "seeds": summary[reference]["seeds"]}, *results["ablation"]]:
        method, s, cost = c["method"], summary[c["method"]], costs.get(c["method"], {})
        std = s["test_accuracy_std"]
        row = {
            "method": method,
            "seeds": len(c["seeds"]),
            "test acc (%)": f"{100 * s['test_accuracy_mean']:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""),
            f"vs {reference} (points) [95% CI]": _difference(c) if method != reference else "",
            "p": _p(c.get("p_value")) if method != reference else "",
            "Holm p": _p(c.get("p_value_holm")) if method != reference else "",
            "counted": "" if method == reference else "yes" if c["counted"] else f"no: {c['nothing_to_do']}",
            "plan": cost.get("plan", {}).get("text", ""),
            "planning (s)": f"{cost['planning_seconds']:.1f}" if "planning_seconds" in cost else "",
            "students (s)": f"{cost['student_seconds']:.1f}" if "student_seconds" in cost else "",
        }
        if predictions:
            row[f"same predictions as {reference}"] = "" if method == reference else all(
                np.array_equal(predictions[(method, seed)], predictions[(reference, seed)]) for seed in c["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def cost_frame(costs: list[dict]) -> pd.DataFrame:
    """What each method cost per student in student-epoch equivalents (an epoch of the student on the whole training
    split is 1), its planning's share, and the wall-clock of planning, of training every seed, and of both."""
    return pd.DataFrame([{
        "method": c["method"],
        "seeds": len(c["seeds"]),
        "planning (student epochs)": f"{c['student_epochs']['planning']:.2f}",
        "training (student epochs)": f"{c['student_epochs']['training']:g}",
        "total per student (student epochs)": f"{c['student_epochs']['total']:.2f}",
        "planning (s)": f"{c['planning_seconds']:.1f}",
        "training, all seeds (s)": f"{c['student_seconds']:.1f}" + (" (in parallel)" if c.get("parallel") else ""),
        "total (s)": f"{c['total_seconds']:.1f}",
    } for c in costs])


def findings(results: dict) -> list[str]:
    """What the run found, in sentences generated from its numbers: HPM-KD against KD given the same search, plain KD
    and KD given HPM-KD's compute (each comparison's own sentence, judged by its Holm-corrected p), what each cost per
    student, and which ablation rows count as findings and which had nothing to do."""
    costs = {c["method"]: c for c in results.get("costs", [])}
    lines = [c["text"] for c in results["comparisons"]]

    def spent(method: str) -> str:
        e = costs[method]["student_epochs"]
        return f"{method} {e['total']:.2f} ({e['planning']:.2f} planning + {e['training']:g} training)"

    present = [m for m in ("hpmkd", "kd-tuned", "kd", "kd@hpmkd-cost") if m in costs]
    if present:
        lines.append("Compute per student, in student-epoch equivalents: " + "; ".join(spent(m) for m in present) + ".")
    if "hpmkd" in costs:
        c = costs["hpmkd"]
        lines.append(f"HPM-KD's wall-clock: {c['planning_seconds']:.0f} s planning + {c['student_seconds']:.0f} s "
                     f"training its {len(c['seeds'])} students = {c['total_seconds']:.0f} s.")
    plan = results.get("hpmkd", {}).get("plan", {})
    if plan.get("chain_candidates"):
        lines.append(f"The chain kept {plan['assistants']} assistant(s): on validation, " + ", ".join(
            f"{c['assistants']} assistant(s) {100 * c['val_accuracy']:.2f}%" for c in plan["chain_candidates"])
            + f" (one more is kept only if it gains at least {plan['chain_epsilon']:g} relatively).")
    counted = [a for a in results.get("ablation", []) if a["counted"]]
    idle = [a for a in results.get("ablation", []) if not a["counted"]]
    if counted:
        lines.append("Ablation rows that count (their component acted in this run): "
                     + "; ".join(a["text"] for a in counted))
    if idle:
        lines.append("Ablation rows that are not findings: " + "; ".join(
            f"{a['method']} ({a['nothing_to_do']})" for a in idle) + ".")
    return lines


def plot_hpmkd_traces(runs: list[dict], path=None):
    """The temperature each epoch used (meta-temperature) and, where HPM-KD had more than one teacher, the mean
    weight of each (multi-teacher), per run. With one teacher there is nothing to weigh: that panel is left out and
    the title says so."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    weighed = [r for r in runs if all(h.get("teacher_weights") for h in r["history"])]
    fig, axes = plt.subplots(1, 2 if weighed else 1, figsize=(11 if weighed else 6, 3.6), squeeze=False)
    ax_t = axes[0, 0]
    for r in runs:
        label = f"{r['method']} (seed {r['seed']})"
        ax_t.plot([h["epoch"] for h in r["history"]], [h.get("temperature") for h in r["history"]], marker="o",
                  label=label)
    temperatures = {h.get("temperature") for r in runs for h in r["history"]}
    title = "Meta-temperature: T used each epoch"
    if len(temperatures) == 1:
        title += f"\n(T stayed at {next(iter(temperatures)):g} in every run)"
    ax_t.set(xlabel="epoch", ylabel="temperature T", title=title)
    if not weighed:
        ax_t.set_title(title + "; one teacher only: no weights to show", fontsize=9)
    for r in weighed:
        epochs, weights = [h["epoch"] for h in r["history"]], [h["teacher_weights"] for h in r["history"]]
        for name in weights[0]:
            axes[0, 1].plot(epochs, [w[name] for w in weights], marker=".", label=f"{name}, {r['method']} (seed {r['seed']})")
    if weighed:
        axes[0, 1].set(xlabel="epoch", ylabel="mean weight", title="Multi-teacher: mean per-sample weight", ylim=(0, 1))
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


COMPARISON_COLOURS = {"main": "#4C72B0", "ablation": "#DD8452", "idle": "0.65"}


def plot_comparisons(results: dict, path=None):
    """A forest plot: HPM-KD against KD given the same search, plain KD and KD given HPM-KD's compute (and KD
    against the direct student), then each ablation row against HPM-KD on the same seeds, every difference in
    test-accuracy points with its 95% interval and Holm-adjusted verdict. Rows whose component had nothing to do
    are grey and marked so: they are not findings."""
    from ..glance import outcome
    from ..plots import plot_forest

    def points(v):
        return None if v is None else 100 * v

    rows = []
    for c in results.get("comparisons", []):
        rows.append({"label": f"{c['method']} - {c['baseline']}", "mean": points(c["difference_mean"]),
                     "low": points(c["ci_low"]), "high": points(c["ci_high"]), "colour": COMPARISON_COLOURS["main"],
                     "note": outcome(c)})
    for a in results.get("ablation", []):
        idle = not a.get("counted")
        rows.append({"label": f"{a['method']} - hpmkd", "mean": points(a["difference_mean"]),
                     "low": points(a["ci_low"]), "high": points(a["ci_high"]),
                     "colour": COMPARISON_COLOURS["idle" if idle else "ablation"],
                     "note": "nothing to do: not a finding" if idle else outcome(a)})
    legend = {COMPARISON_COLOURS["main"]: "methods compared", COMPARISON_COLOURS["ablation"]: "a component removed",
              COMPARISON_COLOURS["idle"]: "component had nothing to do"}
    return plot_forest(rows, path, "difference in test accuracy (points), mean over seeds with its 95% interval",
                       legend)
