"""`python -m kdlib run` as a person at a terminal meets it: a refusal leaves nothing behind, each epoch shows a
line while the notebook trains, a cell that hangs is stopped and named, and the run ends with the experiment's
own summary."""

import pytest

import kdlib.__main__ as cli


def test_a_missing_notebook_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "NOTEBOOK_DIR", tmp_path / "installed" / "kdlib" / "notebooks")
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    out = tmp_path / "out"
    assert cli.main(["run", "cifar10-ast", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "02_cifar10_ast.ipynb is missing" in err[0] and "reinstall" in err[0]
    assert "clone" not in err[0] and not out.exists()


# ---- --help ----------------------------------------------------------------------------------------------------

def test_help_lists_each_experiment_with_its_presets_and_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, kdlib.__main__ as cli\n"
            "try:\n    cli.main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[-1] == "no torch", proc.stderr
    for experiment, presets in cli.PRESETS.items():
        assert any(line.split() == [experiment, *(p + "," for p in presets[:-1]), presets[-1]] for line in lines)


def test_the_presets_help_lists_are_the_experiments_own():
    assert set(cli.PRESETS) == set(cli.NOTEBOOKS)
    for experiment, presets in cli.PRESETS.items():
        assert presets == cli.experiment_module(experiment).PRESETS


# ---- one line per epoch ----------------------------------------------------------------------------------------

@pytest.fixture
def batch(monkeypatch):
    """Whether this is a batch run, as ``python -m kdlib run`` or a Kaggle batch session sets it."""
    from kdlib import runtime

    def set_batch(on: bool):
        monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
        if on:
            monkeypatch.setenv(runtime.BATCH_ENV, "1")
        else:
            monkeypatch.delenv(runtime.BATCH_ENV, raising=False)
    return set_batch


@pytest.mark.parametrize("batch_run", [True, False], ids=["batch", "interactive"])
def test_training_prints_a_line_per_epoch_in_batch_runs_only(tmp_path, capsys, batch, batch_run):
    import torch

    from conftest import tiny_splits
    from kdlib.experiments.common import train_and_test
    from kdlib.train import TrainConfig

    batch(batch_run)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, seed=3, progress=True)
    train_and_test("direct", "simplecnn", tiny_splits(), config, tmp_path, torch.device("cpu"))
    lines = [line for line in capsys.readouterr().out.splitlines() if cli.EPOCH_LINE.match(line)]
    if not batch_run:
        assert lines == []  # the tqdm.auto bar is the progress there
        return
    assert [line.split(":")[0] for line in lines] == ["[direct seed 3] epoch 1/2", "[direct seed 3] epoch 2/2"]
    assert all(" val accuracy " in line and line.endswith(" s") for line in lines)


def test_the_interleaved_ast_runs_print_each_run_s_epochs(tmp_path, capsys, batch):
    import json

    from kdlib import runs
    from kdlib.experiments import selection

    def train_slice(method, seed, stop_after):
        folder = runs.run_dir(tmp_path, method, seed)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "history.json"
        history = json.loads(path.read_text()) if path.exists() else []
        while len(history) < (2 if stop_after is None else stop_after):
            history.append({"epoch": len(history) + 1, "epoch_seconds": 1.5, "val_accuracy": 0.5})
        path.write_text(json.dumps(history))
        return {"method": method, "seed": seed} if stop_after is None else None

    batch(True)
    selection.run_all(["full", "ast"], [0], 2, train_slice, tmp_path, progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if cli.EPOCH_LINE.match(line)]
    # in the order they trained (the methods' order rotates every epoch)
    assert lines == [f"[{m} seed 0] epoch {e}/2: val accuracy 50.00%, 1.5 s"
                     for m, e in (("full", 1), ("ast", 1), ("ast", 2), ("full", 2))]


def test_the_terminal_gets_the_epoch_lines_as_they_come_and_nothing_else():
    import io

    from kdlib import runtime

    line = runtime.epoch_line("ast seed 0", 3, 8, 0.9125, 12.34)
    assert line == "[ast seed 0] epoch 3/8: val accuracy 91.25%, 12.3 s" and cli.EPOCH_LINE.match(line)
    terminal = io.StringIO()
    lines = cli._EpochLines(terminal)
    lines.write("data: digits; preset demo\n" + line[:10])  # papermill hands over messages, not lines
    assert terminal.getvalue() == ""
    lines.write(line[10:] + "\n| method | acc |\n")
    assert terminal.getvalue() == line + "\n"


# ---- the summary at the end --------------------------------------------------------------------------------------

def _ast_results():
    """A cifar10-ast results dict as selection.results makes it: full, ast at about 0.3 of full's samples and its
    control, 3 seeds, ast 7 to 9 points above its control."""
    from kdlib.experiments import selection

    def record(method, seed, seconds, backprop, accuracy):
        history = [{"epoch": e + 1, "epoch_seconds": s, "samples_forwarded": 1000, "samples_backpropagated": b,
                    "val_accuracy": accuracy, "energy_joules": None} for e, (s, b) in enumerate(zip(seconds, backprop))]
        return {"method": method, "model": "m", "params": 1, "seed": seed, "test_accuracy": accuracy,
                "val_accuracy": accuracy, "train_seconds": float(sum(seconds)), "epochs": len(seconds),
                "samples_forwarded": 1000 * len(seconds), "samples_backpropagated": sum(backprop),
                "optimizer_steps": 10, "energy_joules": None, "history": history}

    runs = []
    for seed in range(3):
        runs += [record("full", seed, [1.0] * 4, [1000] * 4, 0.80 + 0.01 * seed),
                 record("ast", seed, [1.0] + [0.5] * 3, [1000] + [300] * 3, 0.78 + 0.01 * seed),
                 record("random@ast", seed, [1.0] + [0.5] * 3, [1000] + [300] * 3, (0.71, 0.73, 0.71)[seed])]
    dataset = {"name": "digits", "source": "embedded", "n_train": 1000, "n_val": 100, "n_test": 100}
    return selection.results("cifar10-ast", "demo", dataset, {"device": "cpu"}, runs, {})


def test_the_ast_summary_gives_speed_up_budget_and_verdicts_not_distillation_columns():
    results = _ast_results()
    text = cli.summary_text(results)
    table = text.splitlines()[1]
    assert "speed-up vs full" in table and "backprop vs full" in table
    assert "retention" not in text and "compression" not in text
    assert "1.60x" in text  # ast: 4 s of full training against its 2.5 s
    verdicts = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(verdicts) == len(results["comparisons"]) > 0
    assert any("ast BEATS its control random@ast" in line for line in verdicts)


def test_the_mnist_summary_is_the_accuracy_and_retention_table():
    from kdlib import results_io

    runs = [{"method": m, "model": "m", "params": p, "seed": 0, "test_accuracy": a, "val_accuracy": a,
             "train_seconds": 5.0, "epochs": 1} for m, p, a in (("teacher", 100, 0.99), ("direct", 10, 0.95))]
    dataset = {"name": "digits", "source": "embedded", "n_train": 1, "n_val": 1, "n_test": 1}
    text = cli.summary_text(results_io.build_results("mnist-kd", "demo", dataset, {}, runs))
    assert "retention (%)" in text and "speed-up" not in text and "direct" in text


# ---- a cell that runs too long -----------------------------------------------------------------------------------

def test_a_cell_past_the_timeout_is_stopped_and_named_in_one_line(tmp_path, monkeypatch, capsys):
    """A notebook standing in for the experiment's (a parameters cell, then a cell that sleeps) with a 2-second
    timeout: one line naming the cell, and the partly executed notebook kept."""
    import nbformat

    from kdlib.experiments import NOTEBOOKS

    cells = [nbformat.v4.new_code_cell('PRESET = "demo"\nOUT_DIR = DATA_DIR = None\nSEEDS = DEVICE = None'),
             nbformat.v4.new_code_cell("x = 1"),
             nbformat.v4.new_code_cell("import time\ntime.sleep(60)")]
    cells[0].metadata["tags"] = ["parameters"]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
              "language_info": {"name": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), folder / NOTEBOOKS["cifar10-ast"])
    monkeypatch.setattr(cli, "NOTEBOOK_DIR", folder)
    monkeypatch.chdir(tmp_path)  # a relative --out (papermill runs from the notebook's folder meanwhile)
    out = tmp_path / "out"
    assert cli.main(["run", "cifar10-ast", "--out", "out", "--cell-timeout", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "cell [4] ('import time') ran past the cell timeout of 2 s" in err[0] and "--cell-timeout" in err[0]
    assert cli.failed_notebook_path(out, "cifar10-ast").exists() and not (out / NOTEBOOKS["cifar10-ast"]).exists()


def test_a_negative_cell_timeout_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["run", "cifar10-ast", "--out", str(tmp_path / "out"), "--cell-timeout", "-1"])
    assert "--cell-timeout -1: give seconds above 0, or 0 for no limit" in capsys.readouterr().err
