"""The MNIST notebook executed end to end in its demo preset, as `python -m kdlib run` does it."""

import json
import math
from pathlib import Path

import nbformat
import pytest

from conftest import run_kdlib
from reading import check_reads_as_saved
from kdlib import results_io, runs
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
    with pytest.raises(ValueError, match="demo, cpu-real, quick, full"):
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
        main(["run", "mnist-kd", "--out", str(tmp_path), "--preset", "huge"])
    assert "mnist-kd has the presets demo, cpu-real, quick, full" in capsys.readouterr().err
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
    students = ["direct", "kd", "kd-tuned", "kd@hpmkd-cost", "hpmkd", *ablation]
    assert [s["method"] for s in results["summary"]] == ["teacher", *students]
    assert all(s["seeds"] == [0, 1] for s in results["summary"] if s["method"] != "teacher")  # every row, both seeds
    # the demo's budgets keep KD meaningful: its teacher beats the directly trained student on validation
    val = {(r["method"], r["seed"]): r["val_accuracy"] for r in results["runs"]}
    assert val[("teacher", 0)] > max(v for (m, _), v in val.items() if m == "direct"), val
    kd = next(s for s in results["summary"] if s["method"] == "kd")
    assert kd["compression"] > 35
    assert all(r["test_accuracy"] > 0.5 for r in results["runs"])  # everything learned something

    # HPM-KD's cost counts its plan; kd@hpmkd-cost trains for that many student epochs
    plan, costs = results["hpmkd"]["plan"], {c["method"]: c for c in results["costs"]}
    assert len(plan["probes"]) == 4 and plan["probe_epochs_used"] <= plan["probe_budget_epochs"]
    assert [c["assistants"] for c in plan["chain_candidates"]][:1] == [0]
    assert [c["method"] for c in results["hpmkd"]["costs"]] == ["hpmkd", *ablation]
    hpmkd_cost = costs["hpmkd"]
    assert hpmkd_cost["planning_seconds"] == plan["planning"]["seconds"] > 0
    assert hpmkd_cost["total_seconds"] == hpmkd_cost["planning_seconds"] + hpmkd_cost["student_seconds"]
    assert hpmkd_cost["student_epochs"]["planning"] == plan["planning"]["student_epochs"]["total"] > 0
    epochs = {r["method"]: r["epochs"] for r in results["runs"]}
    assert epochs["kd@hpmkd-cost"] == round(hpmkd_cost["student_epochs"]["total"]) > epochs["kd"]
    assert costs["kd-tuned"]["planning_seconds"] == plan["planning"]["search_seconds"]  # the same search
    tuned = json.loads(runs.record_path(out, "kd-tuned", 0).read_text())
    assert (tuned["identity"]["objective"]["temperature"], tuned["identity"]["objective"]["alpha"]) == (
        plan["temperature"], plan["alpha"])

    # every comparison with HPM-KD carries its interval and its Holm-corrected p; a missing p means no spread
    differences = {}
    for c in results["comparisons"] + results["ablation"]:
        assert {"difference_mean", "ci_low", "ci_high", "p_value_holm"} <= set(c)
        acc = {(r["method"], r["seed"]): r["test_accuracy"] for r in results["runs"]}
        differences[c["method"], c["baseline"]] = {acc[c["method"], s] - acc[c["baseline"], s] for s in (0, 1)}
        assert c["p_value"] is not None or len(differences[c["method"], c["baseline"]]) == 1
    assert [(c["method"], c["baseline"]) for c in results["comparisons"]] == [
        ("kd", "direct"), ("hpmkd", "kd-tuned"), ("hpmkd", "kd"), ("hpmkd", "kd@hpmkd-cost")]
    assert [(c["method"], c["baseline"]) for c in results["ablation"]] == [(m, "hpmkd") for m in ablation]
    # a row whose component had nothing to do computed what hpmkd computed: the same predictions on every seed
    def predictions(method, seed):
        return json.loads(runs.record_path(out, method, seed).read_text())["test_predictions"]

    for row in results["ablation"]:
        assert row["counted"] == (row["nothing_to_do"] is None)
        if not row["counted"]:
            assert all(predictions(row["method"], s) == predictions("hpmkd", s) for s in (0, 1)), row
    assert {r["component"] for r in results["ablation"] if not r["counted"]} >= {"parallel", "cache"}
    assert [m["baseline"] for m in results["mcnemar"]] == ["kd-tuned", "kd"]
    assert len(results["mcnemar"][0]["per_seed"]) == 2
    for figure in ("samples", "accuracy", "retention", "val_accuracy", "confusion_teacher", "confusion_kd",
                   "hpmkd_traces", "probe_grid", "comparisons", "per_class", "temperature"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
    executed = nbformat.read(out / "01_mnist_kd.ipynb", as_version=4)
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")
    check_reads_as_saved(out / "01_mnist_kd.ipynb")  # as a shared link shows it
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
    assert {(r["method"], r["seed"]) for r in results["runs"]} == {("teacher", 0)} | {
        (m, s) for m in ("direct", "kd", "kd-tuned", "kd@hpmkd-cost", "hpmkd", "hpmkd-no-multi-teacher") for s in (0, 1)}


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


def test_the_kernels_own_messages_go_to_its_log_not_the_terminal(tmp_path, capfd):
    """The kernel process's stderr (its TCP warning; on Ctrl-C, a zmq traceback) is the machinery's, so `run`
    writes it to OUT/kernel.log; a user's terminal shows kdlib's lines."""
    import asyncio

    from kdlib.__main__ import KERNEL_LOG, _kernel_manager_logging_to

    log = tmp_path / KERNEL_LOG
    manager = _kernel_manager_logging_to(log)(kernel_name="python3")

    async def start_and_stop():
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        client.stop_channels()
        await manager.shutdown_kernel(now=True)

    asyncio.run(start_and_stop())
    assert "Kernel is running over TCP" in log.read_text()
    assert "IPKernelApp" not in capfd.readouterr().err
