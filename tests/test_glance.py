"""The "Results at a glance" section: which way each verdict went, by how much, with its interval, from results
alone; and every experiment notebook shows it first and fills it from its own results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdlib.experiments import NOTEBOOKS
from kdlib.glance import glance_markdown, outcome, verdict_sentence

ROOT = Path(__file__).resolve().parents[1]


def comparison(method, baseline, mean, low, high, p_holm, kind=None, **extra):
    return {"method": method, "baseline": baseline, "kind": kind, "difference_mean": mean, "ci_low": low,
            "ci_high": high, "p_value": p_holm, "p_value_holm": p_holm, "holm_family_size": 4, "n": 3,
            "seeds": [0, 1, 2], **extra}


def test_the_sentence_says_which_way_by_how_much_and_the_interval():
    won = verdict_sentence(comparison("ast", "frontier", 0.0123, 0.004, 0.0206, 0.012, "frontier"))
    assert won.startswith("**ast beats full training given the same time**: +1.23 points, 95% CI [+0.40, +2.06]")
    assert "Holm p = 0.012 (family of 4)" in won and "3 seeds" in won
    lost = verdict_sentence(comparison("hpmkd", "kd-tuned", -0.02, -0.03, -0.01, 0.001))
    assert lost.startswith("**hpmkd loses to kd-tuned**: -2.00 points")
    unclear = verdict_sentence(comparison("ast", "random@ast", 0.01, -0.02, 0.04, 0.6, "control"))
    assert unclear.startswith("ast cannot be told apart from its control random@ast (same budget): +1.00 points")
    # the same difference on every seed: an interval of one point and no test; never called a win
    flat = comparison("hpmkd-no-cache", "hpmkd", 0.0, 0.0, 0.0, None)
    assert outcome(flat) == "no spread" and "no test" in verdict_sentence(flat)
    one = comparison("ast", "frontier", 0.05, None, None, None, "frontier", n=1)
    assert outcome(one) == "one seed" and "95% CI" not in verdict_sentence(one)
    # a significant raw p that Holm lifts above 0.05 is not a win
    assert outcome({**comparison("a", "b", 0.01, 0.001, 0.02, 0.09), "p_value": 0.03}) == "inconclusive"
    same = comparison("ast", "full", -0.001, -0.004, 0.002, None, "same-epochs", verdict="lossless")
    assert verdict_sentence(same).startswith("**ast is shown lossless** against full training at the same epochs")


def selection_results():
    summary = [{"method": "full", "params": 10, "test_accuracy_mean": 0.7421, "test_accuracy_std": 0.002,
                "speedup_vs_full": 1.0, "realised_rate": 1.0},
               {"method": "ast", "params": 10, "test_accuracy_mean": 0.6406, "test_accuracy_std": 0.01,
                "speedup_vs_full": 3.6, "speedup_above_ceiling": True, "realised_rate": 0.31}]
    return {"experiment": "cifar10-ast", "preset": "cpu-real", "created": "2026-12-04T01:00:00+00:00",
            "kdlib_version": "0.1.0", "summary": summary,
            "dataset": {"name": "CIFAR-10 (jpeg)", "n_train": 22500, "n_val": 2500, "n_test": 5000},
            "hardware": {"device": "cpu", "device_name": "AMD EPYC"},
            "runs": [{"method": m, "seed": s} for m in ("full", "ast") for s in (0, 1)],
            "comparisons": [comparison("ast", "frontier", -0.0194, -0.0324, -0.0064, 0.2, "frontier")]}


def test_a_selection_glance_has_the_context_the_table_and_the_verdicts():
    text = glance_markdown(selection_results())
    assert text.startswith("## Results at a glance")
    assert "CIFAR-10 (jpeg) (22,500 train, 2,500 val, 5,000 test)" in text and "cpu (AMD EPYC)" in text
    assert "`cpu-real`" in text and "**seeds:** 0, 1" in text
    assert "| `full` | 74.21 ± 0.20 | 1.00x | 1.00 |" in text
    assert "3.60x (above its ceiling: a timing error)" in text  # never shown as a result
    assert "- ast cannot be told apart from full training given the same time: -1.94 points" in text
    assert "12.7 times" not in text  # 3 seeds
    two = selection_results()
    two["comparisons"][0].update(n=2, seeds=[0, 1])
    assert "With 2 seeds a 95% interval is 12.7 times" in glance_markdown(two)


def test_a_distillation_glance_counts_only_the_ablation_rows_that_acted():
    summary = [{"method": m, "params": p, "test_accuracy_mean": a, "test_accuracy_std": 0.001, "retention": r}
               for m, p, a, r in (("teacher", 11_200_000, 0.994, 1.0), ("hpmkd", 273_674, 0.9818, 0.9877))]
    results = {"experiment": "mnist-kd", "preset": "demo", "summary": summary, "dataset": {"name": "digits"},
               "hardware": {"device": "cpu"}, "runs": [{"method": "hpmkd", "seed": 0}],
               "costs": [{"method": "hpmkd", "student_epochs": {"total": 9.44}}],
               "comparisons": [comparison("hpmkd", "kd-tuned", 0.001, -0.002, 0.004, 0.5)],
               "ablation": [{**comparison("hpmkd-no-meta-temperature", "hpmkd", -0.004, -0.006, -0.002, 0.01),
                             "counted": True},
                            {**comparison("hpmkd-no-cache", "hpmkd", 0.0, 0.0, 0.0, None), "counted": False}]}
    text = glance_markdown(results)
    assert "| `hpmkd` | 273,674 | 98.18 ± 0.10 | 98.8 | 9.4 |" in text
    assert "- hpmkd cannot be told apart from kd-tuned: +0.10 points" in text
    assert "- **hpmkd-no-meta-temperature loses to hpmkd**: -0.40 points" in text
    assert "hpmkd-no-cache" not in text.split("Not findings")[0] and "`hpmkd-no-cache`" in text


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.values()))
def test_each_notebook_shows_the_glance_first_and_fills_it_from_its_results(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "glance" in first_code["metadata"]["tags"] and "display_id=True" in "".join(first_code["source"])
    assert first_code["metadata"]["jupyter"]["source_hidden"] and first_code["metadata"]["_kg_hide-input"]
    sources = ["".join(c["source"]) for c in cells]
    writes = next(i for i, s in enumerate(sources) if "results_io.write_results(results" in s)
    assert "glance.update(Markdown(glance_markdown(results)))" in sources[writes]
    setup = next(c for c in cells if "kdlib-setup" in c["metadata"].get("tags", []))
    assert setup["metadata"]["jupyter"]["source_hidden"] and setup["metadata"]["_kg_hide-input"]


def test_kdlibs_warnings_carry_no_local_path(tmp_path):
    import warnings

    import kdlib

    ours = str(Path(kdlib.__file__).parent / "data" / "mnist.py")
    assert warnings.formatwarning("3 duplicates", UserWarning, ours, 87) == "UserWarning: 3 duplicates\n"
    theirs = warnings.formatwarning("deprecated", UserWarning, "/elsewhere/lib.py", 3)
    assert "/elsewhere/lib.py:3" in theirs  # other libraries' warnings keep Python's format
