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

def _killed_before_its_record(out, data=None):
    """A finished run whose record is gone, as when a kill comes after the last epoch: its rerun restores best.pt."""
    data = data or tiny_splits()
    _train(out, data)
    folder = runs.run_dir(out, "direct", 0)
    (folder / "record.json").unlink()
    return data, folder


def _edit_best(folder, edit):
    state = torch.load(folder / "best.pt", weights_only=True)
    torch.save(edit(state), folder / "best.pt")


def test_a_best_pt_from_another_run_is_refused(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data, dataclasses.replace(CONFIG, seed=1))
    _, ours = _killed_before_its_record(tmp_path, data)
    shutil.copy(runs.run_dir(tmp_path, "direct", 1) / "best.pt", ours / "best.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt was written with a different configuration.*seed"):
        _train(tmp_path, data)


@pytest.mark.parametrize("edit, message", [
    (lambda state: {**state, "epoch": (state["epoch"] + 1) % 2}, r"best\.pt holds epoch \d.*records epoch \d.*not this run's"),
    (lambda state: {**state, "model": {"weight": torch.zeros(3)}}, r"model state does not fit this run's"),
    (lambda state: {k: state[k] for k in ("model", "epoch", "val_accuracy")}, r"best\.pt carries no run identity"),
], ids=["another epoch", "another model", "no identity"])
def test_a_best_pt_that_is_not_this_run_s_is_refused(tmp_path, edit, message):
    data, folder = _killed_before_its_record(tmp_path)
    _edit_best(folder, edit)
    with pytest.raises(CheckpointError, match=message):
        _train(tmp_path, data)


def test_a_missing_best_pt_is_not_replaced_by_the_last_weights(tmp_path):
    data, folder = _killed_before_its_record(tmp_path)
    (folder / "best.pt").unlink()
    with pytest.raises(CheckpointError, match=r"best\.pt is missing.*best weights are lost"):
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


# ---- an out folder that vanishes mid-run stops the run ------------------------------------------------------

def _claimed_out(tmp_path):
    from kdlib.experiments.common import prepare_out_dir

    return prepare_out_dir(tmp_path / "out", "cifar10-ast")


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_out_folder_gone_during_a_run_stops_it(tmp_path, how):
    from kdlib.fileio import FolderVanishedError

    out = _claimed_out(tmp_path)

    def vanish(epoch, record):
        if epoch == 0:
            shutil.rmtree(out) if how == "deleted" else out.rename(tmp_path / "elsewhere")
            if how == "replaced":
                out.mkdir()

    with pytest.raises(FolderVanishedError, match=rf"out folder {out} was deleted or replaced.*Stopped here"):
        train_and_test("direct", "simplecnn", tiny_splits(), CONFIG, out, CPU, callbacks=(vanish,))
    assert not (out / "runs").exists()  # nothing was recreated


@pytest.mark.parametrize("removed, message", [
    ("the run's folder", r"last\.pt, written by this run, is gone"),
    ("history.json", r"history\.json, written by this run, is gone"),  # the timelines count epochs from it
])
def test_a_paused_run_whose_files_vanished_is_not_trained_again_from_scratch(tmp_path, removed, message):
    """The interleaved shoot-out pauses each run after an epoch and resumes it at its next turn."""
    from kdlib.fileio import FolderVanishedError

    out = _claimed_out(tmp_path)

    class Pause(Exception):
        pass

    def pause(epoch, record):
        raise Pause

    with pytest.raises(Pause):
        train_and_test("direct", "simplecnn", tiny_splits(), CONFIG, out, CPU, callbacks=(pause,))
    folder = runs.run_dir(out, "direct", 0)
    shutil.rmtree(folder) if removed == "the run's folder" else (folder / "history.json").unlink()
    with pytest.raises(FolderVanishedError, match=message):
        train_and_test("direct", "simplecnn", tiny_splits(), CONFIG, out, CPU)


def test_a_folder_claimed_again_starts_over(tmp_path):
    out = _claimed_out(tmp_path)
    _train(out, tiny_splits())
    shutil.rmtree(out)  # deleted between two runs, as the error messages advise
    out = _claimed_out(tmp_path)
    assert _train(out, tiny_splits())["test_accuracy"] >= 0


def test_a_second_run_claiming_the_folder_stops_the_first(tmp_path):
    from kdlib.fileio import FolderVanishedError

    out = _claimed_out(tmp_path)

    def another_run_starts(epoch, record):
        if epoch == 0:  # a second notebook's prepare_out_dir, in its own process, puts its own token there
            from kdlib.fileio import CLAIM_MARKER

            (out / CLAIM_MARKER).write_text("another process's token")

    with pytest.raises(FolderVanishedError, match=r"claimed by another run.*one run per folder"):
        train_and_test("direct", "simplecnn", tiny_splits(), CONFIG, out, CPU, callbacks=(another_run_starts,))


def test_labels_that_are_not_class_indices_are_a_damaged_run(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    path = _edit_record(tmp_path, lambda r: r["test_labels"].__setitem__(0, 0.5))
    with pytest.raises(runs.DamagedRunError, match=rf"{path}.*test_labels are not 32 class indices in 0\.\.3"):
        _train(tmp_path, data)


def test_a_record_that_is_not_an_object_is_a_damaged_run(tmp_path):
    data = tiny_splits()
    _train(tmp_path, data)
    runs.record_path(tmp_path, "direct", 0).write_text("[1, 2]")
    with pytest.raises(runs.DamagedRunError, match=r"record\.json holds a JSON list, not a run's record"):
        _train(tmp_path, data)


def test_an_out_dir_naming_a_file_is_one_line_in_the_notebook_too(tmp_path):
    from kdlib.experiments.common import prepare_out_dir

    (tmp_path / "results.txt").write_text("x")
    with pytest.raises(ValueError, match=r"OUT_DIR '.*results\.txt' is a file, not a folder"):
        prepare_out_dir(tmp_path / "results.txt", "mnist-kd")


def test_a_best_pt_copied_over_last_pt_is_one_line(tmp_path):
    data, folder = _killed_before_its_record(tmp_path)
    shutil.copy(folder / "best.pt", folder / "last.pt")
    with pytest.raises(CheckpointError, match=r"last\.pt lacks optimizer, scheduler.*not a whole run's state"):
        _train(tmp_path, data)
