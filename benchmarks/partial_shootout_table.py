"""Validation accuracy per epoch of a cifar10-ast shoot-out's run folders, finished or not: a markdown table and a
figure. For reading an interrupted calibration run (its notebook writes results.json only when every run has
finished); test accuracy and speed-ups are not shown, since an unfinished run has neither.

Run: python benchmarks/partial_shootout_table.py OUT_DIR [--seed 0] [--figure docs/figures/x.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdlib import runs

ORDER = ("full", "infobatch", "random@infobatch", "random", "ast-random", "selective-backprop", "ast")


def histories(out_dir: Path, seed: int) -> dict[str, list[dict]]:
    """Every method with a run folder for ``seed`` (full first), whatever the kdlib version named its methods."""
    found = {}
    for method in ORDER:
        path = runs.run_dir(out_dir, method, seed) / "history.json"
        if path.exists():
            found[method] = json.loads(path.read_text())
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    found = histories(args.out_dir, args.seed)
    if not found:
        raise SystemExit(f"no run folders for seed {args.seed} under {args.out_dir}/runs")
    common = min(len(h) for h in found.values())  # the last epoch every method has finished
    print(f"seed {args.seed}: validation accuracy after epoch {common} (the last epoch every method finished)\n")
    print("| method | val accuracy | samples backpropagated (epochs 1-%d) | vs full |" % common)
    print("|---|---|---|---|")
    full = sum(e["samples_backpropagated"] for e in found["full"][:common]) if "full" in found else None
    for method, h in found.items():
        spent = sum(e["samples_backpropagated"] for e in h[:common])
        share = f"{spent / full:.2f}" if full else "n/a"
        print(f"| {method} | {100 * h[common - 1]['val_accuracy']:.1f}% | {spent:,} | {share} |")
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for method, h in found.items():
            spent, xs = 0, []
            for e in h:
                spent += e["samples_backpropagated"]
                xs.append(spent)
            ax.plot(xs, [100 * e["val_accuracy"] for e in h], marker="o", label=method)
        ax.set_xlabel("samples backpropagated")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"cifar10-ast cpu-real, seed {args.seed} (unfinished run)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=110)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
