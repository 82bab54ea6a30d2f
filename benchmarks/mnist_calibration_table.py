"""The mnist-kd calibration's tables, from a finished run's folder (the OUT of
``python -m kdlib run mnist-kd --preset cpu-real --data DIR --out OUT``, with its results.json and runs/).

Every method's test and validation accuracy (mean +- sample std over seeds), its epochs and its cost per student in
student-epoch equivalents and seconds; the comparisons (HPM-KD against kd-tuned, kd and kd@hpmkd-cost, one Holm
family, each with its 95% interval); the ablation against HPM-KD on the same seeds, with the rows that are not
findings named; HPM-KD's plan (the probes and the chain candidates, on validation); each run's validation accuracy
per epoch; and the notebook's sentences.

Run: python benchmarks/mnist_calibration_table.py OUT [--write benchmarks/results_cpu_mnist_real.txt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from kdlib.experiments import hpmkd_reporting


def _pct(mean, std=None) -> str:
    return "n/a" if mean is None else f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _markdown(frame: pd.DataFrame) -> list[str]:
    columns = list(frame.columns)
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def calibration_report(out: Path) -> list[str]:
    results = json.loads((out / "results.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/record.json"))]
    costs = {c["method"]: c for c in results.get("costs", [])}
    data, plan = results["dataset"], results["hpmkd"]["plan"]
    lines = [f"## mnist-kd, preset {results['preset']}, seeds {results['config']['seeds']}", "",
             f"Data: {data['name']} from {data['source']}: {data['n_train']:,} train / {data['n_val']:,} validation / "
             f"{data['n_test']:,} test. Hardware: {results['hardware'].get('device_name', results['hardware'])}.", "",
             "| method | seeds | test acc. (%) | val acc. (%) | epochs | student epochs per student (planning + training) "
             "| planning (s) | training, all seeds (s) |", "|---|---|---|---|---|---|---|---|"]
    epochs = {r["method"]: r["epochs"] for r in results["runs"]}
    for s in results["summary"]:
        c = costs.get(s["method"])
        spent = (f"{c['student_epochs']['total']:.2f} ({c['student_epochs']['planning']:.2f} + "
                 f"{c['student_epochs']['training']:g})" if c else "")
        lines.append(f"| {s['method']} | {s['n_seeds']} | {_pct(s['test_accuracy_mean'], s['test_accuracy_std'])} | "
                     f"{_pct(s['val_accuracy_mean'])} | {epochs[s['method']]} | {spent} | "
                     + (f"{c['planning_seconds']:.0f} | {c['student_seconds']:.0f} |" if c else
                        f" | {sum(r['train_seconds'] for r in results['runs'] if r['method'] == s['method']):.0f} |"))
    lines += ["", "Comparisons (difference in points of test accuracy, paired over seeds):", ""]
    lines += _markdown(hpmkd_reporting.comparisons_frame(results["comparisons"]))
    lines += ["", "Ablation (each variant minus hpmkd, on the same seeds):", ""]
    lines += _markdown(hpmkd_reporting.ablation_frame(results, records).drop(columns=["plan"]))
    lines += ["", f"HPM-KD's plan: T {plan['temperature']:g}, alpha {plan['alpha']:g}, {plan['assistants']} assistant(s); "
              f"planning {plan['planning']['seconds']:.0f} s, {plan['planning']['student_epochs']['total']:.2f} "
              "student-epoch equivalents (" + ", ".join(f"{k} {plan['planning']['student_epochs'][k]:.2f}" for k in
                                                       ("probes", "chain_probes", "assistants", "assistant_logits"))
              + "; assistants weighed by forward FLOPs: " + ", ".join(
                  f"{k} {v:.2f}x" for k, v in plan["planning"]["student_epochs"]["flops_vs_student"].items()) + ").", ""]
    lines += _markdown(pd.DataFrame(plan["probes"]).round(4)) + [""]
    lines += _markdown(pd.DataFrame(plan["chain_candidates"]).drop(columns=["params"]).round(4)) + [""]
    lines += ["Validation accuracy per epoch (%):", ""]
    for r in records:
        if r["method"] in ("teacher", "direct", "kd", "kd@hpmkd-cost") or r["method"].startswith("assistant"):
            lines.append(f"- {r['method']} seed {r['seed']}: "
                         + ", ".join(f"{100 * h['val_accuracy']:.2f}" for h in r["history"]))
    lines += ["", *[f"- {line}" for line in hpmkd_reporting.findings(results)],
              *[f"- {m['text']}" for m in results["mcnemar"]], ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the run's output folder")
    parser.add_argument("--write", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    text = "\n".join(calibration_report(args.out))
    print(text)
    if args.write:
        args.write.write_text(text + "\n")


if __name__ == "__main__":
    main()
