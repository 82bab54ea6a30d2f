"""results.json, results.csv and results.txt: the schema every notebook keeps, the assembly of a results dict from
run records, the files, and the summary as a table for people."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .evaluate import mean_std
from .fileio import atomic_write_json, atomic_write_text
from .runs import check_metrics, record_path

RUN_FIELDS = ("method", "model", "params", "seed", "test_accuracy", "val_accuracy", "train_seconds", "epochs")
SUMMARY_FIELDS = ("method", "model", "params", "n_seeds", "test_accuracy_mean", "test_accuracy_std", "retention",
                  "compression")
# What a run record carries for the notebook and the statistics but results.json leaves out (per-epoch history,
# per-sample predictions, the confusion matrix): results.json stays a summary a person can read.
RECORD_ONLY_FIELDS = ("history", "confusion_matrix", "test_predictions", "test_labels")


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
    """results.json's content from the run records (less RECORD_ONLY_FIELDS) and their summary. Each record's
    accuracy, per-class accuracy and confusion matrix are first recomputed from its test predictions and labels
    (``runs.check_metrics``): a record they contradict is a ``runs.DamagedRunError``."""
    for r in runs:
        check_metrics(r, str(record_path("OUT_DIR", r["method"], r["seed"])))
    return {
        "experiment": experiment,
        "preset": preset,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kdlib_version": __version__,
        "dataset": dataset,
        "hardware": hardware,
        "config": config or {},
        "runs": [{k: v for k, v in r.items() if k not in RECORD_ONLY_FIELDS} for r in runs],
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
    """The summary as a table for people: accuracies in percent, and where the summary carries p-values against a
    baseline (``statistics.add_p_values``), the raw and the Holm-adjusted one."""
    baselines = list(dict.fromkeys(k[len("p_value_vs_"):] for s in results["summary"] for k in s
                                   if k.startswith("p_value_vs_") and not k.endswith("_holm")))
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
        for baseline in baselines:
            for column, key in ((f"p vs {baseline}", f"p_value_vs_{baseline}"),
                                (f"Holm p vs {baseline}", f"p_value_vs_{baseline}_holm")):
                p = s.get(key)
                rows[-1][column] = "" if s["method"] == baseline else "n/a" if p is None else f"{p:.3g}"
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


def runs_frame(runs: list[dict], columns: list[str]) -> pd.DataFrame:
    """Run records as a table for people, rounded to what the numbers mean: accuracies and rates in percent with
    two decimals (a 10,000-image test set resolves 0.01 points), seconds to a tenth, energy to a joule; the column
    names say the unit."""
    frame = pd.DataFrame(runs)[columns].copy()

    def rounded(scale: float, digits: int | None):
        # numbers only: a column may hold text (a control's "rate" is 'matched')
        return lambda v: round(scale * v, digits) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    names = {}
    for column in columns:
        values = frame[column]
        if column.endswith(("accuracy", "top5")):
            frame[column] = values.map(rounded(100, 2))
            names[column] = column.replace("_", " ") + " (%)"
        elif column.endswith("seconds"):
            frame[column] = values.map(rounded(1, 1))
            names[column] = column.replace("_seconds", "").replace("_", " ") + " (s)"
        elif column.endswith("joules"):
            frame[column] = values.map(rounded(1, None))
            names[column] = column.replace("_joules", "").replace("_", " ") + " (J)"
        elif column.endswith("temperature") or column == "rate":
            frame[column] = values.map(rounded(1, 3))
    return frame.rename(columns=names)
