import numpy as np
import pytest
import torch

from kdlib.data.mnist import load_digits_28
from kdlib.models import create_model
from kdlib.widgets import TemperatureExplorer, entropy_bits, softened_distribution


def test_softened_distribution_math():
    logits = np.array([2 * np.log(3), 0.0])
    assert softened_distribution(logits, 2.0) == pytest.approx([0.75, 0.25])
    assert softened_distribution(logits, 1e6) == pytest.approx([0.5, 0.5], abs=1e-5)
    assert softened_distribution(np.array([1000.0, 0.0]), 1.0) == pytest.approx([1.0, 0.0])  # no overflow
    assert entropy_bits([0.5, 0.5]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        softened_distribution(logits, 0.0)


def test_explorer_draws_and_builds_its_widget():
    data = load_digits_28()
    explorer = TemperatureExplorer(create_model("simplecnn"), data, torch.device("cpu"), n_digits=5)
    assert explorer.logits.shape == (5, 10)
    fig = explorer.figure(2, 4.0)
    bars = fig.axes[1].patches
    assert sum(b.get_height() for b in bars) == pytest.approx(2.0, abs=1e-6)  # two distributions drawn
    box = explorer.widget()
    digit, temp = box.children[0].children
    temp.value = 10.0  # the observer redraws without error
    assert digit.max == 4


def test_a_batch_run_gets_the_explorers_static_figure_not_a_widget(monkeypatch):
    """Under `python -m kdlib run` (KDLIB_BATCH) or a Kaggle batch run nobody can move a slider: the explorer is its
    figure at the run's settings, and no widget's comm messages can stall the run."""
    import os

    import matplotlib.figure
    import numpy as np

    from kdlib import runtime, widgets

    stream = np.random.default_rng(0).random((20, 32)) * 2
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delenv(runtime.BATCH_ENV, raising=False)
    assert not runtime.batch_run()
    assert not isinstance(widgets.controller_simulator(stream, 0.3), matplotlib.figure.Figure)
    monkeypatch.setenv(runtime.BATCH_ENV, "1")
    assert runtime.batch_run() and isinstance(widgets.controller_simulator(stream, 0.3), matplotlib.figure.Figure)
    monkeypatch.delenv(runtime.BATCH_ENV)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert runtime.batch_run()
    from tqdm.std import tqdm as text_bar

    bar = runtime.progress_bar(range(3), total=3, file=open(os.devnull, "w"), disable=False)
    assert type(bar) is text_bar and bar.disable and list(bar) == [0, 1, 2]  # no bar, and it still iterates
    bar.close()


def test_an_interactive_explorer_shows_and_saves_its_static_twin_before_the_widget(monkeypatch, tmp_path):
    """A notebook saved from an interactive session keeps no widget state: the figure at the run's settings is
    displayed (and saved to figures/) before the sliders, so the saved copy still shows it."""
    import numpy as np

    from kdlib import runtime, widgets

    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delenv(runtime.BATCH_ENV, raising=False)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    stream = np.random.default_rng(0).random((20, 32)) * 2
    box = widgets.controller_simulator(stream, 0.3, path=tmp_path / "controller_replay.png")
    import matplotlib.figure

    # the twin, then the widget's own first drawing inside its Output
    assert len(shown) == 2 and isinstance(shown[0], matplotlib.figure.Figure) and hasattr(box, "children")
    assert (tmp_path / "controller_replay.png").stat().st_size > 1000
    data = load_digits_28()
    shown.clear()
    widgets.temperature_explorer(create_model("simplecnn"), data, torch.device("cpu"), n_digits=5,
                                 path=tmp_path / "temperature.png")
    assert len(shown) == 2 and isinstance(shown[0], matplotlib.figure.Figure)
    assert (tmp_path / "temperature.png").exists()
