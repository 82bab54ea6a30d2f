"""Cost accounting for selection rules: a run's compute in forward-pass units from its own sample counts, the
speed-up ceiling that compute allows, and each method's measured cost against full training in the same run
(wall-clock and energy ratios, the median-epoch view robust to a drifting machine). Used by the AST experiments,
the GPU self-check and the benchmarks."""

from __future__ import annotations

import numpy as np

# ---- cost: measured speed-ups and the ceiling they cannot pass -------------------------------------------------

# A sample's training compute in forward-pass units: a forward costs 1 and its backward 2 more (the usual FLOP
# count: about 2N multiply-adds forward and 4N backward for N weights). A sample only scored (a no-grad forward)
# costs 1; a sample learned from costs 3.
FORWARD_UNITS, BACKWARD_UNITS = 1, 2
# A measured speed-up above CEILING_TOLERANCE x its ceiling is a timing error, not a result (the tolerance covers
# what the FLOP count leaves out, e.g. an eval-mode scoring forward being a little cheaper than a training one).
CEILING_TOLERANCE = 1.1


def compute_units(samples_forwarded: float, samples_backpropagated: float) -> float:
    """Training compute in forward-pass units, from a run's own counts: every sample through any forward pass
    (``samples_forwarded``, scoring and learning) costs 1, every sample backpropagated 2 more."""
    return FORWARD_UNITS * samples_forwarded + BACKWARD_UNITS * samples_backpropagated


def speedup_ceiling(reference_units: float, units: float) -> float | None:
    """The largest speed-up a method can show against the reference from doing less work: the ratio of their
    compute units (``compute_units``); at a given rate, ``ceiling_at_rate``."""
    return reference_units / units if units else None


def ceiling_at_rate(rate: float, scoring_forward: bool) -> float:
    """The speed-up ceiling against full training of a rule that learns from a fraction ``rate`` (a) of the samples:
    full training costs 1 + 2 = 3 units a sample; with a scoring forward of every sample the rule costs 1 + 3a, so
    the ceiling is 3 / (1 + 3a); with stale scores or pruned batches (no scoring forward) it costs 3a, so 1 / a.
    The one place this formula lives; measured ceilings come from a run's own counts (``speedup_ceiling``)."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    return compute_units(1, 1) / compute_units((1.0 if scoring_forward else 0.0) + rate, rate)


def above_ceiling(speedup: float | None, ceiling: float | None) -> bool:
    return speedup is not None and ceiling is not None and speedup > CEILING_TOLERANCE * ceiling


def _epoch_units(record: dict) -> list[float | None]:
    return [compute_units(h["samples_forwarded"], h["samples_backpropagated"])
            if "samples_forwarded" in h and "samples_backpropagated" in h else None for h in record.get("history", [])]


def _run_units(record: dict, per_epoch: bool) -> float | None:
    """Compute units of a run: its total, or (``per_epoch``) its mean per epoch."""
    if not per_epoch and record.get("samples_forwarded") is not None and record.get("samples_backpropagated") is not None:
        return compute_units(record["samples_forwarded"], record["samples_backpropagated"])
    units = _epoch_units(record)
    if not units or any(u is None for u in units):
        return None
    return float(np.sum(units) / (len(units) if per_epoch else 1))


def epoch_speedups(reference_runs: list[dict], runs: list[dict]) -> dict:
    """The per-epoch view of a speed-up, robust to a machine whose speed drifts between runs.

    ``median``: the reference's median epoch seconds over the method's (epochs pooled over seeds), with
    ``ceiling_median`` the same ratio of median epoch compute units; ``paired``: every epoch ratio of the
    reference to the method on the same seed and epoch number, summarised by its quartiles and range."""
    def pooled(rs, key):
        return [h[key] for r in rs for h in r.get("history", []) if h.get(key) is not None]

    ref_seconds, seconds = pooled(reference_runs, "epoch_seconds"), pooled(runs, "epoch_seconds")
    if not ref_seconds or not seconds:
        return {"median": None, "ceiling_median": None, "paired_quartiles": None, "paired_range": None}
    ref_units = [u for r in reference_runs for u in _epoch_units(r)]
    units = [u for r in runs for u in _epoch_units(r)]
    ceiling = None
    if ref_units and units and None not in ref_units and None not in units:
        ceiling = speedup_ceiling(float(np.median(ref_units)), float(np.median(units)))
    by_seed = {r["seed"]: r for r in reference_runs}
    ratios = [ref["epoch_seconds"] / mine["epoch_seconds"]
              for r in runs if r["seed"] in by_seed
              for ref, mine in zip(by_seed[r["seed"]].get("history", []), r.get("history", []))
              if mine.get("epoch_seconds")]
    return {"median": float(np.median(ref_seconds) / np.median(seconds)), "ceiling_median": ceiling,
            "paired_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])] if ratios else None,
            "paired_range": [float(min(ratios)), float(max(ratios))] if ratios else None}


def realised_rate(reference_runs: list[dict], runs: list[dict], per_epoch: bool = False) -> float | None:
    """Samples backpropagated as a fraction of the reference's (full training: every sample, every epoch), mean
    over the seeds; per epoch when the runs ran different numbers of epochs."""
    def backprop(r):
        value = r.get("samples_backpropagated")
        if value is None:
            return None
        return value / max(1, len(r.get("history", [])) or r.get("epochs", 1)) if per_epoch else value

    ref = [backprop(r) for r in reference_runs]
    mine = [backprop(r) for r in runs]
    if not ref or not mine or None in ref or None in mine:
        return None
    return float(np.mean(mine) / np.mean(ref))


def add_cost_ratios(results: dict, runs: list[dict], reference: str = "full", per_epoch: bool = False) -> None:
    """Each summary row gets its measured cost against ``reference`` (full training) in the same run:
    ``speedup_vs_full`` (the reference's mean train seconds / the method's; with ``per_epoch``, when the
    reference ran fewer epochs, the same ratio of mean seconds per epoch), ``energy_joules_mean``,
    ``energy_ratio_vs_full`` (None without NVML) and ``samples_backpropagated_mean``. Never a formula.

    Energy is compared on the same basis as time (``energy_basis``): with ``per_epoch`` the ratio is of mean
    joules per epoch (``energy_joules_per_epoch_mean``), since totals over 4 and 10 epochs are not comparable.

    Beside the ratio of totals, which a machine whose speed drifts can distort: ``speedup_median_epoch`` (ratio of
    median epoch seconds) with the quartiles and range of the paired per-epoch ratios (``epoch_speedups``);
    ``realised_rate`` (samples backpropagated / the reference's); ``speedup_ceiling`` and
    ``speedup_ceiling_median_epoch`` from the runs' own counts (``speedup_ceiling``). A speed-up above its ceiling
    sets ``speedup_above_ceiling`` and ``speedup_note`` says it is a measurement problem, not a result."""
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
    ref_units = mean_or_none([_run_units(r, per_epoch) for r in ref])
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
        units = mean_or_none([_run_units(r, per_epoch) for r in rs])
        row["realised_rate"] = realised_rate(ref, rs, per_epoch) if ref else None
        row["speedup_ceiling"] = speedup_ceiling(ref_units, units) if ref_units and units else None
        per_epoch_view = epoch_speedups(ref, rs) if ref else epoch_speedups([], [])
        row["speedup_median_epoch"] = per_epoch_view["median"]
        row["speedup_ceiling_median_epoch"] = per_epoch_view["ceiling_median"]
        row["epoch_speedup_quartiles"] = per_epoch_view["paired_quartiles"]
        row["epoch_speedup_range"] = per_epoch_view["paired_range"]
        flagged = [(name, value, ceiling) for name, value, ceiling in (
            ("total", row["speedup_vs_full"], row["speedup_ceiling"]),
            ("median-epoch", row["speedup_median_epoch"], row["speedup_ceiling_median_epoch"]))
            if above_ceiling(value, ceiling)]
        row["speedup_above_ceiling"] = bool(flagged)
        row["speedup_note"] = "; ".join(
            f"the {name} speed-up {value:.2f}x is above its ceiling {ceiling:.2f}x"
            + (f" at the realised rate {row['realised_rate']:.2f}" if row["realised_rate"] is not None else "")
            + ": a measurement problem (the machine's speed changed while the methods ran), not a result"
            for name, value, ceiling in flagged)
