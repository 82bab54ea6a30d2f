"""The selective step: AST as an Objective of the one training loop.

Per batch: score every sample, let the controller's threshold pick the significant ones, gather them
into a physically smaller batch on the device, and run the learning forward and backward on that
sub-batch only. Masking the loss of a full batch would save nothing.

Scoring modes:
- 'forward': a scoring forward of the whole batch (no_grad, eval mode, under the loop's autocast).
  Step cost about (1 + 2a) / 3 of a full step at activation rate a.
- 'stale': the significance recorded when each sample was last learned from (no extra forward, as
  InfoBatch and Selective Backprop do); samples not yet seen score +inf, so each is learned from once.
  Step cost about a. Data-parallel, every rank's table is the global one (see ``_record``).

Sub-batch sizes are rounded up to a multiple of ``size_bucket`` (by taking the next-highest scores; for the
random control, more random samples; never above the batch): with ``cudnn.benchmark`` every new input shape is
autotuned once, so a size that changes every step would autotune every step. The default bucket bounds an
epoch to at most 16 distinct learning-pass sizes (see ``default_size_bucket``). The controller regulates the
*realised* rate (after rounding and any fallback): the counters and the controller see what was really
learned from, so the target is the budget actually spent; regulating the pre-rounding rate would overspend
by half a bucket per batch on average.

BatchNorm: the scoring forward runs in eval mode, so it neither uses nor updates batch statistics; the
learning forward runs in train mode on the selected sub-batch, so running statistics follow the selected
(harder) samples. Validation uses those running statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..objective import Objective, StepOutput
from .controller import PIController, select
from .significance import combine, loss_and_entropy, significance


class ASTObjective(Objective):
    name = "ast"

    def __init__(self, num_samples: int, controller: PIController | None = None, scoring: str = "forward",
                 warmup_epochs: int = 1, random_selection: bool = False,
                 label_smoothing: float = 0.0, loss_weight: float = 0.7, entropy_weight: float = 0.3, seed: int = 0,
                 record_batches: int = 0, keep_low: float = 0.0, sync=None, size_bucket: int | None = None):
        super().__init__(label_smoothing)
        # Data-parallel training: with ``sync`` (a distributed.RankSync) the ranks share scores and select from
        # the global batch, so every rank's controller sees the global rate and keeps the same threshold.
        self.sync = sync
        if scoring not in ("forward", "stale"):
            raise ValueError(f"scoring={scoring!r}: expected 'forward' or 'stale'")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if not 0.0 <= keep_low < 1.0:
            raise ValueError(f"keep_low must be in [0, 1), got {keep_low}")
        # InfoBatch-style rescaling: keep_low = q > 0 also keeps each below-threshold sample with probability q
        # and weights it 1/q, so the loss is an unbiased estimate of the full batch's mean loss.
        self.keep_low = keep_low
        # None: default_size_bucket(batch); 1: no rounding. Not applied with keep_low > 0 (its weights make the
        # sub-batch an estimator; padding it would change that estimator).
        if size_bucket is not None and size_bucket < 1:
            raise ValueError(f"size_bucket must be >= 1 or None, got {size_bucket}")
        self.size_bucket = size_bucket
        self.controller = controller or PIController()
        self.scoring, self.warmup_epochs = scoring, warmup_epochs
        self.random_selection = random_selection
        self.loss_weight, self.entropy_weight = loss_weight, entropy_weight
        self.num_samples, self.seed = num_samples, seed
        self.stale_scores = torch.full((num_samples,), float("inf"))
        self._generator = None
        # the significance scores of the first `record_batches` selective batches, for replaying the
        # controller offline (the notebook's simulator)
        self.record_batches, self.recorded_scores = record_batches, []
        self.epoch = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.forwarded = 0  # samples through any forward pass (scoring and learning)
        self.backpropagated = 0  # samples in a learning forward + backward
        self.batches = 0
        self.thresholds: list[float] = []
        self.rates: list[float] = []
        self.sizes: set[int] = set()  # distinct learning-pass sizes (each one a new shape for cuDNN to tune)

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        self._reset_counters()
        self._generator = None

    @property
    def in_warmup(self) -> bool:
        return self.epoch < self.warmup_epochs

    def _table(self, device) -> torch.Tensor:
        # the stale-score table lives where the data does: no host round trip per step
        if self.stale_scores.device != torch.device(device):
            self.stale_scores = self.stale_scores.to(device)
        return self.stale_scores

    def _scores(self, model, x, y, index) -> torch.Tensor:
        if self.scoring == "stale":
            return self._table(x.device)[index]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(x)
        model.train(was_training)
        self.forwarded += len(y)
        if self.sync is None:
            return significance(logits, y, self.loss_weight, self.entropy_weight)
        return torch.stack(loss_and_entropy(logits, y), 1)  # combined over the global batch in _global_scores

    def _global_scores(self, local: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Data-parallel: the whole global batch's scores, normalised as one process would, and where this
        rank's samples start in it, and every rank's batch size."""
        gathered, offset, sizes = self.sync.gather_sizes(local)
        if gathered.ndim == 2:  # (CE, entropy) pairs from a scoring forward
            gathered = combine(gathered[:, 0], gathered[:, 1], self.loss_weight, self.entropy_weight)
        return gathered, offset, sizes

    def bucket_for(self, n: int) -> int:
        return default_size_bucket(n) if self.size_bucket is None else self.size_bucket

    def rounded_count(self, k: int, n: int) -> int:
        """The learning-pass size for k selected samples out of a batch of n: k rounded up to the bucket."""
        if self.keep_low > 0 and not self.random_selection:
            return k
        b = self.bucket_for(n)
        return min(n, -(-k // b) * b)

    def _round_up(self, chosen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``chosen`` (the top of ``scores`` by construction) grown to its rounded size with the next-highest scores."""
        k = self.rounded_count(len(chosen), scores.numel())
        if k == len(chosen):
            return chosen
        return torch.topk(scores, k, sorted=False).indices.sort().values

    def _epoch_generator(self, device) -> torch.Generator:
        # seeded by (seed, epoch), like the data order: a resumed run draws the same samples
        if self._generator is None or self._generator.device.type != torch.device(device).type:
            self._generator = torch.Generator(device=device).manual_seed(self.seed * 7919 + self.epoch)
        return self._generator

    def _random_pick(self, n: int, device) -> torch.Tensor:
        k = self.rounded_count(max(1, round(self.controller.target * n)), n)
        return torch.randperm(n, generator=self._epoch_generator(device), device=device)[:k]

    def step(self, model, x, y, index) -> StepOutput:
        self.batches += 1
        if self.in_warmup:
            logits = model(x)
            self.forwarded += len(y)
            self.backpropagated += len(y)
            self._record(index, logits, y)
            return StepOutput(F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits, y)
        if self.random_selection:
            chosen = self._random_pick(len(y), x.device)
            rate = len(chosen) / len(y)  # realised: the target rounded up to the size bucket
        else:
            scores = self._scores(model, x, y, index)
            if self.sync is not None:
                scores, offset, sizes = self._global_scores(scores)
            if len(self.recorded_scores) < self.record_batches and torch.isfinite(scores).all():
                self.recorded_scores.append(scores.detach().float().cpu())
            if self.keep_low > 0:
                chosen, weights, rate = self._select_unbiased(scores)
            else:
                chosen, rate = select(scores, self.controller.threshold, self.controller.target)
                chosen = chosen.sort().values  # batch order, whichever way they were chosen
            if self.sync is None:
                chosen = self._round_up(chosen, scores)
                rate = len(chosen) / scores.numel()
            else:
                # every rank made the same global choice; each rank keeps its part, rounded up on that rank (the
                # shapes its device sees), and counts every rank's rounded part the same way, without a collective
                counts, start = [], 0
                for r, size in enumerate(sizes):
                    inside = (chosen >= start) & (chosen < start + size)
                    counts.append(self.rounded_count(int(inside.sum()), size))
                    if r == self.sync.rank:
                        mine = inside
                    start += size
                local_scores = scores[offset:offset + len(y)]
                if self.keep_low > 0:
                    weights = weights[mine]
                chosen = self._round_up(chosen[mine] - offset, local_scores)
                selected_everywhere = sum(counts)
                rate = selected_everywhere / scores.numel()
            self.controller.update(rate)
        self.rates.append(rate)
        self.thresholds.append(self.controller.threshold)
        xs, ys = x[chosen], y[chosen]
        self.sizes.add(len(ys))
        logits = model(xs)
        self.forwarded += len(ys)
        self.backpropagated += len(ys)
        self._record(index[chosen], logits, ys)
        if self.keep_low > 0 and not self.random_selection:
            losses = F.cross_entropy(logits, ys, reduction="none", label_smoothing=self.label_smoothing)
            return StepOutput((losses * weights).sum() / len(y), logits, ys)
        # The sub-batch is learned from as an ordinary batch (mean loss), as Selective Backprop does.
        if self.sync is not None and not self.random_selection:
            # mean over the samples selected on all ranks: DDP averages gradients over ranks, hence x world size
            losses = F.cross_entropy(logits, ys, reduction="sum", label_smoothing=self.label_smoothing)
            return StepOutput(losses * self.sync.world_size / selected_everywhere, logits, ys)
        return StepOutput(F.cross_entropy(logits, ys, label_smoothing=self.label_smoothing), logits, ys)

    def _select_unbiased(self, scores: torch.Tensor):
        """Above-threshold samples (weight 1) plus each other sample with probability keep_low (weight
        1 / keep_low): E[sum of weighted losses] equals the sum over the whole batch."""
        passed = scores >= self.controller.threshold
        lucky = torch.rand(scores.shape, generator=self._epoch_generator(scores.device), device=scores.device) < self.keep_low
        chosen = (passed | lucky).nonzero(as_tuple=True)[0]
        if len(chosen) == 0:  # an empty learning step is no step: fall back to the single top sample
            chosen = scores.argmax().view(1)
            return chosen, torch.ones(1, device=scores.device), 1 / scores.numel()
        weights = torch.where(passed[chosen], 1.0, 1.0 / self.keep_low).to(scores.dtype)
        return chosen, weights, len(chosen) / scores.numel()

    def _record(self, index, logits, y) -> None:
        if self.scoring != "stale":
            return
        table = self._table(logits.device)
        if self.sync is None:
            table[index] = significance(logits, y, self.loss_weight, self.entropy_weight)
            return
        # Data-parallel: every rank writes every rank's learned samples, normalised over all of them (the global
        # sub-batch, as one process would), so every rank's table is the global one whichever rank a sample
        # lands on next epoch. float64 carries the indices exactly and the float32 values unchanged.
        ce, entropy = loss_and_entropy(logits, y)
        local = torch.stack([index.to(torch.float64), ce.double(), entropy.double()], 1)
        whole, _, _ = self.sync.gather_sizes(local)
        table[whole[:, 0].long()] = combine(whole[:, 1].float(), whole[:, 2].float(), self.loss_weight,
                                            self.entropy_weight).to(table.dtype)

    def settings(self) -> dict:
        c = self.controller
        return {**super().settings(), "scoring": self.scoring, "warmup_epochs": self.warmup_epochs,
                "random_selection": self.random_selection, "keep_low": self.keep_low, "target": c.target, "kp": c.kp, "ki": c.ki,
                "ema_factor": c.ema_factor, "loss_weight": self.loss_weight, "entropy_weight": self.entropy_weight,
                "size_bucket": "auto" if self.size_bucket is None else self.size_bucket}

    def epoch_stats(self) -> dict:
        return {
            "samples_forwarded": self.forwarded,
            "samples_backpropagated": self.backpropagated,
            "activation_rate": sum(self.rates) / len(self.rates) if self.rates else 1.0,
            "threshold": self.thresholds[-1] if self.thresholds else None,
            "warmup": self.in_warmup,
            "learning_pass_sizes": sorted(self.sizes),
            "batch_rates": list(self.rates),  # per batch: the realised rate (after any fallback and rounding)
            "batch_thresholds": list(self.thresholds),
        }

    def state_dict(self) -> dict:
        # the epoch's counters and random state too, for a checkpoint saved inside an epoch
        return {"controller": self.controller.state_dict(), "stale_scores": self.stale_scores,
                "epoch_counters": {"forwarded": self.forwarded, "backpropagated": self.backpropagated,
                                   "batches": self.batches, "thresholds": list(self.thresholds), "rates": list(self.rates),
                                   "sizes": sorted(self.sizes)},
                "generator": None if self._generator is None else (str(self._generator.device), self._generator.get_state()),
                # the simulator's stream survives an interruption: a resumed run holds every recorded batch
                "recorded_scores": torch.stack(self.recorded_scores) if self.recorded_scores else None}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.stale_scores = state["stale_scores"]
        counters = state.get("epoch_counters")
        if counters:
            self.forwarded, self.backpropagated, self.batches = (counters[k] for k in ("forwarded", "backpropagated", "batches"))
            self.thresholds, self.rates = list(counters["thresholds"]), list(counters["rates"])
            self.sizes = set(counters.get("sizes", []))
        recorded = state.get("recorded_scores")
        self.recorded_scores = [] if recorded is None else list(recorded.unbind(0))
        if state.get("generator"):
            device, generator_state = state["generator"]
            self._generator = torch.Generator(device=device)
            self._generator.set_state(generator_state)


def default_size_bucket(batch: int, max_sizes: int = 16, multiple: int = 8) -> int:
    """The smallest multiple of ``multiple`` (tensor-core friendly) that gives a batch of ``batch`` at most
    ``max_sizes`` distinct learning-pass sizes: 8 for batches up to 128, 16 for 256; never above the batch."""
    per_size = math.ceil(batch / max_sizes)
    return max(1, min(batch, multiple * math.ceil(per_size / multiple)))
