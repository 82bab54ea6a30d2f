"""Figures a reader can read: every class in the sample strip, axes that span the data, panels only where there is
something to draw, and the (T, alpha) and per-class heatmaps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from kdlib import plots  # noqa: E402
from kdlib.experiments import hpmkd_reporting, selection_reporting  # noqa: E402


def test_the_sample_strip_shows_every_class_even_when_the_folder_is_sorted():
    y = np.repeat(np.arange(10), 30)  # a class-sorted folder: its first 20 rows are all class 0
    picked = plots.one_of_each_class(y, 20)
    assert len(picked) == 20 and sorted(set(y[picked])) == list(range(10))
    assert list(y[picked[:10]]) == list(range(10))  # the first of each class, then the second
    assert len(plots.one_of_each_class(np.array([3, 3, 1]), 20)) == 3


def test_accuracy_dots_span_the_data_not_zero_to_a_hundred():
    summary = [{"method": m, "test_accuracy_mean": a, "test_accuracy_std": 0.001, "retention": a / 0.994,
                "compression": 40.0} for m, a in (("teacher", 0.994), ("direct", 0.9875), ("hpmkd", 0.9918))]
    fig = plots.plot_accuracy(summary)
    low, high = fig.axes[0].get_xlim()
    assert 98.0 < low < 98.75 and 99.4 < high < 100.5
    at = {t.get_text(): y for t, y in zip(fig.axes[0].get_yticklabels(), fig.axes[0].get_yticks())}
    assert at["teacher"] > at["direct"] > at["hpmkd"]  # the summary's order, first on top
    fig = plots.plot_retention(summary)
    assert fig.axes[0].get_xlim()[1] >= 100  # the teacher's line is on the axis


def test_the_probe_grid_is_a_heatmap_with_the_choice_outlined():
    probes = [{"temperature": t, "alpha": a, "val_accuracy": 0.9 + 0.01 * t + a / 100} for t in (2, 6) for a in (0.5, 0.9)]
    fig = plots.plot_probe_grid(probes, chosen=(6.0, 0.9))
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (2, 2) and image[1, 1] == max(image.ravel())  # rows alpha, columns T
    assert len(ax.patches) == 1 and ax.patches[0].get_xy() == (0.5, 0.5)
    assert {t.get_text() for t in ax.texts} == {f"{100 * p['val_accuracy']:.2f}" for p in probes}


def test_per_class_heatmap_rows_are_models():
    fig = plots.plot_per_class({"teacher": [1.0, 0.5], "kd": [0.9, 0.25]}, ["0", "1"])
    assert fig.axes[0].images[0].get_array().tolist() == [[100.0, 50.0], [90.0, 25.0]]


def test_one_teacher_leaves_out_the_weights_panel_and_epochs_are_whole():
    runs = [{"method": "hpmkd", "seed": 0, "history": [{"epoch": e, "temperature": 4.0} for e in (1, 2)]}]
    fig = hpmkd_reporting.plot_hpmkd_traces(runs)
    assert len(fig.axes) == 1 and "one teacher only" in fig.axes[0].get_title()
    assert "T stayed at 4" in fig.axes[0].get_title()
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    weighed = [{**runs[0], "history": [{**h, "teacher_weights": {"a": 0.4, "b": 0.6}} for h in runs[0]["history"]]}]
    assert len(hpmkd_reporting.plot_hpmkd_traces(weighed).axes) == 2


def test_the_mnist_forest_greys_the_rows_that_are_not_findings():
    c = {"difference_mean": 0.01, "ci_low": -0.01, "ci_high": 0.03, "p_value": 0.4, "p_value_holm": 0.4,
         "holm_family_size": 3, "seeds": [0, 1]}
    results = {"comparisons": [{**c, "method": "hpmkd", "baseline": "kd-tuned"}],
               "ablation": [{**c, "method": "hpmkd-no-cache", "baseline": "hpmkd", "counted": False},
                            {**c, "method": "hpmkd-no-progressive", "baseline": "hpmkd", "counted": True}]}
    fig = hpmkd_reporting.plot_comparisons(results)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes == ["inconclusive", "nothing to do: not a finding", "inconclusive"][::-1]


def test_per_epoch_figure_says_when_no_gpu_measured_energy():
    runs = [{"method": m, "seed": 0, "history": [{"epoch": e, "images_per_second": 100.0 * e, "energy_joules": None}
                                                 for e in (1, 2)]} for m in ("full", "ast")]
    fig = selection_reporting.plot_per_epoch(runs)
    assert len(fig.axes[0].lines) == 2 and not fig.axes[1].lines
    assert "energy not measured" in fig.axes[1].texts[0].get_text()
    for r in runs:
        for h in r["history"]:
            h["energy_joules"] = 50.0
    assert len(selection_reporting.plot_per_epoch(runs).axes[1].lines) == 2


def test_run_tables_are_rounded_to_what_they_mean():
    from kdlib.results_io import runs_frame

    frame = runs_frame([{"method": "ast", "test_accuracy": 0.924791123, "train_seconds": 977.915142,
                         "energy_joules": None, "best_epoch": 3}],
                       ["method", "test_accuracy", "train_seconds", "energy_joules", "best_epoch"])
    assert list(frame.columns) == ["method", "test accuracy (%)", "train (s)", "energy (J)", "best_epoch"]
    assert frame.iloc[0].tolist() == ["ast", 92.48, 977.9, None, 3]
    mixed = runs_frame([{"rate": "0.3"}, {"rate": 0.30001}], ["rate"])  # text is left as it is
    assert mixed["rate"].tolist() == ["0.3", 0.3]
