"""Ctrl-C ends with one line saying what is saved and how to resume: in a notebook's kernel (IPython shows the
line, not a traceback) and in the CLI; the rerun resumes from what was saved."""

import re

import pytest
import torch

from conftest import tiny_splits
from kdlib.__main__ import main
from kdlib.interrupt import RunInterrupted
from kdlib.train import TrainConfig, fit

CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.5, progress=False)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))


def _ctrl_c_after(epochs):
    def callback(epoch, record):
        if epoch + 1 == epochs:
            raise KeyboardInterrupt
    return callback


def _interrupted(call, match=""):
    """The RunInterrupted that ``call`` raises (an interrupt that escapes otherwise would stop pytest itself)."""
    with pytest.raises(KeyboardInterrupt) as stopped:
        call()
    assert isinstance(stopped.value, RunInterrupted), f"a bare {type(stopped.value).__name__} escaped"
    assert re.search(match, str(stopped.value)), str(stopped.value)
    return stopped.value


def _main(argv):
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("a KeyboardInterrupt escaped the CLI")


def test_ctrl_c_in_training_says_what_is_kept_and_the_rerun_resumes(tmp_path):
    data = tiny_splits()
    stopped = _interrupted(lambda: fit(_model(), data, CONFIG, device=torch.device("cpu"), checkpoint_dir=tmp_path,
                                       desc="direct seed 0", callbacks=(_ctrl_c_after(2),)))
    line = str(stopped)
    assert "\n" not in line and line.startswith("direct seed 0 stopped")
    assert f"every finished run is kept and its last checkpoint ({tmp_path / 'last.pt'}, after epoch 2)" in line
    assert "run the same command (or cell) again to resume from there" in line
    assert fit(_model(), data, CONFIG, device=torch.device("cpu"), checkpoint_dir=tmp_path).resumed_from_epoch == 2


def test_ctrl_c_before_the_first_epoch_or_without_a_folder_says_so(tmp_path):
    data = tiny_splits()
    _interrupted(lambda: fit(_model(), data, CONFIG, device=torch.device("cpu"), checkpoint_dir=tmp_path,
                             train_loader=_Interrupting(data)), r"every finished run is kept \(none of this one: no epoch of it had finished\)")
    _interrupted(lambda: fit(_model(), data, CONFIG, device=torch.device("cpu"), callbacks=(_ctrl_c_after(1),)),
                 "keeps no checkpoint, so it starts over")


class _Interrupting:
    """A training loader that is interrupted at its first batch."""

    def __init__(self, data):
        self.num_rows = len(data.train_y)

    def set_epoch(self, epoch, indices=None):
        pass

    def __len__(self):
        return 3

    def __iter__(self):
        raise KeyboardInterrupt
        yield


def test_a_notebook_shows_the_line_not_a_traceback(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.user_ns.update(fit=fit, model=_model(), data=tiny_splits(), config=CONFIG, folder=tmp_path,
                         stop=_ctrl_c_after(1), cpu=torch.device("cpu"))
    with capture_output() as shown:
        shell.run_cell("fit(model, data, config, device=cpu, checkpoint_dir=folder, desc='kd seed 1', callbacks=(stop,))")
    assert shown.stdout.strip().splitlines() == [
        f"interrupted: kd seed 1 stopped; every finished run is kept and its last checkpoint ({tmp_path / 'last.pt'}, "
        "after epoch 1): run the same command (or cell) again to resume from there"]


def test_the_cli_says_where_the_runs_are_kept_in_one_line(tmp_path, monkeypatch, capsys):
    import kdlib.__main__ as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_notebook", interrupted)
    assert _main(["run", "cifar10-ast", "--out", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.fullmatch(rf"interrupted: the run stopped; every finished run and each unfinished run's last "
                        rf"checkpoint .* stay in {re.escape(str(tmp_path / 'out' / 'runs'))}: run the same command "
                        r"again to resume from there\.", err)


def test_any_other_command_interrupted_is_one_line(monkeypatch, capsys):
    from kdlib import kaggle

    def waiting(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle, "status", waiting)
    assert _main(["kaggle", "status", "someone/some-kernel", "--wait"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "interrupted: stopped before it finished; nothing kdlib had written is lost. Run the command again."]


def test_ctrl_c_while_the_image_store_is_built_says_what_is_kept(tmp_path, monkeypatch):
    from PIL import Image

    from kdlib.data import image_store

    items = []
    for i in range(6):
        Image.new("RGB", (20, 20), (30 * i, 0, 0)).save(tmp_path / f"{i}.png")
        items.append((str(tmp_path / f"{i}.png"), i % 2))
    real, calls = image_store._decode_chunk, []

    def ctrl_c_at_the_third_chunk(args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(image_store, "_decode_chunk", ctrl_c_at_the_third_chunk)
    stopped = _interrupted(lambda: image_store.build_store(items, tmp_path / "store", size=8, workers=1, chunk=2,
                                                           flush_every=2, progress=False))
    assert re.fullmatch(rf"decoding into {re.escape(str(tmp_path / 'store'))} stopped; the 4 of 6 images decoded "
                        r"before the last save are kept: run the same command \(or cell\) again to go on from there",
                        str(stopped))
    monkeypatch.setattr(image_store, "_decode_chunk", real)
    assert image_store.build_store(items, tmp_path / "store", size=8, workers=1, progress=False).valid.all()
