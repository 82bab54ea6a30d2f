"""``infobatch``: InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
ICLR 2024; reference code github.com/NUS-HPC-AI-Lab/InfoBatch, infobatch/infobatch.py). Being filled in."""

from __future__ import annotations

from .base import SelectionRule


class InfoBatchRule(SelectionRule):
    name = "infobatch"
    scores_batches = False
    statistics_columns = 1

    def __init__(self, rate: float | None = None, epochs: int | None = None, prune_ratio: float = 0.5,
                 delta: float = 0.875):
        raise NotImplementedError("the infobatch rule is being built (issue 14); its options are final")
