"""AST as it was first built: ``ASTObjective``, now a thin composition of ``SelectiveObjective`` (selective.py),
the ``ast`` rule (rules/ast.py) or the ``random`` control, and plain cross-entropy, with the constructor the
experiments use. New code can call ``make_selective_objective`` (kdlib/sparse/__init__.py) with any rule and
base objective."""

from __future__ import annotations

from ..train import Objective
from .controller import PIController
from .rules import ASTRule, RandomRule
from .selective import SelectiveObjective, default_size_bucket  # noqa: F401  (default_size_bucket: older imports)


class ASTObjective(SelectiveObjective):
    """``random_selection=True``: the random control at the controller's target rate (no scoring)."""

    def __init__(self, num_samples: int, controller: PIController | None = None, scoring: str = "forward",
                 warmup_epochs: int = 1, random_selection: bool = False,
                 label_smoothing: float = 0.0, loss_weight: float = 0.7, entropy_weight: float = 0.3, seed: int = 0,
                 record_batches: int = 0, keep_low: float = 0.0, sync=None, size_bucket: int | None = None):
        controller = controller or PIController()
        rule = (RandomRule(controller.target) if random_selection else
                ASTRule(controller=controller, loss_weight=loss_weight, entropy_weight=entropy_weight, keep_low=keep_low))
        if not 0.0 <= keep_low < 1.0:
            raise ValueError(f"keep_low must be in [0, 1), got {keep_low}")
        super().__init__(Objective(label_smoothing), rule, num_samples, scoring=scoring, warmup_epochs=warmup_epochs,
                         seed=seed, record_batches=record_batches, sync=sync, size_bucket=size_bucket)
        self.controller = controller
