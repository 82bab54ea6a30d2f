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


def plot_accuracy(summary: list[dict], path=None, title: str = "Test accuracy (mean ± sample std over seeds)"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [s["method"] for s in summary]
    means = np.array([100 * s["test_accuracy_mean"] for s in summary])
    stds = np.array([100 * (s["test_accuracy_std"] or 0.0) for s in summary])
    bars = ax.bar(names, means, yerr=stds, capsize=4, color="#4C72B0")
    for bar, m in zip(bars, means):
        ax.annotate(f"{m:.2f}", (bar.get_x() + bar.get_width() / 2, m), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
    low = max(0.0, float((means - stds).min()) - 5)
    ax.set_ylim(low, 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_retention(summary: list[dict], path=None):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rows = [s for s in summary if s.get("retention") is not None]
    ax.bar([s["method"] for s in rows], [100 * s["retention"] for s in rows], color="#55A868")
    for s in rows:
        ax.annotate(f"{100 * s['retention']:.1f}%, {s['compression']:.1f}x fewer params", (s["method"], 100 * s["retention"]),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    values = [100 * s["retention"] for s in rows]
    ax.set_ylim(max(0.0, min(values) - 5), max(values) + 2.5)
    ax.set_ylabel("retention: accuracy / teacher's (%)")
    ax.set_title("Accuracy retained, and compression against the teacher")
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


def plot_samples(x, y, classes: list[str], path=None, n: int = 20, title: str = ""):
    """A strip of the first n images with their labels."""
    plt = pyplot()
    n = min(n, len(y))
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
