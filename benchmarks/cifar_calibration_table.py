"""The cifar10-ast calibration's tables and the presets' choice, from finished shoot-out folders (each the OUT of
``python -m kdlib run cifar10-ast --preset cpu-real ...``, with its results.json).

Per folder: each method's test accuracy (mean +- sample std over the paired seeds), validation accuracy, samples
backpropagated as a fraction of full training's, the measured speed-up against full training in that run (ratio of
totals, and of median epochs with the paired epochs' quartiles) and its ceiling, and the paired t-test p-values
against the rule's control at the same budget and against full; then the notebook's verdicts. Last, the rule, rate
and scoring ``choose_rule`` picks over all folders, from validation accuracy only.

Run: python benchmarks/cifar_calibration_table.py OUT [OUT ...] [--write benchmarks/results_cpu_cifar10_real.txt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdlib.experiments import cifar10_ast as exp
from kdlib.experiments import selection_reporting as reporting


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _times(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def calibration_table(results: dict) -> list[str]:
    config = results["config"]
    comparisons = {c["method"]: c for c in results.get("comparisons", [])}
    rows = {r["method"]: r for r in results["summary"]}
    lines = [f"### rate {config['target_rate']}, '{config['scoring']}' scoring, {config['train']['epochs']} epochs, "
             f"seeds {config['seeds']}, {config['model']} {config['model_kwargs']}",
             "",
             f"Data: {results['dataset'].get('name')}, {results['dataset'].get('n_train')} train / "
             f"{results['dataset'].get('n_val')} validation / {results['dataset'].get('n_test')} test. "
             f"Hardware: {results['hardware'].get('device_name', results['hardware'])}.",
             "",
             "| method | test acc. (%) | ± std | val acc. (%) | backprop vs full | speed-up (total) | ceiling (total) | "
             "median-epoch speed-up [IQR] | ceiling (median epoch) | p vs control | p vs full |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, s in rows.items():
        c = comparisons.get(method)
        quartiles = s.get("epoch_speedup_quartiles")
        median = ("n/a" if s.get("speedup_median_epoch") is None else f"{s['speedup_median_epoch']:.2f}x"
                  + (f" [{quartiles[0]:.2f}-{quartiles[1]:.2f}]" if quartiles else ""))
        lines.append(
            f"| {method} | {_pct(s['test_accuracy_mean'])} | {_pct(s['test_accuracy_std'])} | "
            f"{_pct(s.get('val_accuracy_mean'))} | {s.get('realised_rate') or 0:.3f} | "
            f"{s['speedup_vs_full']:.2f}x | {_times(s.get('speedup_ceiling'))} | {median} | "
            f"{_times(s.get('speedup_ceiling_median_epoch'))} | "
            + (f"{_p(c['p_value'])} ({c['control']}) | {_p(c['versus_reference']['p_value'])} |" if c else "| |"))
    lines += ["", *[f"- {line}" for line in reporting.verdicts(results, results.get("comparisons", []))], ""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="+", type=Path, help="finished cifar10-ast folders (with results.json)")
    parser.add_argument("--write", type=Path, help="also write the text to this file")
    args = parser.parse_args()
    calibrations = []
    for folder in args.out:
        path = folder / "results.json"
        if not path.exists():
            parser.error(f"{path} does not exist: run the notebook on {folder} to the end first")
        calibrations.append(json.loads(path.read_text()))
    lines = []
    for folder, results in zip(args.out, calibrations):
        lines += [f"## {folder.name}", "", *calibration_table(results)]
    choice = exp.choose_rule(calibrations)
    lines += ["## The quick and full presets' rule (validation accuracy only)", "", choice["text"], "",
              "| candidate | rate | scoring | epochs | val acc. (%) | points vs full | backprop vs full | lossless |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['method']} | {c['rate']} | {c['scoring']} | {c['epochs']} | {_pct(c['val_accuracy'])} | {c['points_vs_full']:+.2f} | "
              f"{c['fraction_of_full']:.3f} | {'yes' if c['lossless'] else 'no'} |" for c in choice["candidates"]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
