"""Selection rules, registered by name (a new rule: one file here plus one line in ``RULES``).

Options by rule (``make_selective_objective(rule, base, num_samples, rate, ..., **options)``):

- ``ast`` (rules/ast.py): threshold + PI controller on significance (CE and entropy). ``rate``: the
  controller's target activation rate (default 0.10). Options: ``kp`` (2.0), ``ki`` (0.5), ``ema_factor`` (0.2),
  ``loss_weight`` (0.7), ``entropy_weight`` (0.3), ``keep_low`` (0.0: off), or a ready ``controller``.
  Scoring 'forward' or 'stale'.
- ``random`` (rules/random.py): the control, uniform samples at ``rate``. Option ``exact_rate`` (False:
  round(rate * n) rounded up to the size bucket; True: stochastic rounding, expectation exactly rate * n); or
  ``epoch_rates`` ({epoch: rate}) with ``matched_to`` instead of rate: a control matched epoch by epoch to a run.
- ``random-prune`` (rules/random_prune.py): the control of a pruning rule: ``epoch_rows`` ({epoch: rows}) uniformly
  drawn rows each epoch, as many as the matched run (``matched_to``) kept, so the same optimizer steps.
- ``infobatch`` (rules/infobatch.py): prunes whole batches (the loop's epoch-order hook). ``rate`` must be None (its
  budget follows from prune_ratio and the losses); options ``epochs`` (required: the run's epochs), ``prune_ratio``
  (0.5: the fraction of below-mean-loss samples left out each epoch), ``delta`` (0.875: the last
  ceil((1 - delta) * epochs) epochs use all data). Records each sample's loss whatever ``scoring`` says.
- ``selective-backprop`` (rules/selective_backprop.py): keep with probability CDF(loss)^beta. ``rate``: the target
  rate, giving beta = 1 / rate - 1, or option ``beta`` instead of rate (one of the two); ``history`` (1024 losses). Scoring
  'forward' (the paper) or 'stale'.
"""

from __future__ import annotations

from .ast import ASTRule
from .base import SelectionRule
from .infobatch import InfoBatchRule
from .random import RandomRule
from .random_prune import RandomPruneRule
from .selective_backprop import SelectiveBackpropRule

RULES: dict[str, type[SelectionRule]] = {rule.name: rule for rule in (ASTRule, RandomRule, InfoBatchRule,
                                                                      SelectiveBackpropRule, RandomPruneRule)}


def make_rule(name: str, rate: float | None = None, **options) -> SelectionRule:
    """The rule registered as ``name``, built from ``rate`` and its options (see this module's docstring)."""
    if name not in RULES:
        raise ValueError(f"unknown selection rule {name!r}; expected one of {sorted(RULES)}")
    return RULES[name](rate=rate, **options)
