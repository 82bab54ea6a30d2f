"""The one selection path (kdlib/experiments/selection.py): method names, the frontier's epochs and schedules, the
interleaved order, hand-worked frontier verdicts, the Holm family, non-inferiority and the presets' choice."""

import itertools
import math

import pytest

from kdlib import runs as run_files
from kdlib.experiments import selection
from kdlib.fileio import atomic_write_json
from kdlib.train import TrainConfig


def test_method_names_say_what_trains():
    full, quarter = selection.parse_method("full"), selection.parse_method("full@0.25")
    assert full.is_full and quarter.is_full and quarter.fraction == 0.25
    ast = selection.parse_method("ast+accumulate")
    assert (ast.rule, ast.batch_mode, ast.is_rule) == ("ast", "accumulate", True)
    control = selection.parse_method("random@selective-backprop+accumulate")
    assert (control.rule, control.parent, control.batch_mode, control.is_control) == (
        "random", "selective-backprop+accumulate", "accumulate", True)
    prune = selection.parse_method("random-prune@infobatch")
    assert (prune.rule, prune.parent, prune.batch_mode) == ("random-prune", "infobatch", "sub-batch")
    assert selection.control_of("ast") == "random@ast"
    assert selection.control_of("selective-backprop+accumulate") == "random@selective-backprop+accumulate"
    assert selection.control_of("infobatch") == "random-prune@infobatch"
    assert selection.control_of("random") is None and selection.control_of("full@0.5") is None
    for bad, message in (("full@1.5", "in \\(0, 1\\)"), ("full@half", "in \\(0, 1\\)"),
                         ("random-prune@ast", "use random@ast"), ("random@random@ast", "matched to a rule"),
                         ("infobatch+accumulate", "prunes whole batches"), ("magic", "unknown method 'magic'"),
                         ("random@full", "matched to a rule")):
        with pytest.raises(ValueError, match=message):
            selection.parse_method(bad)


def test_methods_are_checked_as_a_whole():
    assert selection.check_methods(["full", "ast", "random@ast"]) == ["full", "ast", "random@ast"]
    with pytest.raises(ValueError, match="must include 'full'"):
        selection.check_methods(["ast", "random@ast"])
    with pytest.raises(ValueError, match="'random@ast' is matched to 'ast'"):
        selection.check_methods(["full", "random@ast"])
    with pytest.raises(ValueError, match="repeats"):
        selection.check_methods(["full", "ast", "ast"])
    with pytest.raises(ValueError, match="a list of method names"):
        selection.check_methods("full")  # not ['f', 'u', 'l', 'l']
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        selection.check_methods(["full", "magic"])
    assert selection.with_controls(["full", "ast", "infobatch", "random"]) == [
        "full", "ast", "random@ast", "infobatch", "random-prune@infobatch", "random"]


def test_the_frontier_trains_fractions_of_the_epochs_with_its_schedule_compressed():
    assert [selection.epochs_of(m, 15) for m in ("full@0.25", "full@0.5", "full@0.75", "full", "ast")] == [4, 8, 11, 15, 15]
    assert [selection.epochs_of(m, 6) for m in selection.FRONTIER_METHODS] == [2, 3, 5]  # half up: 1.5 -> 2, 4.5 -> 5
    assert selection.epochs_of("full@0.25", 2) == 1  # never 0
    train = TrainConfig(epochs=8, warmup_epochs=1.0, progress=False)
    quarter = selection.method_config("full@0.25", train, seed=3)
    assert (quarter.epochs, quarter.warmup_epochs, quarter.seed) == (2, 0.25, 3)
    assert selection.method_config("ast", train, seed=3).epochs == 8 and train.seed == 0  # a copy
    assert selection.frontier_collisions(["full", *selection.FRONTIER_METHODS], 3) == [
        "full@0.75 and full@0.5 both train 2 epoch(s)"]
    assert selection.frontier_collisions(["full", *selection.FRONTIER_METHODS], 6) == []


def test_the_schedule_is_lazy_interleaves_epochs_and_puts_each_control_right_after_its_rule():
    methods = ["full", "full@0.5", "ast", "random@ast", "infobatch", "random-prune@infobatch"]
    slices = list(selection.interleaved_schedule(methods, [0, 1], 4))
    assert len(slices) == len(set(slices)) == selection.schedule_length(methods, [0, 1], 4) == 2 * (5 * 4 + 2)
    for method, seed in itertools.product(methods, (0, 1)):
        assert [e for m, s, e in slices if (m, s) == (method, seed)] == list(range(selection.epochs_of(method, 4)))
    for i, (m, s, e) in enumerate(slices):  # a control's epoch comes right after its rule's
        parent = selection.parse_method(m).parent
        if parent:
            assert slices[i - 1] == (parent, s, e)
    firsts = [next(m for m, s, e in slices if (s, e) == (0, epoch)) for epoch in range(4)]
    assert len(set(firsts)) > 1  # the order rotates: no method always first
    assert {m for m, s, e in slices if e >= 2} == set(methods) - {"full@0.5"}  # a frontier point leaves after its epochs
    # lazy: a huge number of epochs yields its first slice at once, holding nothing in memory
    huge = selection.interleaved_schedule(methods, [0], 10 ** 9)
    assert next(huge)[2] == 0


def test_frontier_value_interpolates_in_log_time_hand_worked():
    points = [(10.0, 0.70), (20.0, 0.76), (40.0, 0.80)]
    # sqrt(20 * 40) = 28.28 s is halfway between 20 and 40 in log time: halfway between 0.76 and 0.80
    assert selection.frontier_value(points, math.sqrt(20 * 40)) == (pytest.approx(0.78), "inside")
    assert selection.frontier_value(points, 20.0) == (pytest.approx(0.76), "inside")
    assert selection.frontier_value(points, 5.0) == (pytest.approx(0.70), "below")
    assert selection.frontier_value(points, 80.0) == (pytest.approx(0.80), "above")


def record(method, seed, acc, seconds, val=None, forwarded=1000, backprop=1000, predictions=None):
    r = {"method": method, "model": "m", "params": 1, "seed": seed, "test_accuracy": acc,
         "val_accuracy": acc if val is None else val, "train_seconds": seconds, "epochs": 4,
         "samples_forwarded": forwarded, "samples_backpropagated": backprop, "optimizer_steps": 10,
         "energy_joules": None}
    if predictions is not None:
        r["test_predictions"] = predictions
    return r


def shootout(rule_acc=(0.80, 0.81, 0.79), control_acc=(0.78, 0.78, 0.77)):
    """Three seeds; the frontier at 10, 20, 40 s with accuracies 0.70, 0.76, 0.80 (+ seed/100); the rule and its
    control at 20 s (where the frontier is 0.76 + seed/100)."""
    runs = []
    for seed in range(3):
        bump = seed / 100
        runs += [record("full@0.25", seed, 0.70 + bump, 10.0, forwarded=250, backprop=250),
                 record("full@0.5", seed, 0.76 + bump, 20.0, forwarded=500, backprop=500),
                 record("full", seed, 0.80 + bump, 40.0),
                 record("ast", seed, rule_acc[seed], 20.0, forwarded=500, backprop=500),
                 record("random@ast", seed, control_acc[seed], 20.0, forwarded=500, backprop=500)]
    return runs


def test_comparisons_hand_worked_one_holm_family_and_non_inferiority():
    from scipy.stats import ttest_1samp

    runs = shootout()
    comps = selection.comparisons(runs)
    by = {(c["method"], c["baseline"]): c for c in comps}
    assert set(by) == {("ast", "frontier"), ("ast", "random@ast"), ("ast", "full"), ("random@ast", "frontier")}
    frontier = by[("ast", "frontier")]
    # per seed: ast at 20 s against the frontier's 0.76 + seed/100 there: +0.04, +0.04, +0.01
    diffs = [0.80 - 0.76, 0.81 - 0.77, 0.79 - 0.78]
    assert frontier["difference_mean"] == pytest.approx(sum(diffs) / 3)
    ci = ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert (frontier["ci_low"], frontier["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert [p["frontier"] for p in frontier["per_seed"]] == pytest.approx([0.76, 0.77, 0.78])
    assert frontier["at_compute_units"]["difference_mean"] == pytest.approx(sum(diffs) / 3)  # same units as full@0.5
    # one family of four: Holm multiplies the smallest p by 4
    ps = sorted(c["p_value"] for c in comps)
    assert min(c["p_value_holm"] for c in comps) == pytest.approx(min(1.0, 4 * ps[0]))
    assert all(c["holm_family_size"] == 4 for c in comps)
    # ast - full at the same epochs: 0.00, 0.00, -0.02: its lower bound is far below -0.5 points
    same = by[("ast", "full")]
    assert same["verdict"] == "not shown lossless" and same["ci_low"] < -0.005
    assert "not shown lossless" in same["text"] and "lower bound" in same["text"]
    for c in comps:
        for key in ("difference_mean", "ci_low", "ci_high", "p_value_holm"):
            assert key in c
    # a rule that is close to full on every seed is shown lossless: the whole interval above -0.5 points
    close = [r if r["method"] != "ast" else {**r, "test_accuracy": full["test_accuracy"] + d}
             for r, full, d in ((r, next(f for f in runs if f["method"] == "full" and f["seed"] == r["seed"]),
                                 [0.001, 0.0, 0.002][r["seed"]]) for r in runs)]
    lossless = next(c for c in selection.comparisons(close) if c["kind"] == "same-epochs")
    assert lossless["verdict"] == "lossless" and lossless["ci_low"] > -0.005


def test_verdicts_say_which_way_and_by_how_much():
    runs = shootout(rule_acc=(0.90, 0.91, 0.915), control_acc=(0.70, 0.71, 0.705))
    texts = selection.verdict_lines({"comparisons": selection.comparisons(runs)})
    assert texts[0].startswith("ast BEATS training less: +")
    assert "95% CI [" in texts[0] and "Holm-adjusted p" in texts[0]
    assert texts[1].startswith("ast BEATS its control random@ast at the same budget")
    worse = selection.verdict_lines({"comparisons": selection.comparisons(shootout(rule_acc=(0.60, 0.61, 0.615)))})
    assert worse[0].startswith("ast LOSES to training less")
    one = selection.comparisons([r for r in shootout() if r["seed"] == 0])
    assert all(c["verdict"] in ("one seed", "not shown lossless") for c in one)
    assert "no interval" in one[0]["text"]


def test_a_rule_cheaper_or_dearer_than_the_frontier_says_so():
    runs = [r if r["method"] != "ast" else {**r, "train_seconds": 5.0} for r in shootout()]
    c = selection.compare_with_frontier(runs, "ast")
    assert c["outside"] == ["below"] and [p["frontier"] for p in c["per_seed"]] == pytest.approx([0.70, 0.71, 0.72])
    assert "cheaper than the shortest frontier run" in selection.describe({**c, "verdict": "inconclusive",
                                                                           "holm_family_size": 1, "p_value_holm": 1})


def test_a_control_reads_its_rules_epochs_so_far(tmp_path):
    history = [{"epoch": 1, "samples_backpropagated": 1024, "epoch_samples": 1024, "epoch_rows": 1024,
                "epoch_fraction": 1.0},
               {"epoch": 2, "samples_backpropagated": 333, "epoch_samples": 1024, "epoch_rows": 1024,
                "epoch_fraction": 1.0},
               # a pruned epoch (InfoBatch's): 600 of 1,024 rows made 512 samples of batches, all learned from
               {"epoch": 3, "samples_backpropagated": 512, "epoch_samples": 512, "epoch_rows": 600,
                "epoch_fraction": 600 / 1024}]
    folder = run_files.run_dir(tmp_path, "ast", 3)
    folder.mkdir(parents=True)
    atomic_write_json(history, folder / "history.json")
    rates = selection.matched_options(selection.parse_method("random@ast"), tmp_path, 3)["epoch_rates"]
    # per sample of a full epoch's batches: random@infobatch learns from as many as InfoBatch did in that epoch
    assert rates == {0: 1.0, 1: pytest.approx(333 / 1024), 2: pytest.approx(512 / 1024)}
    folder = run_files.run_dir(tmp_path, "infobatch", 3)
    folder.mkdir(parents=True)
    atomic_write_json(history, folder / "history.json")
    rows = selection.matched_options(selection.parse_method("random-prune@infobatch"), tmp_path, 3)["epoch_rows"]
    assert rows == {0: 1024, 1: 1024, 2: 600}


def test_the_presets_rule_is_chosen_by_the_frontier_verdict_on_validation_never_on_test():
    def calibration(rate, scoring, val_by_method, epochs=6):
        runs = []
        for seed in range(3):
            for method, (val, test, seconds) in val_by_method.items():
                runs.append(record(method, seed, test, seconds, val=val + seed / 1000))
        return {"config": {"target_rate": rate, "scoring": scoring, "train": {"epochs": epochs},
                           "bn_recalibration_batches": 0}, "runs": runs}

    frontier = {"full@0.25": (0.60, 0.60, 10.0), "full@0.5": (0.70, 0.70, 20.0), "full": (0.80, 0.80, 40.0)}
    # validation, test, seconds. At 20 s the frontier's validation accuracy is 0.70.
    a = calibration(0.3, "stale", {**frontier, "ast": (0.72, 0.99, 20.0), "random@ast": (0.69, 0.50, 20.0),
                                   "selective-backprop+accumulate": (0.75, 0.10, 20.0)})
    b = calibration(0.5, "forward", {**frontier, "infobatch": (0.74, 0.98, 20.0)})
    choice = selection.choose_rule([a, b])
    # by validation: sb+accumulate +5 points, infobatch +4, ast +2; test (which would pick ast) is never read
    assert [c["method"] for c in choice["candidates"]] == ["selective-backprop+accumulate", "infobatch", "ast"]
    best = choice["chosen"]
    assert (best["rate"], best["scoring"], best["batch_mode"], best["epochs"]) == (0.3, "stale", "accumulate", 6)
    assert best["val_gain_over_frontier"] == pytest.approx(0.05)
    assert choice["candidates"][1]["rate"] is None and choice["candidates"][1]["scoring"] is None
    assert choice["text"].startswith("selective-backprop+accumulate (rate 0.3, 'stale' scoring, accumulated full "
                                     "batches, 6 epochs): the largest gain over full training given the same wall-clock")
    assert "+5.00 points of validation accuracy" in choice["text"] and "test split was not used" in choice["text"]
    assert "beats training less on validation" in choice["text"]  # identical differences: the interval is that point
    with pytest.raises(ValueError, match="no calibration run of a selection rule"):
        selection.choose_rule([calibration(0.3, "stale", frontier)])


def test_the_warm_up_runs_once_before_the_first_slice_that_trains(tmp_path):
    calls, order = [], []

    def train_slice(method, seed, stop_after):
        order.append((method, len(calls)))
        return {"method": method, "seed": seed} if stop_after is None else None

    selection.run_all(["full", "ast"], [0], 2, train_slice, tmp_path, progress=False, warm_up=lambda: calls.append(1))
    assert calls == [1] and order[0] == ("full", 1)  # before the first slice, once


def test_the_epoch_timeline_is_kept_across_sessions_and_counts_no_epoch_twice(tmp_path):
    """A session stopped part-way and the rerun that resumes it make one timeline; a rerun that reuses every
    finished run keeps it as it was (it used to come back empty, and the timeline figure with it)."""
    import json

    from kdlib import runs

    class Stop(Exception):
        pass

    def slices(stop_at=None):
        done = []

        def train_slice(method, seed, stop_after):
            if stop_at is not None and len(done) == stop_at:
                raise Stop
            folder = runs.run_dir(tmp_path, method, seed)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "history.json"
            history = json.loads(path.read_text()) if path.exists() else []
            while len(history) < (3 if stop_after is None else stop_after):  # resumes where its checkpoint is
                history.append({"epoch": len(history) + 1, "epoch_seconds": 1.0})
                done.append(method)
            path.write_text(json.dumps(history))
            if stop_after is None:
                record = {"method": method, "seed": seed}
                (folder / "record.json").write_text(json.dumps(record))
                return record
            return None

        return train_slice

    with pytest.raises(Stop):
        selection.run_all(["full", "ast"], [0], 3, slices(stop_at=3), tmp_path, progress=False)
    _, first = selection.run_all(["full", "ast"], [0], 3, slices(), tmp_path, progress=False)
    assert sorted((t["method"], t["epoch"]) for t in first) == sorted(
        (m, e) for m in ("full", "ast") for e in (1, 2, 3))  # every epoch once
    assert [t["session"] for t in first] == [0, 0, 0, 1, 1, 1]
    starts = [t["started"] for t in first]
    assert starts == sorted(starts) and starts[3] >= starts[2] + 1.0  # the second session follows the first
    _, again = selection.run_all(["full", "ast"], [0], 3, slices(), tmp_path, progress=False)
    assert again == first
    (tmp_path / selection.TIMELINE_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="timeline restarts"):
        _, damaged = selection.run_all(["full", "ast"], [0], 3, slices(), tmp_path, progress=False)
    assert damaged == []


def test_the_frontiers_clock_is_robust_to_a_slow_moment_on_one_seed():
    def run(method, seed, seconds):
        return {"method": method, "seed": seed, "train_seconds": sum(seconds),
                "history": [{"epoch_seconds": x} for x in seconds]}

    # seed 1's second epoch of ast met a busy machine (30 s instead of 5): the median over seeds does not move
    runs = [run("ast", 0, [10, 5, 5]), run("ast", 1, [10, 30, 5]), run("ast", 2, [11, 5, 6]),
            run("full", 0, [10, 10, 10]), run("full", 1, [10, 10, 10])]
    assert selection.robust_seconds(runs) == {"ast": 10 + 5 + 5, "full": 30}
    assert selection.run_costs(runs, "seconds")[("ast", 1)] == 20
    # without histories (a results.json), a run keeps its total
    assert selection.robust_seconds([{"method": "x", "seed": 0, "train_seconds": 7.0}]) == {"x": 7.0}
