"""What a run kept is checked before it is used: best.pt carries the run's identity, a record's accuracy is
recomputed from its predictions and labels, and an out folder that vanishes mid-run stops the run."""

import dataclasses
import shutil

import pytest
import torch

from conftest import tiny_splits
from kdlib import runs
from kdlib.checkpoint import CheckpointError
from kdlib.experiments.common import train_and_test
from kdlib.train import TrainConfig

CPU = torch.device("cpu")
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False)


def _train(out, data, config=CONFIG, method="direct"):
    return train_and_test(method, "simplecnn", data, config, out, CPU)[1]


# ---- best.pt ------------------------------------------------------------------------------------------------

def test_a_best_pt_from_another_run_is_refused(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    _train(tmp_path, data, dataclasses.replace(CONFIG, seed=1))
    ours = runs.run_dir(tmp_path, "direct", 0)
    (ours / "record.json").unlink()  # killed after the last epoch, before the record
    shutil.copy(runs.run_dir(tmp_path, "direct", 1) / "best.pt", ours / "best.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt was written with a different configuration.*seed"):
        _train(tmp_path, data)


def test_a_best_pt_of_another_epoch_is_refused(tmp_path):
    data = tiny_splits()
    config = dataclasses.replace(CONFIG, epochs=3)
    ours = runs.run_dir(tmp_path, "direct", 0)
    _train(tmp_path, data, config)
    (ours / "record.json").unlink()
    state = torch.load(ours / "best.pt", weights_only=True)
    state["epoch"] = (state["epoch"] + 1) % 3
    torch.save(state, ours / "best.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt holds epoch \d.*records epoch \d.*not this run's"):
        _train(tmp_path, data, config)


def test_a_missing_best_pt_is_not_replaced_by_the_last_weights(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    folder = runs.run_dir(tmp_path, "direct", 0)
    (folder / "record.json").unlink()
    (folder / "best.pt").unlink()
    with pytest.raises(CheckpointError, match=r"best\.pt is missing.*best weights are lost"):
        _train(tmp_path, data)


def test_a_best_pt_of_another_model_is_one_line(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    folder = runs.run_dir(tmp_path, "direct", 0)
    (folder / "record.json").unlink()
    state = torch.load(folder / "best.pt", weights_only=True)
    state["model"] = {"weight": torch.zeros(3)}
    torch.save(state, folder / "best.pt")
    with pytest.raises(CheckpointError, match=r"model state does not fit this run's"):
        _train(tmp_path, data)


def test_a_best_pt_without_identity_is_refused(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    folder = runs.run_dir(tmp_path, "direct", 0)
    (folder / "record.json").unlink()
    state = torch.load(folder / "best.pt", weights_only=True)
    torch.save({"model": state["model"], "epoch": state["epoch"], "val_accuracy": state["val_accuracy"]},
               folder / "best.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt carries no run identity"):
        _train(tmp_path, data)


def test_the_run_s_own_best_pt_is_used(tmp_path):
    data = tiny_splits()
    first = _train(tmp_path, data)
    (runs.run_dir(tmp_path, "direct", 0) / "record.json").unlink()
    assert _train(tmp_path, data)["test_accuracy"] == first["test_accuracy"]


# ---- the record's numbers are recomputed from its predictions and labels --------------------------------------

def _edit_record(out, edit, method="direct", seed=0):
    import json

    path = runs.record_path(out, method, seed)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("field, edit", [
    ("test_accuracy", lambda r: r.update(test_accuracy=min(1.0, r["test_accuracy"] + 0.1))),
    ("per_class_accuracy", lambda r: r["per_class_accuracy"].reverse() or r["per_class_accuracy"].__setitem__(0, 2.0)),
    ("confusion_matrix", lambda r: r["confusion_matrix"][0].__setitem__(0, r["confusion_matrix"][0][0] + 1)),
    ("confusion_matrix", lambda r: r["test_labels"].__setitem__(0, (r["test_labels"][0] + 1) % 4)),
    ("test labels", lambda r: r["test_labels"].pop()),
])
def test_an_edited_record_is_a_damaged_run(tmp_path, field, edit):
    data = tiny_splits()
    _train(tmp_path, data)
    path = _edit_record(tmp_path, edit)
    with pytest.raises(runs.DamagedRunError, match=rf"{path}.*contradicts its own test predictions.*{field}"):
        _train(tmp_path, data)


def test_an_older_record_without_labels_is_checked_against_its_confusion_matrix(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    _edit_record(tmp_path, lambda r: r.pop("test_labels"))
    assert _train(tmp_path, data)  # an older kdlib's record, as it was written: accepted
    _edit_record(tmp_path, lambda r: r.update(test_accuracy=r["test_accuracy"] / 2 + 0.01))
    with pytest.raises(runs.DamagedRunError, match="test_accuracy is"):
        _train(tmp_path, data)


def test_the_summary_is_not_built_from_a_record_its_predictions_contradict(tmp_path):
    from kdlib import results_io

    record = _train(tmp_path, tiny_splits())
    results_io.build_results("x", "demo", {}, {}, [record])  # as it was written: fine
    record = {**record, "test_accuracy": 1.0 if record["test_accuracy"] < 0.99 else 0.5}
    with pytest.raises(runs.DamagedRunError, match=r"runs/direct-seed0/record\.json contradicts.*test_accuracy"):
        results_io.build_results("x", "demo", {}, {}, [record])
