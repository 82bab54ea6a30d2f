"""The cifar10-ast calibration's tables and the presets' choice, from finished folders (each the OUT of
``python -m kdlib run cifar10-ast --preset cpu-real ...``, with its results.json).

"robust s" is the frontier's clock: per epoch the median over seeds, summed (``selection.robust_seconds``).
Each folder's results are recomputed from the records its runs kept (``recomputed``), so the tables follow this
kdlib's statistics whichever version ran the notebook. Per folder: each method's epochs, test accuracy (mean +- sample std over the paired seeds), validation accuracy,
training wall-clock, the measured speed-up against full training in that run (ratio of totals, and of median epochs
with the paired epochs' quartiles) beside its ceiling, samples backpropagated as a fraction of full training's and
optimizer steps; then every comparison the notebook states (against the frontier at the same wall-clock, against the
control, against full training at the same epochs), each with its 95% interval and Holm-adjusted p, and the
verdicts. Last, the rule ``choose_rule`` picks over all folders by the frontier verdict on validation accuracy, with
every candidate ranked, and one line per rule answering "does it beat training less?" (test accuracy).

Run: python benchmarks/cifar_calibration_table.py OUT [OUT ...] [--write benchmarks/results_cpu_cifar10_real.txt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdlib import runs
from kdlib.experiments import selection


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _points(value) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}"


def _times(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def describe_config(results: dict) -> str:
    config = results["config"]
    bn = config.get("bn_recalibration_batches", 0)
    return (f"rate {config['target_rate']}, '{config['scoring']}' scoring, {config['train']['epochs']} epochs, "
            f"seeds {config['seeds']}, {config['model']} {config['model_kwargs']}"
            + (f", BatchNorm recomputed on {bn} random batches after each selective epoch" if bn else ""))


def calibration_table(results: dict) -> list[str]:
    lines = [f"### {describe_config(results)}", "",
             f"Data: {results['dataset'].get('name')}, {results['dataset'].get('n_train')} train / "
             f"{results['dataset'].get('n_val')} validation / {results['dataset'].get('n_test')} test. "
             f"Hardware: {results['hardware'].get('device_name', results['hardware'])}.", "",
             "| method | epochs | test acc. (%) | ± std | val acc. (%) | train s | robust s | speed-up (total) | "
             "ceiling (total) | median-epoch speed-up [IQR] | backprop vs full | optimizer steps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["summary"]:
        quartiles = s.get("epoch_speedup_quartiles")
        median = ("n/a" if s.get("speedup_median_epoch") is None else f"{s['speedup_median_epoch']:.2f}x"
                  + (f" [{quartiles[0]:.2f}-{quartiles[1]:.2f}]" if quartiles else ""))
        steps = s.get("optimizer_steps_mean")
        lines.append(f"| {s['method']} | {s.get('epochs')} | {_pct(s['test_accuracy_mean'])} | "
                     f"{_pct(s['test_accuracy_std'])} | {_pct(s.get('val_accuracy_mean'))} | "
                     f"{s['train_seconds_mean']:.0f} | {s['train_seconds_robust']:.0f} | {_times(s.get('speedup_vs_full'))}{' (above its ceiling: a timing error)' if s.get('speedup_above_ceiling') else ''} | "
                     f"{_times(s.get('speedup_ceiling'))} | {median} | {s.get('realised_rate') or 0:.3f} | "
                     f"{'n/a' if steps is None else f'{steps:.0f}'} |")
    lines += ["", "Speed-ups of the totals are the raw clock; the verdicts use the robust seconds (per epoch, the median "
              "over seeds of its measured seconds).", ""]
    lines += ["| method | against | difference (points) | 95% CI | p | Holm p | verdict |", "|---|---|---|---|---|---|---|"]
    for c in results.get("comparisons", []):
        ci = "n/a" if c["ci_low"] is None else f"[{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
        lines.append(f"| {c['method']} | {c['baseline']} | {_points(c['difference_mean'])} | {ci} | "
                     f"{_p(c['p_value'])} | {_p(c['p_value_holm'])} | {c['verdict']} |")
    lines += ["", *[f"- {line}" for line in selection.verdict_lines(results)], ""]
    return lines


def training_less_answers(calibrations: list[dict], names: list[str]) -> list[str]:
    """One line per rule and run: does it beat training less (test accuracy, against the frontier at its wall-clock)?"""
    answer = {"beats": "yes", "loses": "no, it loses to it", "inconclusive": "cannot be told apart",
              "one seed": "one seed: no verdict"}
    lines = []
    for name, results in zip(names, calibrations):
        for c in results.get("comparisons", []):
            if c["kind"] == "frontier":
                ci = "" if c["ci_low"] is None else f", 95% CI [{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
                lines.append(f"- {name}: {c['method']}: {answer[c['verdict']]} ({_points(c['difference_mean'])} points"
                             f"{ci}, Holm p {_p(c['p_value_holm'])})")
    return lines


def recomputed(folder: Path, written: dict) -> dict:
    """The folder's results recomputed by this kdlib from the records its runs kept (histories included), with the
    data, hardware and configuration its results.json names."""
    records = [runs.read_record(runs.record_path(folder, r["method"], r["seed"]), None) for r in written["runs"]]
    return selection.results(written["experiment"], written["preset"], written["dataset"], written["hardware"],
                             records, written["config"])


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
        calibrations.append(recomputed(folder, json.loads(path.read_text())))
    names = [folder.name for folder in args.out]
    lines = []
    for name, results in zip(names, calibrations):
        lines += [f"## {name}", "", *calibration_table(results)]
    choice = selection.choose_rule(calibrations)
    lines += ["## The quick and full presets' rule (validation accuracy only)", "", choice["text"], "",
              "| candidate | rate | scoring | batch mode | BN batches | epochs | seeds | val acc. (%) | frontier's (%) "
              "| gain (points) | 95% CI |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in choice["candidates"]:
        ci = "n/a" if c["ci_low"] is None else f"[{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
        lines.append(f"| {c['method']} | {c['rate']} | {c['scoring']} | {c['batch_mode']} | "
                     f"{c['bn_recalibration_batches']} | {c['epochs']} | {len(c['seeds'])} | {_pct(c['val_accuracy'])} | "
                     f"{_pct(c['frontier_val_accuracy'])} | {_points(c['val_gain_over_frontier'])} | {ci} |")
    lines += ["", "## Does it beat training less? (test accuracy, at each rule's measured wall-clock)", "",
              *training_less_answers(calibrations, names)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
