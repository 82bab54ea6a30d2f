"""HPM-KD on an image-classification split: plan the chain and the configuration, then train the students
of every variant (full HPM-KD and each component removed in turn).

The plan is made on the validation split with the first seed: which T and alpha (the configuration manager),
then how many assistants (the chain). Each ablation variant switches one component off in the students'
training and, where the component takes part in planning, in the plan too (``REPLANNED``):

    hpmkd-no-progressive       students learn from the teacher alone; no chain is grown
    hpmkd-no-multi-teacher     students learn from the last assistant (and the teacher, equally, when
                               ``student_sees_teacher``): no per-sample weights; the chain is grown again,
                               scored by students without them
    hpmkd-no-meta-temperature  T stays at its initial value; the chain is grown again, scored without it
    hpmkd-no-config-manager    T and alpha are the configured defaults, and the chain is grown again at them
                               (its assistants distilled at the defaults, not at the probed values)
    hpmkd-no-parallel          the seeds' students train one after another     } hpmkd's plan: they change
    hpmkd-no-cache             every student computes its teachers' logits itself } cost, not decisions

The probes distil from the teacher alone at a fixed T, so multi-teacher weights and the meta-temperature never
act in them: a variant that keeps the configuration manager takes hpmkd's T and alpha (the same runs).
Assistants are trained once (first seed), like the teacher, with classic KD from the previous stage at the
plan's T and alpha; plans with the same T and alpha share them.

What a plan costs is part of HPM-KD's cost (``plan``'s ``planning``): its wall-clock (the search, then the chain) and
its compute in student-epoch equivalents, one being an epoch of the student on the whole training split. A probe or
a scoring student counts its epochs times the share of the training split it trains on; an assistant counts the same
times its forward FLOPs per image over the student's (``torch.utils.flop_counter``; a training step costs about
three forwards for either), and a table of its logits a third of that per pass. The teacher's logits are not
counted: every distillation method here needs them, and they are computed once (the logit cache).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from torch.utils.flop_counter import FlopCounterMode

from .. import runs, runtime
from ..data.splits import ImageSplits
from ..distill.cache import LogitCache
from ..distill.hpmkd import (COMPONENTS, HPMKDObjective, HPMKDSettings, choose_configuration, geometric_sizes,
                             probe_grid, run_concurrently, stop_adding_stages, width_for_parameters)
from ..distill.kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, KDObjective
from ..distill.teacher_source import split_logits, teacher_source
from ..energy import meter_for
from ..models import count_parameters, create_model
from ..fileio import atomic_write_json
from ..train import TrainConfig
from .common import train_and_test


def method_name(removed: str | None = None) -> str:
    """'hpmkd' or 'hpmkd-no-<component>' (hyphens in method names)."""
    if removed is None:
        return "hpmkd"
    if removed not in COMPONENTS:
        raise ValueError(f"unknown HPM-KD component {removed!r}; the components are {', '.join(COMPONENTS)}")
    return "hpmkd-no-" + removed.replace("_", "-")


@dataclass
class Stage:
    name: str
    model: nn.Module
    params: int
    width: float | None = None  # None for the teacher


@dataclass
class HPMKDContext:
    """What every HPM-KD step needs. ``student_config`` is the students' TrainConfig (seed set per run)."""

    data: ImageSplits
    out: Path
    device: torch.device
    teacher: nn.Module
    student_model: str
    student_config: TrainConfig
    temperature: float
    alpha: float
    settings: HPMKDSettings
    seeds: list[int]

    def cache(self, enabled: bool) -> LogitCache:
        return LogitCache(self.out / "logit_cache", enabled=enabled)

    @property
    def probe_data(self) -> ImageSplits:
        """What the probes and the chain's scoring students train on."""
        return training_subset(self.data, self.settings.probe_fraction)

    @property
    def assistant_data(self) -> ImageSplits:
        return training_subset(self.data, self.settings.assistant_fraction)

    def share(self, data: ImageSplits) -> float:
        """``data``'s training split as a share of the whole one: an epoch on it, in epochs on the whole."""
        return len(data.train_y) / len(self.data.train_y)

    def config(self, seed: int, epochs: int | None = None) -> TrainConfig:
        if not epochs:
            return dataclasses.replace(self.student_config, seed=seed)
        # A short probe keeps its warm-up short too: at most a quarter of its budget (a 1-epoch probe with a
        # 1-epoch warm-up would never leave the warm-up and score nothing).
        warmup = min(self.student_config.warmup_epochs, epochs / 4)
        return dataclasses.replace(self.student_config, seed=seed, epochs=epochs, warmup_epochs=warmup)

    def source(self, stage: Stage, cache: LogitCache, data: ImageSplits | None = None):
        """Whence a student trained on ``data`` (default: the whole split) takes ``stage``'s logits
        (``teacher_source``: a table or the live model)."""
        return teacher_source(stage.name, stage.model, data or self.data, self.student_config, self.device, cache)

    def val_logits(self, stage: Stage, cache: LogitCache) -> torch.Tensor:
        return split_logits(stage.model, self.data, "val", self.student_config, self.device, cache)


def training_subset(data: ImageSplits, fraction: float, seed: int = 0) -> ImageSplits:
    """``data`` with its training split cut to a seeded ``fraction`` (the same images every time; validation and
    test unchanged), normalised with the whole training split's statistics, as the teacher was: a frozen model's
    logits for an image are then the same in the subset as in the whole."""
    if fraction >= 1:
        return data
    n = len(data.train_y)
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max(1, round(fraction * n))].sort().values
    subset = dataclasses.replace(data, name=f"{data.name}: {len(keep):,} of its {n:,} training images",
                                 train_x=data.train_x[keep], train_y=data.train_y[keep])
    subset.__dict__["_channel_stats"] = data.channel_stats()  # ImageSplits.channel_stats reads this cache first
    return subset


def forward_flops(model: nn.Module, data: ImageSplits) -> int:
    """FLOPs of one forward pass of ``model`` on one image of ``data`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *data.train_x.shape[1:], device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops()


class PlanLedger:
    """What a plan spends, step by step: wall-clock seconds and student-epoch equivalents (module docstring)."""

    STEPS = ("probes", "chain_probes", "assistants", "assistant_logits")

    def __init__(self, ctx: "HPMKDContext"):
        self.ctx = ctx
        self.student_flops = forward_flops(create_model(ctx.student_model, ctx.data.num_classes, ctx.data.in_chans),
                                           ctx.data)
        self.epochs = dict.fromkeys(self.STEPS, 0.0)
        self.weights: dict[str, float] = {}  # stage name -> forward FLOPs over the student's
        self.tables: set = set()  # (stage, training images) whose logits were counted

    def weight(self, stage: "Stage") -> float:
        if stage.name not in self.weights:
            self.weights[stage.name] = forward_flops(stage.model, self.ctx.data) / self.student_flops
        return self.weights[stage.name]

    def students(self, step: str, epochs: int, data: ImageSplits, count: int = 1) -> None:
        self.epochs[step] += count * epochs * self.ctx.share(data)

    def assistant(self, stage: "Stage", epochs: int, data: ImageSplits) -> None:
        self.epochs["assistants"] += epochs * self.ctx.share(data) * self.weight(stage)

    def tables_for(self, stages: list["Stage"], data: ImageSplits) -> None:
        """The assistants' logit tables a student on ``data`` reads, each counted once (a forward pass: a third of
        a training epoch). The teacher's are not counted (module docstring)."""
        for stage in stages:
            key = (stage.name, data.name)
            if stage.width is not None and key not in self.tables:
                self.tables.add(key)
                self.epochs["assistant_logits"] += self.ctx.share(data) * self.weight(stage) / 3

    def to_dict(self) -> dict:
        return {**{k: round(v, 4) for k, v in self.epochs.items()}, "total": round(sum(self.epochs.values()), 4),
                "flops_vs_student": {k: round(v, 3) for k, v in self.weights.items()},
                "basis": "student-epoch equivalents: an epoch of the student on the whole training split is 1; "
                         "assistants weighed by forward FLOPs per image over the student's (torch.utils.flop_counter)"}


def _finished_runs(out: Path) -> set[str]:
    return {p.parent.name for p in (out / runs.RUNS_DIR).glob(f"*/{runs.RECORD_FILE}")}


def _count(model_name: str, data: ImageSplits):
    return lambda width: count_parameters(create_model(model_name, data.num_classes, data.in_chans, width=width))


def train_chain(ctx: HPMKDContext, n_assistants: int, cache: LogitCache, temperature: float, alpha: float,
                ledger: PlanLedger | None = None) -> list[Stage]:
    """Teacher, then ``n_assistants`` width-scaled students of the student's family, sizes geometric
    between teacher and student, each distilled (classic KD at ``temperature``, ``alpha``) from the
    stage before it, on ``ctx.assistant_data``; ``ledger`` counts what each assistant's training costs."""
    teacher_params = count_parameters(ctx.teacher)
    count = _count(ctx.student_model, ctx.data)
    data = ctx.assistant_data
    stages = [Stage("teacher", ctx.teacher, teacher_params)]
    for i, size in enumerate(geometric_sizes(teacher_params, count(1.0), n_assistants), start=1):
        width = round(width_for_parameters(size, count), 3)
        previous = stages[-1]
        config = ctx.config(ctx.seeds[0], ctx.settings.assistant_epochs)
        objective = KDObjective(ctx.source(previous, cache, data), temperature, alpha, config.label_smoothing)
        name = f"assistant{i}of{n_assistants}-T{temperature:g}-a{alpha:g}"
        model, _ = train_and_test(name, ctx.student_model, data, config, ctx.out, ctx.device, objective,
                                  evaluate_test=False, width=width)
        stage = Stage(f"assistant{i} (width {width:g})", model, count_parameters(model), width)
        if ledger is not None:
            ledger.tables_for([previous], data)
            ledger.assistant(stage, config.epochs, data)
        stages.append(stage)
    return stages


def student_teachers(stages: list[Stage], multi_teacher: bool, sees_teacher: bool) -> list[Stage]:
    """Whom the final student learns from: with one stage, the teacher; with multi-teacher, every stage
    (the teacher only if ``sees_teacher``); without it, the last assistant (plus the teacher if
    ``sees_teacher``)."""
    if len(stages) == 1:
        return stages
    if multi_teacher:
        return stages if sees_teacher else stages[1:]
    return [stages[0], stages[-1]] if sees_teacher else [stages[-1]]


def student_objective(ctx: HPMKDContext, stages: list[Stage], components: dict, temperature: float, alpha: float,
                      cache: LogitCache, data: ImageSplits | None = None) -> HPMKDObjective:
    teachers = student_teachers(stages, components["multi_teacher"], ctx.settings.student_sees_teacher)
    sources = [ctx.source(s, cache, data) for s in teachers]
    meta, val_logits = None, None
    if components["meta_temperature"]:
        meta = ctx.settings.meta_temperature(temperature)
        val_logits = [ctx.val_logits(s, cache) for s in teachers]
    return HPMKDObjective(sources, temperature, alpha, components["multi_teacher"], ctx.settings.tau, meta, val_logits,
                          ctx.student_config.label_smoothing)


def _new_student(ctx: HPMKDContext, seed: int) -> nn.Module:
    runtime.seed_everything(seed)  # in the calling thread, so initial weights depend on the seed alone
    return create_model(ctx.student_model, num_classes=ctx.data.num_classes, in_chans=ctx.data.in_chans)


def _run_students(ctx, jobs_spec, parallel: bool, cache: LogitCache, evaluate_test: bool,
                  data: ImageSplits | None = None):
    """jobs_spec: (method, seed, epochs, components, T, alpha, stages), each trained on ``data`` (default: the whole
    split). Returns records in order.

    Models and objectives (hence every teacher-logit table) are made here, in the calling thread, one
    after another: concurrent students then share the cache's entries instead of all missing at once."""
    data = data or ctx.data
    jobs = []
    for method, seed, epochs, components, temperature, alpha, stages in jobs_spec:
        model = _new_student(ctx, seed)
        objective = student_objective(ctx, stages, components, temperature, alpha, cache, data)
        jobs.append(lambda method=method, seed=seed, epochs=epochs, model=model, objective=objective: train_and_test(
            method, ctx.student_model, data, ctx.config(seed, epochs), ctx.out, ctx.device, objective, model=model,
            evaluate_test=evaluate_test)[1])
    return run_concurrently(jobs, ctx.device) if parallel and len(jobs) > 1 else [job() for job in jobs]


def _saved(path: Path, *keys: str):
    """The value at ``keys`` in the JSON file ``path``, or None."""
    value = json.loads(path.read_text()) if path.exists() else None
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _timed(ctx: HPMKDContext, compute, saved_seconds: float | None) -> dict:
    """``compute()``'s result with its wall-clock as ``seconds``; when it trained nothing (every run it asked for
    was finished already), ``saved_seconds`` where given: the cost of the call that trained them, not of reloading
    them."""
    before = _finished_runs(ctx.out)
    t0 = time.perf_counter()
    result = compute()
    result["seconds"] = time.perf_counter() - t0
    if _finished_runs(ctx.out) == before and saved_seconds is not None:
        result["seconds"] = saved_seconds
    return result


def configuration_search(ctx: HPMKDContext, parallel: bool, cache: LogitCache) -> dict:
    """The configuration manager's search, also ``kd-tuned``'s: a KD student per (T, alpha) of the grid, distilled
    from the teacher alone on ``ctx.probe_data`` for ``probe_epochs`` (first seed), scored on the validation split.
    With one teacher and no meta-temperature HPM-KD's loss is exactly KD's, so these are KD runs, shared by both
    methods and counted in both costs. Returns the probe rows, the choice, its wall-clock and its student epochs;
    written to ``hpmkd/search.json``."""
    s, path = ctx.settings, ctx.out / "hpmkd" / "search.json"
    grid, data = probe_grid(s), ctx.probe_data
    teacher_only = [Stage("teacher", ctx.teacher, count_parameters(ctx.teacher))]
    off = {c: False for c in COMPONENTS}

    def search():
        specs = [(f"probe-T{t:g}-a{a:g}", ctx.seeds[0], s.probe_epochs, off, t, a, teacher_only) for t, a in grid]
        records = _run_students(ctx, specs, parallel, cache, evaluate_test=False, data=data)
        rows = [{"temperature": t, "alpha": a, "val_accuracy": r["val_accuracy"], "val_loss": r["val_loss"]}
                for (t, a), r in zip(grid, records)]
        return {"probes": rows, **{k: choose_configuration(rows)[k] for k in ("temperature", "alpha")}}

    result = _timed(ctx, search, _saved(path, "seconds"))
    result.update(student_epochs=len(grid) * s.probe_epochs * ctx.share(data), parallel=parallel,
                  probe_epochs=s.probe_epochs, probe_images=len(data.train_y))
    atomic_write_json(result, path)
    return result


# The components whose removal changes what the plan decides, and how. ``parallel`` and ``cache`` change how
# fast the same runs go, so their variants use hpmkd's plan.
REPLANNED = {
    "config_manager": "T and alpha are the defaults; the chain is grown again at them",
    "progressive": "no chain; T and alpha from hpmkd's probes (they never use the chain)",
    "meta_temperature": "the chain is grown again, scored by students without it",
    "multi_teacher": "the chain is grown again, scored by students without it",
}


def plan(ctx: HPMKDContext, removed: str | None = None, full: dict | None = None) -> dict:
    """The plan's decisions, in this order: the configuration manager picks T and alpha from probes
    distilling from the teacher (``configuration_search``); then the chain is grown one assistant at a time
    (assistants and scoring students use the chosen T and alpha) while the validation gain stays above epsilon.
    ``planning`` says what it cost: wall-clock (the search's and the chain's) and student-epoch equivalents.

    ``removed``: the plan made without that component (``variant_plan``); it takes T and alpha from ``full``'s
    probes when it keeps the configuration manager, and counts their cost as its own. Probe runs are cached like
    any run, so calling this again costs only loading them (and reports the cost of the call that trained them)."""
    s = ctx.settings
    on = {**s.components, **({removed: False} if removed else {})}
    if removed is not None and full is None and on["config_manager"]:
        raise ValueError("a variant's plan that keeps the configuration manager takes T and alpha from the full plan")
    cache = ctx.cache(on["cache"])
    ledger = PlanLedger(ctx)
    temperature, alpha, probe_rows, search_seconds = ctx.temperature, ctx.alpha, [], 0.0
    if on["config_manager"]:
        search = (configuration_search(ctx, on["parallel"], cache) if removed is None else
                  {"probes": full["probes"], "temperature": full["temperature"], "alpha": full["alpha"],
                   "seconds": full["planning"]["search_seconds"], "student_epochs": full["planning"]["student_epochs"]["probes"]})
        temperature, alpha, probe_rows, search_seconds = (search["temperature"], search["alpha"], search["probes"],
                                                          search["seconds"])
        ledger.epochs["probes"] = search["student_epochs"]
    name = "plan.json" if removed is None else f"plan-{method_name(removed)}.json"

    def grow_chain():
        rows, stages = [], [Stage("teacher", ctx.teacher, count_parameters(ctx.teacher))]
        if not on["progressive"]:
            return {"rows": rows, "stages": stages}
        data = ctx.probe_data
        for n in range(0, s.max_assistants + 1):
            candidate = train_chain(ctx, n, cache, temperature, alpha, ledger)
            probe = f"chain{n}-probe" + ("" if removed is None else "-no-" + removed.replace("_", "-"))
            (record,) = _run_students(ctx, [(probe, ctx.seeds[0], s.chain_probe_epochs, on, temperature, alpha, candidate)],
                                      False, cache, evaluate_test=False, data=data)
            ledger.students("chain_probes", s.chain_probe_epochs, data)
            ledger.tables_for(student_teachers(candidate, on["multi_teacher"], s.student_sees_teacher), data)
            rows.append({"assistants": n, "stages": [st.name for st in candidate],
                         "params": [st.params for st in candidate], "val_accuracy": record["val_accuracy"],
                         "val_loss": record["val_loss"]})
            if n > 0 and stop_adding_stages(rows[-2]["val_accuracy"], record["val_accuracy"], s.chain_epsilon):
                break
            stages = candidate
        return {"rows": rows, "stages": stages}

    chain = _timed(ctx, grow_chain, _saved(ctx.out / "hpmkd" / name, "planning", "chain_seconds"))
    stages = chain["stages"]
    # the final students read the chosen assistants' tables on the whole training split
    ledger.tables_for(student_teachers(stages, on["multi_teacher"], s.student_sees_teacher), ctx.data)
    decisions = {
        "assistants": len(stages) - 1,
        "stages": [{"name": st.name, "params": st.params, "width": st.width} for st in stages],
        "chain_candidates": chain["rows"],
        "chain_epsilon": s.chain_epsilon,
        "temperature": temperature,
        "alpha": alpha,
        "probes": probe_rows,
        "probe_budget_epochs": s.probe_budget_epochs,
        "probe_epochs_used": len(probe_rows) * s.probe_epochs if removed is None else 0,
        "planning": {"search_seconds": search_seconds, "chain_seconds": chain["seconds"],
                     "seconds": search_seconds + chain["seconds"], "student_epochs": ledger.to_dict(),
                     "probe_images": len(ctx.probe_data.train_y), "assistant_images": len(ctx.assistant_data.train_y)},
        "cache": cache.stats.to_dict(),
        "replanned": removed is not None,
        "plan_note": "the full pipeline's" if removed is None else "re-planned without it: " + REPLANNED[removed],
    }
    atomic_write_json(decisions, ctx.out / "hpmkd" / name)
    return {**decisions, "_stages": stages}


def variant_plan(ctx: HPMKDContext, full: dict, removed: str | None = None) -> dict:
    """The plan a variant's students use: ``full`` (hpmkd's plan) when nothing is removed, when the component
    does not take part in planning (``parallel``, ``cache``) or is off in hpmkd already; otherwise the plan made
    without it (``plan(ctx, removed, full)``). ``replanned`` and ``plan_note`` say which."""
    if removed is None:
        return full
    method_name(removed)  # refuses an unknown component
    if removed in REPLANNED and ctx.settings.on(removed):
        return plan(ctx, removed, full)
    why = "it changes cost, not decisions" if ctx.settings.on(removed) else "it is off in hpmkd too"
    return {**full, "replanned": False, "plan_note": f"not re-planned: hpmkd's plan ({why})"}


def plan_summary(decisions: dict) -> dict:
    """What a variant's cost record and the ablation table say about its plan."""
    made = f"T {decisions['temperature']:g}, alpha {decisions['alpha']:g}, {decisions['assistants']} assistant(s)"
    return {"replanned": decisions["replanned"], "note": decisions["plan_note"], "temperature": decisions["temperature"],
            "alpha": decisions["alpha"], "assistants": decisions["assistants"],
            "stages": [st["name"] for st in decisions["stages"]], "text": f"{decisions['plan_note']}: {made}"}


def train_variant(ctx: HPMKDContext, decisions: dict, removed: str | None = None,
                  seeds: list[int] | None = None, variant: dict | None = None,
                  group: bool = False) -> tuple[list[dict], dict]:
    """Students of one variant for every seed: full HPM-KD (``removed`` None) or one component off, each with
    its plan (``variant_plan`` of ``decisions``, the full plan). Returns the run records and the variant's cost:
    the wall-clock of training the whole group of seeds (``student_seconds``, the time a user waits; also
    ``wall_seconds``), its plan's (``planning_seconds``), their sum (``total_seconds``), the same in student-epoch
    equivalents per student (``student_epochs``: the plan's, a student's training, and their sum), the cache's hits
    and time saved, and what its plan was. ``variant``: its plan, made already (``variant_plan``); ``group``: these
    seeds are one device's share (``kdlib.devices``), whose cost is kept apart (``cost_file``) until
    ``merge_group_costs`` joins the groups."""
    method = method_name(removed)
    seeds = list(ctx.seeds if seeds is None else seeds)
    components = dict(ctx.settings.components)
    if removed:
        components[removed] = False
    variant = variant or variant_plan(ctx, decisions, removed)
    stages, temperature, alpha = variant["_stages"], variant["temperature"], variant["alpha"]
    cache = ctx.cache(components["cache"])
    cost_path = cost_file(ctx, method, seeds if group else None)
    already_done = all(runs.is_finished(ctx.out, method, seed) for seed in seeds)
    meter = meter_for(ctx.device)  # once around the group: concurrent students share the GPU
    if meter is not None:
        meter.start()
    t0 = time.perf_counter()
    specs = [(method, seed, None, components, temperature, alpha, stages) for seed in seeds]
    records = _run_students(ctx, specs, components["parallel"], cache, evaluate_test=True)
    cost = {"method": method, "seeds": seeds, "parallel": components["parallel"],
            "wall_seconds": time.perf_counter() - t0, "cache": cache.stats.to_dict(),
            "energy_joules": meter.stop() if meter is not None else None, "energy_scope": "the group of seeds"}
    saved = json.loads(cost_path.read_text()) if cost_path.exists() else None
    if already_done and saved and saved["seeds"] == seeds:
        cost = saved  # the cost of the run that trained them, not of reloading
    planning = variant["planning"]
    cost.update(student_seconds=cost["wall_seconds"], planning_seconds=planning["seconds"],
                total_seconds=planning["seconds"] + cost["wall_seconds"], plan=plan_summary(variant),
                student_epochs={"planning": planning["student_epochs"]["total"],
                                "training": ctx.student_config.epochs,
                                "total": planning["student_epochs"]["total"] + ctx.student_config.epochs})
    atomic_write_json(cost, cost_path)
    teachers = [st.name for st in student_teachers(stages, components["multi_teacher"], ctx.settings.student_sees_teacher)]
    for r in records:
        r.update(components=components, teachers=teachers, initial_temperature=temperature, alpha=alpha,
                 final_temperature=r["history"][-1].get("next_temperature", temperature))
    return records, cost


def cost_file(ctx: HPMKDContext, method: str, group: list[int] | None = None) -> Path:
    """Where a variant's cost is kept: one file per variant, and one per device's group of seeds while split."""
    return ctx.out / "hpmkd" / (f"cost-{method}.json" if group is None else
                                f"cost-{method}.seeds-{'-'.join(map(str, group))}.json")


def merge_group_costs(ctx: HPMKDContext, costs: list[dict], devices: list, seeds: list[int]) -> dict:
    """One variant's cost from its device groups' (``train_variant(group=True)``, in ``devices`` order): the wall-
    clock a user waits is the slowest group's (the devices train at once), the students' compute the sum of the
    groups' (device-seconds, the terms of a one-device run's), total = planning + that, energy summed over the
    devices (None if any is unread); ``groups`` keeps each device's own. Written to the variant's cost file."""
    first = costs[0]
    energies = [c.get("energy_joules") for c in costs]
    student = float(sum(c["wall_seconds"] for c in costs))
    cache = {k: sum(c["cache"].get(k) or 0 for c in costs) for k in ("hits", "misses", "seconds_computing",
                                                                    "seconds_saved")}
    cache["hit_rate"] = cache["hits"] / (cache["hits"] + cache["misses"]) if cache["hits"] + cache["misses"] else None
    merged = {**first, "seeds": list(seeds), "wall_seconds": max(c["wall_seconds"] for c in costs),
              "student_seconds": student, "total_seconds": first["planning_seconds"] + student, "cache": cache,
              "energy_joules": None if any(e is None for e in energies) else float(sum(energies)),
              "energy_scope": "each device's group of seeds, summed",
              "groups": [{"device": str(d), "seeds": c["seeds"], "wall_seconds": c["wall_seconds"],
                          "energy_joules": c.get("energy_joules")} for d, c in zip(devices, costs)]}
    atomic_write_json(merged, cost_file(ctx, first["method"]))
    return merged


COST_ONLY = ("parallel", "cache")


def idle_reason(component: str, full: dict, variant: dict, hpmkd_runs: list[dict]) -> str | None:
    """Why removing ``component`` could not change what HPM-KD's students computed in this run, or None when it
    could (the ablation row is then a finding). ``full`` and ``variant``: hpmkd's plan and the variant's
    (``plan_summary``); ``hpmkd_runs``: hpmkd's run records. A variant whose plan differs from hpmkd's always counts:
    the component acted in planning."""
    if component in COST_ONLY:
        return "changes cost, not the computation (tested bit for bit)"
    if not all(r["components"][component] for r in hpmkd_runs):
        return "it is off in hpmkd too"
    if [variant[k] for k in ("temperature", "alpha", "stages")] != [full[k] for k in ("temperature", "alpha", "stages")]:
        return None
    if component == "progressive":
        return "the plan chose no assistant: the students learn from the teacher alone either way"
    if component == "multi_teacher" and all(len(r["teachers"]) == 1 for r in hpmkd_runs):
        return "one teacher: nothing to weigh"
    if component == "meta_temperature" and all(h.get("temperature") == r["initial_temperature"]
                                               for r in hpmkd_runs for h in r["history"]):
        # T changes after an epoch that gained less than min_progress over the one before, from the next epoch on
        epochs = max(len(r["history"]) for r in hpmkd_runs)
        if epochs <= 2:
            return f"T never moved: it can first change for a third epoch, and the students trained {epochs}"
        return ("T never moved: validation accuracy rose by at least min_progress after every epoch before the last "
                "(T changes only after an epoch that gained less)")
    if component == "config_manager" and (full["temperature"], full["alpha"]) == (DEFAULT_TEMPERATURE, DEFAULT_ALPHA):
        return "the probes chose the default T and alpha"
    return None


__all__ = ["COMPONENTS", "REPLANNED", "COST_ONLY", "cost_file", "merge_group_costs", "HPMKDContext", "HPMKDSettings", "method_name", "plan",
           "variant_plan", "plan_summary", "train_variant", "train_chain", "student_teachers", "student_objective",
           "configuration_search", "training_subset", "forward_flops", "idle_reason"]
