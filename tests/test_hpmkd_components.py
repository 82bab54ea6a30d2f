"""HPM-KD's pieces against hand-worked cases: the temperature rule, the teacher weights, the chain sizes,
the configuration manager, the cache and the parallel runner; and 'all off' equals classic KD."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_splits
from kdlib import runtime
from kdlib.distill.cache import LogitCache, model_digest, tensor_digest
from kdlib.distill.hpmkd import (COMPONENTS, HPMKDObjective, HPMKDSettings, choose_configuration, geometric_sizes,
                                 probe_grid, run_concurrently, stop_adding_stages, width_for_parameters)
from kdlib.distill.kd import KDObjective, kd_loss
from kdlib.distill.multi_teacher import mixture_probs, multi_teacher_kd_loss, teacher_weights
from kdlib.distill.teacher_source import TeacherSource, teacher_logits
from kdlib.distill.temperature import MetaTemperature, soft_kl
from kdlib.models import count_parameters, create_model
from kdlib.train import TrainConfig, fit

CPU = torch.device("cpu")


# ---- meta-temperature ------------------------------------------------------------------------------

def test_meta_temperature_follows_the_documented_rule_on_a_scripted_sequence():
    meta = MetaTemperature(initial=4.0, t_min=1.0, t_max=10.0, step=0.25, min_progress=0.002, gap_high=0.05)
    accuracies = [0.50, 0.60, 0.60, 0.6005, 0.70, 0.70]
    gaps = [0.20, 0.20, 0.20, 0.01, 0.01, 0.30]
    # first epoch: keep; +0.10: keep; stalled & far: 4*1.25 = 5; stalled & close: 5*0.75 = 3.75;
    # progressing: keep; stalled & far: 3.75*1.25 = 4.6875
    expected = [4.0, 4.0, 5.0, 3.75, 3.75, 4.6875]
    assert [meta.update(a, g) for a, g in zip(accuracies, gaps)] == pytest.approx(expected)


def test_meta_temperature_stays_within_bounds_and_resumes():
    meta = MetaTemperature(initial=9.0, t_min=2.0, t_max=10.0, step=0.5)
    meta.update(0.5, 1.0)
    assert meta.update(0.5, 1.0) == 10.0  # 13.5 clipped
    low = MetaTemperature(initial=2.5, t_min=2.0, t_max=10.0, step=0.5)
    low.update(0.9, 0.0)
    assert low.update(0.9, 0.0) == 2.0  # 1.25 clipped
    copy = MetaTemperature(initial=9.0, t_min=2.0, t_max=10.0, step=0.5)
    copy.load_state_dict(meta.state_dict())
    assert copy.update(0.5, 0.0) == meta.update(0.5, 0.0) == 5.0


@pytest.mark.parametrize("kwargs", [dict(initial=0.5, t_min=1.0), dict(initial=4.0, t_max=3.0), dict(step=1.5)])
def test_meta_temperature_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        MetaTemperature(**kwargs)


def test_soft_kl_hand_worked():
    # teacher [3/4, 1/4], student logits [0, 0] at T = 1: KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    got = soft_kl(torch.tensor([[0.75, 0.25]]), torch.tensor([[0.0, 0.0]]), 1.0)
    assert got == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-6)


# ---- multi-teacher weights -------------------------------------------------------------------------

def test_teacher_weights_hand_worked():
    # T = 1, label 0. Teacher A: p = [3/4, 1/4]; teacher B: p = [1/4, 3/4]. p_mean = [1/2, 1/2].
    # s_A = ln 3/4 - KL(p_mean || p_A), s_B = ln 1/4 - KL(p_mean || p_B); the two KLs are equal by symmetry,
    # so w_A / w_B = exp((ln 3/4 - ln 1/4) / tau) = 3^(1/tau).
    t = torch.tensor([[[math.log(3), 0.0]], [[0.0, math.log(3)]]])  # [K=2, B=1, C=2]
    y = torch.tensor([0])
    for tau in (1.0, 2.0):
        w = teacher_weights(t, y, 1.0, tau)[0]
        assert (w[0] / w[1]).item() == pytest.approx(3 ** (1 / tau), rel=1e-5)
        assert w.sum().item() == pytest.approx(1.0)


def test_entropy_regulariser_tends_to_equal_weights():
    torch.manual_seed(0)
    t, y = torch.randn(3, 16, 10) * 3, torch.randint(0, 10, (16,))
    w = teacher_weights(t, y, 4.0, tau=1e6)
    assert torch.allclose(w, torch.full_like(w, 1 / 3), atol=1e-4)


def test_mixture_of_one_teacher_is_that_teacher_and_its_loss_is_kd():
    torch.manual_seed(1)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10) * 2, torch.randint(0, 10, (8,))
    p = mixture_probs(t[None], torch.ones(8, 1), 3.0)
    assert torch.allclose(p, F.softmax(t / 3.0, 1), atol=1e-6)
    loss, w = multi_teacher_kd_loss(s, t[None], y, 3.0, 0.7)
    assert torch.allclose(w, torch.ones(8, 1))
    assert loss.item() == pytest.approx(kd_loss(s, t, y, 3.0, 0.7).item(), rel=1e-5)


def test_a_teacher_that_is_always_wrong_ends_up_down_weighted():
    data = tiny_splits()
    good = F.one_hot(data.train_y, 4).float() * 6.0  # confident and right
    wrong = F.one_hot((data.train_y + 1) % 4, 4).float() * 6.0  # confident and always wrong
    objective = HPMKDObjective([TeacherSource("good", table=good), TeacherSource("wrong", table=wrong)],
                               temperature=2.0, multi_teacher=True)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0, progress=False, channels_last=False)
    result = fit(create_model("simplecnn", 4, 1), data, config, objective, CPU)
    weights = result.history[-1]["teacher_weights"]
    assert weights["wrong"] < 0.05 < 0.95 < weights["good"]
    assert result.best_val_accuracy > 0.5  # and the student learned from the right one


# ---- all switches off == classic KD; each switch on changes the computation -------------------------

def _teacher_table(data, seed=3):
    torch.manual_seed(seed)
    return torch.randn(len(data.train_y), 4) * 3


def test_all_off_step_equals_kd_step(tmp_path):
    """With every switch off, the student's objective as the pipeline builds it (``plan``, then
    ``student_objective`` with the plan's teachers, T and alpha) takes Hinton KD's step from the teacher,
    written out here with torch ops: alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y)."""
    from kdlib.experiments import hpmkd_pipeline as steps

    data = tiny_splits()
    # Switches off, these cannot act; left on by mistake, each would change the step: a probe grid away from
    # (4, 0.7), an assistant accepted whatever it gains.
    settings = HPMKDSettings(max_assistants=1, chain_epsilon=-1.0, assistant_epochs=1, chain_probe_epochs=1,
                             temperatures=(2.0,), alphas=(0.5,), probe_epochs=1).all_off()
    config = TrainConfig(epochs=1, batch_size=32, progress=False, channels_last=False,
                         augment_shift=1.0)  # augmented: the teacher runs live on the batch given below
    torch.manual_seed(0)
    teacher = create_model("mobilenet_student", 4, 1, width=2.0)
    ctx = steps.HPMKDContext(data, tmp_path, CPU, teacher, "mobilenet_student", config, 4.0, 0.7, settings, [0])
    decisions = steps.plan(ctx)
    objective = steps.student_objective(ctx, decisions["_stages"], settings.components, decisions["temperature"],
                                         decisions["alpha"], ctx.cache(False))
    torch.manual_seed(1)
    student = create_model("mobilenet_student", 4, 1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 4, (16,))
    out = objective.step(student, x, y, torch.arange(16))

    T, alpha = 4.0, 0.7
    s = out.logits.detach().float()
    with torch.no_grad():
        t = teacher.eval()(x).float()
    p_t = torch.exp(t / T) / torch.exp(t / T).sum(1, keepdim=True)
    log_p_s = s / T - torch.log(torch.exp(s / T).sum(1, keepdim=True))
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum(1).mean()
    ce = (torch.log(torch.exp(s).sum(1)) - s[torch.arange(16), y]).mean()
    assert out.loss.item() == pytest.approx((alpha * T**2 * kl + (1 - alpha) * ce).item(), rel=1e-5)


def test_all_off_training_gives_kd_weights_bit_for_bit():
    data = tiny_splits()
    table = _teacher_table(data)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0, progress=False, channels_last=False)
    states = []
    for objective in (KDObjective(None, 4.0, 0.7, teacher_logits=table),
                      HPMKDObjective([TeacherSource("teacher", table=table)], 4.0, 0.7)):
        runtime.seed_everything(0)
        model = create_model("simplecnn", 4, 1)
        fit(model, data, config, objective, CPU)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_meta_temperature_on_changes_the_temperature_and_the_loss():
    data = tiny_splits()
    table = _teacher_table(data)
    val_table = torch.randn(len(data.val_y), 4) * 3
    meta = MetaTemperature(initial=4.0, min_progress=1.0, gap_high=-1.0)  # always "stalled and far": soften
    objective = HPMKDObjective([TeacherSource("teacher", table=table)], 4.0, 0.7, meta=meta,
                               val_teacher_logits=[val_table])
    torch.manual_seed(0)
    model = create_model("simplecnn", 4, 1)
    x, y, index = torch.randn(8, 1, 8, 8), data.train_y[:8], torch.arange(8)
    before = objective.step(model, x, y, index).loss.item()
    val_logits = torch.randn(len(data.val_y), 4)
    first = objective.on_validation(0, val_logits, data.val_y)  # the first epoch counts as progressing
    assert first["temperature"] == first["next_temperature"] == 4.0 and first["teacher_student_kl"] > 0
    second = objective.on_validation(1, val_logits, data.val_y)
    assert second["temperature"] == 4.0 and second["next_temperature"] == 5.0
    assert objective.state_dict()["temperature"] == 5.0
    assert objective.step(model, x, y, index).loss.item() != pytest.approx(before)


def test_settings_switches():
    s = HPMKDSettings()
    assert all(s.on(c) for c in COMPONENTS)
    assert not s.without("cache").on("cache") and s.without("cache").on("parallel")
    assert not any(s.all_off().on(c) for c in COMPONENTS)
    with pytest.raises(ValueError, match="unknown HPM-KD component"):
        s.without("memory")
    with pytest.raises(ValueError, match="unknown HPM-KD component"):
        HPMKDSettings(components={"attention": True})


# ---- progressive chain -------------------------------------------------------------------------------

def test_geometric_sizes_hand_worked():
    assert geometric_sizes(1000, 10, 0) == []
    assert geometric_sizes(1000, 10, 1) == pytest.approx([100.0])
    assert geometric_sizes(1000, 10, 2) == pytest.approx([1000 * 0.01 ** (1 / 3), 1000 * 0.01 ** (2 / 3)])
    with pytest.raises(ValueError):
        geometric_sizes(10, 1000, 1)


def test_assistant_width_hits_the_geometric_size():
    def count(width):
        return count_parameters(create_model("mobilenet_student", 10, 1, width=width))

    teacher, student = count_parameters(create_model("resnet18_mnist", 10, 1)), count(1.0)
    (target,) = geometric_sizes(teacher, student, 1)
    width = width_for_parameters(target, count)
    assert abs(count(width) - target) / target < 0.02
    assert student < count(width) < teacher


def test_chain_stops_when_the_relative_gain_is_small():
    assert stop_adding_stages(0.90, 0.9009, epsilon=0.002)  # +0.1% < 0.2%
    assert not stop_adding_stages(0.90, 0.92, epsilon=0.002)
    assert stop_adding_stages(0.90, 0.89, epsilon=0.002)  # a loss is no gain


# ---- configuration manager ---------------------------------------------------------------------------

def test_probe_grid_respects_its_budget():
    s = HPMKDSettings(temperatures=(2.0, 4.0), alphas=(0.5, 0.9), probe_epochs=2, probe_budget_epochs=8)
    assert probe_grid(s) == [(2.0, 0.5), (2.0, 0.9), (4.0, 0.5), (4.0, 0.9)]
    with pytest.raises(ValueError, match="budget is 6"):
        probe_grid(dataclasses.replace(s, probe_budget_epochs=6))


def test_choose_configuration_prefers_accuracy_then_loss_then_order():
    probes = [dict(T=2, val_accuracy=0.9, val_loss=0.3), dict(T=4, val_accuracy=0.95, val_loss=0.4),
              dict(T=8, val_accuracy=0.95, val_loss=0.2), dict(T=16, val_accuracy=0.95, val_loss=0.2)]
    assert choose_configuration(probes)["T"] == 8


# ---- shared optimisation memory ----------------------------------------------------------------------

def _cache_logits(cache, model, x):
    precision = runtime.select_precision(CPU, "auto")
    return teacher_logits(model, x, [0.5], [0.25], CPU, precision, view="train", channels_last=False, cache=cache)


def test_cache_keys_on_content_not_identity(tmp_path):
    data = tiny_splits()
    torch.manual_seed(0)
    teacher = create_model("simplecnn", 4, 1)
    cache = LogitCache(tmp_path)
    first = _cache_logits(cache, teacher, data.train_x)
    twin = create_model("simplecnn", 4, 1)
    twin.load_state_dict(teacher.state_dict())  # another object, the same weights
    again = _cache_logits(cache, twin, data.train_x.clone())
    assert torch.equal(first, again) and (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert model_digest(twin) == model_digest(teacher) and tensor_digest(data.train_x) == tensor_digest(data.train_x.clone())

    with torch.no_grad():
        twin[-1].weight[0, 0] += 1.0  # the teacher changed: its old logits must not be served
    changed = _cache_logits(cache, twin, data.train_x)
    pixels = data.train_x.clone()
    pixels[0, 0, 0, 0] += 1  # the data changed
    _cache_logits(cache, teacher, pixels)
    assert cache.stats.misses == 3 and not torch.equal(changed, first)
    assert cache.stats.hit_rate == pytest.approx(0.25)


def test_cache_off_recomputes_and_a_damaged_entry_is_recomputed(tmp_path):
    data = tiny_splits()
    teacher = create_model("simplecnn", 4, 1)
    off = LogitCache(tmp_path / "off", enabled=False)
    a, b = _cache_logits(off, teacher, data.train_x), _cache_logits(off, teacher, data.train_x)
    assert torch.equal(a, b) and off.stats.misses == 2 and off.stats.hits == 0
    assert not (tmp_path / "off").exists()

    cache = LogitCache(tmp_path / "on")
    _cache_logits(cache, teacher, data.train_x)
    (entry,) = (tmp_path / "on").glob("*.pt")
    entry.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = _cache_logits(cache, teacher, data.train_x)
    assert torch.equal(again, a) and cache.stats.misses == 2


# ---- parallel students -------------------------------------------------------------------------------

def test_concurrent_students_equal_sequential_ones_bit_for_bit():
    data = tiny_splits()
    table = _teacher_table(data)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0, progress=False, channels_last=False,
                         augment_shift=1.0)

    def make(seed):
        runtime.seed_everything(seed)
        return create_model("simplecnn", 4, 1)

    def job(model, seed):
        objective = HPMKDObjective([TeacherSource("teacher", table=table)], 4.0, 0.7)
        return lambda: fit(model, data, dataclasses.replace(config, seed=seed), objective, CPU)

    sequential = [make(s) for s in (0, 1, 2)]
    for seed, model in enumerate(sequential):
        job(model, seed)()
    concurrent = [make(s) for s in (0, 1, 2)]
    results = run_concurrently([job(m, s) for s, m in enumerate(concurrent)], CPU)
    assert len(results) == 3 and all(r.best_epoch >= 0 for r in results)
    for a, b in zip(sequential, concurrent):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_concurrent_dropout_students_equal_sequential_ones_bit_for_bit():
    # dropout draws from torch's global generator, which threads share: each fit keeps its own copy of it
    import torch.nn as nn

    data = tiny_splits(n_train=128)
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0, progress=False, channels_last=False)

    def make(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 4))

    def job(model, seed):
        return lambda: fit(model, data, dataclasses.replace(config, seed=seed), None, CPU)

    sequential = [make(s) for s in (0, 1)]
    for seed, model in enumerate(sequential):
        job(model, seed)()
    concurrent = [make(s) for s in (0, 1)]
    run_concurrently([job(m, s) for s, m in enumerate(concurrent)], CPU, max_concurrent=2)
    for a, b in zip(sequential, concurrent):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_concurrent_failure_is_raised_after_all_jobs_end():
    done = []

    def ok():
        done.append(1)
        return 1

    def bad():
        raise ValueError("student 2 failed")

    with pytest.raises(ValueError, match="student 2 failed"):
        run_concurrently([ok, bad, ok])
    assert len(done) == 2
