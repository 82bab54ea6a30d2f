"""Runs that never lie: a rerun into the same folder refuses other data or settings, resume keeps every
artifact, and each failure a user can cause ends in one clear message that names what to do."""

import dataclasses
import errno
import gzip
import json
import os

import nbformat
import numpy as np
import pytest
import torch

from conftest import HOJJATK_NAMES, idx_bytes, tiny_splits, write_idx_dataset
from kdlib import fileio, results_io, runs
from kdlib.__main__ import main
from kdlib.checkpoint import CheckpointError
from kdlib.data.device_loader import DeviceLoader
from kdlib.data.mnist import find_mnist_files, load_mnist
from kdlib.data.splits import CorruptDataError
from kdlib.experiments import cifar10_ast, imagenet100_ast, mnist_kd
from kdlib.experiments.common import train_and_test
from kdlib.train import TrainConfig, fit

CPU = torch.device("cpu")
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False)


def _train(out, data, config=CONFIG):
    return train_and_test("direct", "simplecnn", data, config, out, CPU)[1]


# ---- silently wrong results -------------------------------------------------------------------------------

def test_a_finished_run_is_not_reused_for_other_data(tmp_path):
    _train(tmp_path, tiny_splits(seed=0))
    with pytest.raises(runs.RunMismatchError, match=r"data \(fingerprint\).*another OUT_DIR"):
        _train(tmp_path, tiny_splits(seed=1))


def test_an_interrupted_run_does_not_resume_on_other_data(tmp_path):
    _train(tmp_path, tiny_splits(seed=0))
    (runs.run_dir(tmp_path, "direct", 0) / "record.json").unlink()  # killed before the record was written
    with pytest.raises(CheckpointError, match="trained on other data"):
        _train(tmp_path, tiny_splits(seed=1))


def test_a_finished_run_is_not_reused_with_other_settings(tmp_path):
    data = tiny_splits()
    first = _train(tmp_path, data)
    with pytest.raises(runs.RunMismatchError, match=r"train\.lr: 0\.05 -> 0\.1"):
        _train(tmp_path, data, dataclasses.replace(CONFIG, lr=0.1))
    again = _train(tmp_path, data, dataclasses.replace(CONFIG, progress=True, eval_batch_size=7))  # cannot change results
    assert again["test_accuracy"] == first["test_accuracy"]


def test_the_same_data_from_another_mount_is_the_same_data(tmp_path):
    write_idx_dataset(tmp_path / "a", n_train=40, n_test=10)
    write_idx_dataset(tmp_path / "b" / "nested", n_train=40, n_test=10)
    assert load_mnist(tmp_path / "a", download=False).fingerprint() == \
        load_mnist(tmp_path / "b", download=False).fingerprint()
    write_idx_dataset(tmp_path / "c", n_train=40, n_test=10, seed=5)
    assert load_mnist(tmp_path / "c", download=False).fingerprint() != \
        load_mnist(tmp_path / "a", download=False).fingerprint()


def test_imagenet_finished_run_with_another_target_rate_is_refused(tmp_path):
    cfg = imagenet100_ast.make_config("demo", epochs=2, progress=False, methods=["full", "ast"])
    cfg.train.batch_size = 32
    data = imagenet100_ast.load_data(cfg, out_dir=tmp_path)
    data.train_rows = data.train_rows[:96]
    imagenet100_ast.train_method("ast", cfg, data, tmp_path, CPU, 0)
    cfg.target_rate = 0.9
    with pytest.raises(runs.RunMismatchError, match=r"objective\.target: 0\.4 -> 0\.9"):
        imagenet100_ast.train_method("ast", cfg, data, tmp_path, CPU, 0)


def test_the_selection_trace_survives_a_kill_after_the_last_checkpoint(tmp_path):
    cfg = cifar10_ast.make_config("demo", seeds=[0], epochs=3, progress=False, methods=["full", "ast"])
    cfg.train.batch_size = 32
    data = tiny_splits(128, 32, 32, channels=3, size=16)
    cfg.model_kwargs = {"width": 0.25}
    first = cifar10_ast.train_method("ast", cfg, data, tmp_path, CPU, 0)
    stream = np.load(first["selection_trace"])["scores"]
    assert len(stream) == 2 * (128 // 32)  # every selective batch of epochs 2 and 3
    folder = runs.run_dir(tmp_path, "ast", 0)
    (folder / "record.json").unlink()  # killed after the last checkpoint, before the record
    (folder / "selection_trace.npz").unlink()
    again = cifar10_ast.train_method("ast", cfg, data, tmp_path, CPU, 0)
    assert again["selection_trace"] is not None
    np.testing.assert_array_equal(np.load(again["selection_trace"])["scores"], stream)


def test_zero_training_steps_are_refused_with_the_sizes(tmp_path):
    data = tiny_splits(n_train=20)
    mean, std = data.channel_stats()
    loader = DeviceLoader(data.train_x, data.train_y, 32, CPU, mean, std, shuffle=True, drop_last=True)
    with pytest.raises(ValueError, match="20 training images make no full batch of 32"):
        fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)), data, CONFIG, train_loader=loader)


def test_repeated_seeds_are_refused(tmp_path, capsys):
    for make in (mnist_kd.make_config, cifar10_ast.make_config, imagenet100_ast.make_config):
        with pytest.raises(ValueError, match=r"repeats \[0\]"):
            make("demo", seeds=[0, 0])
    with pytest.raises(SystemExit):
        main(["run", "cifar10-ast", "--out", str(tmp_path), "--seeds", "0", "0"])
    assert "repeats a seed" in capsys.readouterr().err


def test_unknown_methods_are_refused_before_a_notebook_starts(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "cifar10-ast", "--out", str(tmp_path / "out"), "--methods", "full", "magic"])
    assert "--methods full magic: METHODS: unknown method 'magic': choose full, full@F, ast" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no kernel ran, so no failed notebook and no runs/ to speak of


# ---- one clear line ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["file", "unwritable"])
def test_an_out_folder_that_cannot_hold_a_run_is_one_line(tmp_path, capsys, case):
    if case == "file":
        out = tmp_path / "results.txt"
        out.write_text("x")
        expected = "is a file, not a folder"
    else:
        out = "/proc/kdlib-cannot-write-here"  # read-only even for root
        expected = "cannot be written"
    assert main(["run", "cifar10-ast", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_a_full_disk_names_the_path_and_leaves_the_last_good_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    fileio.atomic_save({"good": 1}, target)

    def full(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(fileio.WriteError, match=f"cannot write {target}: the disk is full"):
        fileio.atomic_save({"new": 2}, target)
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert torch.load(target) == {"good": 1}


def test_results_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    results = json.loads(json.dumps(_results(tmp_path)))
    results_io.write_results(results, tmp_path)
    before = {name: (tmp_path / name).read_text() for name in ("results.csv", "results.txt")}
    results["runs"][0]["test_accuracy"] = 0.123
    real_replace = os.replace

    def fail_on_csv(src, dst):
        if str(dst).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_csv)
    with pytest.raises(fileio.WriteError, match="results.csv: the disk is full"):
        results_io.write_results(results, tmp_path)
    assert (tmp_path / "results.csv").read_text() == before["results.csv"]
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def _results(out):
    data = tiny_splits()
    record = _train(out, data)
    return cifar10_ast.results(cifar10_ast.make_config("demo"), data, [{**record, "method": "full"}], CPU)


def test_an_empty_idx_file_is_named(tmp_path):
    write_idx_dataset(tmp_path, n_train=40, n_test=10, names=HOJJATK_NAMES)
    empty = tmp_path / HOJJATK_NAMES["train_images"]
    empty.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / HOJJATK_NAMES["train_labels"]).write_bytes(idx_bytes(np.zeros((0,), np.uint8)))
    with pytest.raises(CorruptDataError, match=f"{empty} holds no images"):
        load_mnist(tmp_path, download=False)


def test_the_record_carries_its_test_predictions_and_an_older_folder_s_are_read_into_it(tmp_path):
    data = tiny_splits()
    record = _train(tmp_path, data)
    predictions = np.array(record["test_predictions"])
    assert len(predictions) == len(data.test_y)
    assert np.mean(predictions == data.test_y.numpy()) == pytest.approx(record["test_accuracy"])
    # a run folder written before records carried predictions: record.json without them, test_predictions.npy beside
    path = runs.record_path(tmp_path, "direct", 0)
    legacy = {k: v for k, v in json.loads(path.read_text()).items() if k != "test_predictions"}
    path.write_text(json.dumps(legacy))
    np.save(path.parent / "test_predictions.npy", predictions)
    assert runs.read_record(path, None)["test_predictions"] == predictions.tolist()
    assert _train(tmp_path, data)["test_predictions"] == predictions.tolist()  # the rerun returns them too


def test_a_truncated_record_or_predictions_file_names_the_file_and_the_remedy(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    folder = runs.run_dir(tmp_path, "direct", 0)
    record = json.loads((folder / "record.json").read_text())
    np.save(folder / "test_predictions.npy", np.array(record.pop("test_predictions")))  # an older kdlib's folder
    (folder / "record.json").write_text(json.dumps(record))
    (folder / "test_predictions.npy").write_bytes((folder / "test_predictions.npy").read_bytes()[:20])
    with pytest.raises(runs.DamagedRunError, match=r"test_predictions\.npy cannot be read.*Delete the folder"):
        _train(tmp_path, data)
    (folder / "record.json").write_text((folder / "record.json").read_text()[:100])
    with pytest.raises(runs.DamagedRunError, match=r"record\.json cannot be read.*Delete the folder"):
        _train(tmp_path, data)


def test_two_complete_mnist_copies_are_both_named(input_root):
    write_idx_dataset(input_root / "mnist-dataset", n_train=40, n_test=10, names=HOJJATK_NAMES, nested=True)
    write_idx_dataset(input_root, n_train=30, n_test=10, gz=True, seed=3)  # an unnamed set at the top level
    with pytest.warns(UserWarning, match="2 complete MNIST copies") as caught:
        files = find_mnist_files(input_root)
    note = str(caught[0].message)
    assert str(input_root) in note and str(input_root / "mnist-dataset") in note and "DATA_DIR" in note
    assert files["note"] == note
    with pytest.warns(UserWarning):
        assert load_mnist(None, download=False).info()["notes"] == [note]


def test_a_failed_rerun_keeps_the_last_good_executed_notebook(tmp_path, monkeypatch, capsys):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("the good run")])
    nbformat.write(good, tmp_path / "02_cifar10_ast.ipynb")

    def refused(source, output, **kwargs):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("refused")]), output)
        raise PapermillExecutionError(3, 4, "", "RunMismatchError", "other data", [])

    monkeypatch.setattr(papermill, "execute_notebook", refused)
    assert main(["run", "cifar10-ast", "--out", str(tmp_path)]) == 1
    assert "the good run" in (tmp_path / "02_cifar10_ast.ipynb").read_text()
    assert "refused" in (tmp_path / "02_cifar10_ast.failed.ipynb").read_text()
    assert "02_cifar10_ast.failed.ipynb" in capsys.readouterr().err


def test_gzip_idx_with_zero_images_is_named_too(tmp_path):
    write_idx_dataset(tmp_path, n_train=40, n_test=10, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((0, 28, 28), np.uint8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((0,), np.uint8))))
    with pytest.raises(CorruptDataError, match="holds no images"):
        load_mnist(tmp_path, download=False)
