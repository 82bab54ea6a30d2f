"""The MNIST notebook executed end to end in its demo preset, as `python -m kdlib run` does it."""

import json
import math
from pathlib import Path

import nbformat
import pytest

from conftest import run_kdlib
from kdlib import results_io
from kdlib.__main__ import main
from kdlib.data.mnist import load_digits_28
from kdlib.experiments import NOTEBOOKS, mnist_kd

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(NOTEBOOKS.values()))
def test_notebook_contract(name):
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for parameter in ("PRESET", "DATA_DIR", "OUT_DIR", "SEEDS"):
        assert f"{parameter} =" in tagged[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_bad_parameters_are_explained(tmp_path, capsys):
    with pytest.raises(ValueError, match="demo, quick, full"):
        mnist_kd.make_config("huge")
    with pytest.raises(ValueError, match="epochs"):
        mnist_kd.make_config("demo", student_epochs=0)
    with pytest.raises(SystemExit):
        main(["run", "mnist-kd", "--out", str(tmp_path), "--data", str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "cifar10-ast", "--out", str(tmp_path), "--teacher-epochs", "3"])
    assert "does not apply to cifar10-ast" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "mnist-kd", "--out", str(tmp_path), "--preset", "cpu-real"])
    assert "mnist-kd has the presets demo, quick, full" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "mnist-kd", "--out", str(tmp_path), "--methods", "full"])
    assert "--methods does not apply to mnist-kd" in capsys.readouterr().err


def test_demo_teacher_trains_at_least_as_many_steps_as_a_student():
    """The demo compares students against a teacher that must know more than they do. With 2 teacher epochs
    against 6 student epochs (40 against 120 SGD steps on the digits) the teacher stopped at 95% validation
    accuracy, below the direct student's 97-99%, and KD "lost" to direct training because of the budget."""
    cfg = mnist_kd.make_config("demo")
    n_train = len(load_digits_28(cfg.data_seed).train_y)

    def steps(config):
        return config.epochs * math.ceil(n_train / config.batch_size)

    assert steps(cfg.teacher) >= steps(cfg.student), (steps(cfg.teacher), steps(cfg.student))


@pytest.mark.notebook
def test_demo_notebook_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_kdlib("run", "mnist-kd", "--preset", "demo", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results_io.validate_results(results) == []
    assert results["experiment"] == "mnist-kd" and results["preset"] == "demo"
    assert "digits" in results["dataset"]["name"] and "not MNIST" in results["dataset"]["name"]
    ablation = ["hpmkd-no-" + c for c in ("progressive", "meta-temperature", "multi-teacher", "config-manager",
                                          "parallel", "cache")]
    assert [s["method"] for s in results["summary"]] == ["teacher", "direct", "kd", "hpmkd", *ablation]
    # the demo's budgets keep KD meaningful: its teacher beats the directly trained student on validation
    val = {(r["method"], r["seed"]): r["val_accuracy"] for r in results["runs"]}
    direct = [v for (m, _), v in val.items() if m == "direct"]
    assert val[("teacher", 0)] > max(direct), val
    kd = next(s for s in results["summary"] if s["method"] == "kd")
    assert kd["n_seeds"] == 2 and kd["compression"] > 35
    hpmkd = next(s for s in results["summary"] if s["method"] == "hpmkd")
    assert hpmkd["n_seeds"] == 2 and 0 <= hpmkd["p_value_vs_kd"] <= 1
    assert all(s["n_seeds"] == 1 for s in results["summary"] if s["method"] in ablation)  # the demo ablates seed 0
    assert all(r["test_accuracy"] > 0.5 for r in results["runs"])  # everything learned something
    plan = results["hpmkd"]["plan"]
    assert len(plan["probes"]) == 4 and plan["probe_epochs_used"] <= plan["probe_budget_epochs"]
    assert [c["assistants"] for c in plan["chain_candidates"]][:1] == [0]
    assert [c["method"] for c in results["hpmkd"]["costs"]] == ["hpmkd", *ablation]
    assert [c["method"] for c in results["comparisons"]] == ["kd", "hpmkd"]
    assert len(results["mcnemar"][0]["per_seed"]) == 2
    for figure in ("samples", "accuracy", "retention", "val_accuracy", "confusion_teacher", "confusion_kd",
                   "hpmkd_traces"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
    executed = nbformat.read(out / "01_mnist_kd.ipynb", as_version=4)
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")
    assert (out / "results.csv").exists() and (out / "results.txt").exists()


@pytest.mark.notebook
def test_notebook_on_mnist_files_with_augmentation(tmp_path):
    """The real-data path: DATA_DIR with IDX files (hojjatk names, nested), the quick preset's augmentation
    (so the KD teacher runs on every augmented batch), one epoch each."""
    from conftest import HOJJATK_NAMES, write_idx_dataset

    write_idx_dataset(tmp_path / "mnist-dataset", n_train=300, n_test=60, names=HOJJATK_NAMES, nested=True)
    out = tmp_path / "out"
    proc = run_kdlib("run", "mnist-kd", "--preset", "quick", "--out", str(out), "--data", str(tmp_path / "mnist-dataset"),
                     "--seeds", "0", "1", "--teacher-epochs", "1", "--student-epochs", "1", "--ablate", "multi_teacher")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results_io.validate_results(results) == []
    assert results["dataset"]["name"] == "MNIST (idx)"
    assert (results["dataset"]["n_train"], results["dataset"]["n_val"], results["dataset"]["n_test"]) == (270, 30, 60)
    assert results["config"]["student"]["augment_shift"] == 2.0
    assert {(r["method"], r["seed"]) for r in results["runs"]} == {
        ("teacher", 0), ("direct", 0), ("direct", 1), ("kd", 0), ("kd", 1), ("hpmkd", 0), ("hpmkd", 1),
        ("hpmkd-no-multi-teacher", 0), ("hpmkd-no-multi-teacher", 1)}


@pytest.mark.notebook
def test_missing_data_fails_with_the_message_and_keeps_the_notebook(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["run", "mnist-kd", "--preset", "quick", "--out", str(tmp_path / "out"), "--data", str(empty)])
    assert code == 1
    assert not (tmp_path / "out" / "01_mnist_kd.ipynb").exists()  # only a finished run takes the plain name
    executed = nbformat.read(tmp_path / "out" / "01_mnist_kd.failed.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "DataNotFoundError" and "hojjatk/mnist-dataset" in errors[0]["evalue"]
