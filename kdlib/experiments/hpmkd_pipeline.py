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
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .. import runtime
from ..data.splits import ImageSplits
from ..distill.cache import LogitCache
from ..distill.hpmkd import (COMPONENTS, HPMKDObjective, HPMKDSettings, choose_configuration, geometric_sizes,
                             probe_grid, run_concurrently, stop_adding_stages, width_for_parameters)
from ..distill.kd import KDObjective
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

    def config(self, seed: int, epochs: int | None = None) -> TrainConfig:
        if not epochs:
            return dataclasses.replace(self.student_config, seed=seed)
        # A short probe keeps its warm-up short too: at most a quarter of its budget (a 1-epoch probe with a
        # 1-epoch warm-up would never leave the warm-up and score nothing).
        warmup = min(self.student_config.warmup_epochs, epochs / 4)
        return dataclasses.replace(self.student_config, seed=seed, epochs=epochs, warmup_epochs=warmup)

    def source(self, stage: Stage, cache: LogitCache):
        """Whence a student of this run takes ``stage``'s logits (``teacher_source``: a table or the live model)."""
        return teacher_source(stage.name, stage.model, self.data, self.student_config, self.device, cache)

    def val_logits(self, stage: Stage, cache: LogitCache) -> torch.Tensor:
        return split_logits(stage.model, self.data, "val", self.student_config, self.device, cache)


def _count(model_name: str, data: ImageSplits):
    return lambda width: count_parameters(create_model(model_name, data.num_classes, data.in_chans, width=width))


def train_chain(ctx: HPMKDContext, n_assistants: int, cache: LogitCache, temperature: float,
                alpha: float) -> list[Stage]:
    """Teacher, then ``n_assistants`` width-scaled students of the student's family, sizes geometric
    between teacher and student, each distilled (classic KD at ``temperature``, ``alpha``) from the
    stage before it."""
    teacher_params = count_parameters(ctx.teacher)
    count = _count(ctx.student_model, ctx.data)
    stages = [Stage("teacher", ctx.teacher, teacher_params)]
    for i, size in enumerate(geometric_sizes(teacher_params, count(1.0), n_assistants), start=1):
        width = round(width_for_parameters(size, count), 3)
        previous = stages[-1]
        config = ctx.config(ctx.seeds[0], ctx.settings.assistant_epochs)
        objective = KDObjective(ctx.source(previous, cache), temperature, alpha, config.label_smoothing)
        name = f"assistant{i}of{n_assistants}-T{temperature:g}-a{alpha:g}"
        model, _ = train_and_test(name, ctx.student_model, ctx.data, config, ctx.out, ctx.device, objective,
                                  evaluate_test=False, width=width)
        stages.append(Stage(f"assistant{i} (width {width:g})", model, count_parameters(model), width))
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
                      cache: LogitCache) -> HPMKDObjective:
    teachers = student_teachers(stages, components["multi_teacher"], ctx.settings.student_sees_teacher)
    sources = [ctx.source(s, cache) for s in teachers]
    meta, val_logits = None, None
    if components["meta_temperature"]:
        meta = ctx.settings.meta_temperature(temperature)
        val_logits = [ctx.val_logits(s, cache) for s in teachers]
    return HPMKDObjective(sources, temperature, alpha, components["multi_teacher"], ctx.settings.tau, meta, val_logits,
                          ctx.student_config.label_smoothing)


def _new_student(ctx: HPMKDContext, seed: int) -> nn.Module:
    runtime.seed_everything(seed)  # in the calling thread, so initial weights depend on the seed alone
    return create_model(ctx.student_model, num_classes=ctx.data.num_classes, in_chans=ctx.data.in_chans)


def _run_students(ctx, jobs_spec, parallel: bool, cache: LogitCache, evaluate_test: bool):
    """jobs_spec: (method, seed, epochs, components, T, alpha, stages). Returns records in order.

    Models and objectives (hence every teacher-logit table) are made here, in the calling thread, one
    after another: concurrent students then share the cache's entries instead of all missing at once."""
    jobs = []
    for method, seed, epochs, components, temperature, alpha, stages in jobs_spec:
        model = _new_student(ctx, seed)
        objective = student_objective(ctx, stages, components, temperature, alpha, cache)
        jobs.append(lambda method=method, seed=seed, epochs=epochs, model=model, objective=objective: train_and_test(
            method, ctx.student_model, ctx.data, ctx.config(seed, epochs), ctx.out, ctx.device, objective, model=model,
            evaluate_test=evaluate_test)[1])
    return run_concurrently(jobs, ctx.device) if parallel and len(jobs) > 1 else [job() for job in jobs]


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
    distilling from the teacher; then the chain is grown one assistant at a time (assistants and scoring
    students use the chosen T and alpha) while the validation gain stays above epsilon.

    ``removed``: the plan made without that component (``variant_plan``); it takes T and alpha from ``full``'s
    probes when it keeps the configuration manager. Probe runs are cached like any run, so calling this again
    costs only loading them."""
    s = ctx.settings
    on = {**s.components, **({removed: False} if removed else {})}
    if removed is not None and full is None and on["config_manager"]:
        raise ValueError("a variant's plan that keeps the configuration manager takes T and alpha from the full plan")
    cache = ctx.cache(on["cache"])
    seed = ctx.seeds[0]
    teacher_only = [Stage("teacher", ctx.teacher, count_parameters(ctx.teacher))]
    temperature, alpha, probe_rows = ctx.temperature, ctx.alpha, []
    if on["config_manager"] and removed is not None:
        temperature, alpha, probe_rows = full["temperature"], full["alpha"], full["probes"]
    elif on["config_manager"]:
        grid = probe_grid(s)
        specs = [(f"probe-T{t:g}-a{a:g}", seed, s.probe_epochs, {**on, "meta_temperature": False}, t, a, teacher_only)
                 for t, a in grid]
        records = _run_students(ctx, specs, on["parallel"], cache, evaluate_test=False)
        probe_rows = [{"temperature": t, "alpha": a, "val_accuracy": r["val_accuracy"], "val_loss": r["val_loss"]}
                      for (t, a), r in zip(grid, records)]
        best = choose_configuration(probe_rows)
        temperature, alpha = best["temperature"], best["alpha"]
    chain_rows, stages = [], teacher_only
    if on["progressive"]:
        for n in range(0, s.max_assistants + 1):
            candidate = train_chain(ctx, n, cache, temperature, alpha)
            name = f"chain{n}-probe" + ("" if removed is None else "-no-" + removed.replace("_", "-"))
            (record,) = _run_students(ctx, [(name, seed, s.chain_probe_epochs, on, temperature, alpha, candidate)],
                                      False, cache, evaluate_test=False)
            chain_rows.append({"assistants": n, "stages": [st.name for st in candidate],
                               "params": [st.params for st in candidate], "val_accuracy": record["val_accuracy"],
                               "val_loss": record["val_loss"]})
            if n > 0 and stop_adding_stages(chain_rows[-2]["val_accuracy"], record["val_accuracy"], s.chain_epsilon):
                break
            stages = candidate
    decisions = {
        "assistants": len(stages) - 1,
        "stages": [{"name": st.name, "params": st.params, "width": st.width} for st in stages],
        "chain_candidates": chain_rows,
        "chain_epsilon": s.chain_epsilon,
        "temperature": temperature,
        "alpha": alpha,
        "probes": probe_rows,
        "probe_budget_epochs": s.probe_budget_epochs,
        "probe_epochs_used": len(probe_rows) * s.probe_epochs if removed is None else 0,
        "cache": cache.stats.to_dict(),
        "replanned": removed is not None,
        "plan_note": "the full pipeline's" if removed is None else "re-planned without it: " + REPLANNED[removed],
    }
    name = "plan.json" if removed is None else f"plan-{method_name(removed)}.json"
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
            "alpha": decisions["alpha"], "assistants": decisions["assistants"], "text": f"{decisions['plan_note']}: {made}"}


def train_variant(ctx: HPMKDContext, decisions: dict, removed: str | None = None,
                  seeds: list[int] | None = None) -> tuple[list[dict], dict]:
    """Students of one variant for every seed: full HPM-KD (``removed`` None) or one component off, each with
    its plan (``variant_plan`` of ``decisions``, the full plan). Returns the run records and the variant's cost:
    wall-clock of the whole group of seeds (the time a user waits; planning excluded, as for hpmkd), the cache's
    hits and time saved, and what its plan was."""
    method = method_name(removed)
    seeds = list(ctx.seeds if seeds is None else seeds)
    components = dict(ctx.settings.components)
    if removed:
        components[removed] = False
    variant = variant_plan(ctx, decisions, removed)
    stages, temperature, alpha = variant["_stages"], variant["temperature"], variant["alpha"]
    cache = ctx.cache(components["cache"])
    cost_path = ctx.out / "hpmkd" / f"cost-{method}.json"
    already_done = all((ctx.out / "runs" / f"{method}-seed{seed}" / "record.json").exists() for seed in seeds)
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
        cost = {**saved, "plan": plan_summary(variant)}  # the cost of the run that trained them, not of reloading
    else:
        cost["plan"] = plan_summary(variant)
        atomic_write_json(cost, cost_path)
    teachers = [st.name for st in student_teachers(stages, components["multi_teacher"], ctx.settings.student_sees_teacher)]
    for r in records:
        r.update(components=components, teachers=teachers, initial_temperature=temperature, alpha=alpha,
                 final_temperature=r["history"][-1].get("next_temperature", temperature))
    return records, cost


__all__ = ["COMPONENTS", "REPLANNED", "HPMKDContext", "HPMKDSettings", "method_name", "plan", "variant_plan",
           "plan_summary", "train_variant", "train_chain", "student_teachers", "student_objective"]
