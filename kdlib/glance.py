""""Results at a glance": what a run found, as the first thing its saved notebook shows.

A shared notebook link shows the saved notebook, read top to bottom, so its findings must come first; but they are
computed last. The notebook's second cell displays a placeholder with a display id, and the results cell replaces it
(``update``) with ``glance_markdown(results)``: Jupyter, papermill and nbclient (Kaggle's batch runs) all rewrite the
earlier output in place, so the saved notebook opens with this run's data, device, headline table and verdicts.

Everything here reads only ``results`` (results.json's content), so it is tested without training anything.
"""

from __future__ import annotations

ALPHA = 0.05
PLACEHOLDER = "*This run's findings appear here once its results cell has run.*"


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def outcome(c: dict, alpha: float = ALPHA) -> str:
    """Which way a paired comparison went: 'beats', 'loses', 'inconclusive', 'no spread' (the same difference on
    every seed: no test), 'one seed'; for a same-epochs comparison 'lossless' or 'not shown lossless' (its
    ``verdict``). Judged by the Holm-adjusted p where the comparison has one."""
    if c.get("kind") == "same-epochs":
        return c.get("verdict") or "not shown lossless"
    if c.get("ci_low") is None:
        return "one seed"
    p = c.get("p_value_holm", c.get("p_value"))
    if p is None:
        return "no spread"
    if p < alpha:
        return "beats" if c["difference_mean"] > 0 else "loses"
    return "inconclusive"


BASELINE_NAMES = {"frontier": "full training given the same time", "full": "full training at the same epochs"}


def verdict_sentence(c: dict, alpha: float = ALPHA) -> str:
    """One sentence: which way ``c`` (a comparison of results.json) went, by how much, with its 95% interval and
    Holm-adjusted p. 'Cannot be told apart' is what an interval across zero says; it is not 'equal'."""
    method, baseline = c["method"], c["baseline"]
    against = BASELINE_NAMES.get(baseline, baseline)
    if c.get("kind") == "control":
        against = f"its control {baseline} (same budget)"
    how = outcome(c, alpha)
    diff = f"{_points(c['difference_mean'])} points"
    if c.get("ci_low") is not None and how != "no spread":
        diff += f", 95% CI [{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
    p = c.get("p_value_holm")
    if p is not None:
        family = c.get("holm_family_size") or 1
        diff += f", Holm p = {_p(p)}" + (f" (family of {family})" if family > 1 else "")
    seeds = c.get("n", len(c.get("seeds", [])))
    diff += f", {seeds} seed{'s' if seeds != 1 else ''}"
    head = {"beats": f"**{method} beats {against}**",
            "loses": f"**{method} loses to {against}**",
            "inconclusive": f"{method} cannot be told apart from {against}",
            "no spread": f"{method} against {against}: the same difference on every seed (no test)",
            "one seed": f"{method} against {against}: one seed, no verdict",
            "lossless": f"**{method} is shown lossless** against {against} (interval above -0.5 points)",
            "not shown lossless": f"{method} is not shown lossless against {against}"}[how]
    return f"{head}: {diff}."


def _context(results: dict) -> str:
    data, hw = results.get("dataset", {}), results.get("hardware", {})
    sizes = [f"{data[k]:,} {name}" for k, name in (("n_train", "train"), ("n_val", "val"), ("n_test", "test"))
             if isinstance(data.get(k), int)]
    device = hw.get("device", "?")
    name = hw.get("device_name")
    seeds = sorted({r["seed"] for r in results.get("runs", []) if r.get("method") != "teacher"})
    parts = [f"**Data:** {data.get('name', '?')}" + (f" ({', '.join(sizes)})" if sizes else ""),
             f"**device:** {device}" + (f" ({name})" if name and name != device else ""),
             f"**preset:** `{results.get('preset', '?')}`",
             f"**seeds:** {', '.join(map(str, seeds)) or '?'}"]
    return " · ".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _accuracy(s: dict) -> str:
    std = s.get("test_accuracy_std")
    return _pct(s["test_accuracy_mean"]) + (f" ± {_pct(std)}" if std is not None else "")


def selection_glance(results: dict) -> list[str]:
    """CIFAR-10 / ImageNet-100: each method's accuracy, measured speed-up and samples backpropagated against full
    training; then every verdict, each rule's together."""
    from .experiments.selection import ordered_comparisons

    top5 = any(s.get("test_top5_mean") is not None for s in results["summary"])
    rows = []
    for s in results["summary"]:
        speedup = s.get("speedup_vs_full")
        rows.append([f"`{s['method']}`", _accuracy(s)] + ([_pct(s.get("test_top5_mean"))] if top5 else []) + [
            "n/a" if speedup is None else f"{speedup:.2f}x" + (" (above its ceiling: a timing error)"
                                                                if s.get("speedup_above_ceiling") else ""),
            "n/a" if s.get("realised_rate") is None else f"{s['realised_rate']:.2f}"])
    header = ["method", "test accuracy (%)"] + (["top-5 (%)"] if top5 else []) + [
        "speed-up vs full (wall-clock)", "samples vs full"]
    comps = results.get("comparisons", [])
    verdicts = [verdict_sentence(c) for c in ordered_comparisons(results)]
    return [_table(header, rows), _verdict_block(verdicts, "comparison", _fewest_seeds(comps))]


def distillation_glance(results: dict) -> list[str]:
    """MNIST: each method's accuracy, retention of the teacher's and compute per student; then HPM-KD against KD
    given the same search, plain KD and KD given HPM-KD's compute, and the ablation rows that count."""
    costs = {c["method"]: c for c in results.get("costs", [])}
    rows = []
    for s in results["summary"]:
        epochs = costs.get(s["method"], {}).get("student_epochs", {}).get("total")
        rows.append([f"`{s['method']}`", f"{s['params']:,}", _accuracy(s),
                     "" if s.get("retention") is None else f"{100 * s['retention']:.1f}",
                     "" if epochs is None else f"{epochs:.1f}"])
    table = _table(["method", "parameters", "test accuracy (%)", "retention of the teacher's (%)",
                    "compute per student (student epochs, planning included)"], rows)
    verdicts = [verdict_sentence(c) for c in results.get("comparisons", [])]
    ablation = results.get("ablation", [])
    verdicts += [verdict_sentence({**a, "baseline": "hpmkd"}) for a in ablation if a.get("counted")]
    idle = [a["method"] for a in ablation if not a.get("counted")]
    block = [_verdict_block(verdicts, "comparison", _fewest_seeds(results.get("comparisons", [])))]
    if idle:
        block.append("Not findings (the component had nothing to do in this run's plan, or changes cost only): "
                     + ", ".join(f"`{m}`" for m in idle) + ".")
    return [table, *block]


def _verdict_block(sentences: list[str], noun: str, seeds: int | None = None) -> str:
    if not sentences:
        return f"No {noun} was made: the run has too few methods or seeds for one."
    block = "**Verdicts** (95% intervals over paired seeds; Holm-corrected within each family):\n\n" + "\n".join(
        f"- {s}" for s in sentences)
    if seeds == 2:  # the t quantile with 1 degree of freedom is 12.7: a reader should not take such width for a bug
        block += ("\n\nWith 2 seeds a 95% interval is 12.7 times the half-difference of the two seeds' differences "
                  "(t with 1 degree of freedom), so it is wide: it says how little 2 seeds can show, not that "
                  "anything failed.")
    return block


def _fewest_seeds(comparisons: list[dict]) -> int | None:
    counts = [c.get("n", len(c.get("seeds", []))) for c in comparisons]
    return min(counts) if counts else None


def glance_markdown(results: dict) -> str:
    """The "Results at a glance" section of a finished run, as Markdown: data, device and preset; the headline
    table; one sentence per verdict."""
    body = (distillation_glance(results) if results.get("experiment") == "mnist-kd" else selection_glance(results))
    when = results.get("created", "")
    return "\n\n".join(["## Results at a glance", _context(results), *body,
                        f"<small>Every number above was computed by this run ({when}, kdlib "
                        f"{results.get('kdlib_version', '?')}) and is in its results.json; the sections below show "
                        "how.</small>"])
