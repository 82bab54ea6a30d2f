"""One selection path for the AST experiments (CIFAR-10 and ImageNet-100): which methods a run has, how each trains,
the order they run in, and what the run says of each rule.

Methods (a run's ``methods``, by name):
- ``full``: full training, the reference of every ratio; ``full@F`` (F in (0, 1)): full training for F of the
  run's epochs (rounded half up, at least 1), its schedule compressed to them (warm-up and cosine over its own
  steps). ``full@0.25``, ``full@0.5``, ``full@0.75`` and ``full`` are the **frontier**: what training less gives;
- a rule: ``ast``, ``selective-backprop``, ``random`` (each at the run's target rate) or ``infobatch`` (its own
  budget). A per-batch rule takes the suffix ``+accumulate`` for the reference's batch mode (selected samples
  gathered into full batches, one step each; ``kdlib.sparse.selective``); without it, one step per batch on its
  selected sub-batch;
- a control, matched seed by seed and epoch by epoch to the run of its rule: ``random@<rule>`` learns in each
  epoch from as many samples (in expectation) as the rule did in that epoch, uniformly drawn, in the rule's batch
  mode; ``random-prune@infobatch`` trains each epoch on as many uniformly drawn rows as InfoBatch kept, so it takes
  the same steps. A control changes only what its rule changes: which samples.

Every method has the same model, data, seeds and selection warm-up epochs; the methods run interleaved epoch by epoch
(``interleaved_schedule``), a control right after its rule, so a machine whose speed drifts meets every method alike.

What the run says (``comparisons``), each difference with its 95% interval, all Holm-corrected as one family:
1. each selective method against the **frontier at its own measured cost**: on each seed, full training's accuracy
   at the method's wall-clock, interpolated in log time between that seed's frontier points; the method's accuracy
   minus that value. "Does it beat training less?" The wall-clock of a method is robust to a slow moment of the
   machine (``robust_seconds``: per epoch the median over seeds);
2. each rule against its control at the same budget;
3. each rule against full training at the same epochs, as non-inferiority: "lossless" only when the interval's
   lower bound is above -``NON_INFERIORITY_POINTS`` points.
``choose_rule`` picks the presets' rule from calibration runs by the frontier verdict on validation accuracy.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import runs as run_files
from ..sparse import PIController, make_selective_objective
from ..sparse.rules import RULES as SPARSE_RULES
from ..statistics import apply_holm, mcnemar_by_seed, paired_interval

FRONTIER = (0.25, 0.5, 0.75)  # fractions of the epochs at which full training runs beside ``full``
FRONTIER_METHODS = tuple(f"full@{f:g}" for f in FRONTIER)
ACCUMULATE = "+accumulate"
SELECTION_RULES = ("ast", "selective-backprop", "random", "infobatch")  # rules a method can name
RATED_RULES = ("ast", "selective-backprop", "random")  # rules that take the run's target rate
SCORING_RULES = ("ast", "selective-backprop")  # rules that score batches (forward or stale)
NON_INFERIORITY_POINTS = 0.5  # "lossless": the interval of (rule - full, same epochs) lies above -0.5 points
ALPHA = 0.05
RECORDED_BATCHES = 300
# settings a rule reads from the experiment's config, with the value used where a config has none
RULE_SETTING_DEFAULTS = {"kp": PIController.kp, "ki": PIController.ki, "ema_factor": PIController.ema_factor,
                         "keep_low": 0.0, "infobatch_prune_ratio": 0.5, "infobatch_delta": 0.875,
                         "bn_recalibration_batches": 0}


# ---- methods ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    name: str
    rule: str | None = None  # the selection rule it trains with (None: full training)
    fraction: float = 1.0  # full@F: the fraction of the run's epochs
    parent: str | None = None  # a control: the method it is matched to
    batch_mode: str = "sub-batch"

    @property
    def is_full(self) -> bool:
        return self.rule is None

    @property
    def is_control(self) -> bool:
        return self.parent is not None

    @property
    def is_rule(self) -> bool:
        return not self.is_full and not self.is_control


def parse_method(name: str) -> Method:
    """The method a name describes (see the module docstring); ValueError naming what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"a method is a name, got {name!r}")
    if name == "full":
        return Method("full")
    if name.startswith("full@"):
        try:
            fraction = float(name[len("full@"):])
        except ValueError:
            fraction = math.nan
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{name!r}: full@F takes a fraction F of the epochs in (0, 1), e.g. full@0.5")
        return Method(name, fraction=fraction)
    for prefix, rule in (("random-prune@", "random-prune"), ("random@", "random")):
        if name.startswith(prefix):
            parent = parse_method(name[len(prefix):])
            if not parent.is_rule:
                raise ValueError(f"{name!r}: a control is matched to a rule's run, not to {parent.name!r}")
            prunes = SPARSE_RULES[parent.rule].prunes_epochs
            if rule == "random-prune" and not prunes:
                raise ValueError(f"{name!r}: random-prune matches a rule that prunes whole samples from epochs "
                                 f"(infobatch); {parent.rule!r} selects within batches: use random@{parent.name}")
            return Method(name, rule, parent=parent.name, batch_mode=parent.batch_mode)
    base, mode = (name[:-len(ACCUMULATE)], "accumulate") if name.endswith(ACCUMULATE) else (name, "sub-batch")
    if base not in SELECTION_RULES:
        raise ValueError(f"unknown method {name!r}: choose full, full@F, {', '.join(SELECTION_RULES)} (a per-batch "
                         f"rule may end in {ACCUMULATE}), random@<rule> or random-prune@infobatch")
    if mode == "accumulate" and SPARSE_RULES[base].prunes_epochs:
        raise ValueError(f"{name!r}: {base} prunes whole batches; {ACCUMULATE} is for rules that select in batches")
    return Method(name, base, batch_mode=mode)


def control_of(method: str) -> str | None:
    """The control a rule is compared with at the same budget (None for random, itself the control)."""
    spec = parse_method(method)
    if not spec.is_rule or spec.rule == "random":
        return None
    prefix = "random-prune@" if SPARSE_RULES[spec.rule].prunes_epochs else "random@"
    return prefix + spec.name


def with_controls(methods) -> list[str]:
    """``methods`` and, after each rule, its control (where missing)."""
    out = []
    for m in methods:
        control = control_of(m)
        out += [m] + ([control] if control and control not in methods and control not in out else [])
    return out


def check_methods(methods) -> list[str]:
    """METHODS as a list of known, distinct names that includes 'full' (every ratio's reference) and, for a control,
    the rule it is matched to."""
    if isinstance(methods, str) or not hasattr(methods, "__iter__"):
        raise ValueError(f"METHODS must be a list of method names, e.g. ['full', 'ast'], got {methods!r}")
    methods = list(methods)
    problems = []
    for m in methods:
        try:
            parse_method(m)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("METHODS: " + "; ".join(problems))
    if len(set(methods)) != len(methods):
        raise ValueError(f"METHODS={methods} repeats a method")
    if "full" not in methods:
        raise ValueError("METHODS must include 'full': every speed-up and accuracy is measured against it")
    for m in methods:
        parent = parse_method(m).parent
        if parent is not None and parent not in methods:
            raise ValueError(f"METHODS: {m!r} is matched to {parent!r}'s run on each seed, so {parent!r} must run too")
    return methods


def epochs_of(method: str | Method, epochs: int) -> int:
    """The epochs ``method`` trains in a run of ``epochs``: F of them (half up, at least 1) for full@F."""
    spec = parse_method(method) if isinstance(method, str) else method
    return epochs if spec.fraction == 1.0 else max(1, math.floor(spec.fraction * epochs + 0.5))


def method_config(method: str, train, seed: int):
    """``train`` (a TrainConfig) for ``method`` on ``seed``: full@F's epochs, with its learning-rate warm-up
    compressed in proportion, so warm-up and cosine span its own steps."""
    epochs = epochs_of(method, train.epochs)
    warmup = train.warmup_epochs * epochs / train.epochs
    return dataclasses.replace(train, seed=seed, epochs=epochs, warmup_epochs=warmup)


def frontier_collisions(methods, epochs: int) -> list[str]:
    """Frontier points that would train as many epochs as another (a short run has too few epochs to tell them
    apart): each would repeat a run."""
    seen, repeated = {}, []
    for m in methods:
        spec = parse_method(m)
        if spec.is_full:
            e = epochs_of(spec, epochs)
            if e in seen:
                repeated.append(f"{m} and {seen[e]} both train {e} epoch(s)")
            seen.setdefault(e, m)
    return repeated


def configure(cfg, methods=None, bn_recalibration_batches=None):
    """An AST experiment's config with its METHODS (checked; None: the preset's) and BN_RECALIBRATION_BATCHES
    applied, refused with one line when the epochs are too few to tell the frontier's points apart."""
    cfg.methods = check_methods(methods if methods is not None else cfg.methods)
    if bn_recalibration_batches is not None:
        if (isinstance(bn_recalibration_batches, bool) or not isinstance(bn_recalibration_batches, int)
                or bn_recalibration_batches < 0):
            raise ValueError(f"BN_RECALIBRATION_BATCHES must be a whole number >= 0 (0: off), got "
                             f"{bn_recalibration_batches!r}")
        cfg.bn_recalibration_batches = bn_recalibration_batches
    collisions = frontier_collisions(cfg.methods, cfg.train.epochs)
    if collisions:
        raise ValueError(f"EPOCHS={cfg.train.epochs} is too few for the frontier: {'; '.join(collisions)}. Use more "
                         "epochs, or leave those points out of METHODS")
    return cfg


# ---- how a method trains --------------------------------------------------------------------------------------

def _setting(cfg, name: str):
    return getattr(cfg, name, RULE_SETTING_DEFAULTS[name])


def matched_options(method: Method, out_dir: str | Path, seed: int) -> dict:
    """A control's per-epoch budget, from its rule's run on the same seed (its ``history.json`` so far: the control
    runs right after its rule in every round of the schedule): ``epoch_rates`` (samples backpropagated over the
    samples of the epoch's batches, rounding included) for random, ``epoch_rows`` for random-prune."""
    path = run_files.run_dir(out_dir, method.parent, seed) / "history.json"
    history = run_files.read_json(path) if path.exists() else []
    if method.rule == "random-prune":
        return {"epoch_rows": {e: int(h["epoch_rows"]) for e, h in enumerate(history)}}
    # per sample of a full epoch's batches (random@infobatch: a pruned epoch iterates fewer batches), from an epoch on
    # all rows (a warm-up one), else estimated from the pruned epoch's fraction of the rows
    full = [h["epoch_samples"] for h in history if h["epoch_fraction"] == 1.0]

    def full_epoch(h):
        return max(full) if full else h["epoch_samples"] / h["epoch_fraction"]

    return {"epoch_rates": {e: min(1.0, max(h["samples_backpropagated"], 1) / full_epoch(h))
                            for e, h in enumerate(history)}}


def nominal_rate(method: Method, cfg) -> float | str | None:
    """The rate a method trains at: the run's target for a rated rule, 'matched' for a control, None otherwise."""
    if method.is_control:
        return "matched"
    return cfg.target_rate if method.rule in RATED_RULES else None


def make_objective(method: str, cfg, base, num_samples: int, config, out_dir: str | Path | None = None,
                   sync=None):
    """The objective ``method`` trains with (None: full training). ``cfg``: the experiment's config (target_rate,
    scoring, warmup_epochs and the settings of ``RULE_SETTING_DEFAULTS`` where it has them); ``base``: the
    objective whose per-sample losses are selected from; ``config``: the run's TrainConfig; ``out_dir``: where a
    control finds its rule's run."""
    spec = parse_method(method)
    if spec.is_full:
        return None
    options = {}
    if spec.rule == "ast":
        options = {k: _setting(cfg, k) for k in ("kp", "ki", "ema_factor", "keep_low")}
    elif spec.rule == "infobatch":
        options = dict(epochs=config.epochs, prune_ratio=_setting(cfg, "infobatch_prune_ratio"),
                       delta=_setting(cfg, "infobatch_delta"))
    elif spec.is_control:
        options = dict(matched_options(spec, out_dir, config.seed), matched_to=spec.parent)
    elif spec.rule == "random":
        # the expected size is exactly rate x batch (not rounded up to the size bucket)
        options = dict(exact_rate=True)
    rate = nominal_rate(spec, cfg)
    return make_selective_objective(spec.rule, base, num_samples, None if rate == "matched" else rate,
                                    seed=config.seed, scoring=cfg.scoring, warmup_epochs=cfg.warmup_epochs,
                                    record_batches=RECORDED_BATCHES, sync=sync, batch_mode=spec.batch_mode,
                                    bn_recalibration_batches=_setting(cfg, "bn_recalibration_batches"), **options)


def record_fields(method: str, cfg) -> dict:
    """What a run's record says of how it selected."""
    spec = parse_method(method)
    return {"rule": spec.rule, "rate": nominal_rate(spec, cfg), "batch_mode": None if spec.is_full else spec.batch_mode,
            "matched_to": spec.parent, "epochs_fraction": spec.fraction}


# ---- the order the methods run in --------------------------------------------------------------------------------

def interleaved_schedule(methods: list[str], seeds: list[int], epochs: int):
    """(method, seed, epoch) slices, lazily: seed by seed, every method advances one epoch at a time, the order
    of the rules and the frontier rotating every epoch so no method is always first, each control right after
    its rule (it needs the rule's epoch first). A frontier point leaves the rotation after its own epochs."""
    specs = {m: parse_method(m) for m in methods}
    independent = [m for m in methods if not specs[m].is_control]
    controls = {m: [c for c in methods if specs[c].parent == m] for m in independent}
    for i, seed in enumerate(seeds):
        for epoch in range(epochs):
            active = [m for m in independent if epoch < epochs_of(specs[m], epochs)]
            shift = (i * epochs + epoch) % len(active)
            for m in active[shift:] + active[:shift]:
                yield m, seed, epoch
                for c in controls[m]:
                    yield c, seed, epoch


def schedule_length(methods: list[str], seeds: list[int], epochs: int) -> int:
    return len(seeds) * sum(epochs_of(m, epochs) for m in methods)


def run_history(out_dir: Path, method: str, seed: int) -> list[dict]:
    """The epochs a run has finished so far (its history.json), [] before its first."""
    path = run_files.run_dir(out_dir, method, seed) / "history.json"
    return run_files.read_json(path) if path.exists() else []


TIMELINE_FILE = "interleaved_epochs.json"  # every epoch the folder's sessions trained, in the order they ran


def _kept_timeline(path: Path) -> list[dict]:
    """The epochs earlier sessions trained into this folder; a damaged file only restarts the timeline (it serves
    the timeline figure; no result is computed from it)."""
    import warnings

    if not path.exists():
        return []
    try:
        kept = run_files.read_json(path)
        if isinstance(kept, list) and all(isinstance(t, dict) and {"started", "seconds"} <= set(t) for t in kept):
            return kept
    except run_files.DamagedRunError:
        pass
    warnings.warn(f"{path} cannot be read as an epoch timeline: the timeline restarts with this session "
                  "(no result depends on it)")
    return []


def run_all(methods: list[str], seeds: list[int], epochs: int, train_slice, out_dir: Path,
            progress: bool = True, warm_up=None, timeline_file: str = TIMELINE_FILE) -> tuple[list[dict], list[dict]]:
    """Every method and seed, interleaved epoch by epoch (``interleaved_schedule``). ``train_slice(method, seed,
    stop_after)`` trains a run up to ``stop_after`` epochs (None: to its end, then tests it), resuming from its
    checkpoint, and returns its record once finished (else None). Finished runs are read back, not trained again.
    ``warm_up()``: called once before the first slice that trains, so the process's one-time costs are no method's
    (``common.warm_up``). Returns the records (``methods`` order, then seeds) and every epoch the folder's sessions
    trained ({method, seed, epoch, started, seconds, session}: seconds as the run measured them), kept in
    ``interleaved_epochs.json``: a rerun that reuses finished runs keeps the timeline of the sessions that trained
    them, and a resumed one continues it (its ``started`` follow on from the last session's end). ``timeline_file``:
    where, in ``out_dir`` (a worker of ``run_on_devices`` keeps its own)."""
    from ..fileio import atomic_write_json
    from ..runtime import progress_bar, report_epoch

    timeline_path = Path(out_dir) / timeline_file
    trained = _kept_timeline(timeline_path)
    session = 1 + max((t.get("session", 0) for t in trained), default=-1)
    offset = max((t["started"] + t["seconds"] for t in trained), default=0.0)
    records = {}
    session_start = time.time() - offset
    schedule = interleaved_schedule(methods, seeds, epochs)
    for method, seed, epoch in progress_bar(schedule, total=schedule_length(methods, seeds, epochs),
                                    desc="epochs, all methods interleaved", disable=not progress):
        if (method, seed) in records:
            continue
        last = epoch == epochs_of(method, epochs) - 1
        done_before = len(run_history(out_dir, method, seed))
        if warm_up is not None and not run_files.is_finished(out_dir, method, seed):
            warm_up()
            warm_up = None
        started = time.time() - session_start
        out = train_slice(method, seed, None if last else epoch + 1)
        if out is not None:
            records[(method, seed)] = out
        epochs_now = run_history(out_dir, method, seed)[done_before:]
        new = [{"method": method, "seed": seed, "epoch": h["epoch"], "started": started,
                "seconds": h["epoch_seconds"], "session": session} for h in epochs_now]
        if new:
            trained += new
            atomic_write_json(trained, timeline_path)
        if progress:  # the slices train quietly (one bar for all): each epoch's line comes from here
            for h in epochs_now:
                report_epoch(f"{method} seed {seed}", h, epochs_of(method, epochs))
    return [records[(m, s)] for m in methods for s in seeds], trained


def worker_timeline_file(seeds: list[int]) -> str:
    """The timeline file of the worker that trains ``seeds`` (``run_on_devices``): one per seed group."""
    return f"interleaved_epochs.seeds-{'-'.join(map(str, seeds))}.json"


def _seed_group(seeds: list[int], device, run_group, *args):
    return run_group(seeds, device, worker_timeline_file(seeds), *args)


def run_on_devices(run_group, methods: list[str], seeds: list[int], devices: list, out_dir: Path, *args,
                   threads: int | None = None) -> tuple[list[dict], list[dict]]:
    """``seeds`` split over ``devices`` (``kdlib.devices``: round-robin, one worker process per device), each worker
    running ``run_group(its_seeds, device, timeline_file, *args)``: ``run_all`` of every method on its seeds, its
    own interleaved schedule, so every speed-up is a ratio measured on one device. Returns what ``run_all`` does
    for the whole run: the records in ``methods`` order, then ``seeds`` order (as one process would give them), and
    every worker's timeline, each epoch naming its ``device`` and ``worker``, also written to ``interleaved_epochs.json``.
    ``run_group`` must be importable (a module's function)."""
    from .. import devices as device_split
    from ..fileio import atomic_write_json

    groups = device_split.partition_seeds(list(seeds), len(devices))
    outputs = device_split.run_across(_seed_group, groups, devices, run_group, *args, threads=threads)
    records, timeline = {}, []
    for k, (device, output) in enumerate(zip(devices, outputs)):
        if output is None:
            continue
        group_records, group_timeline = output
        records.update({(r["method"], r["seed"]): r for r in group_records})
        timeline += [{**t, "device": str(device), "worker": device_split.worker_label(device, k)} for t in group_timeline]
    atomic_write_json(timeline, Path(out_dir) / TIMELINE_FILE)
    return [records[(m, s)] for m in methods for s in seeds], timeline


class Pause(Exception):
    """Raised after an epoch's checkpoint to hand the machine to the next method; the run resumes from there."""


def pause_after(epochs_done: int | None, epochs: int) -> tuple:
    """``fit``'s callbacks for a slice that stops after ``epochs_done`` epochs (none when it runs to the end)."""
    if epochs_done is None or epochs_done >= epochs:
        return ()

    def callback(epoch: int, record: dict) -> None:
        if epoch + 1 >= epochs_done:
            raise Pause
    return (callback,)


# ---- the frontier and the comparisons ---------------------------------------------------------------------------

def units_of(record: dict) -> float | None:
    from ..sparse.cost import compute_units

    if record.get("samples_forwarded") is None or record.get("samples_backpropagated") is None:
        return None
    return compute_units(record["samples_forwarded"], record["samples_backpropagated"])


def robust_seconds(runs: list[dict]) -> dict[str, float]:
    """Each method's training wall-clock, robust to a slow moment of the machine that hits one seed's epoch: per
    epoch, the median over the seeds of that epoch's measured seconds, summed over the epochs. A method's cost is
    then its own (the same on every seed) and its accuracy each seed's. Runs without a history keep their total."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        histories = [r.get("history") for r in mine]
        if any(not h or any(e.get("epoch_seconds") is None for e in h) for h in histories):
            out[method] = float(np.median([r["train_seconds"] for r in mine]))
            continue
        epochs = min(len(h) for h in histories)
        out[method] = float(sum(np.median([h[e]["epoch_seconds"] for h in histories]) for e in range(epochs)))
    return out


def run_costs(runs: list[dict], cost: str, seconds: dict | None = None) -> dict:
    """{(method, seed): cost}: 'seconds', each method's ``robust_seconds`` (or ``seconds``, {method: s}, where
    given: a results.json's summary); 'units', each run's own compute units (the same whatever the machine)."""
    if cost == "units":
        return {(r["method"], r["seed"]): units_of(r) for r in runs}
    seconds = seconds if seconds is not None else robust_seconds(runs)
    return {(r["method"], r["seed"]): seconds.get(r["method"], r.get("train_seconds")) for r in runs}


def frontier_points(runs: list[dict], seed: int, metric: str = "test_accuracy", cost: str = "seconds",
                    costs: dict | None = None):
    """The frontier on ``seed``: (cost, accuracy) of every full@F and full, sorted by cost (``run_costs``)."""
    costs = costs if costs is not None else run_costs(runs, cost)
    return sorted((costs[(r["method"], seed)], r[metric]) for r in runs
                  if r["seed"] == seed and parse_method(r["method"]).is_full and costs[(r["method"], seed)])


def frontier_value(points, at: float) -> tuple[float, str]:
    """Full training's accuracy at cost ``at``, interpolated linearly in log cost between the frontier's points;
    outside them the nearest end point, and where: 'inside', 'below' (cheaper than the cheapest frontier run: the
    value is that run's, which took longer, so the comparison is harder on the rule) or 'above' (dearer than full
    training: the value is full training's)."""
    costs, accuracies = np.log([c for c, _ in points]), [a for _, a in points]
    where = "below" if math.log(at) < costs[0] else "above" if math.log(at) > costs[-1] else "inside"
    return float(np.interp(math.log(at), costs, accuracies)), where


def compare_with_frontier(runs: list[dict], method: str, metric: str = "test_accuracy", cost: str = "seconds",
                          seconds: dict | None = None) -> dict:
    """``method`` against full training given its own cost (``run_costs``: robust wall-clock, or compute units),
    seed by seed (``frontier_value``): the paired differences' mean, 95% interval and p
    (``statistics.paired_interval``), and each seed's numbers."""
    costs = run_costs(runs, cost, seconds)
    mine = {r["seed"]: r for r in runs if r["method"] == method}
    per_seed = []
    for seed in sorted(mine):
        points = frontier_points(runs, seed, metric, cost, costs)
        at = costs[(method, seed)]
        if len(points) < 2 or not at:
            continue
        value, where = frontier_value(points, at)
        per_seed.append({"seed": seed, "cost": at, "accuracy": mine[seed][metric], "frontier": value, "where": where})
    if not per_seed:
        raise ValueError(f"{method}: no seed has a frontier of at least two full-training runs to compare with")
    interval = paired_interval([p["accuracy"] - p["frontier"] for p in per_seed])
    return {"method": method, "baseline": "frontier", "kind": "frontier", "metric": metric, "cost": cost,
            "seeds": [p["seed"] for p in per_seed], **interval, "per_seed": per_seed,
            "outside": sorted({p["where"] for p in per_seed} - {"inside"})}


def compare_paired(runs: list[dict], method: str, baseline: str, kind: str, metric: str = "test_accuracy") -> dict:
    """``method`` minus ``baseline`` on the seeds both ran: mean, 95% interval and the paired t-test's p."""
    acc = {(r["method"], r["seed"]): r[metric] for r in runs}
    seeds = sorted({s for m, s in acc if m == method} & {s for m, s in acc if m == baseline})
    if not seeds:
        raise ValueError(f"no seed ran both {method!r} and {baseline!r}")
    interval = paired_interval([acc[(method, s)] - acc[(baseline, s)] for s in seeds])
    return {"method": method, "baseline": baseline, "kind": kind, "metric": metric, "seeds": seeds, **interval}


def comparisons(runs: list[dict], labels=None, alpha: float = ALPHA) -> list[dict]:
    """What the run states, one family for Holm: every selective method against the frontier at its measured
    wall-clock (beside, not in the family, the same at its compute units); every rule against its control and
    against full training at the same epochs (non-inferiority). McNemar per seed for rule against control where
    the records carry test predictions and ``labels`` are given."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    specs = {m: parse_method(m) for m in methods}
    has_frontier = sum(s.is_full for s in specs.values()) >= 2
    out = []
    for m in methods:
        spec = specs[m]
        if spec.is_full:
            continue
        if has_frontier:
            entry = compare_with_frontier(runs, m)
            try:
                units = compare_with_frontier(runs, m, cost="units")
                entry["at_compute_units"] = {k: units[k] for k in ("difference_mean", "ci_low", "ci_high", "outside")}
            except ValueError:
                entry["at_compute_units"] = None
            out.append(entry)
        if not spec.is_rule:
            continue
        control = control_of(m)
        if control in specs:
            entry = compare_paired(runs, m, control, "control")
            with_predictions = {r["method"] for r in runs if "test_predictions" in r}
            if labels is not None and {m, control} <= with_predictions:
                entry["mcnemar"] = mcnemar_by_seed(runs, m, control, labels, alpha)
            out.append(entry)
        entry = compare_paired(runs, m, "full", "same-epochs")
        entry["non_inferior"] = (entry["ci_low"] is not None and entry["n"] >= 2
                                 and entry["ci_low"] > -NON_INFERIORITY_POINTS / 100)
        out.append(entry)
    apply_holm(out)
    for c in out:
        c["alpha"] = alpha
        c["verdict"] = verdict(c)
        c["text"] = describe(c)
    return out


def verdict(c: dict) -> str:
    """'beats', 'loses', 'inconclusive' (cannot be told apart) or 'one seed'; for same-epochs comparisons 'lossless' or
    'not shown lossless'."""
    if c["kind"] == "same-epochs":
        return "lossless" if c.get("non_inferior") else "not shown lossless"
    if c["ci_low"] is None:
        return "one seed"
    p = c.get("p_value_holm")
    if p is not None and p < c.get("alpha", ALPHA):
        return "beats" if c["difference_mean"] > 0 else "loses"
    return "inconclusive"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}"


def _interval(c: dict) -> str:
    if c["ci_low"] is None:
        return f"{_points(c['difference_mean'])} points ({c['n']} seed: no interval)"
    holm = "" if c.get("p_value_holm") is None else f", Holm-adjusted p = {c['p_value_holm']:.3g} (family of {c['holm_family_size']})"
    return (f"{_points(c['difference_mean'])} points, 95% CI [{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
            f" over {c['n']} seeds{holm}")


def describe(c: dict) -> str:
    """One sentence per comparison that says which way it went, by how much, with the interval."""
    m, v = c["method"], c["verdict"]
    if c["kind"] == "frontier":
        answer = {"beats": "BEATS training less", "loses": "LOSES to training less",
                  "inconclusive": "cannot be told apart from training less",
                  "one seed": "one seed: no verdict on training less"}[v]
        per = c.get("per_seed", [])
        at = (f" (full training given the same wall-clock, interpolated on each seed's frontier: "
              f"{100 * np.mean([p['frontier'] for p in per]):.2f}% against its {100 * np.mean([p['accuracy'] for p in per]):.2f}%)"
              if per else "")
        text = f"{m} {answer}: {_interval(c)}{at}."
        if "below" in c.get("outside", []):
            text += " It was cheaper than the shortest frontier run on some seed; there the comparison is with that run."
        if "above" in c.get("outside", []):
            text += " It took longer than full training on some seed; there the comparison is with full training."
        units = c.get("at_compute_units")
        if units:
            text += f" At its compute units instead of its wall-clock: {_points(units['difference_mean'])} points."
        return text
    if c["kind"] == "control":
        answer = {"beats": f"BEATS its control {c['baseline']}", "loses": f"is WORSE than its control {c['baseline']}",
                  "inconclusive": f"cannot be told apart from its control {c['baseline']}",
                  "one seed": f"one seed: no verdict against {c['baseline']}"}[v]
        return f"{m} {answer} at the same budget: {_interval(c)}."
    bound = "" if c["ci_low"] is None else f" (the interval's lower bound {_points(c['ci_low'])} points"
    if v == "lossless":
        return f"{m} is shown lossless against full training at the same epochs{bound} is above -{NON_INFERIORITY_POINTS}): {_interval(c)}."
    reason = (f"{bound} is not above -{NON_INFERIORITY_POINTS})" if c["ci_low"] is not None
              else " (one seed: no interval)")
    return f"{m} is not shown lossless against full training at the same epochs{reason}: {_interval(c)}."


def ordered_comparisons(results: dict) -> list[dict]:
    """The comparisons in reading order: each rule's three together (frontier, control, lossless), then the
    controls'."""
    comps = results.get("comparisons", [])
    rules = [c["method"] for c in comps if parse_method(c["method"]).is_rule]
    order = list(dict.fromkeys(rules)) + [c["method"] for c in comps if c["method"] not in rules]
    return [c for m in dict.fromkeys(order) for c in comps if c["method"] == m]


def verdict_lines(results: dict) -> list[str]:
    """The comparisons' sentences, in ``ordered_comparisons``' order."""
    return [c["text"] for c in ordered_comparisons(results)]


# ---- results -----------------------------------------------------------------------------------------------------

def results(experiment: str, preset: str, dataset: dict, hardware: dict, runs: list[dict], config: dict,
            labels=None, **extra) -> dict:
    """results.json's content from the run records: the summary with each method's measured cost against full
    training in the same run (``sparse.cost.add_cost_ratios``) and its optimizer steps, and the ``comparisons``."""
    from ..results_io import build_results
    from ..sparse.cost import add_cost_ratios

    res = build_results(experiment, preset, dataset, hardware, runs, config, reference="full", **extra)
    add_cost_ratios(res, runs)
    robust = robust_seconds(runs)
    for row in res["summary"]:
        mine = [r for r in runs if r["method"] == row["method"]]
        row["train_seconds_robust"] = robust[row["method"]]  # the frontier's clock (robust_seconds)
        steps = [r.get("optimizer_steps") for r in mine]
        row["optimizer_steps_mean"] = None if None in steps else float(np.mean(steps))
        row["epochs"] = mine[0].get("epochs")
        row["control"] = control_of(row["method"]) if parse_method(row["method"]).is_rule else None
    res["comparisons"] = comparisons(runs, labels)
    return res


# ---- the presets' choice -----------------------------------------------------------------------------------------

def candidate_key(method: str, config: dict) -> dict:
    """What a preset would have to set to run this candidate: rule, rate, scoring, batch mode, BatchNorm
    recalibration and epochs (None where they do not apply)."""
    spec = parse_method(method)
    return {"method": method, "rule": spec.rule,
            "rate": config.get("target_rate") if spec.rule in RATED_RULES else None,
            "scoring": config.get("scoring") if spec.rule in SCORING_RULES else None,
            "batch_mode": spec.batch_mode, "bn_recalibration_batches": config.get("bn_recalibration_batches", 0),
            "epochs": config.get("train", {}).get("epochs")}


def choose_rule(calibrations: list[dict]) -> dict:
    """The rule for the quick and full presets, from calibration runs (``results`` dicts, each with its own
    frontier): every rule of every calibration is a candidate (not a matched control: its budget is another run's).
    Each is judged by the frontier verdict on VALIDATION accuracy: its mean gain over full training given the same
    wall-clock, seed by seed; the choice is the largest gain. The test split is never read. Returns the choice,
    every candidate ranked, and a sentence saying why."""
    candidates = []
    for res in calibrations:
        config, runs = res["config"], res["runs"]
        for method in dict.fromkeys(r["method"] for r in runs):
            if not parse_method(method).is_rule:
                continue
            seconds = {row["method"]: row["train_seconds_robust"] for row in res.get("summary", [])
                       if row.get("train_seconds_robust") is not None} or None
            c = compare_with_frontier(runs, method, metric="val_accuracy", seconds=seconds)
            candidates.append({**candidate_key(method, config), "seeds": c["seeds"],
                               "val_gain_over_frontier": c["difference_mean"], "ci_low": c["ci_low"],
                               "ci_high": c["ci_high"], "outside": c["outside"],
                               "val_accuracy": float(np.mean([p["accuracy"] for p in c["per_seed"]])),
                               "frontier_val_accuracy": float(np.mean([p["frontier"] for p in c["per_seed"]])),
                               "seconds": float(np.mean([p["cost"] for p in c["per_seed"]]))})
    if not candidates:
        raise ValueError("no calibration run of a selection rule beside a frontier of full training to choose from")
    ranked = sorted(candidates, key=lambda c: -c["val_gain_over_frontier"])
    best = ranked[0]
    how = ", ".join(part for part in (
        f"rate {best['rate']:g}" if best["rate"] is not None else "its own budget",
        f"'{best['scoring']}' scoring" if best["scoring"] else "",
        "accumulated full batches" if best["batch_mode"] == "accumulate" else "",
        f"BatchNorm recomputed on {best['bn_recalibration_batches']} batches" if best["bn_recalibration_batches"] else "",
        f"{best['epochs']} epochs" if best["epochs"] else "") if part)
    shown = best["ci_low"] is not None and best["ci_low"] > 0
    lead = ("its interval lies above zero: it beats training less on validation" if shown else
            "its interval includes zero: on validation it cannot be told from training less" if best["ci_low"] is not None
            and best["val_gain_over_frontier"] > 0 else "no candidate gains over training less on validation")
    text = (f"{best['method']} ({how}): the largest gain over full training given the same wall-clock of "
            f"{len(ranked)} candidate(s), {_points(best['val_gain_over_frontier'])} points of validation accuracy"
            + (f" (95% CI [{_points(best['ci_low'])}, {_points(best['ci_high'])}], {len(best['seeds'])} seeds)"
               if best["ci_low"] is not None else "")
            + f"; {lead} (the test split was not used).")
    return {"chosen": best, "candidates": ranked, "text": text}


__all__ = ["FRONTIER", "FRONTIER_METHODS", "SELECTION_RULES", "NON_INFERIORITY_POINTS", "Method", "parse_method",
           "control_of", "with_controls", "check_methods", "configure", "epochs_of", "method_config", "frontier_collisions",
           "matched_options", "make_objective", "record_fields", "interleaved_schedule", "schedule_length",
           "run_history", "run_all", "Pause", "pause_after", "frontier_points", "frontier_value",
           "compare_with_frontier", "robust_seconds", "run_costs", "compare_paired", "comparisons", "verdict", "describe", "ordered_comparisons", "verdict_lines",
           "results", "choose_rule"]
