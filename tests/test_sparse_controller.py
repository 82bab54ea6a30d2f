import math

import pytest
import torch

from kdlib.sparse import PIController, replay, select, significance


def gamma_scores(batch: int, shape: float, generator: torch.Generator) -> torch.Tensor:
    """Scores with mean 1, like normalised significance; a smaller shape means a heavier tail."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    return torch._standard_gamma(torch.full((batch,), shape)) / shape


def drive(controller: PIController, stream) -> list[float]:
    rates = []
    for scores in stream:
        _, rate = select(scores, controller.threshold, controller.target)
        rates.append(rate)
        controller.update(rate)
    return rates


def test_replay_is_what_a_live_controller_does():
    g = torch.Generator().manual_seed(5)
    stream = [gamma_scores(64, 1.0, g) for _ in range(50)]
    live = PIController(target=0.2, kp=1.0)
    rates = drive(live, stream)
    replayed_rates, thresholds = replay(stream, target=0.2, kp=1.0)
    assert replayed_rates == rates and thresholds[-1] == live.threshold


SETTLE_BATCHES = 100  # the stated settling time
WINDOW = 50


@pytest.mark.parametrize("target", [0.1, 0.2, 0.4])
@pytest.mark.parametrize("seed", [0, 1])
def test_rate_settles_at_target_and_again_after_a_step_change(target, seed):
    g = torch.Generator().manual_seed(seed)
    stream = [gamma_scores(128, 2.0 if b < 300 else 0.5, g) for b in range(600)]
    controller = PIController(target=target)
    rates = drive(controller, stream)
    for start in (0, 300):  # from the start, and after the score distribution changes shape at batch 300
        for j in range(start + SETTLE_BATCHES, start + 300 - WINDOW + 1):
            window = sum(rates[j:j + WINDOW]) / WINDOW
            assert abs(window - target) <= 0.02, (start, j, window)


def test_ema_not_average_since_start():
    controller = PIController(target=0.1, ema_factor=0.2)
    for _ in range(1000):
        controller.update(0.5)
    for _ in range(20):
        controller.update(0.1)
    # an average since the start would still read about 0.49; the EMA has moved to within 1% of 0.1
    assert controller.rate_ema == pytest.approx(0.1 + 0.4 * 0.8**20, rel=1e-9)


def test_anti_windup_recovers_quickly_after_saturation():
    g = torch.Generator().manual_seed(3)
    controller = PIController(target=0.1, max_threshold=3.0)
    # 300 scripted batches in which every score is above the highest threshold: the output saturates
    drive(controller, [torch.full((128,), 5.0) for _ in range(300)])
    assert controller.threshold == 3.0
    assert controller.ki * controller.integral <= 3.0 - controller.base  # the integral stopped at the bound
    rates = drive(controller, [gamma_scores(128, 2.0, g) for _ in range(150)])
    # an unbounded integral (300 * 0.9 = 270, i.e. 135 threshold units) would hold the threshold at the
    # bound for thousands of batches at an error of -0.1 each; with anti-windup the rate is back in 100
    assert abs(sum(rates[100:150]) / 50 - 0.1) <= 0.02


def test_gains_act_with_the_right_sign():
    controller = PIController(target=0.1, kp=1.0, ki=0.0, ema_factor=1.0)
    assert controller.update(0.3) == pytest.approx(1.2)  # too many pass: threshold up by kp * 0.2
    assert controller.update(0.0) == pytest.approx(0.9)  # too few: down
    integ = PIController(target=0.1, kp=0.0, ki=0.5, ema_factor=1.0)
    integ.update(0.3)
    assert integ.update(0.3) == pytest.approx(1.0 + 0.5 * 0.4)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        PIController(target=0.0)
    with pytest.raises(ValueError):
        PIController(ema_factor=0.0)


def test_state_round_trip():
    a = PIController()
    for r in (0.5, 0.2, 0.05):
        a.update(r)
    b = PIController()
    b.load_state_dict(a.state_dict())
    assert b.update(0.1) == a.update(0.1)


def test_select_threshold_and_top_k_fallback():
    scores = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.5, 0.2, 0.3, 0.4, 0.6, 0.7])
    idx, rate = select(scores, threshold=1.0, target=0.2)
    assert sorted(idx.tolist()) == [1, 3, 4] and rate == pytest.approx(0.3)
    idx, rate = select(scores, threshold=5.0, target=0.4)  # none pass: the top half-target (20%) are taken
    assert sorted(idx.tolist()) == [1, 3] and rate == pytest.approx(0.2)  # the realised rate


def test_bunched_scores_still_meet_the_target_rate():
    # Most of every batch bunches just around the threshold's working range: batches flip between few and
    # many passing. The realised rate, fallback batches included, must still average the target.
    g = torch.Generator().manual_seed(0)
    stream = []
    for _ in range(600):
        bulk = 1.0 + 0.01 * torch.randn(128, generator=g)
        hard = (torch.rand(128, generator=g) < 0.05).float() * 3.0
        stream.append(bulk + hard)
    rates = drive(PIController(target=0.2), stream)
    assert abs(sum(rates[200:]) / 400 - 0.2) <= 0.02


def test_significance_hand_case():
    # Two classes. Sample 0: confident and right; sample 1: uniform.
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 0])
    ce = torch.tensor([math.log(4 / 3), math.log(2.0)])
    h = torch.tensor([-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2), 1.0])
    expected = 0.7 * ce / ce.mean() + 0.3 * h / h.mean()
    scores = significance(logits, y)
    assert torch.allclose(scores, expected, atol=1e-6)
    assert scores.mean().item() == pytest.approx(1.0)  # the batch mean is the weights' sum
    assert scores[1] > scores[0]


def test_significance_scale_does_not_drift_with_training_progress():
    torch.manual_seed(0)
    logits, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    early, late = significance(logits, y), significance(logits * 8, y)  # a sharper, later model
    assert early.mean().item() == pytest.approx(1.0) and late.mean().item() == pytest.approx(1.0)
