"""Resume across Kaggle sessions: the previous version's output, mounted under /kaggle/input, is found in
either layout and brought back; a session killed part-way is finished by the next with the same weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlib import sessions
from kdlib.data import image_store

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Where a kernel's output mounts in a later session: /kaggle/input/<slug>/ (older) and
# /kaggle/input/notebooks/<owner>/<slug>/ (newer).
LAYOUTS = {"old-mount": "kdlib-cifar", "new-mount": "notebooks/someone/kdlib-cifar"}


def kaggle_env(session: Path, **extra) -> dict:
    env = {**os.environ, "KAGGLE_KERNEL_RUN_TYPE": "Batch", "KDLIB_INPUT_ROOT": str(session / "input"),
           "KDLIB_WORKING_DIR": str(session / "working"), "KDLIB_TEMP_DIR": str(session / "temp"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), **extra}
    for name in ("input", "working"):
        (session / name).mkdir(parents=True, exist_ok=True)
    return env


def tree_state(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime) for p in folder.rglob("*") if p.is_file()}


# ---- restoring generated trees ---------------------------------------------------------------------------

def write_previous_output(working: Path) -> Path:
    """A previous version's /kaggle/working: one finished run, one interrupted, state folders and figures."""
    out = working / "cifar10-ast"
    (out / "runs" / "full-seed0").mkdir(parents=True)
    (out / "runs" / "full-seed0" / "record.json").write_text('{"from": "input"}')
    (out / "runs" / "full-seed0" / "last.pt").write_bytes(b"input full")
    (out / "runs" / "ast-seed0").mkdir(parents=True)
    (out / "runs" / "ast-seed0" / "last.pt").write_bytes(b"input ast")
    (out / "runs" / "ast-seed0" / "history.json").write_text("[]")
    (out / "hpmkd").mkdir()
    (out / "hpmkd" / "plan.json").write_text("{}")
    (out / "figures").mkdir()
    (out / "figures" / "cost.png").write_bytes(b"png")
    (out / "results.json").write_text("{}")
    old = time.time() - 3600
    for p in out.rglob("*"):
        os.utime(p, (old, old))
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_restore_copies_missing_runs_and_keeps_newer_local_ones(tmp_path, monkeypatch, layout):
    root = tmp_path / "input"
    (root / "imagenet100" / "train.X1" / "n01440764").mkdir(parents=True)  # an attached data set beside it
    write_previous_output(root / LAYOUTS[layout])
    before = tree_state(root)
    out = tmp_path / "working" / "cifar10-ast"
    (out / "runs" / "full-seed0").mkdir(parents=True)
    (out / "runs" / "full-seed0" / "record.json").write_text('{"from": "this session"}')  # newer: kept
    lines = []
    restored = sessions.restore_previous_output("cifar10-ast", out, root=root, echo=lines.append)
    assert [r.item for r in restored] == ["runs/ast-seed0", "hpmkd"]
    assert (out / "runs" / "ast-seed0" / "last.pt").read_bytes() == b"input ast"
    assert (out / "hpmkd" / "plan.json").exists() and not (out / "figures").exists()
    assert json.loads((out / "runs" / "full-seed0" / "record.json").read_text()) == {"from": "this session"}
    assert not (out / "runs" / "full-seed0" / "last.pt").exists()  # that run is further here: left alone
    source = root / LAYOUTS[layout] / "cifar10-ast" / "runs" / "ast-seed0"
    assert lines[0] == f"restored runs/ast-seed0 from {source} (2 file(s) copied)" and len(lines) == 2
    assert tree_state(root) == before  # the input is read, never changed
    assert sessions.restore_previous_output("cifar10-ast", out, root=root, echo=lines.append) == []  # nothing twice
    # a run that advanced in this session is not replaced by the older copy in the input
    (out / "runs" / "ast-seed0" / "last.pt").write_bytes(b"this session")
    assert sessions.restore_previous_output("cifar10-ast", out, root=root, echo=None) == []
    assert (out / "runs" / "ast-seed0" / "last.pt").read_bytes() == b"this session"


def test_restore_is_called_by_prepare_out_dir_on_kaggle_only(tmp_path, monkeypatch, capsys):
    from kdlib.experiments.common import prepare_out_dir

    write_previous_output(tmp_path / "input" / "notebooks" / "me" / "kdlib-cifar")
    monkeypatch.setenv("KDLIB_INPUT_ROOT", str(tmp_path / "input"))
    monkeypatch.setenv("KDLIB_WORKING_DIR", str(tmp_path / "working"))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    local = prepare_out_dir(tmp_path / "local", "cifar10-ast")
    assert not (local / "runs").exists()
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    out = prepare_out_dir(None, "cifar10-ast")
    assert out == tmp_path / "working" / "cifar10-ast" and (out / "runs" / "ast-seed0" / "last.pt").exists()
    assert "restored runs/ast-seed0 from" in capsys.readouterr().out


def write_jpegs(folder: Path, n: int = 6) -> list[tuple[str, int]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = folder / f"{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
        items.append((str(path), i % 2))
    return items


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_kept_store_is_linked_read_only_and_reused(tmp_path, monkeypatch, layout):
    monkeypatch.setenv("KDLIB_WORKING_DIR", str(tmp_path / "working"))
    items = write_jpegs(tmp_path / "jpegs")
    built = image_store.build_store(items, tmp_path / "s1" / "imagenet100-store" / "x-16px-train", 16, workers=1,
                                    progress=False)
    root = tmp_path / "input"
    shutil.copytree(tmp_path / "s1", root / LAYOUTS[layout])
    before = tree_state(root)
    store_dir = tmp_path / "temp" / "imagenet100-store"  # outside the working dir: links
    restored = sessions.restore_store(store_dir, root=root, echo=None)
    assert [(r.item, r.action, r.files) for r in restored] == [("image store x-16px-train", "linked", 5)]
    target = store_dir / "x-16px-train"
    assert all((target / name).is_symlink() for name in ("images.u8", "labels.npy", "valid.npy", "digests.npy", "meta.json"))
    reused = image_store.build_store(items, target, 16, workers=1, progress=False)  # same source: opened, not rebuilt
    assert np.array_equal(np.asarray(reused.images), np.asarray(built.images))
    assert sessions.restore_store(store_dir, root=root, echo=None) == []  # complete here: kept
    # a different source starts new files in the store folder: nothing is written through the links
    rebuilt = image_store.build_store(items[:4], target, 16, workers=1, progress=False)
    assert len(rebuilt) == 4 and not (target / "images.u8").is_symlink()
    assert tree_state(root) == before
    # inside the working dir (KEEP_STORE_IN_OUTPUT) the store is copied, so this version's output holds it too
    kept = sessions.restore_store(tmp_path / "working" / "imagenet100-store", root=root, echo=None)
    assert [r.action for r in kept] == ["copied"]
    assert not (tmp_path / "working" / "imagenet100-store" / "x-16px-train" / "images.u8").is_symlink()


def test_the_store_stays_out_of_the_output_unless_asked(tmp_path, monkeypatch):
    from kdlib.experiments.imagenet100_ast import default_store_dir

    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("KDLIB_WORKING_DIR", str(tmp_path / "working"))
    monkeypatch.setenv("KDLIB_TEMP_DIR", str(tmp_path / "temp"))
    monkeypatch.delenv(sessions.KEEP_STORE_ENV, raising=False)
    assert default_store_dir("out") == tmp_path / "temp" / "imagenet100-store"
    assert default_store_dir("out", keep_in_output=True) == tmp_path / "working" / "imagenet100-store"
    monkeypatch.setenv(sessions.KEEP_STORE_ENV, "1")
    assert default_store_dir("out") == tmp_path / "working" / "imagenet100-store"
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE")
    monkeypatch.setattr("kdlib.runtime.KAGGLE_WORKING", Path("/nonexistent/kaggle/working"))
    assert default_store_dir("out") == Path("out") / "store"


# ---- building a kernel that resumes ------------------------------------------------------------------------

def test_build_and_push_attach_the_earlier_output(tmp_path, capsys):
    from kdlib import kaggle
    from kdlib.__main__ import main

    kernel = "me/kdlib-imagenet-100-adaptive-sparse-training"
    folder = kaggle.build("imagenet100-ast", tmp_path, owner="me", resume_from=kernel)
    meta = json.loads((folder / kaggle.METADATA_FILE).read_text())
    assert meta["kernel_sources"] == [kernel] and kaggle.validate_kernel_folder(folder) == []
    sent = kaggle.push("imagenet100-ast", tmp_path / "p", owner="me", dry_run=True, resume_from=kernel)
    assert sent["kernel_sources"] == [kernel]
    assert main(["kaggle", "build", "cifar10-ast", "--out", str(tmp_path / "cli"), "--owner", "me",
                 "--resume-from", "me/kdlib-cifar-10-adaptive-sparse-training"]) == 0
    built = json.loads((tmp_path / "cli" / "cifar10-ast" / kaggle.METADATA_FILE).read_text())
    assert built["kernel_sources"] == ["me/kdlib-cifar-10-adaptive-sparse-training"]
    assert main(["kaggle", "build", "all", "--out", str(tmp_path / "cli"), "--resume-from", "me/x"]) == 1
    assert "build that kernel by name" in capsys.readouterr().err


# ---- two Kaggle sessions -------------------------------------------------------------------------------

EPOCHS = 8
SESSION = f"""
import torch
from conftest import tiny_splits
from kdlib.experiments import cifar10_ast as exp

cfg = exp.make_config("demo", seeds=[0], epochs={EPOCHS}, target_rate=0.25, progress=False)
cfg.train.batch_size = 32
data = tiny_splits(128, 32, 32, channels=3, size=16)
out = exp.prepare_out_dir(None, exp.EXPERIMENT)  # /kaggle/working/cifar10-ast, restored from /kaggle/input
exp.train_method("ast", cfg, data, out, torch.device("cpu"), 0)
"""


def run_session(session: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SESSION], env=kaggle_env(session), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    session = tmp_path_factory.mktemp("uninterrupted")
    done = run_session(session)
    assert done.returncode == 0, done.stderr
    return session / "working" / "cifar10-ast" / "runs" / "ast-seed0"


def model_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_killed_session_is_finished_by_the_next_one(tmp_path, uninterrupted, layout):
    # session 1: killed (SIGKILL) as soon as its first epoch checkpoint appears
    s1 = tmp_path / "s1"
    log = (tmp_path / "s1.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", SESSION], env=kaggle_env(s1), stdout=log, stderr=log)
    last = s1 / "working" / "cifar10-ast" / "runs" / "ast-seed0" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "s1.log").read_text()
    run1 = last.parent
    assert not (run1 / "record.json").exists()
    saved = torch.load(last, weights_only=True)
    epochs_done = saved["epoch"] + 1
    assert 1 <= epochs_done < EPOCHS

    # session 2: an empty working dir; session 1's /kaggle/working is mounted as its input
    s2 = tmp_path / "s2"
    shutil.copytree(s1 / "working", s2 / "input" / LAYOUTS[layout])
    done = run_session(s2)
    assert done.returncode == 0, done.stderr
    source = s2 / "input" / LAYOUTS[layout] / "cifar10-ast" / "runs" / "ast-seed0"
    assert f"restored runs/ast-seed0 from {source}" in done.stdout
    run2 = s2 / "working" / "cifar10-ast" / "runs" / "ast-seed0"
    for name in ("last.pt", "best.pt"):
        a, b = model_state(uninterrupted / name), model_state(run2 / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    theirs, ours = (json.loads((r / "record.json").read_text()) for r in (uninterrupted, run2))
    assert ours["test_accuracy"] == theirs["test_accuracy"]
    # session 2 continued session 1's run (its epochs, timings included, come from session 1), not a new one
    assert ours["history"][:epochs_done] == saved["history"]
    assert [h["val_accuracy"] for h in ours["history"]] == [h["val_accuracy"] for h in theirs["history"]]
    assert [h["samples_backpropagated"] for h in ours["history"]] == [h["samples_backpropagated"] for h in theirs["history"]]
