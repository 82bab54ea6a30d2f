"""The AST experiments' tables, verdicts and figures: the summary table, each rule against its control, why a rule
does or does not beat it, and the figures of accuracy against cost, the epoch timeline and the controller."""

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


# ---- the summary table (the CIFAR-10 and ImageNet-100 notebooks) -------------------------------------------------

def _fmt(value, pattern: str, missing: str = "n/a") -> str:
    return missing if value is None else pattern.format(value)


def ast_summary_table(results: dict):
    """The AST notebooks' summary: accuracy (top-5 where measured), the samples backpropagated and their rate,
    the measured speed-up (total, and median epoch with the paired epochs' quartiles), its ceiling, GPU energy,
    and a note where a speed-up is above its ceiling (a measurement problem, not a result)."""
    from ..results_io import summary_frame

    summary = results["summary"]
    table = summary_frame(results).drop(columns=["compression", "retention (%)"])
    if any("test_top5_mean" in s for s in summary):
        table["top-5 (%)"] = [_fmt(None if s.get("test_top5_mean") is None else 100 * s["test_top5_mean"], "{:.2f}")
                              for s in summary]
    table["backprop samples"] = [f"{s['samples_backpropagated_mean']:,.0f}" for s in summary]
    table["rate vs full"] = [_fmt(s.get("realised_rate"), "{:.3f}") for s in summary]
    table["speed-up (measured)"] = [_fmt(s.get("speedup_vs_full"), "{:.2f}x")
                                    + (" per epoch" if s.get("speedup_basis") == "seconds per epoch" else "")
                                    for s in summary]
    table["median-epoch speed-up [IQR]"] = [
        _fmt(s.get("speedup_median_epoch"), "{:.2f}x")
        + (f" [{s['epoch_speedup_quartiles'][0]:.2f}-{s['epoch_speedup_quartiles'][1]:.2f}]"
           if s.get("epoch_speedup_quartiles") else "") for s in summary]
    table["ceiling"] = [_fmt(s.get("speedup_ceiling"), "{:.2f}x") for s in summary]
    per_epoch = [s.get("energy_basis") == "joules per epoch" for s in summary]
    table["GPU energy (J)"] = [_fmt(s.get("energy_joules_per_epoch_mean" if pe else "energy_joules_mean"), "{:.0f}")
                               + (" /epoch" if pe and s.get("energy_joules_per_epoch_mean") is not None else "")
                               for s, pe in zip(summary, per_epoch)]
    table["energy saving"] = [_fmt(s.get("energy_ratio_vs_full"), "{:.2f}x") for s in summary]
    if any(s.get("speedup_above_ceiling") for s in summary):
        table["timing check"] = ["ABOVE CEILING: not a result" if s.get("speedup_above_ceiling") else "ok"
                                 for s in summary]
    return table


# ---- budgets: what each rule and its control spent -----------------------------------------------------------

BUDGET_TOLERANCE = 0.10  # a rule and its control are "at the same budget" when their backprop samples differ by <= 10%


def budget_frame(results: dict):
    """Each method's budget: epochs, samples backpropagated and optimizer steps (means over seeds), the samples as
    a fraction of full training's, and for a rule its control's and whether the two are at the same budget
    (within BUDGET_TOLERANCE)."""
    import pandas as pd

    rows = {s["method"]: s for s in results["summary"]}
    frame = []
    for method, s in rows.items():
        control = s.get("control")
        row = {"method": method, "epochs": s.get("epochs"), "backprop samples": round(s["samples_backpropagated_mean"]),
               "optimizer steps": None if s.get("optimizer_steps_mean") is None else round(s["optimizer_steps_mean"]),
               "rate vs full": s.get("realised_rate"), "control": control or "", "control's rate": None,
               "budget difference": None, "same budget": None}
        if control in rows:
            mine, theirs = s["samples_backpropagated_mean"], rows[control]["samples_backpropagated_mean"]
            row["control's rate"] = rows[control].get("realised_rate")
            row["budget difference"] = mine / theirs - 1
            row["same budget"] = abs(mine / theirs - 1) <= BUDGET_TOLERANCE
        frame.append(row)
    return pd.DataFrame(frame)


def comparison_frame(results: dict):
    """Every comparison of the run as a table: the difference in points with its 95% interval, raw and
    Holm-adjusted p, and the verdict."""
    import pandas as pd

    def points(v):
        return None if v is None else round(100 * v, 2)

    return pd.DataFrame([{"method": c["method"], "against": c["baseline"], "kind": c["kind"], "seeds": c["n"],
                          "difference (points)": points(c["difference_mean"]), "95% CI low": points(c["ci_low"]),
                          "95% CI high": points(c["ci_high"]),
                          "p": None if c["p_value"] is None else float(f"{c['p_value']:.3g}"),
                          "Holm p": None if c["p_value_holm"] is None else float(f"{c['p_value_holm']:.3g}"),
                          "verdict": c["verdict"]} for c in results.get("comparisons", [])])


# ---- why a rule does (not) beat its control --------------------------------------------------------------------

def load_trace(path) -> dict | None:
    """A run's recorded selections (``selection_trace.npz``): 'scores' and 'selected', one row per recorded batch
    (or pruned epoch); None when the run recorded none (full training, the random control)."""
    if not path:
        return None
    with np.load(path) as trace:
        return {"scores": trace["scores"], "selected": trace["selected"].astype(bool)}


def _selective_epochs(record: dict) -> list[dict]:
    """The epochs a rule selected in (all of full training's)."""
    return [h for h in record["history"] if not h.get("warmup", False)]


def selection_evidence(runs: list[dict], method: str, control: str, classes: list[str] | None = None) -> dict:
    """The numbers that show why ``method`` does or does not beat ``control``, each a mean over the seeds both ran:
    the loss of the samples each learned from during the selective epochs (the training loss the loop reports is
    over the learned samples only), the change of validation accuracy in the first selective epoch, the class whose
    test accuracy differs most, and from the recorded selections the mean score of selected and unselected samples."""
    mine = {r["seed"]: r for r in runs if r["method"] == method}
    theirs = {r["seed"]: r for r in runs if r["method"] == control}
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        raise ValueError(f"no seed ran both {method!r} and {control!r}")

    def learned_loss(r):
        return float(np.mean([h["train_loss"] for h in _selective_epochs(r)]))

    def first_step(r):  # validation accuracy after the first selective epoch minus after the warm-up
        selective = _selective_epochs(r)
        before = [h for h in r["history"] if h["epoch"] < selective[0]["epoch"]] if selective else []
        return selective[0]["val_accuracy"] - before[-1]["val_accuracy"] if selective and before else None

    evidence = {"method": method, "control": control, "seeds": seeds,
                "learned_loss": float(np.mean([learned_loss(mine[s]) for s in seeds])),
                "control_learned_loss": float(np.mean([learned_loss(theirs[s]) for s in seeds]))}
    steps = [(first_step(mine[s]), first_step(theirs[s])) for s in seeds]
    evidence["first_selective_epoch_val_change"] = (float(np.mean([a for a, _ in steps])) if all(
        a is not None for a, _ in steps) else None)
    evidence["control_first_selective_epoch_val_change"] = (float(np.mean([b for _, b in steps])) if all(
        b is not None for _, b in steps) else None)
    per_class = [np.subtract(mine[s]["per_class_accuracy"], theirs[s]["per_class_accuracy"]) for s in seeds
                 if "per_class_accuracy" in mine[s] and "per_class_accuracy" in theirs[s]]
    if per_class:
        gaps = np.mean(per_class, axis=0)
        worst = int(np.argmin(gaps))
        evidence["per_class_gap"] = gaps.tolist()
        evidence["worst_class"] = classes[worst] if classes else str(worst)
        evidence["worst_class_gap"] = float(gaps[worst])
    traces = [load_trace(mine[s].get("selection_trace")) for s in seeds]
    traces = [t for t in traces if t is not None]
    if traces:
        scores = np.concatenate([t["scores"].ravel() for t in traces])
        selected = np.concatenate([t["selected"].ravel() for t in traces])
        finite = np.isfinite(scores)
        if (selected & finite).any() and (~selected & finite).any():
            evidence["score_selected_mean"] = float(scores[selected & finite].mean())
            evidence["score_unselected_mean"] = float(scores[~selected & finite].mean())
            evidence["recorded_selected_fraction"] = float(selected.mean())
    evidence["text"] = _evidence_text(evidence)
    return evidence


def evidence_lines(runs: list[dict], comparisons: list[dict], classes: list[str] | None = None) -> list[str]:
    """For each rule against its control, what it learned from and where it gained or lost (``selection_evidence``),
    led by whether it beat the control at the same budget."""
    lines = []
    for c in comparisons:
        if c["kind"] != "control":
            continue
        lead = ("beats its control; what it selected" if c["verdict"] == "beats" else
                f"does not beat {c['baseline']}; why, from this run's numbers")
        lines.append(f"{c['method']} {lead}: " + selection_evidence(runs, c["method"], c["baseline"], classes)["text"])
    return lines


def _evidence_text(e: dict) -> str:
    method, control = e["method"], e["control"]
    parts = [f"the samples {method} learned from had a mean training loss of {e['learned_loss']:.3f} against "
             f"{e['control_learned_loss']:.3f} for {control}'s"
             + (f" ({e['learned_loss'] / e['control_learned_loss']:.1f}x)" if e["control_learned_loss"] else "")]
    if "score_selected_mean" in e:
        parts.append(f"in the recorded batches its selected samples scored {e['score_selected_mean']:.2f} on average "
                     f"against {e['score_unselected_mean']:.2f} for those left out")
    change, control_change = e.get("first_selective_epoch_val_change"), e.get("control_first_selective_epoch_val_change")
    if change is not None and control_change is not None:
        parts.append(f"in the first selective epoch its validation accuracy moved {100 * change:+.1f} points against "
                     f"{100 * control_change:+.1f} for {control}")
    if "worst_class" in e and e["worst_class_gap"] < 0:
        parts.append(f"the class it loses most on against {control} is {e['worst_class']} "
                     f"({100 * e['worst_class_gap']:+.1f} points of test accuracy)")
    elif "worst_class" in e:
        parts.append(f"it is at least as accurate as {control} on every class")
    return f"{method} against {control}: " + "; ".join(parts) + "."


# ---- figures ---------------------------------------------------------------------------------------------------

def plot_epoch_timeline(slices: list[dict], path=None):
    """Each epoch's measured seconds at the time it ran, by method: how the machine's speed drifted, and that the
    interleaved methods met the same conditions."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    # seeds split over devices (kdlib.devices): each device's epochs ran at once with the others', on its own clock
    places = list(dict.fromkeys(s.get("worker") for s in slices))
    markers = dict(zip(places, "o^sD"))
    shapes = {"o": "circles", "^": "triangles", "s": "squares", "D": "diamonds"}
    for method in dict.fromkeys(s["method"] for s in slices):
        colour = None
        for place in places:
            mine = [s for s in slices if s["method"] == method and s.get("worker") == place]
            if mine:
                dots = ax.scatter([s["started"] for s in mine], [s["seconds"] for s in mine], s=10,
                                  marker=markers.get(place, "o"), color=colour, label=method if colour is None else None)
                colour = dots.get_facecolor()[0]
    title = "epochs as they ran (interleaved)"
    if len(places) > 1:
        title += ": " + ", ".join(f"{shapes[m]} {p}" for p, m in markers.items()) + ", at once"
    ax.set(xlabel="time since the runs started (s)", ylabel="epoch seconds", title=title)
    if slices:
        ax.legend(fontsize=7, ncol=3)
    return _save(fig, path)


def plot_per_epoch(runs: list[dict], path=None):
    """Per epoch, each method's throughput (images per second, mean over seeds) and the energy the training GPU
    drew (NVML); where no GPU measured energy, that panel says so instead of drawing zeros."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, (ax_speed, ax_energy) = plt.subplots(1, 2, figsize=(11, 3.6))
    measured = False
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        epochs = sorted({h["epoch"] for r in mine for h in r["history"]})

        def mean_at(key, epoch):
            values = [h.get(key) for r in mine for h in r["history"] if h["epoch"] == epoch]
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else np.nan

        ax_speed.plot(epochs, [mean_at("images_per_second", e) for e in epochs], marker="o", ms=3, label=method)
        energy = [mean_at("energy_joules", e) for e in epochs]
        if np.isfinite(energy).any():
            ax_energy.plot(epochs, energy, marker="o", ms=3, label=method)
            measured = True
    ax_speed.set(xlabel="epoch", ylabel="images per second (mean over seeds)", title="throughput per epoch")
    ax_energy.set(xlabel="epoch", ylabel="GPU energy per epoch (J)", title="energy per epoch (NVML)")
    if not measured:
        ax_energy.text(0.5, 0.5, "energy not measured:\nno NVML-readable GPU trained these runs", ha="center",
                       va="center", transform=ax_energy.transAxes)
    for ax in (ax_speed, ax_energy):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def plot_selection_evidence(runs: list[dict], comparisons: list[dict], classes: list[str], path=None):
    """Why a rule does or does not beat its control: the scores of selected against unselected samples in the
    recorded batches; the mean loss of the samples each method learned from, per epoch; the per-class test
    accuracy of each rule minus its control."""
    plt = _plt()
    fig, (ax_scores, ax_loss, ax_class) = plt.subplots(1, 3, figsize=(14, 3.6))
    plotted = False
    comparisons = [{**c, "control": c["baseline"]} for c in comparisons if c["kind"] == "control"]
    for c in comparisons:
        seeds = c["seeds"]
        traces = [load_trace(r.get("selection_trace")) for r in runs if r["method"] == c["method"] and r["seed"] in seeds]
        traces = [t for t in traces if t is not None]
        if traces:
            scores = np.concatenate([t["scores"].ravel() for t in traces])
            selected = np.concatenate([t["selected"].ravel() for t in traces])
            finite = np.isfinite(scores)
            bins = np.linspace(*np.percentile(scores[finite], [0.5, 99.5]), 40) if finite.any() else 40
            ax_scores.hist(scores[finite & selected], bins=bins, alpha=0.5, density=True, label=f"{c['method']}: selected")
            ax_scores.hist(scores[finite & ~selected], bins=bins, alpha=0.5, density=True, histtype="step", lw=1.5,
                           label=f"{c['method']}: left out")
            plotted = True
    ax_scores.set(xlabel="score when selected (recorded batches)", ylabel="density", title="selected vs left out")
    if plotted:
        ax_scores.legend(fontsize=7)
    else:
        ax_scores.text(0.5, 0.5, "no recorded selections", ha="center", va="center", transform=ax_scores.transAxes)
    shown = list(dict.fromkeys(["full", *(m for c in comparisons for m in (c["method"], c["control"]))]))
    for method in shown:
        rs = [r for r in runs if r["method"] == method]
        if rs:
            epochs = [h["epoch"] for h in rs[0]["history"]]
            loss = np.mean([[h["train_loss"] for h in r["history"]] for r in rs], axis=0)
            ax_loss.plot(epochs, loss, marker="o", ms=3, label=method)
    ax_loss.set(xlabel="epoch", ylabel="mean loss of learned samples", title="what each method learned from")
    ax_loss.legend(fontsize=7)
    width = 0.8 / max(1, len(comparisons))
    for i, c in enumerate(comparisons):
        gaps = selection_evidence(runs, c["method"], c["control"], classes).get("per_class_gap")
        if gaps is not None:
            ax_class.bar(np.arange(len(gaps)) + i * width, 100 * np.asarray(gaps), width,
                         label=f"{c['method']} - {c['control']}")
    ax_class.axhline(0, color="grey", lw=0.8)
    ax_class.set_xticks(np.arange(len(classes)) + width * (len(comparisons) - 1) / 2, classes, rotation=30, fontsize=8,
                        ha="right")
    ax_class.set(ylabel="test accuracy difference (points)", title="per class, against the control")
    if comparisons:
        ax_class.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_frontier(results: dict, path=None):
    """The main figure: test accuracy against measured training wall-clock (the verdicts' clock,
    ``selection.robust_seconds``) and against compute units. Full
    training at 1/4 .. 1 of the epochs is a curve (thin: each seed; thick: the mean over seeds); every rule is a
    point at its mean with the spread over seeds (one standard deviation both ways), its control hollow beside it.
    A rule above the curve gives more accuracy for its time than training less."""
    from matplotlib import ticker

    from ..sparse.cost import compute_units
    from .selection import parse_method

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    runs = results["runs"]
    robust = {s["method"]: s.get("train_seconds_robust") for s in results["summary"]}
    costs = {"wall": lambda r: robust.get(r["method"]) or r["train_seconds"],  # the verdicts' clock
             "units": lambda r: compute_units(r["samples_forwarded"], r["samples_backpropagated"])}
    methods = [s["method"] for s in results["summary"]]
    full = sorted((m for m in methods if parse_method(m).is_full), key=lambda m: parse_method(m).fraction)
    rules = [m for m in methods if parse_method(m).is_rule]
    colours = dict(zip(rules, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    for ax, (name, cost) in zip(axes, costs.items()):
        for seed in sorted({r["seed"] for r in runs}):  # in order of epochs (a noisy clock may not be monotone)
            line = [(cost(r), 100 * r["test_accuracy"]) for m in full for r in runs if r["method"] == m and r["seed"] == seed]
            if len(line) > 1:
                ax.plot(*zip(*line), color="0.75", lw=0.8, zorder=1)
        mean = [(np.mean([cost(r) for r in runs if r["method"] == m]),
                 np.mean([100 * r["test_accuracy"] for r in runs if r["method"] == m])) for m in full]
        ax.plot(*zip(*mean), color="black", lw=2, marker="s", ms=4, label="full training (frontier)", zorder=2)
        for (x, y), m in zip(mean, full):
            ax.annotate(m, (x, y), fontsize=6, xytext=(3, -9), textcoords="offset points", color="0.3")
        for m in methods:
            spec = parse_method(m)
            if spec.is_full:
                continue
            owner = m if spec.is_rule else spec.parent
            mine = [r for r in runs if r["method"] == m]
            xs, ys = [cost(r) for r in mine], [100 * r["test_accuracy"] for r in mine]
            colour = colours.get(owner, "grey")
            ax.errorbar(np.mean(xs), np.mean(ys), xerr=np.std(xs), yerr=np.std(ys), fmt="o",
                        mfc=colour if spec.is_rule else "white", mec=colour, ecolor=colour, ms=7, capsize=2, zorder=3,
                        label=m)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_short_number))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # labelled minor ticks overprint on a short log axis
        ax.set_xlabel("training wall-clock (s, measured: per epoch the median over seeds; log scale)" if name == "wall"
                      else "compute (forward-pass units: forward 1, backward 2; log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("accuracy for the time", fontsize=10)
    axes[1].set_title("accuracy for the compute", fontsize=10)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    fig.suptitle(f"{results['experiment']} ({results['preset']}): each rule against full training given less "
                 "(hollow: its control)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) - 1) // 5), 1, 1))
    return _save(fig, path)


def _short_number(value: float, _position=None) -> str:
    """Tick labels that stay short on a log axis: 30, 150k, 2.5M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


KIND_COLOURS = {"frontier": "#4C72B0", "control": "#DD8452", "same-epochs": "#55A868"}


def plot_comparisons(results: dict, path=None):
    """A forest plot of every comparison: the difference in test-accuracy points with its 95% interval, coloured by
    what it compares with (the frontier at the same time, the control at the same budget, full training at the same
    epochs, whose dashed line is the non-inferiority margin), and the Holm-adjusted verdict."""
    from ..plots import plot_forest
    from .selection import NON_INFERIORITY_POINTS

    comps = results.get("comparisons", [])

    def points(v):
        return None if v is None else 100 * v

    rows = [{"label": f"{c['method']} vs {c['baseline']}", "mean": points(c["difference_mean"]),
             "low": points(c["ci_low"]), "high": points(c["ci_high"]), "colour": KIND_COLOURS[c["kind"]],
             "note": c["verdict"]} for c in comps]
    legend = {KIND_COLOURS["frontier"]: "vs full training given the same time",
              KIND_COLOURS["control"]: "vs its control at the same budget",
              KIND_COLOURS["same-epochs"]: f"vs full training, same epochs (margin -{NON_INFERIORITY_POINTS})"}
    margin = [(-NON_INFERIORITY_POINTS, KIND_COLOURS["same-epochs"])] if any(
        c["kind"] == "same-epochs" for c in comps) else []
    return plot_forest(rows, path, "difference in test accuracy (points), mean over seeds with its 95% interval",
                       legend, margin)
