"""AST's own results: the measured cost of each method against full training, and its figures."""

from __future__ import annotations

import numpy as np

from ..plots import pyplot as _plt, save_figure as _save


def plot_ast_trace(record: dict, target: float, path=None):
    """The controller at work: per-batch pass rate (and its EMA target) and threshold over training."""
    plt = _plt()
    rates = [v for h in record["history"] for v in h.get("batch_rates", [])]
    thresholds = [v for h in record["history"] for v in h.get("batch_thresholds", [])]
    fig, (ax_rate, ax_th) = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    ax_rate.plot(rates, lw=0.7, color="#4C72B0", label="per-batch pass rate")
    if rates:
        window = max(1, min(50, len(rates) // 5))
        smooth = np.convolve(rates, np.ones(window) / window, mode="valid")
        ax_rate.plot(np.arange(window - 1, len(rates)), smooth, color="black", lw=1.2, label=f"mean of {window} batches")
    ax_rate.axhline(target, color="#C44E52", ls="--", label=f"target {target:.2f}")
    ax_rate.set_ylabel("activation rate")
    ax_rate.legend(fontsize=7, loc="upper right")
    ax_th.plot(thresholds, color="#55A868")
    ax_th.set_ylabel("threshold")
    ax_th.set_xlabel("selective batch (after warm-up)")
    fig.suptitle(f"{record['method']} (seed {record['seed']}): PI controller", fontsize=10)
    return _save(fig, path)


def plot_cost_bars(summary: list[dict], path=None):
    """Training wall-clock and GPU energy per method, with the measured speed-up written on each bar."""
    plt = _plt()
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [s["method"] for s in summary]
    seconds = [s["train_seconds_mean"] for s in summary]
    bars = ax_t.bar(names, seconds, color="#4C72B0")
    for bar, s in zip(bars, summary):
        if s.get("speedup_vs_full"):
            ax_t.annotate(f"{s['speedup_vs_full']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax_t.set_ylabel("training wall-clock (s)")
    ax_t.set_title("time (speed-up vs full, measured)")
    per_epoch = any(s.get("energy_basis") == "joules per epoch" for s in summary)  # as the ratio compares them
    energies = [s.get("energy_joules_per_epoch_mean" if per_epoch else "energy_joules_mean") for s in summary]
    if all(e is not None for e in energies):
        ax_e.bar(names, [e / 1000 for e in energies], color="#DD8452")
        ax_e.set_ylabel("GPU energy per epoch (kJ, NVML)" if per_epoch else "GPU energy (kJ, NVML)")
        ax_e.set_title("energy")
    else:
        ax_e.axis("off")
        ax_e.text(0.5, 0.5, "GPU energy: n/a\n(no NVML-readable GPU in this run)", ha="center", va="center")
    fig.tight_layout()
    return _save(fig, path)


def add_cost_ratios(results: dict, runs: list[dict], reference: str = "full", per_epoch: bool = False) -> None:
    """Each summary row gets its measured cost against ``reference`` (full training) in the same run:
    ``speedup_vs_full`` (the reference's mean train seconds / the method's; with ``per_epoch``, when the
    reference ran fewer epochs, the same ratio of mean seconds per epoch), ``energy_joules_mean``,
    ``energy_ratio_vs_full`` (None without NVML) and ``samples_backpropagated_mean``. Never a formula.

    Energy is compared on the same basis as time (``energy_basis``): with ``per_epoch`` the ratio is of mean
    joules per epoch (``energy_joules_per_epoch_mean``), since totals over 4 and 10 epochs are not comparable."""
    def seconds(r):
        return np.mean([h["epoch_seconds"] for h in r["history"]]) if per_epoch else r["train_seconds"]

    def joules(r):  # on the ratio's basis; None where any epoch (or the run) could not be measured
        if not per_epoch:
            return r["energy_joules"]
        values = [h.get("energy_joules") for h in r["history"]]
        return None if not values or any(v is None for v in values) else float(np.mean(values))

    def mean_or_none(values):
        return None if not values or any(v is None for v in values) else float(np.mean(values))

    by_method = {}
    for r in runs:
        by_method.setdefault(r["method"], []).append(r)
    ref = by_method.get(reference, [])
    ref_seconds = float(np.mean([seconds(r) for r in ref])) if ref else None
    ref_energy_mean = mean_or_none([joules(r) for r in ref])
    for row in results["summary"]:
        rs = by_method[row["method"]]
        row["samples_backpropagated_mean"] = float(np.mean([r["samples_backpropagated"] for r in rs]))
        row["energy_joules_mean"] = mean_or_none([r["energy_joules"] for r in rs])
        row["speedup_vs_full"] = ref_seconds / float(np.mean([seconds(r) for r in rs])) if ref_seconds else None
        row["speedup_basis"] = "seconds per epoch" if per_epoch else "training seconds"
        energy = mean_or_none([joules(r) for r in rs])
        row["energy_basis"] = "joules per epoch" if per_epoch else "training joules"
        if per_epoch:
            row["energy_joules_per_epoch_mean"] = energy
        row["energy_ratio_vs_full"] = ref_energy_mean / energy if ref_energy_mean and energy else None
