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
