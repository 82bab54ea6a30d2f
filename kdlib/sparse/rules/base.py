"""What a selection rule is: a small strategy that decides which samples of a batch (or of an epoch) are learned
from. ``SelectiveObjective`` (kdlib/sparse/selective.py) does everything else: the scoring forward or the
stale-statistics table, the gather into a physically smaller sub-batch, the size bucketing, data-parallel
gathers, the counters and the checkpoint state."""

from __future__ import annotations

from typing import Callable, ClassVar

import torch


class SelectionRule:
    """Subclasses set the class attributes and override what they use.

    A rule that ``scores_batches`` gets every batch's per-sample statistics (``statistics``: raw numbers from
    logits, recorded in the stale table as they are, never normalised) turned into scores (``scores``, normalised
    over the current batch at selection time) and picks from them (``choose``). Any other rule picks without
    scores (``pick``); it may also choose the epoch's rows (``epoch_indices``) from the statistics recorded when
    each sample was last learned from.
    """

    name: ClassVar[str] = ""
    scores_batches: ClassVar[bool] = True
    statistics_columns: ClassVar[int] = 0  # columns of raw per-sample statistics (0: the rule records none)
    prunes_epochs: ClassVar[bool] = False  # chooses the epoch's rows (epoch_indices), not samples of a batch
    num_samples: int = 0  # training rows; set by SelectiveObjective

    def needs_table(self, scoring: str) -> bool:
        """Whether the objective keeps a per-sample table of the statistics of each sample's last learning pass."""
        return self.statistics_columns > 0 and scoring == "stale"

    def statistics(self, logits: torch.Tensor, y: torch.Tensor, losses: Callable[[], torch.Tensor]) -> torch.Tensor:
        """(n, statistics_columns) float32 raw per-sample numbers; ``losses()`` gives the base objective's
        per-sample losses (detached), computed only if asked for."""
        raise NotImplementedError

    def scores(self, statistics: torch.Tensor, partial: bool) -> torch.Tensor:
        """(n,) scores of one (global) batch; ``partial``: rows may hold +inf (a sample never learned from)."""
        raise NotImplementedError

    def choose(self, scores: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Positions in the batch to learn from, and their loss weights (None: a plain mean over them)."""
        raise NotImplementedError

    def pick(self, n: int, index: torch.Tensor, bucket: int,
             generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """For rules that do not score: positions to learn from (None: all n), and loss weights (None: plain
        mean). ``bucket``: learning-pass sizes should be multiples of it (see ``default_size_bucket``)."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def after_batch(self, rate: float) -> None:
        """The batch's realised rate (after any fallback and rounding)."""

    @property
    def threshold(self) -> float | None:
        return None

    def epoch_indices(self, epoch: int, table: torch.Tensor | None, seed: int) -> torch.Tensor | None:
        """The dataset rows this epoch trains on (None: all)."""
        return None

    def epoch_stats(self) -> dict:
        return {}

    def settings(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def round_up_to_bucket(k: int, n: int, bucket: int) -> int:
    """k rounded up to a multiple of ``bucket``, never above n."""
    return min(n, -(-k // bucket) * bucket)
