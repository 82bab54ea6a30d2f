import json

import pytest
import torch
import torch.nn as nn

from conftest import tiny_splits
from kdlib.data.splits import ImageSplits
from kdlib.checkpoint import CheckpointError
from kdlib.train import TrainConfig, fit, warmup_cosine


def tiny_data(n_train=96, n_val=32, n_test=32, seed=0) -> ImageSplits:
    return tiny_splits(n_train, n_val, n_test, seed=seed)


def tiny_model(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4))


CFG = dict(epochs=4, batch_size=16, lr=0.1, warmup_epochs=1, augment_shift=1.0, progress=False)


def test_schedule_warms_up_then_decays_to_zero():
    factors = [warmup_cosine(s, 10, 100) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.5) and factors[100] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_loop_learns_and_keeps_best_weights(tmp_path):
    data = tiny_data()
    model = tiny_model()
    result = fit(model, data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path)
    assert result.best_val_accuracy > 0.9
    assert len(result.history) == 4 and result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-9)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best["model"].items())
    assert json.loads((tmp_path / "history.json").read_text()) == result.history
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


class Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    data = tiny_data()
    uninterrupted = tiny_model()
    fit(uninterrupted, data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path / "a")
    last_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)

    def stop_after_second_epoch(epoch, record):
        if epoch == 1:
            raise Interrupt

    interrupted = tiny_model()
    with pytest.raises(Interrupt):
        fit(interrupted, data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path / "b",
            callbacks=(stop_after_second_epoch,))
    resumed = tiny_model(seed=123)  # a fresh process would start from other weights
    result = fit(resumed, data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path / "b")
    last_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert result.resumed_from_epoch == 2
    for key, value in last_a["model"].items():
        assert torch.equal(value, last_b["model"][key]), key
    assert [h["val_accuracy"] for h in last_a["history"]] == [h["val_accuracy"] for h in last_b["history"]]
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in uninterrupted.state_dict().items())


def test_finished_run_returns_without_training(tmp_path):
    data = tiny_data()
    fit(tiny_model(), data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path)
    calls = []
    result = fit(tiny_model(seed=5), data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path,
                 callbacks=(lambda e, r: calls.append(e),))
    assert calls == [] and result.resumed_from_epoch == 4 and len(result.history) == 4


def test_changed_configuration_is_refused_not_overwritten(tmp_path):
    data = tiny_data()
    fit(tiny_model(), data, TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="epochs"):
        fit(tiny_model(), data, TrainConfig(**{**CFG, "epochs": 6}), device=torch.device("cpu"), checkpoint_dir=tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_changed_objective_settings_are_refused(tmp_path):
    from kdlib.distill.kd import KDObjective

    data = tiny_data()
    teacher = tiny_model(seed=9)
    fit(tiny_model(), data, TrainConfig(**CFG), KDObjective(teacher, temperature=4.0), device=torch.device("cpu"),
        checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="temperature"):
        fit(tiny_model(), data, TrainConfig(**CFG), KDObjective(teacher, temperature=2.0), device=torch.device("cpu"),
            checkpoint_dir=tmp_path)


def test_corrupt_checkpoint_is_named(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt"):
        fit(tiny_model(), tiny_data(), TrainConfig(**CFG), device=torch.device("cpu"), checkpoint_dir=tmp_path)


def test_without_checkpoints_the_best_epoch_is_restored():
    data = tiny_data()
    model = tiny_model()
    history = []
    result = fit(model, data, TrainConfig(**CFG), device=torch.device("cpu"),
                 callbacks=(lambda e, r: history.append({k: v.clone() for k, v in model.state_dict().items()}),))
    best = history[result.best_epoch]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best.items())


def test_a_run_interrupted_inside_an_epoch_resumes_to_the_same_weights(tmp_path):
    """checkpoint_minutes=0 saves after every step; the run is killed in the middle of epoch 2 (an AST epoch
    with random keep-low draws and augmentation), then resumed: same weights, same per-epoch history."""
    from kdlib.objective import Objective
    from kdlib.sparse import SelectiveObjective, make_rule

    data = tiny_data(n_train=128)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, warmup_epochs=0, progress=False, channels_last=False,
                         augment_shift=1.0)

    class SessionEnds(SelectiveObjective):
        def __init__(self, crash_at=None):
            super().__init__(Objective(), make_rule("ast", 0.5, keep_low=0.3), len(data.train_y), warmup_epochs=1,
                             seed=0)
            self.calls, self.crash_at = 0, crash_at

        def step(self, model, x, y, index):
            self.calls += 1
            if self.calls == self.crash_at:
                raise RuntimeError("the session ended")
            return super().step(model, x, y, index)

    def run(folder, crash_at=None):
        model = tiny_model()  # with dropout: the global random state must be restored too
        return model, fit(model, data, config, SessionEnds(crash_at), torch.device("cpu"), folder, checkpoint_minutes=0)

    reference, uninterrupted = run(tmp_path / "reference")
    steps = len(data.train_y) // 16
    with pytest.raises(RuntimeError, match="session ended"):
        run(tmp_path / "cut", crash_at=steps + 5)  # the 5th step of the second epoch
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["mid_epoch"]["step"] == 4
    resumed, result = run(tmp_path / "cut")
    assert all(torch.equal(reference.state_dict()[k], resumed.state_dict()[k]) for k in reference.state_dict())
    for a, b in zip(uninterrupted.history, result.history):
        for key in ("train_loss", "samples_backpropagated", "batch_thresholds", "batch_rates", "val_accuracy"):
            assert a[key] == b[key], key
