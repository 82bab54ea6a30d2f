"""Every parameter is checked for type and range where it enters (the notebook's parameters cell through
make_config, the CLI before a kernel starts), each with one line that names it; nothing is coerced."""

import json
import re

import pytest
import torch

from kdlib import runtime
from kdlib.__main__ import main
from kdlib.experiments import cifar10_ast, imagenet100_ast, mnist_kd
from kdlib.experiments import NOTEBOOKS
from kdlib.experiments.common import MAX_EPOCHS
from kdlib.paths import NOTEBOOK_DIR

EXPERIMENTS = (mnist_kd, cifar10_ast, imagenet100_ast)
AST = (cifar10_ast, imagenet100_ast)


@pytest.mark.parametrize("seeds, message", [
    ("10", r"SEEDS \(--seeds\)='10' must be a list of seeds"),
    (5, r"SEEDS \(--seeds\)=5 must be a list of seeds, e.g. \[5\]"),
    ([0.7], r"0\.7 is not a seed"),
    ([2.0], r"2\.0 is not a seed"),
    ([True], r"True is not a seed"),
    ([-1], r"-1 is not a seed"),
    ([2**32], r"4294967296 is not a seed; seeds are whole numbers from 0 to 4294967295"),
    (["1"], r"'1' is not a seed"),
    ([], r"at least one seed"),
    ([3, 3], r"repeats \[3\]"),
])
@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda m: m.EXPERIMENT)
def test_seeds_are_distinct_whole_numbers_below_2_to_the_32(exp, seeds, message):
    with pytest.raises(ValueError, match=message):
        exp.make_config("demo", seeds=seeds)


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda m: m.EXPERIMENT)
def test_good_seeds_are_kept_as_given(exp):
    assert exp.make_config("demo", seeds=(2**32 - 1, 0, 7)).seeds == [2**32 - 1, 0, 7]


@pytest.mark.parametrize("epochs", [2.5, 0, -3, MAX_EPOCHS + 1, 10**8, "4", True, float("nan")])
@pytest.mark.parametrize("exp", AST, ids=lambda m: m.EXPERIMENT)
def test_epochs_are_whole_numbers_within_the_stated_bound(exp, epochs):
    with pytest.raises(ValueError, match=re.escape(f"EPOCHS (--epochs)={epochs!r}: epochs are whole numbers from 1 to "
                                                   f"{MAX_EPOCHS}")):
        exp.make_config("demo", epochs=epochs)
    assert exp.make_config("demo", epochs=MAX_EPOCHS).train.epochs == MAX_EPOCHS


@pytest.mark.parametrize("name", ["teacher_epochs", "student_epochs"])
def test_mnist_epochs_are_checked_too(name):
    with pytest.raises(ValueError, match=rf"{name.upper()} \(--{name.replace('_', '-')}\)=2\.5"):
        mnist_kd.make_config("demo", **{name: 2.5})


@pytest.mark.parametrize("rate", [0, 1.5, -0.1, float("nan"), "0.3", True])
@pytest.mark.parametrize("exp", AST, ids=lambda m: m.EXPERIMENT)
def test_rates_are_fractions(exp, rate):
    with pytest.raises(ValueError, match=r"TARGET_RATE \(--target-rate\)=.*a number in \(0, 1\]"):
        exp.make_config("demo", target_rate=rate)
    assert exp.make_config("demo", target_rate=1).target_rate == 1.0


@pytest.mark.parametrize("preset", ["huge", ["demo"], None, 1])
@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda m: m.EXPERIMENT)
def test_presets_and_scoring_are_names_from_the_list(exp, preset):
    with pytest.raises(ValueError, match=r"PRESET=.*choose one of demo"):
        exp.make_config(preset)
    if exp is not mnist_kd:
        with pytest.raises(ValueError, match=r"SCORING=.*choose one of forward, stale"):
            exp.make_config("demo", scoring=["stale"])


@pytest.mark.parametrize("ablate, message", [
    ("cache", r"ABLATE \(--ablate\)='cache' must be a list of names, e.g. \['cache'\]"),
    (["cache", "magic"], r"ABLATE names unknown 'magic';"),
    (["cache", "cache"], r"repeats a name"),
])
def test_ablate_is_a_list_of_components(ablate, message):
    with pytest.raises(ValueError, match=message):
        mnist_kd.make_config("demo", ablate=ablate)


@pytest.mark.parametrize("count", [5, 0, 1.5, "1"])
def test_the_ablation_runs_on_seeds_that_run(count):
    with pytest.raises(ValueError, match=r"ABLATION_SEEDS \(--ablation-seeds\)=.*from 1 to 2 \(how many of the seeds"):
        mnist_kd.make_config("demo", seeds=[0, 1], ablation_seeds=count)
    assert mnist_kd.make_config("demo", seeds=[0, 1], ablation_seeds=2).ablation_seed_count == 2


@pytest.mark.parametrize("device, message", [
    (0, r"DEVICE \(--device\)=0: name a device"),
    ("gpu", r"DEVICE \(--device\)='gpu' is not a device"),
    ("", r"is not a device"),
    ("meta", r"kdlib trains on a CPU or a CUDA or MPS GPU"),
])
def test_devices_are_names_of_devices_here(device, message):
    with pytest.raises(ValueError, match=message):
        runtime.select_device(device)
    assert runtime.select_device("cpu") == torch.device("cpu")


# ---- the CLI: the same checks, before a kernel starts ------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["cifar10-ast", "--seeds", "-1"], r"-1 is not a seed"),
    (["cifar10-ast", "--seeds", str(2**32)], r"4294967296 is not a seed"),
    (["cifar10-ast", "--epochs", "0"], r"EPOCHS \(--epochs\)=0"),
    (["imagenet100-ast", "--epochs", "100000000"], rf"from 1 to {MAX_EPOCHS}"),
    (["cifar10-ast", "--target-rate", "nan"], r"TARGET_RATE \(--target-rate\)=nan"),
    (["cifar10-ast", "--device", "gpu"], r"'gpu' is not a device"),
    (["mnist-kd", "--seeds", "0", "--ablation-seeds", "5"], r"from 1 to 1 \(how many of the seeds"),
    (["mnist-kd", "--teacher-epochs", "0"], r"TEACHER_EPOCHS \(--teacher-epochs\)=0"),
    (["mnist-kd", "--ablate", "none", "cache"], r"'none' means no ablation, so it stands alone"),
    (["cifar10-ast", "--devices", "cpu", "gpu"], r"DEVICES \(--devices\)='gpu' is not a device"),
    (["cifar10-ast", "--devices", "cpu", "--device", "cpu"], r"DEVICES=\['cpu'\] and DEVICE='cpu' are both set"),
    (["mnist-kd", "--threads", "0"], r"THREADS \(--threads\)=0"),
    (["imagenet100-ast", "--devices", "cpu", "cpu"], r"--devices does not apply to imagenet100-ast: its runs already"),
])
def test_the_cli_refuses_bad_parameters_in_one_line_before_a_kernel_starts(tmp_path, capsys, monkeypatch, argv, message):
    import kdlib.__main__ as cli

    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(SystemExit) as stopped:
        main(["run", *argv, "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err  # the one error line, saying where --help is
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("experiment", ["mnist-kd", "cifar10-ast"])
def test_devices_and_threads_reach_the_notebook(tmp_path, monkeypatch, experiment):
    import kdlib.__main__ as cli

    sent = {}
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: sent.update(k) or (_ for _ in ()).throw(OSError("stop")))
    assert main(["run", experiment, "--devices", "cpu", "cpu", "--threads", "1", "--out", str(tmp_path / "out")]) == 1
    assert (sent["devices"], sent["threads"]) == (["cpu", "cpu"], 1)
    notebook = json.loads((NOTEBOOK_DIR / NOTEBOOKS[experiment]).read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert {"DEVICES = None", "THREADS = None"} <= {line.split("#")[0].strip() for line in parameters["source"]}


def test_ablate_none_means_no_ablation_as_help_says(tmp_path, monkeypatch, capsys):
    import kdlib.__main__ as cli

    with pytest.raises(SystemExit):
        main(["run", "mnist-kd", "--help"])
    assert "none: no ablation" in capsys.readouterr().out
    sent = {}
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: sent.update(k) or (_ for _ in ()).throw(OSError("stop")))
    assert main(["run", "mnist-kd", "--ablate", "none", "--out", str(tmp_path / "out")]) == 1
    assert sent["ablate"] == []


@pytest.mark.parametrize("seeds", [range(3), __import__("numpy").arange(3)])
def test_a_range_or_an_array_of_seeds_is_a_list_of_seeds(seeds):
    assert cifar10_ast.make_config("demo", seeds=seeds).seeds == [0, 1, 2]


@pytest.mark.parametrize("components, message", [
    ({"parallel": "no"}, r"switches are True or False, not 'no'"),
    ({"paralel": False}, r"HPMKD_COMPONENTS names unknown 'paralel';"),
    (["cache"], r"must be a dict of switches"),
])
def test_hpmkd_components_are_switches(components, message):
    with pytest.raises(ValueError, match=message):
        mnist_kd.make_config("demo", components=components)
    assert mnist_kd.make_config("demo", components={"parallel": False}).hpmkd.components["parallel"] is False


@pytest.mark.parametrize("folder", [123, "", "  "])
def test_out_dir_and_data_dir_must_name_folders(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a folder named '' or '  ' would go
    from kdlib.data.cifar import cifar10_source
    from kdlib.data.splits import DataNotFoundError
    from kdlib.experiments.common import prepare_out_dir

    with pytest.raises(ValueError, match=r"OUT_DIR=.*: name a folder"):
        prepare_out_dir(folder, "cifar10-ast")
    with pytest.raises(DataNotFoundError, match=r"DATA_DIR=.*: name a folder"):
        cifar10_source(folder, download=False)


@pytest.mark.parametrize("argv, message", [(["--out", ""], r"argument --out: '' names no folder"),
                                           (["--out", "x", "--data", ""], r"--data '' names no folder")])
def test_the_cli_refuses_empty_folders(monkeypatch, capsys, tmp_path, argv, message):
    import kdlib.__main__ as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(SystemExit):
        main(["run", "cifar10-ast", *argv])
    assert re.search(message, capsys.readouterr().err)


def test_help_states_the_bounds_the_checks_apply(capsys):
    import kdlib.__main__ as cli

    assert cli.EPOCHS_BOUND == MAX_EPOCHS
    with pytest.raises(SystemExit):
        main(["run", "cifar10-ast", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"epochs (1 to {MAX_EPOCHS})" in text and "from 0 to 2**32 - 1" in text and "in (0, 1]" in text


def test_a_usage_error_is_one_line_saying_where_the_help_is():
    from conftest import run_kdlib

    proc = run_kdlib("run", "cifar10-ast", "--out", "unused", "--epochs", "2.5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m kdlib run: error: argument --epochs: invalid int value: '2.5' (see python -m kdlib run --help)"]
