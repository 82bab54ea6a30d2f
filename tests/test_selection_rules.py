"""Selection rules as strategies (kdlib/sparse/rules/) around any base objective: hand-worked cases for each rule,
the stale table's raw statistics, the epoch-order hook in the loaders and the loop, and exact resumption."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from kdlib.distill.kd import KDObjective, kd_loss
from kdlib.sparse import RULES, make_rule, make_selective_objective
from kdlib.sparse.significance import loss_and_entropy
from kdlib.objective import Objective
from kdlib.train import TrainConfig, fit, schedule_position
from test_train import tiny_data

CPU = torch.device("cpu")
INF = float("inf")


def small_model(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 4))


CFG = dict(batch_size=16, lr=0.05, warmup_epochs=0, progress=False, channels_last=False)


# ---- ast: raw statistics in the table, normalised over the current batch at selection time ------------------

def test_ast_normalises_recorded_statistics_over_the_current_batch():
    rule = make_rule("ast", 0.3)
    # raw CE and entropy of three recorded samples and one never learned from
    table_rows = torch.tensor([[1.0, 0.2], [3.0, 0.6], [2.0, 0.4], [INF, INF]])
    scores = rule.scores(table_rows, partial=True)
    # mean CE over the recorded samples = 2, mean entropy = 0.4:
    # 0.7 * 1/2 + 0.3 * 0.2/0.4 = 0.5; 0.7 * 3/2 + 0.3 * 0.6/0.4 = 1.5; 0.7 * 1 + 0.3 * 1 = 1.0; unseen: +inf
    assert scores[:3].tolist() == pytest.approx([0.5, 1.5, 1.0], abs=1e-6)
    assert scores[3] == INF
    # the same samples in another batch are scored against that batch: 3.0 is now the batch's mean CE
    other = rule.scores(torch.tensor([[3.0, 0.6], [3.0, 0.6]]), partial=True)
    assert other.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_stale_table_holds_raw_ce_and_entropy_whichever_sub_batch_wrote_them():
    objective = make_selective_objective("ast", None, 6, 0.5, scoring="stale", warmup_epochs=0)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5], [4.0, -4.0], [0.0, 3.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    # two learning sub-batches of very different losses, written one after the other
    objective._record_statistics(torch.tensor([0, 1, 2]), logits[:3], y[:3], None)
    objective._record_statistics(torch.tensor([3, 4, 5]), logits[3:], y[3:], None)
    ce, entropy = loss_and_entropy(logits, y)
    assert torch.allclose(objective.table, torch.stack([ce, entropy], 1))
    # a batch mixing both is scored on one scale: as if all six had been scored together
    scores = objective.rule.scores(objective.table, partial=True)
    expected = 0.7 * ce / ce.mean() + 0.3 * entropy / entropy.mean()
    assert torch.allclose(scores, expected, atol=1e-6)


def test_ast_chooses_above_threshold_and_falls_back_to_the_top():
    rule = make_rule("ast", 0.5)
    scores = torch.tensor([0.5, 1.5, 2.0, 0.9])
    rule.controller.threshold = 1.0
    assert rule.choose(scores, None)[0].sort().values.tolist() == [1, 2]
    rule.controller.threshold = 3.0  # none pass: the top ceil(0.25 * 4) = 1
    assert rule.choose(scores, None)[0].tolist() == [2]


def test_rounding_up_adds_the_highest_scores_not_chosen():
    objective = make_selective_objective("selective-backprop", None, 8, 0.5, size_bucket=4)
    scores = torch.tensor([0.1, 5.0, 0.2, 3.0, 0.3, 0.9, 0.4, 0.8])
    # a drawn (not top) choice keeps its samples and gains the highest of the others: 5.0 and 3.0
    assert objective._round_up(torch.tensor([0, 6]), scores).tolist() == [0, 1, 3, 6]


# ---- random ------------------------------------------------------------------------------------------------

def test_random_rate_rounds_up_to_the_bucket_or_matches_a_rate_exactly():
    g = torch.Generator().manual_seed(0)
    index = torch.arange(32)
    # round(0.3 * 32) = 10, rounded up to the bucket of 8: 16
    assert len(make_rule("random", 0.3).pick(32, index, 8, g)[0]) == 16
    exact = make_rule("random", 0.3, exact_rate=True)
    sizes = [len(exact.pick(32, index, 8, g)[0]) for _ in range(4000)]
    # 9.6 lies between 8 and 16: 16 with probability (9.6 - 8) / 8 = 0.2, so the mean is 9.6
    assert set(sizes) == {8, 16}
    assert np.mean(sizes) == pytest.approx(9.6, abs=0.15)
    with pytest.raises(ValueError):
        make_rule("random", None)


# ---- infobatch ---------------------------------------------------------------------------------------------

def test_infobatch_prunes_part_of_the_below_mean_samples_and_rescales_the_rest():
    rule = make_rule("infobatch", epochs=8, prune_ratio=0.4)
    table = torch.tensor([[0.1], [0.2], [0.3], [0.4], [2.0], [3.0], [INF], [0.5]])
    rows = rule.epoch_indices(1, table, seed=0)
    # mean of the recorded losses = 6.5 / 7 = 0.93: samples 0, 1, 2, 3, 7 are below it. int(0.6 * 5) = 3 of them
    # are kept with weight 1 / 0.6; 4, 5 (above the mean) and 6 (never learned from) are always kept
    low = {0, 1, 2, 3, 7}
    assert {4, 5, 6} <= set(rows.tolist()) and len(rows) == 6
    kept_low = set(rows.tolist()) & low
    assert len(kept_low) == 3
    rule.on_epoch_start(1)
    _, weights = rule.pick(8, torch.arange(8), 1, None)
    assert weights.tolist() == pytest.approx([1 / 0.6 if i in kept_low else 1.0 for i in range(8)])
    # the weights carry the pruned samples' mass: sum over the kept rows = every sample counted once
    assert weights[rows].sum().item() == pytest.approx(8.0)
    # another epoch draws others; the same epoch again (a resumed run) the same ones
    assert torch.equal(rule.epoch_indices(1, table, seed=0), rows)
    assert any(not torch.equal(rule.epoch_indices(e, table, seed=0), rows) for e in (2, 3, 4))
    # annealing: the last ceil((1 - 0.875) * 8) = 1 epoch uses all data with weight 1
    assert [make_rule("infobatch", epochs=e).full_epochs for e in (8, 12, 200)] == [1, 2, 25]
    assert rule.epoch_indices(7, table, seed=0) is None
    rule.on_epoch_start(7)
    assert rule.pick(8, torch.arange(8), 1, None) == (None, None)


def test_infobatch_expected_epoch_loss_is_the_full_datas():
    """InfoBatch's claim (its 'unbiased'): averaged over the random prune, sum of weight * loss over the kept rows
    equals the sum over all rows."""
    rule = make_rule("infobatch", epochs=100, prune_ratio=0.5)
    losses = torch.rand(40, generator=torch.Generator().manual_seed(1)) ** 3
    totals = []
    for epoch in range(400):
        rows = rule.epoch_indices(epoch % 80, losses[:, None], seed=epoch)
        totals.append((rule.weights[rows] * losses[rows]).sum().item())
    assert np.mean(totals) == pytest.approx(losses.sum().item(), rel=0.01)
    # without the rescaling the pruned epochs would under-count the low-loss samples
    assert losses[rows].sum().item() < 0.95 * losses.sum().item()


def test_infobatch_trains_whole_epochs_on_fewer_batches_with_the_same_schedule():
    data = tiny_data(n_train=128, n_val=32)
    config = TrainConfig(epochs=4, **{**CFG, "warmup_epochs": 1})
    objective = make_selective_objective("infobatch", Objective(), 128, warmup_epochs=1, epochs=4, prune_ratio=0.5)
    pruned = fit(small_model(), data, config, objective, device=CPU)
    full = fit(small_model(), data, config, device=CPU)
    learned = [h["samples_backpropagated"] for h in pruned.history]
    assert learned[0] == 128 and learned[3] == 128  # warm-up; annealing: the last ceil(0.125 * 4) = 1 epoch
    assert all(l < 128 and l % 16 == 0 for l in learned[1:3])  # whole batches left out
    for h in pruned.history[1:3]:
        assert h["epoch_fraction"] < 1 and h["activation_rate"] == pytest.approx(h["epoch_fraction"])
        assert h["batch_rates"] == [1.0] * (h["samples_backpropagated"] // 16)
    # the LR follows epoch progress: each epoch ends where full training's does, and the run ends at 0
    assert [h["lr"] for h in pruned.history] == pytest.approx([h["lr"] for h in full.history], abs=1e-12)
    assert pruned.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_schedule_position_counts_epoch_progress():
    assert schedule_position(2, 3, 5, 10) == 26.0  # 3 of 5 steps of the third epoch: 60% of a 10-step epoch
    assert schedule_position(2, 3, 10, 10) == 23  # a full epoch: the step count, exactly


# ---- selective backprop ------------------------------------------------------------------------------------

def test_selective_backprop_probability_is_the_cdf_over_recent_losses_to_the_beta():
    rule = make_rule("selective-backprop", 0.5, history=8)  # beta = 1 / 0.5 - 1 = 1
    assert rule.beta == 1.0 and make_rule("selective-backprop", 0.25).beta == 3.0
    rule.remember(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    losses = rule.scores(torch.tensor([[2.5], [0.5], [5.0]]), partial=False)  # the batch joins the history first
    assert rule.filled == 7
    # history 1, 2, 3, 4, 2.5, 0.5, 5: strictly below 2.5 are 1, 2, 0.5 -> 3/7; below 0.5: none; below 5: six -> 6/7
    assert rule.probabilities(losses).tolist() == pytest.approx([3 / 7, 0.0, 6 / 7])
    g = torch.Generator().manual_seed(3)
    draws = torch.rand(3, generator=torch.Generator().manual_seed(3))
    chosen, weights = rule.choose(losses, g)
    assert weights is None and chosen.tolist() == (draws < torch.tensor([3 / 7, 0.0, 6 / 7])).nonzero()[:, 0].tolist()
    beta2 = make_rule("selective-backprop", beta=2.0, history=8)
    beta2.remember(torch.tensor([1.0, 2.0, 3.0, 4.0, 2.5, 0.5, 5.0]))
    assert beta2.probabilities(losses).tolist() == pytest.approx([9 / 49, 0.0, 36 / 49])


def test_selective_backprop_history_is_a_ring_of_the_newest_losses():
    rule = make_rule("selective-backprop", 0.5, history=4)
    rule.remember(torch.tensor([1.0, 2.0, 3.0]))
    rule.remember(torch.tensor([4.0, 5.0, 6.0]))
    assert sorted(rule.history.tolist()) == [3.0, 4.0, 5.0, 6.0] and rule.filled == 4
    rule.remember(torch.arange(10.0, 20.0))  # more than fits: the newest four
    assert sorted(rule.history.tolist()) == [16.0, 17.0, 18.0, 19.0]
    assert rule.probabilities(torch.tensor([INF]))[0] == 1.0  # never learned from (stale): always selected


def test_selective_backprop_beta_gives_the_target_rate():
    rule = make_rule("selective-backprop", 0.3)
    g = torch.Generator().manual_seed(0)
    rule.remember(torch.rand(1024, generator=g))
    kept = [len(rule.choose(rule.scores(torch.rand(256, 1, generator=g), False), g)[0]) for _ in range(100)]
    assert np.mean(kept) / 256 == pytest.approx(0.3, abs=0.02)  # E[U^beta] = 1 / (beta + 1)


# ---- any base objective: KD + selection ----------------------------------------------------------------------

def test_kd_per_sample_loss_averages_to_the_kd_loss():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    objective = KDObjective(None, temperature=3.0, alpha=0.6, label_smoothing=0.1, teacher_logits=t)
    per_sample = objective.per_sample_loss(s, y, torch.arange(6))
    assert per_sample.shape == (6,)
    assert per_sample.mean().item() == pytest.approx(kd_loss(s, t, y, 3.0, 0.6, 0.1).item(), rel=1e-6)
    assert per_sample[2].item() == pytest.approx(kd_loss(s[2:3], t[2:3], y[2:3], 3.0, 0.6, 0.1).item(), rel=1e-6)


@pytest.mark.parametrize("rule", ["ast", "selective-backprop"])
def test_selection_learns_with_the_base_objectives_loss_on_the_sub_batch(rule):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g)
    teacher = torch.randn(32, 4, generator=g) * 3
    base = KDObjective(None, teacher_logits=teacher)
    objective = make_selective_objective(rule, base, 32, 0.25, warmup_epochs=0, size_bucket=1)
    model = small_model()
    objective.on_epoch_start(0)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append((i[0], torch.is_grad_enabled())))
    out = objective.step(model, x, y, torch.arange(32))
    learned_x = calls[-1][0]
    chosen = torch.tensor([int((x == row).all(dim=(1, 2, 3)).nonzero()) for row in learned_x])
    assert 0 < len(chosen) < 32
    assert torch.equal(out.targets, y[chosen])
    expected = kd_loss(out.logits, teacher[chosen], y[chosen])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


# ---- what every rule reports ---------------------------------------------------------------------------------

RULE_SETTINGS = {"ast": dict(rate=0.3, scoring="stale"), "random": dict(rate=0.3, exact_rate=True),
                 "infobatch": dict(epochs=3, prune_ratio=0.5), "selective-backprop": dict(rate=0.3),
                 "random-prune": dict(epoch_rows={e: 56 for e in range(4)})}


def _objective(rule, n=128, **extra):
    return make_selective_objective(rule, Objective(), n, seed=1, warmup_epochs=1, **{**RULE_SETTINGS[rule], **extra})


def test_every_rule_is_registered_and_reports_the_same_keys():
    assert set(RULES) == set(RULE_SETTINGS)
    data = tiny_data(n_train=64, n_val=16)
    keys = set()
    for rule in RULES:
        result = fit(small_model(), data, TrainConfig(epochs=2, **CFG), _objective(rule, 64), device=CPU)
        keys.add(frozenset(result.history[1]))
        assert result.history[1]["samples_backpropagated"] < 64, rule
    assert len(keys) == 1


def test_recorded_batches_hold_scores_of_selected_and_unselected_samples():
    data = tiny_data(n_train=128, n_val=16)
    objective = make_selective_objective("ast", Objective(), 128, 0.25, warmup_epochs=1, record_batches=5)
    fit(small_model(), data, TrainConfig(epochs=3, **CFG), objective, device=CPU)
    assert len(objective.recorded_scores) == len(objective.recorded_selected) == 5
    for scores, selected in zip(objective.recorded_scores, objective.recorded_selected):
        assert scores.shape == selected.shape == (16,) and 0 < selected.sum() < 16
        assert scores[selected].min() >= scores[~selected].max()  # AST learns from the top of each batch


def test_keep_low_learns_from_below_threshold_samples_at_the_same_rate():
    """keep_low's one job: besides the top of each batch (the above-threshold samples), learn from (reweighted)
    samples below it, while the controller still holds the realised rate at the target."""
    data = tiny_data(n_train=128, n_val=16)
    runs = {}
    for keep_low in (0.0, 0.2):
        objective = make_selective_objective("ast", Objective(), 128, 0.25, warmup_epochs=1, keep_low=keep_low,
                                             record_batches=16, size_bucket=1)
        result = fit(small_model(), data, TrainConfig(epochs=3, **CFG), objective, device=CPU)
        # batches where a learned sample scores below one left out: not a top set
        not_top = sum(int(s[m].min() < s[~m].max()) for s, m in zip(objective.recorded_scores, objective.recorded_selected)
                      if not m.all())
        runs[keep_low] = not_top, result.history[2]["activation_rate"]
    assert runs[0.0][0] == 0 and runs[0.2][0] >= 4
    for _, rate in runs.values():
        assert 0.15 <= rate <= 0.45


# ---- exact resumption from a checkpoint saved inside an epoch, for every rule ------------------------------

def crashing(objective, crash_at):
    """``objective`` whose step number ``crash_at`` raises, as a session that ends there."""
    original, calls = objective.step, [0]

    def step(*args):
        calls[0] += 1
        if calls[0] == crash_at:
            raise RuntimeError("the session ended")
        return original(*args)

    objective.step = step
    return objective


@pytest.mark.parametrize("rule", sorted(RULE_SETTINGS))
def test_a_run_cut_inside_a_selective_epoch_resumes_to_the_same_weights(tmp_path, rule):
    data = tiny_data(n_train=128, n_val=16)
    config = TrainConfig(epochs=3, **{**CFG, "augment_shift": 1.0})

    def run(folder, crash_at=None):
        objective = crashing(_objective(rule), crash_at)
        model = small_model()
        result = fit(model, data, config, objective, CPU, folder, checkpoint_minutes=0)
        return model, objective, result

    reference, reference_objective, uninterrupted = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="session ended"):
        run(tmp_path / "cut", crash_at=8 + 3)  # the third step of the first selective (pruned) epoch
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["mid_epoch"]["step"] == 2
    resumed, objective, result = run(tmp_path / "cut")
    assert all(torch.equal(reference.state_dict()[k], resumed.state_dict()[k]) for k in reference.state_dict())
    for a, b in zip(uninterrupted.history, result.history):
        for key in ("train_loss", "samples_backpropagated", "batch_rates", "batch_thresholds", "epoch_fraction",
                    "lr", "val_accuracy"):
            assert a[key] == b[key], key
    assert uninterrupted.history[1]["samples_backpropagated"] < 128
    if objective.table is not None:
        assert torch.equal(objective.table, reference_objective.table)


# ---- controls matched epoch by epoch, the accumulating batch mode, BatchNorm recomputed ----------------------

class LearningBatchSizes(nn.Module):
    """small_model, recording the size of every train-mode forward (the learning passes)."""

    def __init__(self):
        super().__init__()
        self.net, self.sizes = small_model(), []

    def forward(self, x):
        if self.training:
            self.sizes.append(len(x))
        return self.net(x)


def test_random_matched_epoch_by_epoch_learns_from_each_epochs_rate():
    data = tiny_data(n_train=128, n_val=16)
    objective = make_selective_objective("random", Objective(), 128, warmup_epochs=1, seed=3, size_bucket=4,
                                         epoch_rates={1: 0.25, 2: 0.5}, matched_to="ast")
    result = fit(small_model(), data, TrainConfig(epochs=3, **CFG), objective, device=CPU)
    # 0.25 and 0.5 of a 16-sample batch are whole multiples of the 4-sample bucket: exactly that many per batch
    assert [h["samples_backpropagated"] for h in result.history] == [128, 32, 64]
    assert [h["optimizer_steps"] for h in result.history] == [8, 8, 8]  # sub-batch mode: a step per batch
    assert objective.settings()["matched_to"] == "ast" and objective.settings()["rate"] == "matched per epoch"
    with pytest.raises(RuntimeError, match="no rate for epoch 4"):
        fit(small_model(), data, TrainConfig(epochs=4, **CFG),
            make_selective_objective("random", Objective(), 128, warmup_epochs=1, epoch_rates={1: 0.5, 2: 0.5}),
            device=CPU)


def test_random_prune_trains_on_as_many_rows_as_the_matched_run_so_the_same_steps():
    data = tiny_data(n_train=128, n_val=16)
    objective = make_selective_objective("random-prune", Objective(), 128, warmup_epochs=1, seed=2,
                                         epoch_rows={0: 128, 1: 80, 2: 100, 3: 128})
    result = fit(small_model(), data, TrainConfig(epochs=4, **CFG), objective, device=CPU)
    assert [h["epoch_rows"] for h in result.history] == [128, 80, 100, 128]
    assert [h["optimizer_steps"] for h in result.history] == [8, 5, 6, 8]  # drop_last: 100 rows make 6 batches
    assert [h["samples_backpropagated"] for h in result.history] == [128, 80, 96, 128]
    rows = objective.rule.rows_for(1, 80, 128, seed=2)
    assert len(set(rows.tolist())) == 80 and torch.equal(rows, objective.rule.rows_for(1, 80, 128, seed=2))
    assert not torch.equal(rows, objective.rule.rows_for(2, 80, 128, seed=2))  # a fresh draw every epoch
    infobatch = make_selective_objective("infobatch", Objective(), 128, warmup_epochs=1, epochs=4)
    pruned = fit(small_model(), data, TrainConfig(epochs=4, **CFG), infobatch, device=CPU)
    control = make_selective_objective("random-prune", Objective(), 128, warmup_epochs=1,
                                       epoch_rows={e: h["epoch_rows"] for e, h in enumerate(pruned.history)})
    matched = fit(small_model(), data, TrainConfig(epochs=4, **CFG), control, device=CPU)
    assert [h["optimizer_steps"] for h in matched.history] == [h["optimizer_steps"] for h in pruned.history]
    assert pruned.optimizer_steps == matched.optimizer_steps < 4 * 8


@pytest.mark.parametrize("rule", ["random", "selective-backprop"])
def test_accumulate_mode_steps_only_on_full_batches_of_selected_samples(rule):
    data = tiny_data(n_train=128, n_val=16)
    config = TrainConfig(epochs=3, **{**CFG, "warmup_epochs": 1})
    settings = {"random": dict(rate=0.3, exact_rate=True), "selective-backprop": dict(rate=0.3)}[rule]
    model = LearningBatchSizes()
    objective = make_selective_objective(rule, Objective(), 128, seed=1, warmup_epochs=1, batch_mode="accumulate",
                                         **settings)
    result = fit(model, data, config, objective, device=CPU)
    full = fit(small_model(), data, config, device=CPU)
    sizes = model.sizes[8:]  # after the warm-up epoch's 8 full batches
    for h in result.history[1:]:
        learned = h["samples_backpropagated"]
        # no rounding: the rate is the selection's own; every step but the epoch's last is a full batch
        assert learned == pytest.approx(sum(h["batch_rates"]) * 16)
        assert h["optimizer_steps"] == math.ceil(learned / 16) < 8
        epoch_sizes, sizes = sizes[:h["optimizer_steps"]], sizes[h["optimizer_steps"]:]
        assert epoch_sizes[:-1] == [16] * (len(epoch_sizes) - 1) and sum(epoch_sizes) == learned
    # the schedule follows the data seen: each epoch ends at full training's LR, and the run at 0
    assert [h["lr"] for h in result.history] == pytest.approx([h["lr"] for h in full.history], abs=1e-12)


def test_accumulate_mode_resumes_inside_an_epoch_to_the_same_weights(tmp_path):
    data = tiny_data(n_train=128, n_val=16)
    config = TrainConfig(epochs=3, **{**CFG, "augment_shift": 1.0})

    def run(folder, crash_at=None):
        objective = crashing(make_selective_objective("random", Objective(), 128, 0.3, seed=1, warmup_epochs=1,
                                                      exact_rate=True, batch_mode="accumulate"), crash_at)
        model = small_model()
        return model, fit(model, data, config, objective, CPU, folder, checkpoint_minutes=0)

    reference, uninterrupted = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="session ended"):
        run(tmp_path / "cut", crash_at=8 + 5)  # the fifth batch of the first selective epoch: samples held
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert saved["mid_epoch"]["step"] == 4 and saved["objective"]["buffer"]  # selected samples not yet learned
    resumed, result = run(tmp_path / "cut")
    assert all(torch.equal(reference.state_dict()[k], resumed.state_dict()[k]) for k in reference.state_dict())
    assert [h["optimizer_steps"] for h in result.history] == [h["optimizer_steps"] for h in uninterrupted.history]


def test_accumulate_mode_is_refused_where_it_cannot_hold():
    with pytest.raises(ValueError, match="batch_mode='magic'"):
        make_selective_objective("random", Objective(), 16, 0.3, batch_mode="magic")
    with pytest.raises(ValueError, match="keep_low"):
        make_selective_objective("ast", Objective(), 16, 0.3, keep_low=0.2, batch_mode="accumulate")
    with pytest.raises(ValueError, match="one device"):
        make_selective_objective("random", Objective(), 16, 0.3, batch_mode="accumulate", sync=object())


def test_batchnorm_recalibration_recomputes_running_statistics_on_random_full_batches():
    from torch.optim.swa_utils import update_bn

    from kdlib.data.device_loader import DeviceLoader
    from kdlib.sparse.batchnorm import random_batches

    data = tiny_data(n_train=128, n_val=16)
    config = TrainConfig(epochs=1, **CFG)  # one selective epoch: the best epoch, whose weights fit returns

    def train(batches=None, warmup=0, epochs=1):
        model = small_model()
        options = {} if batches is None else {"bn_recalibration_batches": batches}
        objective = make_selective_objective("random", Objective(), 128, 0.25, seed=1, warmup_epochs=warmup,
                                             **options)
        return model, fit(model, data, TrainConfig(**{**config.to_dict(), "epochs": epochs}), objective, device=CPU)

    off, off_result = train(0)
    on, on_result = train(3)
    plain, _ = train()
    # off: the computation is the one without the option, bit for bit
    assert all(torch.equal(off.state_dict()[k], plain.state_dict()[k]) for k in off.state_dict())
    # on: the weights are the same (statistics only), the running statistics are those of 3 random full batches
    bn_on, bn_off = on[1], off[1]
    assert torch.equal(on[0].weight, off[0].weight)
    assert not torch.allclose(bn_on.running_mean, bn_off.running_mean)
    mean, std = data.channel_stats()
    loader = DeviceLoader(data.train_x, data.train_y, 16, CPU, mean, std, shuffle=True, drop_last=True,
                          augment=config.augmentation(), seed=config.seed, channels_last=True)
    expected = small_model()
    expected.load_state_dict(off.state_dict())
    update_bn(list(random_batches(loader, 3, epoch=0)), expected)
    assert torch.allclose(bn_on.running_mean, expected[1].running_mean, atol=1e-6)
    assert torch.allclose(bn_on.running_var, expected[1].running_var, atol=1e-6)
    # counted: 3 batches of 16 forwarded in a selective epoch, none in a warm-up epoch
    assert on_result.history[0]["samples_forwarded"] == off_result.history[0]["samples_forwarded"] + 48
    _, warm = train(3, warmup=1, epochs=2)
    assert [h["bn_recalibrated"] for h in warm.history] == [False, True]
    assert warm.history[0]["samples_forwarded"] == 128
