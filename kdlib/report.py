"""results.json, results.csv, a plain-text table, and the figures every notebook shows."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .evaluate import mean_std
from .fileio import atomic_write_json, atomic_write_text
from .runs import load_predictions

RUN_FIELDS = ("method", "model", "params", "seed", "test_accuracy", "val_accuracy", "train_seconds", "epochs")
SUMMARY_FIELDS = ("method", "model", "params", "n_seeds", "test_accuracy_mean", "test_accuracy_std", "retention",
                  "compression")


def summarize(runs: list[dict], reference: str = "teacher") -> list[dict]:
    """One row per method, in order of first appearance: mean and sample std over seeds of the test
    accuracy, retention (mean accuracy / the reference's mean accuracy) and compression (the
    reference's parameters / the method's)."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    by_method = {m: [r for r in runs if r["method"] == m] for m in methods}
    ref_runs = by_method.get(reference)
    ref_acc = mean_std([r["test_accuracy"] for r in ref_runs])[0] if ref_runs else None
    ref_params = ref_runs[0]["params"] if ref_runs else None
    summary = []
    for method, rs in by_method.items():
        acc_mean, acc_std = mean_std([r["test_accuracy"] for r in rs])
        summary.append({
            "method": method,
            "model": rs[0]["model"],
            "params": rs[0]["params"],
            "n_seeds": len(rs),
            "seeds": [r["seed"] for r in rs],
            "test_accuracy_mean": acc_mean,
            "test_accuracy_std": acc_std,
            "val_accuracy_mean": mean_std([r["val_accuracy"] for r in rs])[0],
            "train_seconds_mean": mean_std([r["train_seconds"] for r in rs])[0],
            "retention": acc_mean / ref_acc if ref_acc else None,
            "compression": ref_params / rs[0]["params"] if ref_params else None,
        })
    return summary


def build_results(experiment: str, preset: str, dataset: dict, hardware: dict, runs: list[dict],
                  config: dict | None = None, reference: str = "teacher", **extra) -> dict:
    return {
        "experiment": experiment,
        "preset": preset,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kdlib_version": __version__,
        "dataset": dataset,
        "hardware": hardware,
        "config": config or {},
        "runs": runs,
        "summary": summarize(runs, reference),
        **extra,
    }


def validate_results(results: dict) -> list[str]:
    """Problems with a results dict against the schema every notebook keeps; empty when valid."""
    problems = []
    for key in ("experiment", "preset", "dataset", "hardware", "runs", "summary"):
        if key not in results:
            problems.append(f"missing top-level key {key!r}")
    for key in ("name", "source", "n_train", "n_val", "n_test"):
        if key not in results.get("dataset", {}):
            problems.append(f"dataset lacks {key!r}")
    for kind, fields, accs in (("runs", RUN_FIELDS, ("test_accuracy", "val_accuracy")),
                               ("summary", SUMMARY_FIELDS, ("test_accuracy_mean",))):
        rows = results.get(kind, [])
        if not rows:
            problems.append(f"{kind} is empty")
        for i, row in enumerate(rows):
            problems += [f"{kind}[{i}] lacks {f!r}" for f in fields if f not in row]
            problems += [f"{kind}[{i}].{a}={row.get(a)!r} is not a fraction in [0, 1]" for a in accs
                         if a in row and not (isinstance(row[a], (int, float)) and 0.0 <= row[a] <= 1.0)]
    return problems


def summary_frame(results: dict) -> pd.DataFrame:
    """The summary as a table for people: accuracies in percent."""
    rows = []
    for s in results["summary"]:
        std = s["test_accuracy_std"]
        rows.append({
            "method": s["method"],
            "model": s["model"],
            "params": f"{s['params']:,}",
            "seeds": s["n_seeds"],
            "test acc (%)": f"{100 * s['test_accuracy_mean']:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""),
            "retention (%)": f"{100 * s['retention']:.1f}" if s.get("retention") is not None else "",
            "compression": f"{s['compression']:.1f}x" if s.get("compression") is not None else "",
            "train s (mean)": f"{s['train_seconds_mean']:.1f}",
        })
    return pd.DataFrame(rows)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_results(results: dict, out_dir: str | Path) -> dict[str, Path]:
    """results.json (everything), results.csv (one row per run), results.txt (the summary table)."""
    problems = validate_results(results)
    if problems:
        raise ValueError("results do not match the schema: " + "; ".join(problems))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "txt": out / "results.txt"}
    atomic_write_json(json.loads(json.dumps(results, default=_json_default)), paths["json"])
    atomic_write_text(pd.DataFrame([{k: r.get(k) for k in RUN_FIELDS} for r in results["runs"]]).to_csv(index=False),
                      paths["csv"])
    header = f"{results['experiment']} ({results['preset']} preset) on {results['dataset']['name']}\n"
    atomic_write_text(header + summary_frame(results).to_string(index=False) + "\n", paths["txt"])
    return paths


# ---- figures -------------------------------------------------------------------------------------------

def _plt():
    # Imported late: matplotlib picks the inline backend in a notebook and Agg on a headless machine.
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_accuracy(summary: list[dict], path=None, title: str = "Test accuracy (mean ± sample std over seeds)"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [s["method"] for s in summary]
    means = np.array([100 * s["test_accuracy_mean"] for s in summary])
    stds = np.array([100 * (s["test_accuracy_std"] or 0.0) for s in summary])
    bars = ax.bar(names, means, yerr=stds, capsize=4, color="#4C72B0")
    for bar, m in zip(bars, means):
        ax.annotate(f"{m:.2f}", (bar.get_x() + bar.get_width() / 2, m), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
    low = max(0.0, float((means - stds).min()) - 5)
    ax.set_ylim(low, 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return _save(fig, path)


def plot_retention(summary: list[dict], path=None):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rows = [s for s in summary if s.get("retention") is not None]
    ax.bar([s["method"] for s in rows], [100 * s["retention"] for s in rows], color="#55A868")
    for s in rows:
        ax.annotate(f"{100 * s['retention']:.1f}%, {s['compression']:.1f}x fewer params", (s["method"], 100 * s["retention"]),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    values = [100 * s["retention"] for s in rows]
    ax.set_ylim(max(0.0, min(values) - 5), max(values) + 2.5)
    ax.set_ylabel("retention: accuracy / teacher's (%)")
    ax.set_title("Accuracy retained, and compression against the teacher")
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, classes: list[str], title: str, path=None):
    plt = _plt()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_histories(histories: dict[str, list[dict]], path=None, key: str = "val_accuracy"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [100 * h[key] for h in history], marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " ") + " (%)")
    ax.set_title("Validation accuracy per epoch")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_samples(x, y, classes: list[str], path=None, n: int = 20, title: str = ""):
    """A strip of the first n images with their labels."""
    plt = _plt()
    n = min(n, len(y))
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(n * 0.45, 2.2))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            img = np.asarray(x[i]).transpose(1, 2, 0).squeeze()
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(classes[int(y[i])], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


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
        text += "; with 5 or fewer seeds it cannot go below 0.05.)" if len(seeds) <= 5 else ".)"
    return {"method": method, "baseline": baseline, "seeds": seeds, "difference_mean": mean, "p_value": p_value,
            "wilcoxon_p": wilcoxon_p, "text": text}


def mcnemar(predictions_a, predictions_b, labels) -> dict:
    """Exact McNemar test on paired test predictions: b = samples only A gets right, c = only B; under
    the null each discordant sample is a fair coin, so p = two-sided binomial(min(b, c); b + c, 1/2)."""
    from scipy.stats import binomtest

    a_right = np.asarray(predictions_a) == np.asarray(labels)
    b_right = np.asarray(predictions_b) == np.asarray(labels)
    b, c = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    p = float(binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
    return {"only_a_correct": b, "only_b_correct": c, "p_value": p}


def mcnemar_by_seed(out_dir: str | Path, method: str, baseline: str, seeds, labels, alpha: float = 0.05) -> dict:
    """McNemar's test of ``method`` against ``baseline`` for each seed, from the test predictions each run
    saved (``runs/<method>-seed<k>/test_predictions.npy``), and a sentence on how many were significant."""
    rows = []
    for seed in seeds:
        a, b = load_predictions(out_dir, method, seed), load_predictions(out_dir, baseline, seed)
        rows.append({"seed": seed, **mcnemar(a, b, labels)})
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


def plot_accuracy_curves(runs: list[dict], path=None):
    """Validation accuracy against epochs and against cumulative training wall-clock (time to accuracy)."""
    plt = _plt()
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for r in runs:
        h = r["history"]
        label = f"{r['method']} (seed {r['seed']})"
        acc = [100 * e["val_accuracy"] for e in h]
        by_epoch.plot([e["epoch"] for e in h], acc, marker="o", ms=3, label=label)
        by_time.plot(np.cumsum([e["epoch_seconds"] for e in h]), acc, marker="o", ms=3, label=label)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("training wall-clock (s)")
    by_epoch.set_ylabel("validation accuracy (%)")
    by_epoch.set_title("accuracy per epoch")
    by_time.set_title("accuracy against time")
    by_time.legend(fontsize=8)
    return _save(fig, path)






def ablation_frame(results: dict, costs: list[dict], reference: str = "hpmkd", baseline: str = "kd",
                   out_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per HPM-KD variant and the baseline, each on the seeds the variant ran: test accuracy
    (mean ± sample std), the difference to ``reference`` on those same seeds, the paired t-test p-value
    against ``baseline``, the wall-clock of training the variant's group of seeds, the plan its students
    used (re-planned without the component, or not, and why) and, given ``out_dir``, whether its test
    predictions equal the reference's on every seed (a removed component that had nothing to act on, or one
    that changes only cost)."""
    acc = {(r["method"], r["seed"]): r["test_accuracy"] for r in results["runs"]}
    wall = {c["method"]: c["wall_seconds"] for c in costs}
    plans = {c["method"]: c["plan"]["text"] for c in costs if "plan" in c}
    rows = []
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
                p = compare_methods({"runs": [r for r in results["runs"] if r["seed"] in seeds]}, method, baseline)["p_value"]
            except ValueError:
                p = None
        rows.append({
            "method": method,
            "seeds": len(seeds),
            "test acc (%)": f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else ""),
            f"vs {reference} (points)": f"{100 * float(np.mean(delta)):+.2f}" if delta and method != reference else "",
            f"p vs {baseline}": f"{p:.3g}" if p is not None else "n/a",
            "group wall-clock (s)": f"{wall[method]:.1f}" if method in wall else "",
            "plan": plans.get(method, ""),
        })
        if out_dir is not None:
            rows[-1][f"same predictions as {reference}"] = "" if method == reference else all(
                np.array_equal(load_predictions(out_dir, method, s), load_predictions(out_dir, reference, s))
                for s in seeds)
    return pd.DataFrame(rows)


def plot_hpmkd_traces(runs: list[dict], path=None):
    """The temperature each epoch used (meta-temperature) and the mean weight of each teacher
    (multi-teacher), per run."""
    plt = _plt()
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
    return _save(fig, path)
