"""Are two runs the same apart from where and how fast they ran? Compares two results.json folders run by run:
e.g. the seeds split over two devices against one device with the same threads per worker:

    python -m kdlib run cifar10-ast --preset demo --seeds 0 1 --devices cpu cpu --out /tmp/split
    python -m kdlib run cifar10-ast --preset demo --seeds 0 1 --devices cpu --threads 1 --out /tmp/one
    python benchmarks/compare_device_split.py /tmp/split /tmp/one

Every run record is compared field by field, its history epoch by epoch, leaving out only what says where and
when it ran (device, seconds, energy, file paths). Prints one line per run and the verdict; exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WHERE_AND_WHEN = {"device", "train_seconds", "energy_joules", "selection_trace", "history"}


def _timeless(value):
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()
                if not any(word in k for word in ("seconds", "energy", "per_second"))}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two run records beyond where and when they ran: the fields' names."""
    keys = (set(a) | set(b)) - WHERE_AND_WHEN
    diff = sorted(k for k in keys if _timeless(a.get(k)) != _timeless(b.get(k)))
    if _timeless(a.get("history")) != _timeless(b.get("history")):
        diff.append("history")
    return diff


def compare(first: Path, second: Path) -> tuple[list[str], bool]:
    one, two = (json.loads((folder / "results.json").read_text()) for folder in (first, second))
    runs_two = {(r["method"], r["seed"]): r for r in two["runs"]}
    lines, same = [], True
    if [(r["method"], r["seed"]) for r in one["runs"]] != [(r["method"], r["seed"]) for r in two["runs"]]:
        lines.append("the runs differ: " + str(sorted(set(runs_two) ^ {(r["method"], r["seed"]) for r in one["runs"]}))
                     + " (or their order)")
        same = False
    for r in one["runs"]:
        other = runs_two.get((r["method"], r["seed"]))
        if other is None:
            continue
        diff = differences(r, other)
        same &= not diff
        lines.append(f"{r['method']} seed {r['seed']}: test accuracy {r['test_accuracy']:.6f} on {r.get('device')} "
                     f"vs {other['test_accuracy']:.6f} on {other.get('device')}; train {r['train_seconds']:.1f} s vs "
                     f"{other['train_seconds']:.1f} s; " + ("the same" if not diff else "DIFFERENT: " + ", ".join(diff)))
    for name, results in (("first", one), ("second", two)):
        hardware = results.get("hardware", {})
        lines.append(f"{name}: devices {hardware.get('devices') or [hardware.get('device')]}, "
                     f"torch threads {sorted({r.get('torch_threads') for r in results['runs']}, key=str)}")
    return lines, same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    lines, same = compare(args.first, args.second)
    print("\n".join(lines))
    print("verdict: " + ("every run the same apart from device and seconds" if same else "the runs differ"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
