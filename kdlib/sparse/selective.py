"""The selective step for any selection rule and any base objective.

``SelectiveObjective(base, rule, ...)`` is an ``Objective`` of the one training loop. Per batch the rule
decides which samples are learned from (kdlib/sparse/rules/); this objective gathers them into a physically
smaller batch on the device and runs the learning forward and backward on that sub-batch only (masking the
loss of a full batch would save nothing), with the base objective's per-sample losses
(``Objective.per_sample_loss``: cross-entropy, or KD's loss, so KD and selection combine).

Scoring modes, for rules that score each batch (``ast``, ``selective-backprop``):
- 'forward': a scoring forward of the whole batch (no_grad, eval mode, under the loop's autocast).
  Step cost about (1 + 3a) / 3 of a full step at activation rate a (``kdlib.sparse.cost.ceiling_at_rate``).
- 'stale': the raw statistics recorded when each sample was last learned from (no extra forward, as
  InfoBatch and Selective Backprop's stale variant do), scored over the current batch at selection time;
  samples not yet learned from have +inf statistics and are selected, so each is learned from once.
  Step cost about a. Data-parallel, every rank's table is the global one (see ``_record_statistics``).

Batch modes (``batch_mode``):
- 'sub-batch': each batch's selected samples are learned from at once, one optimizer step per batch on a
  physically smaller batch (so the same number of steps as full training, each on fewer samples).
- 'accumulate': selected samples accumulate (on the device) until a full batch, then one step on it, as Selective
  Backprop's reference does (angelajiang/SelectiveBackprop, lib/trainer.py ``get_batch``): fewer steps, each on a
  full batch; the remainder is learned from at the epoch's end (``final_step``). No size rounding is needed. The
  learning rate follows the schedule's position by data seen (``train.schedule_position``), so each step takes
  the LR full training has at that point of the epoch and the schedule ends where full training's does, however
  few steps the rate leaves (the reference keys its schedule on samples backpropagated, which needs the run's
  total known in advance). Single device only.

Sub-batch sizes are rounded up to a multiple of ``size_bucket`` (by adding the highest-scoring samples not yet
chosen; a rule that does not score rounds its own draw; never above the batch; not at all when the rule
weights its samples, as the weights make the sub-batch an estimator): with ``cudnn.benchmark`` every new input
shape is autotuned once, so a size that changes every step would autotune every step. The default bucket bounds
an epoch to at most 16 distinct learning-pass sizes (see ``default_size_bucket``). Rules that regulate a rate
(``ast``'s controller) see the *realised* rate, after rounding and any fallback: the budget actually spent.

BatchNorm: the scoring forward runs in eval mode, so it neither uses nor updates batch statistics; the
learning forward runs in train mode on the selected sub-batch, so running statistics follow the selected
samples. Validation uses those running statistics, unless ``bn_recalibration_batches`` > 0: then, after each
selective epoch, the running statistics are recomputed on that many random full batches of training data
(``kdlib.sparse.batchnorm``), within the epoch's measured time and counted as forwarded samples.

Loss: a plain mean over the learned samples (as Selective Backprop does), or, when the rule gives weights,
sum(weight * loss) / (batch size) (an estimate of the full batch's mean loss, as InfoBatch does).

For the notebooks: the first ``record_batches`` selective batches' scores and which samples were learned from
(``recorded_scores``, ``recorded_selected``; a rule that picks the epoch's rows records each pruned epoch's
recorded losses instead), to show why a rule does or does not beat random.
"""

from __future__ import annotations

import math

import torch

from ..objective import Objective, StepOutput
from .rules.base import SelectionRule, round_up_to_bucket

SCORING_MODES = ("forward", "stale")
BATCH_MODES = ("sub-batch", "accumulate")


def default_size_bucket(batch: int, max_sizes: int = 16, multiple: int = 8) -> int:
    """The smallest multiple of ``multiple`` (tensor-core friendly) that gives a batch of ``batch`` at most
    ``max_sizes`` distinct learning-pass sizes: 8 for batches up to 128, 16 for 256; never above the batch."""
    per_size = math.ceil(batch / max_sizes)
    return max(1, min(batch, multiple * math.ceil(per_size / multiple)))


class SelectiveObjective(Objective):
    name = "selective"

    def __init__(self, base: Objective, rule: SelectionRule, num_samples: int, scoring: str = "forward",
                 warmup_epochs: int = 1, seed: int = 0, record_batches: int = 0, sync=None,
                 size_bucket: int | None = None, batch_mode: str = "sub-batch", bn_recalibration_batches: int = 0):
        super().__init__(base.label_smoothing)
        if scoring not in SCORING_MODES:
            raise ValueError(f"scoring={scoring!r}: expected 'forward' or 'stale'")
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode={batch_mode!r}: expected 'sub-batch' or 'accumulate'")
        if batch_mode == "accumulate" and sync is not None:
            raise ValueError("batch_mode='accumulate' runs on one device: data-parallel ranks would fill their "
                             "buffers unevenly and step at different times; use 'sub-batch' there")
        if batch_mode == "accumulate" and getattr(rule, "keep_low", 0) > 0:
            raise ValueError("keep_low weights a batch's kept samples to estimate that batch's mean loss; with "
                             "batch_mode='accumulate' the learning batch mixes batches, so the two do not combine")
        if bn_recalibration_batches < 0:
            raise ValueError(f"bn_recalibration_batches must be >= 0, got {bn_recalibration_batches}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        # None: default_size_bucket(batch); 1: no rounding.
        if size_bucket is not None and size_bucket < 1:
            raise ValueError(f"size_bucket must be >= 1 or None, got {size_bucket}")
        self.base, self.rule = base, rule
        rule.num_samples = num_samples
        self.batch_mode, self.bn_recalibration_batches = batch_mode, bn_recalibration_batches
        self._buffer: list[tuple] = []  # accumulate mode: selected (x, y, index, weights) not yet learned from
        # Data-parallel training: with ``sync`` (a distributed.RankSync) the ranks share statistics and select
        # from the global batch, so every rank's rule sees the global batch and keeps the same state.
        self.sync = sync
        self.scoring, self.warmup_epochs, self.size_bucket = scoring, warmup_epochs, size_bucket
        self.num_samples, self.seed = num_samples, seed
        # raw statistics of each sample's last learning pass (+inf: never learned from), where the rule uses them
        self.table = (torch.full((num_samples, rule.statistics_columns), float("inf"))
                      if rule.needs_table(scoring) else None)
        self._generator = None
        self.record_batches = record_batches
        self.recorded_scores: list[torch.Tensor] = []
        self.recorded_selected: list[torch.Tensor] = []
        self.epoch, self.epoch_fraction, self.epoch_rows, self._recorded_plan_epoch = 0, 1.0, num_samples, -1
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.seen = 0  # samples in the epoch's batches
        self.forwarded = 0  # samples through any forward pass (scoring, learning, BatchNorm recalibration)
        self.backpropagated = 0  # samples in a learning forward + backward
        self.batches = 0
        self.thresholds: list[float] = []
        self.rates: list[float] = []
        self.sizes: set[int] = set()  # distinct learning-pass sizes (each one a new shape for cuDNN to tune)
        self.bn_recalibrated = False

    # ---- epochs ------------------------------------------------------------------------------------------

    def in_warmup_at(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    @property
    def in_warmup(self) -> bool:
        return self.in_warmup_at(self.epoch)

    def epoch_indices(self, epoch: int) -> torch.Tensor | None:
        rows = None if self.in_warmup_at(epoch) else self.rule.epoch_indices(epoch, self.table, self.seed)
        self.epoch_rows = self.num_samples if rows is None else len(rows)
        self.epoch_fraction = self.epoch_rows / self.num_samples
        if (rows is not None and self.table is not None and epoch > self._recorded_plan_epoch
                and len(self.recorded_scores) < self.record_batches):
            losses = self.table[:, 0]
            if torch.isfinite(losses).all():
                selected = torch.zeros(self.num_samples, dtype=torch.bool, device=losses.device)
                selected[rows] = True
                self._record_scores(losses, selected)
            self._recorded_plan_epoch = epoch
        return rows

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        self._reset_counters()
        self._generator = None
        self.rule.on_epoch_start(epoch)

    # ---- helpers -----------------------------------------------------------------------------------------

    def bucket_for(self, n: int) -> int:
        if self.batch_mode == "accumulate":
            return 1  # the learning batch is a full one whatever the selection: no shape to round
        return default_size_bucket(n) if self.size_bucket is None else self.size_bucket

    def rounded_count(self, k: int, n: int) -> int:
        """The learning-pass size for k selected samples out of a batch of n: k rounded up to the bucket."""
        return round_up_to_bucket(k, n, self.bucket_for(n))

    def _round_up(self, chosen: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``chosen`` (sorted) grown to its rounded size with the highest scores not yet chosen."""
        k = self.rounded_count(len(chosen), scores.numel())
        if k == len(chosen):
            return chosen
        others = scores.float().index_fill(0, chosen, float("-inf"))
        extra = torch.topk(others, k - len(chosen), sorted=False).indices
        return torch.cat([chosen, extra]).sort().values

    def _epoch_generator(self, device) -> torch.Generator:
        # seeded by (seed, epoch), like the data order: a resumed run draws the same samples
        if self._generator is None or self._generator.device.type != torch.device(device).type:
            self._generator = torch.Generator(device=device).manual_seed(self.seed * 7919 + self.epoch)
        return self._generator

    def _table(self, device) -> torch.Tensor:
        # the table lives where the data does: no host round trip per step
        if self.table.device != torch.device(device):
            self.table = self.table.to(device)
        return self.table

    def _record_scores(self, scores: torch.Tensor, selected: torch.Tensor) -> None:
        self.recorded_scores.append(scores.detach().float().cpu())
        self.recorded_selected.append(selected.cpu())

    # ---- the step ----------------------------------------------------------------------------------------

    def _batch_statistics(self, model, x, y, index) -> torch.Tensor:
        if self.scoring == "stale":
            return self._table(x.device)[index]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(x)
            statistics = self.rule.statistics(
                logits, y, lambda: self.base.per_sample_loss(logits, y, index, x).detach().float())
        model.train(was_training)
        self.forwarded += len(y)
        return statistics

    def _choose_from_scores(self, model, x, y, index):
        """Positions to learn from (this rank's), their weights, the realised rate and the loss denominator."""
        statistics = self._batch_statistics(model, x, y, index)
        if self.sync is not None:
            statistics, offset, sizes = self.sync.gather_sizes(statistics)
        scores = self.rule.scores(statistics, partial=self.scoring == "stale")
        chosen, weights = self.rule.choose(scores, self._epoch_generator(scores.device))
        if len(chosen) == 0:  # an empty learning step is no step: fall back to the single top sample
            chosen = scores.argmax().view(1)
            weights = None if weights is None else torch.ones(1, device=scores.device, dtype=scores.dtype)
        if weights is None:
            chosen = chosen.sort().values  # batch order, whichever way they were chosen
        if self.sync is None:
            if weights is None:
                chosen = self._round_up(chosen, scores)
            self._maybe_record(scores, chosen)
            return chosen, weights, len(chosen) / scores.numel(), len(chosen) if weights is None else len(y)
        self._maybe_record(scores, chosen)
        # every rank made the same global choice; each rank keeps its part, rounded up on that rank (the shapes its
        # device sees), and counts every rank's rounded part the same way, without a collective
        counts, start = [], 0
        for r, size in enumerate(sizes):
            inside = (chosen >= start) & (chosen < start + size)
            k = int(inside.sum())
            counts.append(k if weights is not None else self.rounded_count(k, size))
            if r == self.sync.rank:
                mine = inside
            start += size
        if weights is not None:
            return chosen[mine] - offset, weights[mine], sum(counts) / scores.numel(), len(y)
        chosen = self._round_up(chosen[mine] - offset, scores[offset:offset + len(y)])
        # mean over the samples selected on all ranks: DDP averages gradients over ranks, hence / world size
        return chosen, None, sum(counts) / scores.numel(), sum(counts) / self.sync.world_size

    def _maybe_record(self, scores, chosen) -> None:
        if len(self.recorded_scores) < self.record_batches and torch.isfinite(scores).all():
            selected = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
            selected[chosen] = True
            self._record_scores(scores, selected)

    def step(self, model, x, y, index) -> StepOutput | None:
        self.batches += 1
        n = len(y)
        self.seen += n
        if self.in_warmup:
            return self._learn(model, x, y, index, None, None, n)
        if self.rule.scores_batches:
            chosen, weights, rate, denominator = self._choose_from_scores(model, x, y, index)
        else:
            chosen, weights = self.rule.pick(n, index, self.bucket_for(n), self._epoch_generator(x.device))
            rate = 1.0 if chosen is None else len(chosen) / n
            denominator = n if chosen is None or weights is not None else len(chosen)
        self.rule.after_batch(rate)
        self.rates.append(rate)
        if self.rule.threshold is not None:
            self.thresholds.append(self.rule.threshold)
        if self.batch_mode == "accumulate":
            return self._accumulate(model, x, y, index, chosen, weights, n)
        return self._learn(model, x, y, index, chosen, weights, denominator)

    def _accumulate(self, model, x, y, index, chosen, weights, batch) -> StepOutput | None:
        """Add the batch's selected samples to the buffer; once it holds ``batch`` samples, learn from the first
        ``batch`` of them (one step on a full batch), keeping the rest for the next step."""
        if chosen is not None:  # weights, where a rule gives them, are already the chosen samples'
            x, y, index = x[chosen], y[chosen], index[chosen]
        self._buffer.append((x, y, index, weights))
        if sum(len(part[1]) for part in self._buffer) < batch:
            return None
        x, y, index, weights = self._take_buffer()
        if len(y) > batch:
            self._buffer = [(x[batch:], y[batch:], index[batch:], None if weights is None else weights[batch:])]
            x, y, index, weights = x[:batch], y[:batch], index[:batch], None if weights is None else weights[:batch]
        return self._learn(model, x, y, index, None, weights, len(y))

    def _take_buffer(self):
        parts, self._buffer = self._buffer, []
        device = parts[-1][1].device  # a buffer restored from a checkpoint comes back on the CPU
        weights = None
        if any(p[3] is not None for p in parts):
            weights = torch.cat([(p[3] if p[3] is not None else torch.ones(len(p[1]))).to(device) for p in parts])
        return tuple(torch.cat([p[i].to(device) for p in parts]) for i in range(3)) + (weights,)

    def final_step(self, model) -> StepOutput | None:
        """Accumulate mode: the epoch's remaining selected samples, learned from in one last (smaller) step, as the
        reference does with its final batch; None when nothing is left."""
        if not self._buffer:
            return None
        x, y, index, weights = self._take_buffer()
        return self._learn(model, x, y, index, None, weights, len(y))

    def before_validation(self, model, train_loader, epoch: int) -> None:
        """BatchNorm's running statistics recomputed on random full training batches, after a selective epoch."""
        if self.bn_recalibration_batches and not self.in_warmup_at(epoch):
            from .batchnorm import recalibrate_batchnorm

            self.forwarded += recalibrate_batchnorm(model, train_loader, self.bn_recalibration_batches, epoch)
            self.bn_recalibrated = True

    def _learn(self, model, x, y, index, chosen, weights, denominator) -> StepOutput:
        if chosen is not None:
            x, y, index = x[chosen], y[chosen], index[chosen]
        self.sizes.add(len(y))
        logits = model(x)
        self.forwarded += len(y)
        self.backpropagated += len(y)
        losses = self.base.per_sample_loss(logits, y, index, x)
        self._record_statistics(index, logits, y, losses)
        if weights is not None:
            losses = losses * weights
        loss = losses.mean() if denominator == len(y) else losses.sum() / denominator
        return StepOutput(loss, logits, y)

    def _record_statistics(self, index, logits, y, losses) -> None:
        if self.table is None:
            return
        table = self._table(logits.device)
        statistics = self.rule.statistics(logits.detach(), y, lambda: losses.detach().float())
        if self.sync is None:
            table[index] = statistics.to(table.dtype)
            return
        # Data-parallel: every rank writes every rank's learned samples, so every rank's table is the global one
        # whichever rank a sample lands on next epoch. float64 carries the indices exactly and float32 values unchanged.
        local = torch.cat([index.to(torch.float64)[:, None], statistics.double()], 1)
        whole, _, _ = self.sync.gather_sizes(local)
        table[whole[:, 0].long()] = whole[:, 1:].to(table.dtype)

    # ---- what the loop records and saves -----------------------------------------------------------------

    def per_sample_loss(self, logits, y, index, x=None):
        return self.base.per_sample_loss(logits, y, index, x)

    def settings(self) -> dict:
        return {"objective": self.name, "selection": self.rule.name, **self.rule.settings(),
                "base": self.base.settings(), "warmup_epochs": self.warmup_epochs,
                **({"scoring": self.scoring} if self.rule.scores_batches else {}),
                "size_bucket": "auto" if self.size_bucket is None else self.size_bucket,
                "batch_mode": self.batch_mode, "bn_recalibration_batches": self.bn_recalibration_batches}

    def epoch_stats(self) -> dict:
        """The same keys whatever the rule. ``activation_rate``: the fraction of a full epoch's samples learned
        from (mean batch rate times ``epoch_fraction``, the fraction of the rows the epoch iterated);
        ``threshold``/``batch_thresholds``: None/[] for rules without one."""
        batch_mean = sum(self.rates) / len(self.rates) if self.rates else 1.0
        return {
            "samples_forwarded": self.forwarded,
            "samples_backpropagated": self.backpropagated,
            "activation_rate": batch_mean * self.epoch_fraction,
            "epoch_fraction": self.epoch_fraction,
            "epoch_rows": self.epoch_rows,  # rows the epoch iterated (a pruning rule's, else all)
            "epoch_samples": self.seen,  # samples in the epoch's batches: backpropagated / this is the epoch's rate
            "batch_mode": self.batch_mode,
            "bn_recalibrated": self.bn_recalibrated,
            "threshold": self.thresholds[-1] if self.thresholds else None,
            "warmup": self.in_warmup,
            "learning_pass_sizes": sorted(self.sizes),
            "batch_rates": list(self.rates),  # per batch: the realised rate (after any fallback and rounding)
            "batch_thresholds": list(self.thresholds),
            **self.rule.epoch_stats(),
        }

    def state_dict(self) -> dict:
        # the epoch's counters and random state too, for a checkpoint saved inside an epoch
        return {"rule": self.rule.state_dict(), "base": self.base.state_dict(), "table": self.table,
                "epoch_counters": {"forwarded": self.forwarded, "backpropagated": self.backpropagated,
                                   "batches": self.batches, "thresholds": list(self.thresholds), "rates": list(self.rates),
                                   "sizes": sorted(self.sizes), "seen": self.seen, "epoch_rows": self.epoch_rows},
                "buffer": [tuple(part) for part in self._buffer],  # accumulate mode, saved inside an epoch
                "generator": None if self._generator is None else (str(self._generator.device), self._generator.get_state()),
                # the notebook's recorded batches survive an interruption: a resumed run holds every one
                "recorded_scores": list(self.recorded_scores), "recorded_selected": list(self.recorded_selected),
                "recorded_plan_epoch": self._recorded_plan_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.rule.load_state_dict(state["rule"])
        self.base.load_state_dict(state["base"])
        self.table = state["table"]
        counters = state["epoch_counters"]
        self.forwarded, self.backpropagated, self.batches = (counters[k] for k in ("forwarded", "backpropagated", "batches"))
        self.thresholds, self.rates = list(counters["thresholds"]), list(counters["rates"])
        self.sizes = set(counters["sizes"])
        self.seen, self.epoch_rows = counters.get("seen", 0), counters.get("epoch_rows", self.num_samples)
        self._buffer = [tuple(part) for part in state.get("buffer", [])]
        self.recorded_scores, self.recorded_selected = list(state["recorded_scores"]), list(state["recorded_selected"])
        self._recorded_plan_epoch = state["recorded_plan_epoch"]
        self._generator = None
        if state["generator"]:
            device, generator_state = state["generator"]
            self._generator = torch.Generator(device=device)
            self._generator.set_state(generator_state)
