import pytest
import torch
import torch.nn as nn

from kdlib.sparse import make_selective_objective
from kdlib.train import TrainConfig, fit
from test_train import tiny_data


class BatchSizeRecorder(nn.Module):
    """A small model that records the batch size of every forward, and whether gradients were on."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, 4))
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x):
        self.calls.append((len(x), torch.is_grad_enabled(), self.training))
        return self.net(x)


CFG = dict(batch_size=32, lr=0.05, warmup_epochs=0, progress=False)


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_warmup_epochs_train_on_full_batches(warmup):
    data = tiny_data(n_train=128, n_val=48)
    model = BatchSizeRecorder()
    objective = make_selective_objective("ast", None, 128, 0.25, warmup_epochs=warmup)
    result = fit(model, data, TrainConfig(epochs=4, **CFG), objective, device=torch.device("cpu"))
    for epoch, record in enumerate(result.history):
        if epoch < warmup:
            assert record["warmup"] and record["samples_backpropagated"] == 128
        else:
            assert not record["warmup"] and record["samples_backpropagated"] < 128
            assert record["samples_forwarded"] == 128 + record["samples_backpropagated"]


def test_learning_pass_runs_on_the_physically_smaller_batch():
    data = tiny_data(n_train=128, n_val=48)
    model = BatchSizeRecorder()
    fit(model, data, TrainConfig(epochs=2, **CFG), make_selective_objective("ast", None, 128, 0.25, warmup_epochs=0),
        device=torch.device("cpu"))
    train_calls = [c for c in model.calls if c[0] <= 32]  # validation forwards use larger batches
    scoring = [c for c in train_calls if not c[1]]
    learning = [c for c in train_calls if c[1]]
    assert len(scoring) == len(learning) == 8  # 4 batches x 2 epochs
    assert all(size == 32 and not training for size, _, training in scoring)  # eval mode: BN untouched
    assert all(size < 32 and training for size, _, training in learning)


def test_stale_mode_has_no_scoring_forward_and_learns_each_sample_first():
    data = tiny_data(n_train=128, n_val=48)
    model = BatchSizeRecorder()
    objective = make_selective_objective("ast", None, 128, 0.25, scoring="stale", warmup_epochs=0)
    result = fit(model, data, TrainConfig(epochs=3, **CFG), objective, device=torch.device("cpu"))
    train_calls = [c for c in model.calls if c[0] <= 32]
    assert all(grad for _, grad, _ in train_calls)  # no no_grad scoring forward
    # unseen samples score +inf: in the first epoch every sample is selected
    assert result.history[0]["samples_backpropagated"] == 128
    assert result.history[2]["samples_backpropagated"] < 128
    assert torch.isfinite(objective.table).all()
    assert result.history[2]["samples_forwarded"] == result.history[2]["samples_backpropagated"]


def test_random_control_selects_at_the_target_rate():
    data = tiny_data(n_train=128, n_val=48)
    objective = make_selective_objective("random", None, 128, 0.25, warmup_epochs=0)
    result = fit(BatchSizeRecorder(), data, TrainConfig(epochs=2, **CFG), objective, device=torch.device("cpu"))
    assert all(r["samples_backpropagated"] == 4 * 8 for r in result.history)  # 25% of each 32-sample batch


class Interrupt(Exception):
    pass


def test_controller_state_survives_a_checkpoint(tmp_path):
    """A run stopped after its second of four epochs and resumed ends as the uninterrupted run: same weights, same
    controller state, same stale table."""
    data = tiny_data(n_train=128, n_val=48)
    config = TrainConfig(epochs=4, **CFG)

    def run(folder, callbacks=()):
        torch.manual_seed(0)
        model = BatchSizeRecorder()
        objective = make_selective_objective("ast", None, 128, 0.25, warmup_epochs=1, scoring="stale")
        fit(model, data, config, objective, device=torch.device("cpu"), checkpoint_dir=folder, callbacks=callbacks)
        return model, objective

    reference_model, reference = run(tmp_path / "a")

    def stop(epoch, record):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "b", (stop,))
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"] == 1  # stopped half-way
    model, resumed = run(tmp_path / "b")
    assert resumed.rule.controller.state_dict() == reference.rule.controller.state_dict()
    assert reference.rule.controller.integral != 0  # the controller did work after the interruption
    assert torch.equal(resumed.table, reference.table)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in reference_model.state_dict().items())


def test_bad_settings():
    with pytest.raises(ValueError):
        make_selective_objective("ast", None, 10, 0.1, scoring="psychic")
    with pytest.raises(ValueError):
        make_selective_objective("ast", None, 10, 0.1, warmup_epochs=-1)


def test_keep_low_rescaling_is_unbiased_and_off_changes_nothing():
    torch.manual_seed(0)
    scores = torch.rand(32) * 2
    losses = torch.rand(32)
    objective = make_selective_objective("ast", None, 32, 0.2, keep_low=0.25)
    objective.rule.controller.threshold = 1.5  # about a quarter of the scores pass
    objective.on_epoch_start(0)
    estimates = []
    for _ in range(4000):
        chosen, weights = objective.rule.choose(scores, objective._epoch_generator("cpu"))
        estimates.append((losses[chosen] * weights).sum() / 32)
        assert torch.all(torch.isin(torch.nonzero(scores >= 1.5).flatten(), chosen))  # passed samples always kept
    assert torch.stack(estimates).mean().item() == pytest.approx(losses.mean().item(), rel=0.02)
    # the plain threshold mean over the kept samples is biased towards the high-significance samples
    assert losses[scores >= 1.5].mean().item() != pytest.approx(losses.mean().item(), rel=0.02)


def test_keep_low_learns_from_more_samples_at_the_same_target():
    data = tiny_data(n_train=128, n_val=48)
    cfg = TrainConfig(epochs=3, **CFG)
    plain = fit(BatchSizeRecorder(), data, cfg, make_selective_objective("ast", None, 128, 0.25, warmup_epochs=1),
                device=torch.device("cpu"))
    rescaled = fit(BatchSizeRecorder(), data, cfg,
                   make_selective_objective("ast", None, 128, 0.25, warmup_epochs=1, keep_low=0.1), device=torch.device("cpu"))
    # the controller still regulates the realised rate: both learn from about a quarter after warm-up
    for run in (plain, rescaled):
        assert 0.1 * 128 <= run.history[2]["samples_backpropagated"] <= 0.45 * 128
    assert plain.history[2]["train_loss"] != rescaled.history[2]["train_loss"]
    with pytest.raises(ValueError):
        make_selective_objective("ast", None, 10, 0.1, keep_low=1.0)


def test_random_control_draws_new_positions_each_batch():
    objective = make_selective_objective("random", None, 64, 0.25)
    objective.on_epoch_start(0)
    generator = objective._epoch_generator("cpu")
    picks = {tuple(sorted(objective.rule.pick(32, torch.arange(32), 8, generator)[0].tolist())) for _ in range(10)}
    assert len(picks) > 1


# ---- bounded learning-pass shapes (cudnn.benchmark tunes every new shape) ------------------------------------

@pytest.mark.parametrize("scoring", ["forward", "stale"])
def test_an_epoch_uses_few_distinct_learning_pass_sizes(scoring):
    data = tiny_data(n_train=256, n_val=48)
    model = BatchSizeRecorder()
    objective = make_selective_objective("ast", None, 256, 0.3, scoring=scoring, warmup_epochs=0, size_bucket=8)
    result = fit(model, data, TrainConfig(epochs=3, **CFG), objective, device=torch.device("cpu"))
    learning = [size for size, grad, training in model.calls if grad and training]
    assert all(size % 8 == 0 and 0 < size <= 32 for size in learning)  # rounded up, never above the batch
    for record in result.history:
        assert len(record["learning_pass_sizes"]) <= 32 // 8
        # the counters and the controller see what was learned from, after rounding
        assert record["samples_backpropagated"] == sum(round(r * 32) for r in record["batch_rates"])
    assert sum(r["samples_backpropagated"] for r in result.history) == sum(learning)


def test_rounding_takes_the_next_highest_scores():
    objective = make_selective_objective("ast", None, 16, 0.3, warmup_epochs=0, size_bucket=4)
    scores = torch.tensor([0.1, 5.0, 0.2, 3.0, 0.3, 0.9, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05, 0.01, 0.02, 0.03, 0.04])
    chosen = objective._round_up(torch.tensor([1, 3]), scores)
    assert chosen.tolist() == [1, 3, 5, 10]  # 5.0 and 3.0 passed; 0.9 and 0.8 are the next highest
    assert objective.rounded_count(15, 16) == 16 and objective.rounded_count(16, 16) == 16
    assert make_selective_objective("ast", None, 16, 0.1, size_bucket=1).rounded_count(3, 16) == 3


def test_default_bucket_bounds_sizes_for_any_batch():
    from kdlib.sparse import default_size_bucket

    for batch in (16, 32, 64, 100, 128, 256, 512, 1024):
        b = default_size_bucket(batch)
        assert b % 8 == 0 or b == batch
        assert -(-batch // b) <= 16
    with pytest.raises(ValueError):
        make_selective_objective("ast", None, 10, 0.1, size_bucket=0)
