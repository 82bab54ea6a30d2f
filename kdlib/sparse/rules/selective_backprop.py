"""``selective-backprop``: Selective Backprop (Jiang et al., 2019, "Accelerating Deep Learning by Focusing on the
Biggest Losers"; reference code github.com/angelajiang/SelectiveBackprop). Being filled in."""

from __future__ import annotations

from .base import SelectionRule


class SelectiveBackpropRule(SelectionRule):
    name = "selective-backprop"
    statistics_columns = 1

    def __init__(self, rate: float | None = None, beta: float | None = None, history: int = 1024):
        raise NotImplementedError("the selective-backprop rule is being built (issue 14); its options are final")
