"""Adaptive Sparse Training and other selection rules: which samples of a batch (or an epoch) get a learning pass.

``make_selective_objective(rule, base, num_samples, rate, ...)`` wraps any base objective (cross-entropy, KD) with
one of the rules registered in ``kdlib.sparse.rules.RULES`` ('ast', 'random', 'infobatch', 'selective-backprop',
'random-prune';
their options are listed there)."""

from __future__ import annotations

from .controller import PIController, replay, select  # noqa: F401
from .significance import significance  # noqa: F401
from .rules import RULES, make_rule  # noqa: F401
from .selective import SelectiveObjective, default_size_bucket  # noqa: F401


def make_selective_objective(rule: str, base=None, num_samples: int | None = None, rate: float | None = None,
                             seed: int = 0, scoring: str = "forward", warmup_epochs: int = 1, record_batches: int = 0,
                             sync=None, size_bucket: int | None = None, batch_mode: str = "sub-batch",
                             bn_recalibration_batches: int = 0, **rule_options) -> SelectiveObjective:
    """``base`` (default: cross-entropy, ``kdlib.train.Objective()``) learning only from the samples ``rule`` picks.

    ``num_samples``: training rows (the size of per-sample tables). ``rate``: the rule's target fraction of each
    batch (see kdlib.sparse.rules for what each rule makes of it). ``seed``: the rule's random draws, by (seed,
    epoch). ``scoring``: 'forward' or 'stale', for rules that score batches. ``warmup_epochs``: full epochs first.
    ``record_batches``: keep that many batches' scores and selections for the notebook. ``sync``: a
    ``distributed.RankSync`` for data-parallel runs. ``size_bucket``: learning-pass sizes rounded up to multiples
    of it (None: ``default_size_bucket``). ``batch_mode``: 'sub-batch' (a step per batch on its selected samples) or
    'accumulate' (selected samples gathered into full batches, as Selective Backprop's reference).
    ``bn_recalibration_batches``: BatchNorm statistics recomputed on that many random full batches after each
    selective epoch (0: off). See kdlib/sparse/selective.py."""
    from ..objective import Objective

    if num_samples is None:
        raise ValueError("make_selective_objective needs num_samples (the number of training rows)")
    return SelectiveObjective(base if base is not None else Objective(), make_rule(rule, rate, **rule_options),
                              num_samples, scoring=scoring, warmup_epochs=warmup_epochs, seed=seed,
                              record_batches=record_batches, sync=sync, size_bucket=size_bucket,
                              batch_mode=batch_mode, bn_recalibration_batches=bn_recalibration_batches)
