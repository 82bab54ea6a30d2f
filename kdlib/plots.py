"""The figures every notebook shows (experiment-specific ones live beside their experiment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    # Imported late: matplotlib picks the inline backend in a notebook and Agg on a headless machine.
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path | None):
    if path is not None:
        from .fileio import check_claimed

        check_claimed(path)  # never recreate a run's folder that vanished
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _dot_rows(ax, names, values, errors=None, colour="#4C72B0", fmt="{:.2f}"):
    """Horizontal dots (first name on top) with their values written beside them: labels never overprint, and a
    dot, unlike a bar, does not claim that its axis starts at zero."""
    y = np.arange(len(names))[::-1]
    ax.errorbar(values, y, xerr=errors, fmt="o", color=colour, capsize=3)
    for yi, v in zip(y, values):
        ax.annotate(fmt.format(v), (v, yi), fontsize=7, xytext=(0, 6), textcoords="offset points", ha="center")
    ax.set_yticks(y, names, fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _data_range(low: float, high: float, pad: float = 0.15) -> tuple[float, float]:
    span = max(high - low, 0.5)
    return low - pad * span, high + pad * span


def plot_accuracy(summary: list[dict], path=None, title: str = "Test accuracy (mean ± sample std over seeds)"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(summary) + 1.4))
    means = np.array([100 * s["test_accuracy_mean"] for s in summary])
    stds = np.array([100 * (s["test_accuracy_std"] or 0.0) for s in summary])
    _dot_rows(ax, [s["method"] for s in summary], means, stds)
    ax.set_xlim(*_data_range(float((means - stds).min()), float((means + stds).max())))
    ax.set_xlabel("test accuracy (%); the axis spans the data, so small differences are visible")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_retention(summary: list[dict], path=None):
    plt = pyplot()
    rows = [s for s in summary if s.get("retention") is not None]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.4))
    values = np.array([100 * s["retention"] for s in rows])
    names = [s["method"] + ("" if s.get("compression") is None else f" ({s['compression']:.0f}x fewer params)")
             for s in rows]
    _dot_rows(ax, names, values, colour="#55A868", fmt="{:.1f}%")
    ax.axvline(100, color="grey", lw=0.8, ls="--")
    ax.set_xlim(*_data_range(float(min(values.min(), 100)), float(max(values.max(), 100))))
    ax.set_xlabel("retention: accuracy / the teacher's (%); dashed: the teacher; the axis spans the data")
    ax.set_title("Accuracy retained, and compression against the teacher", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_probe_grid(probes: list[dict], path=None, chosen: tuple[float, float] | None = None,
                    title: str = "(T, alpha) probes: validation accuracy"):
    """The (temperature, alpha) search as a heatmap of validation accuracy, the choice outlined."""
    plt = pyplot()
    temperatures = sorted({p["temperature"] for p in probes})
    alphas = sorted({p["alpha"] for p in probes})
    grid = np.full((len(alphas), len(temperatures)), np.nan)
    for p in probes:
        grid[alphas.index(p["alpha"]), temperatures.index(p["temperature"])] = 100 * p["val_accuracy"]
    fig, ax = plt.subplots(figsize=(1.1 * len(temperatures) + 2.4, 0.8 * len(alphas) + 1.4))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for i in range(len(alphas)):
        for j in range(len(temperatures)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if grid[i, j] > np.nanmean(grid) else "white")
    if chosen is not None and chosen[0] in temperatures and chosen[1] in alphas:
        j, i = temperatures.index(chosen[0]), alphas.index(chosen[1])
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(len(temperatures)), [f"{t:g}" for t in temperatures])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(xlabel="temperature T", ylabel="alpha (weight of the KD term)")
    ax.set_title(title + ("; red: chosen" if chosen else ""), fontsize=9)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_per_class(per_class: dict[str, list[float]], classes: list[str], path=None,
                   title: str = "Per-class test accuracy (%)"):
    """Per-class accuracy of each model (rows) as a heatmap with its values: where the models differ."""
    plt = pyplot()
    names = list(per_class)
    grid = 100 * np.array([per_class[n] for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(0.62 * len(classes) + 2.6, 0.42 * len(names) + 1.5))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for i in range(len(names)):
        for j in range(len(classes)):
            ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if grid[i, j] > np.nanmean(grid) else "white")
    ax.set_xticks(range(len(classes)), classes, fontsize=8, rotation=30 if max(map(len, classes)) > 3 else 0,
                  ha="right" if max(map(len, classes)) > 3 else "center")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(cm: np.ndarray, classes: list[str], title: str, path=None):
    plt = pyplot()
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
    return save_figure(fig, path)


def plot_histories(histories: dict[str, list[dict]], path=None, key: str = "val_accuracy"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [100 * h[key] for h in history], marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " ") + " (%)")
    ax.set_title("Validation accuracy per epoch")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def one_of_each_class(y, n: int = 20) -> np.ndarray:
    """Indices of up to ``n`` samples that take the classes in turn (the first of each class, then the second, ...):
    a sample strip that shows every class, where the first n rows of a sorted folder may all be one class."""
    y = np.asarray(y)
    rows = [np.flatnonzero(y == c) for c in np.unique(y)]
    order = [int(r[rank]) for rank in range(max(map(len, rows), default=0)) for r in rows if rank < len(r)]
    return np.array(order[:n], dtype=int)


def plot_samples(x, y, classes: list[str], path=None, n: int = 20, title: str = ""):
    """A strip of up to n images with their labels, every class shown (``one_of_each_class``)."""
    plt = pyplot()
    picked = one_of_each_class(np.asarray(y), n)
    x, y, n = [x[int(i)] for i in picked], [y[int(i)] for i in picked], len(picked)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(n * 0.45, 2.2))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            img = np.asarray(x[i]).transpose(1, 2, 0).squeeze()
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(classes[int(y[i])], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_accuracy_curves(runs: list[dict], path=None):
    """Validation accuracy against epochs and against cumulative training wall-clock (time to accuracy)."""
    plt = pyplot()
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
    return save_figure(fig, path)


def plot_forest(rows: list[dict], path=None, xlabel: str = "difference (points), mean over seeds with its 95% interval",
                legend: dict[str, str] | None = None, lines: list[tuple[float, str]] = (), title: str = ""):
    """A forest plot, first row on top: each row a point (``mean``) and its interval (``low``, ``high``; None: a
    point alone) in ``colour``, labelled ``label`` on the left and ``note`` (the verdict) on the right. ``legend``
    maps colour -> what it means; ``lines`` are (x, colour) reference lines beside zero (a margin, say)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.42 * max(len(rows), 2) + 1.2))
    for i, r in enumerate(reversed(rows)):
        if r.get("low") is not None:
            ax.plot([r["low"], r["high"]], [i, i], color=r["colour"], lw=2)
        ax.plot(r["mean"], i, "o", color=r["colour"], mfc=r.get("face", r["colour"]))
        ax.annotate(r.get("note", ""), (1.01, i), xycoords=("axes fraction", "data"), fontsize=7, va="center")
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    for x, colour in lines:
        ax.axvline(x, color=colour, lw=0.8, ls="--")
    for colour, meaning in (legend or {}).items():
        ax.plot([], [], color=colour, lw=2, label=meaning)
    if legend:
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10, pad=18 if legend else 6)
    fig.tight_layout()
    return save_figure(fig, path)
