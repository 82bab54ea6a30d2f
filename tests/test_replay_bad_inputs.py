"""Replays bad inputs and events as a user meets them (the CLI where a user uses the CLI, the library calls a
notebook's cells make otherwise) and sorts each outcome: *clear* (refused with one line that names the problem, or,
where the right outcome is to go on, gone on correctly and said so), *silent* (it went through and would have given
wrong results), *hang*, *raw traceback*, *cryptic* (refused, but the message does not say what is wrong) or *data
lost* (something computed before was gone afterwards).

pytest collects every case (CI runs them). As a script it prints one line per case, then the counts:

    python tests/test_replay_bad_inputs.py            # every case
    python tests/test_replay_bad_inputs.py kaggle     # only the cases whose description contains 'kaggle'

Exits 1 unless every case is clear. Uses generated files only (no network, no real data sets).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import HOJJATK_NAMES, idx_bytes, tiny_splits, write_cifar_batches, write_cifar_tree, write_idx_dataset  # noqa: E402,E501

CPU = torch.device("cpu")
CASES = []
CLI_TIMEOUT = 900
HANG = "HANG: "  # a case's text starting so: it did not finish
LOST = "DATA LOST: "  # ... or something computed before is gone


def case(description: str, expect: str):
    """``expect``: a regex the clear message must match."""
    def register(fn):
        CASES.append((description, expect, fn))
        return fn
    return register


def cli(*args: str, env: dict | None = None, timeout: float = CLI_TIMEOUT) -> tuple[int, str]:
    try:
        proc = subprocess.run([sys.executable, "-m", "kdlib", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return 1, f"{HANG}no answer after {timeout} s"
    return proc.returncode, proc.stderr + proc.stdout


def cli_during_run(out: Path, act, *args: str) -> tuple[int, str]:
    """A CLI run into ``out`` with ``act(process)`` done once its first epoch is saved (Ctrl-C, deleting ``out``)."""
    proc = subprocess.Popen([sys.executable, "-m", "kdlib", "run", *args, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + CLI_TIMEOUT
    while not list(out.glob("runs/*/history.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is None:
        act(proc)
    try:
        text, _ = proc.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return 1, f"{HANG}no answer after {CLI_TIMEOUT} s"
    return proc.returncode, text


def library(fn):
    """Run ``fn``; a kdlib error (or a warning that names the problem) is the user's message."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    except Exception as exc:  # noqa: BLE001
        from kdlib.checkpoint import CheckpointError
        from kdlib.data.splits import CorruptDataError, DataNotFoundError
        from kdlib.fileio import WriteError
        from kdlib.runs import DamagedRunError, RunMismatchError

        kdlib_errors = (CorruptDataError, DataNotFoundError, WriteError, RunMismatchError, DamagedRunError,
                        CheckpointError)
        raised_in = traceback.extract_tb(exc.__traceback__)[-1].filename
        if isinstance(exc, kdlib_errors) or (type(exc) is ValueError and f"{os.sep}kdlib{os.sep}" in raised_in):
            return 1, f"{type(exc).__name__}: {exc}"
        return 1, "Traceback (most recent call last):\n" + traceback.format_exc()
    user_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return (0, "\n".join(user_warnings))


def went_on(ok: bool, what: str) -> tuple[int, str]:
    """For a case whose right outcome is to go on: clear (with ``what``) when it went on correctly, else silent."""
    return (1, what) if ok else (0, f"wrong: {what}")


_FINISHED = {}
# the demo's frontier needs more epochs than these short runs have (its points would train equal epochs)
TWO_EPOCH_METHODS = ("--methods", "full", "ast", "random@ast")


def finished_cifar_demo(tmp: Path) -> Path:
    """A copy, in ``tmp/out``, of one finished cifar10-ast demo run (seed 0, 2 epochs), made once per process."""
    if "out" not in _FINISHED:
        out = Path(tempfile.mkdtemp(prefix="kdlib-replay-finished-")) / "out"
        code, text = cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "2", *TWO_EPOCH_METHODS)
        assert code == 0, text[-2000:]
        _FINISHED["out"] = out
    shutil.copytree(_FINISHED["out"], tmp / "out")
    return tmp / "out"


# ---- silently wrong before ---------------------------------------------------------------------------------

@case("cifar10-ast demo on the digits, then --data a CIFAR-10 folder into the same --out", r"other data")
def another_dataset_same_out(tmp: Path):
    out = finished_cifar_demo(tmp)
    write_cifar_batches(tmp / "cifar", per_batch=40)
    return cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "2", *TWO_EPOCH_METHODS,
               "--data", str(tmp / "cifar"))


@case("mnist-kd: a teacher trained on the digits, then MNIST files into the same folder", r"other data")
def mnist_teacher_other_data(tmp: Path):
    from kdlib.data.mnist import load_mnist
    from kdlib.experiments import mnist_kd

    cfg = mnist_kd.make_config("demo", seeds=[0], teacher_epochs=1, progress=False)
    digits = mnist_kd.load_data(cfg)
    digits_small = type(digits)(digits.name, digits.source, digits.train_x[:128], digits.train_y[:128],
                                digits.val_x[:64], digits.val_y[:64], digits.test_x[:64], digits.test_y[:64])
    mnist_kd.train_teacher(cfg, digits_small, tmp, CPU)
    write_idx_dataset(tmp / "mnist", n_train=120, n_test=40, names=HOJJATK_NAMES, nested=True)
    return library(lambda: mnist_kd.train_teacher(cfg, load_mnist(tmp / "mnist", download=False), tmp, CPU))


@case("imagenet100-ast: a finished run rerun with another target rate", r"objective\.target")
def imagenet_other_rate(tmp: Path):
    from kdlib.experiments import imagenet100_ast as exp

    cfg = exp.make_config("demo", epochs=2, progress=False, methods=["full", "ast"])
    cfg.train.batch_size = 32
    data = exp.load_data(cfg, out_dir=tmp)
    data.train_rows = data.train_rows[:96]
    exp.train_method("ast", cfg, data, tmp, CPU, 0)
    cfg.target_rate = 0.9
    return library(lambda: exp.train_method("ast", cfg, data, tmp, CPU, 0))


@case("cifar10-ast killed after its last checkpoint, before record.json: the rerun's selection trace",
      r"stream kept: 8 batches")
def stream_after_kill(tmp: Path):
    from kdlib import runs
    from kdlib.experiments import cifar10_ast as exp

    cfg = exp.make_config("demo", seeds=[0], epochs=3, progress=False, methods=["full", "ast"])
    cfg.train.batch_size, cfg.model_kwargs = 32, {"width": 0.25}
    data = tiny_splits(128, 32, 32, channels=3, size=16)
    exp.train_method("ast", cfg, data, tmp, CPU, 0)
    folder = runs.run_dir(tmp, "ast", 0)
    (folder / "record.json").unlink()
    (folder / "selection_trace.npz").unlink()
    record = exp.train_method("ast", cfg, data, tmp, CPU, 0)
    if record["selection_trace"] is None:
        return 0, "no stream"  # silent: the notebook's last cell would fail
    return 1, f"stream kept: {len(np.load(record['selection_trace'])['scores'])} batches"


@case("fewer training rows than a batch, with drop_last", r"make no full batch of 32")
def zero_steps(tmp: Path):
    from kdlib.data.device_loader import DeviceLoader
    from kdlib.train import TrainConfig, fit

    data = tiny_splits(n_train=20)
    mean, std = data.channel_stats()
    loader = DeviceLoader(data.train_x, data.train_y, 32, CPU, mean, std, shuffle=True, drop_last=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    return library(lambda: fit(model, data, TrainConfig(epochs=1, batch_size=32, progress=False), train_loader=loader))


@case("--seeds 0 0", r"repeats a seed")
def duplicate_seeds(tmp: Path):
    return cli("run", "cifar10-ast", "--out", str(tmp / "out"), "--seeds", "0", "0")


# ---- raw tracebacks and cryptic errors before --------------------------------------------------------------

@case("--out names a file", r"is a file, not a folder")
def out_is_file(tmp: Path):
    (tmp / "f").write_text("x")
    return cli("run", "cifar10-ast", "--out", str(tmp / "f"))


@case("--out under a read-only parent", r"cannot be written")
def out_read_only_parent(tmp: Path):
    return cli("run", "cifar10-ast", "--out", "/proc/kdlib/out")


@case("a read-only --out", r"cannot be written")
def out_read_only(tmp: Path):
    return cli("run", "cifar10-ast", "--out", "/proc")


@case("a full disk while a checkpoint is written", r"the disk is full")
def full_disk(tmp: Path):
    from kdlib import fileio

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    real, torch.save = torch.save, full
    try:
        result = library(lambda: fileio.atomic_save({"a": 1}, tmp / "last.pt"))
    finally:
        torch.save = real
    left = [p.name for p in tmp.iterdir() if ".tmp" in p.name]
    return (0, f"temporary files left: {left}") if left else result


@case("kaggle status with credentials but no network", r"(could not reach|cannot reach|network)")
def kaggle_no_network(tmp: Path):
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import socket\n"
        "def _refuse(*a, **k):\n    raise OSError(101, 'Network is unreachable')\n"
        "socket.socket.connect = _refuse\nsocket.create_connection = _refuse\nsocket.getaddrinfo = _refuse\n")
    env = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "0" * 32, "KAGGLE_CONFIG_DIR": str(tmp / "cfg"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return cli("kaggle", "status", "someone/some-kernel", env=env)


@case("an IDX file that holds 0 images", r"holds no images")
def empty_idx(tmp: Path):
    from kdlib.data.mnist import load_mnist

    write_idx_dataset(tmp, n_train=40, n_test=10, names=HOJJATK_NAMES)
    (tmp / HOJJATK_NAMES["train_images"]).write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp / HOJJATK_NAMES["train_labels"]).write_bytes(idx_bytes(np.zeros((0,), np.uint8)))
    return library(lambda: load_mnist(tmp, download=False))


def _finished_run(tmp: Path):
    from kdlib.experiments.common import train_and_test
    from kdlib.train import TrainConfig

    data = tiny_splits()
    config = TrainConfig(epochs=1, batch_size=32, progress=False)
    train_and_test("direct", "simplecnn", data, config, tmp, CPU)
    return lambda: train_and_test("direct", "simplecnn", data, config, tmp, CPU)


@case("a truncated record.json", r"record\.json cannot be read.*Delete the folder")
def truncated_record(tmp: Path):
    rerun = _finished_run(tmp)
    path = tmp / "runs" / "direct-seed0" / "record.json"
    path.write_text(path.read_text()[:50])
    return library(rerun)


@case("an older run folder's truncated test_predictions.npy", r"test_predictions\.npy cannot be read.*Delete the folder")
def truncated_predictions(tmp: Path):
    rerun = _finished_run(tmp)
    path = tmp / "runs" / "direct-seed0" / "record.json"
    record = json.loads(path.read_text())
    np.save(path.parent / "test_predictions.npy", np.array(record.pop("test_predictions")))
    path.write_text(json.dumps(record))  # as an older kdlib wrote it: the predictions beside the record
    (path.parent / "test_predictions.npy").write_bytes((path.parent / "test_predictions.npy").read_bytes()[:20])
    return library(rerun)


@case("a CIFAR pickle that would run code", r"objects other than arrays.*not loaded")
def code_pickle(tmp: Path):
    import pickle

    from kdlib.data.cifar import load_cifar10

    folder = write_cifar_batches(tmp, per_batch=10)

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2))
    return library(lambda: load_cifar10(tmp, download=False, verify_md5=False))


@case("an unnamed MNIST-shaped set at the top level beside MNIST in a subfolder", r"2 complete MNIST copies.*not used")
def two_candidates(tmp: Path):
    from kdlib.data.mnist import find_mnist_files

    write_idx_dataset(tmp / "mnist-dataset", n_train=40, n_test=10, names=HOJJATK_NAMES, nested=True)
    write_idx_dataset(tmp, n_train=30, n_test=10, gz=True, seed=3)
    code, text = library(lambda: find_mnist_files(tmp))
    return (1 if text else 0), text  # the warning is the message; without it the choice was silent


@case("a kaggle.json left inside kdlib/ at build time", r"kaggle\.json not bundled")
def credential_file_in_package(tmp: Path):
    import base64
    import io
    import zipfile

    import kdlib
    from kdlib import kaggle

    key = "0123456789abcdef0123456789abcdef"
    leaked = Path(kdlib.__file__).parent / "kaggle.json"
    leaked.write_text(json.dumps({"username": "someone", "key": key}))
    try:
        folder = kaggle.build("mnist-kd", tmp / "build")
    finally:
        leaked.unlink()
    text = (folder / "01_mnist_kd.ipynb").read_text()
    bundle = re.search(r"b64decode\(\\?['\"]([A-Za-z0-9+/=]+)", text).group(1)
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(bundle))).namelist()
    if key in text or any(n.endswith("kaggle.json") for n in names):
        return 0, "the credential travels in the notebook"
    return 1, f"kaggle.json not bundled ({len(names)} allow-listed files)"


@case("a Kaggle key in a Python file inside kdlib/ at build time", r"credential")
def credential_in_source(tmp: Path):
    import kdlib
    from kdlib import kaggle

    leaked = Path(kdlib.__file__).parent / "_local_settings.py"
    leaked.write_text("KAGGLE_" + 'KEY = "' + "0123456789abcdef" * 2 + '"\n')  # built here: no key-like literal in the repo
    try:
        return library(lambda: kaggle.build("mnist-kd", tmp / "build"))
    finally:
        leaked.unlink()


# ---- issue 21: what a run kept is checked ------------------------------------------------------------------

@case("a best.pt copied in from another run's folder, then the run finished", r"best\.pt was written with a different "
      r"configuration")
def best_pt_from_another_run(tmp: Path):
    import dataclasses

    from kdlib.experiments.common import train_and_test
    from kdlib.train import TrainConfig

    data, config = tiny_splits(), TrainConfig(epochs=2, batch_size=32, progress=False)
    for seed in (0, 1):
        train_and_test("direct", "simplecnn", data, dataclasses.replace(config, seed=seed), tmp, CPU)
    (tmp / "runs" / "direct-seed0" / "record.json").unlink()  # killed before its record
    shutil.copy(tmp / "runs" / "direct-seed1" / "best.pt", tmp / "runs" / "direct-seed0" / "best.pt")
    return library(lambda: train_and_test("direct", "simplecnn", data, config, tmp, CPU))


@case("cifar10-ast: record.json's test_accuracy edited, then the same command again",
      r"record\.json contradicts its own test predictions \(test_accuracy is 0\.999")
def edited_record(tmp: Path):
    out = finished_cifar_demo(tmp)
    path = out / "runs" / "full-seed0" / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "test_accuracy": 0.999}))
    return cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "2", *TWO_EPOCH_METHODS)


@case("cifar10-ast: the --out folder deleted mid-run", r"--out .* was deleted or replaced during the run: the run "
      r"stopped there")
def out_deleted_mid_run(tmp: Path):
    out = tmp / "out"
    code, text = cli_during_run(out, lambda proc: shutil.rmtree(out), "cifar10-ast", "--seeds", "0", "--epochs", "4")
    if out.exists():
        return 0, f"{out} was made again: {text[-500:]}"
    return code, text


@case("cifar10-ast: the --out folder replaced by an empty one mid-run", r"was deleted or replaced during the run")
def out_replaced_mid_run(tmp: Path):
    out = tmp / "out"

    def replace(proc):
        out.rename(tmp / "moved")
        out.mkdir()

    code, text = cli_during_run(out, replace, "cifar10-ast", "--seeds", "0", "--epochs", "4")
    if list(out.glob("runs/*/last.pt")):
        return 0, f"training went on into the new folder: {text[-500:]}"
    return code, text


# ---- issue 21: parameters are checked, not coerced ----------------------------------------------------------

def _notebook_parameters(experiment: str, **parameters):
    """What the notebook's first cell does with its parameters cell (a Kaggle batch run injects nothing)."""
    import importlib

    exp = importlib.import_module(f"kdlib.experiments.{experiment}")
    return library(lambda: exp.make_config("demo", **parameters))


# (description, experiment module, parameters, what the line must say)
NOTEBOOK_PARAMETERS = [
    ("SEEDS = '10' in cifar10-ast's parameters cell", "cifar10_ast", {"seeds": "10"},
     r"SEEDS \(--seeds\)='10' must be a list of seeds"),
    ("SEEDS = 5 in mnist-kd's parameters cell", "mnist_kd", {"seeds": 5}, r"must be a list of seeds, e\.g\. \[5\]"),
    ("SEEDS = [0.7] in imagenet100-ast's parameters cell", "imagenet100_ast", {"seeds": [0.7]}, r"0\.7 is not a seed"),
    ("EPOCHS = 2.5 in cifar10-ast's parameters cell", "cifar10_ast", {"epochs": 2.5},
     r"EPOCHS \(--epochs\)=2\.5: epochs are whole numbers"),
    ("TARGET_RATE = '0.3' (a string) in imagenet100-ast's parameters cell", "imagenet100_ast", {"target_rate": "0.3"},
     r"TARGET_RATE .*a number in \(0, 1\]"),
    ("TEACHER_EPOCHS = 0 in mnist-kd's parameters cell", "mnist_kd", {"teacher_epochs": 0},
     r"TEACHER_EPOCHS \(--teacher-epochs\)=0"),
]
for _description, _experiment, _parameters, _expect in NOTEBOOK_PARAMETERS:
    case(_description, _expect)(lambda tmp, e=_experiment, p=_parameters: _notebook_parameters(e, **p))


@case("--seeds 4294967296 (runs as seed 0 would)", r"4294967296 is not a seed")
def seed_2_to_the_32(tmp: Path):
    return cli("run", "cifar10-ast", "--out", str(tmp / "out"), "--seeds", "0", str(2**32))


@case("--epochs 100000000", r"EPOCHS \(--epochs\)=100000000: epochs are whole numbers from 1 to 1000")
def epochs_huge(tmp: Path):
    return cli("run", "cifar10-ast", "--out", str(tmp / "out"), "--epochs", "100000000", timeout=120)


@case("mnist-kd --seeds 0 --ablation-seeds 5", r"ABLATION_SEEDS \(--ablation-seeds\)=5: a whole number from 1 to 1")
def ablation_seeds_beyond_seeds(tmp: Path):
    return cli("run", "mnist-kd", "--out", str(tmp / "out"), "--seeds", "0", "--ablation-seeds", "5")


@case("--device gpu", r"DEVICE \(--device\)='gpu' is not a device")
def device_gpu(tmp: Path):
    return cli("run", "cifar10-ast", "--out", str(tmp / "out"), "--device", "gpu")


@case("DEVICE = 0 in a notebook (torch reads it as cuda:0)", r"DEVICE \(--device\)=0: name a device")
def device_int(tmp: Path):
    from kdlib import runtime

    return library(lambda: runtime.select_device(0))


@case("DEVICES = \"cuda:0 cuda:1\" in a notebook (one string, not a list)", r"DEVICES \(--devices\)='cuda:0 cuda:1' is not a list")
def devices_string(tmp: Path):
    from kdlib import devices

    return library(lambda: devices.select_devices("cuda:0 cuda:1"))


# ---- issue 21: data read as they are, or refused with the reason -------------------------------------------

@case("CIFAR-10 image folders of 16-bit PNGs", r"read as 8-bit, scaled")
def sixteen_bit_pngs(tmp: Path):
    from PIL import Image

    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=2, test_per_class=1)
    for path in root.rglob("*.png"):
        Image.fromarray(np.full((32, 32), 30_000, np.uint16)).save(path)
    data = load_cifar10(root, download=False)
    value = int(data.train_x.float().mean().round())
    return went_on(value == round(30_000 * 255 / 65535), f"read as 8-bit, scaled: mean pixel {value}")


@case("CIFAR-10 folders: test/ lacks one class folder", r"test has no folder for the CIFAR-10 class\(es\) dog")
def missing_test_class(tmp: Path):
    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=2, test_per_class=1)
    shutil.rmtree(root / "test" / "dog")
    return library(lambda: load_cifar10(root, download=False))


@case("CIFAR-10 folders: train/ lacks one class folder", r"no complete copy of CIFAR-10 .*class\(es\) frog")
def train_class_missing(tmp: Path):
    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=2, test_per_class=1)
    shutil.rmtree(root / "train" / "frog")
    return library(lambda: load_cifar10(root, download=False))


@case("CIFAR-10 folders: an eleventh class folder in train/", r"not CIFAR-10 classes, not used: lion")
def eleventh_class(tmp: Path):
    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=2, test_per_class=1)
    shutil.copytree(root / "train" / "cat", root / "train" / "lion")
    notes = load_cifar10(root, download=False).notes
    return went_on(any("lion" in n for n in notes), "; ".join(notes))


@case("CIFAR-10 folders: an empty class folder in train/", r"class folder\(s\) horse hold no")
def empty_class(tmp: Path):
    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=2, test_per_class=1)
    for path in (root / "train" / "horse").iterdir():
        path.unlink()
    return library(lambda: load_cifar10(root, download=False))


@case("CIFAR-10 folders: test images copied from train/", r"3 of the 10 test images are exact copies")
def leakage(tmp: Path):
    from kdlib.data.cifar import load_cifar10

    root = write_cifar_tree(tmp, per_class=3, test_per_class=1)
    for name in ("cat", "dog", "ship"):
        shutil.copy(root / "train" / name / "0002.png", root / "test" / name / "0000.png")
    notes = load_cifar10(root, download=False).notes
    return went_on(any("exact copies" in n for n in notes), "; ".join(notes))


@case("a CIFAR pickle with fractional labels", r"labels must be integers 0-9; found float64 values such as 2\.5")
def fractional_labels(tmp: Path):
    import pickle

    from kdlib.data.cifar import load_cifar10

    folder = write_cifar_batches(tmp, per_batch=10)
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    entry[b"labels"] = [2.5] * 10
    (folder / "data_batch_1").write_bytes(pickle.dumps(entry, protocol=2))
    return library(lambda: load_cifar10(tmp, download=False, verify_md5=False))


@case("CIFAR pickles saved with protocol 5", r"read: 10 test images")
def pickle_protocol_5(tmp: Path):
    import pickle

    from kdlib.data.cifar import load_cifar10

    folder = write_cifar_batches(tmp, per_batch=10)
    for path in folder.glob("*_batch*"):
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        path.write_bytes(pickle.dumps(entry, protocol=5))
    data = load_cifar10(tmp, download=False, verify_md5=False)
    return went_on(len(data.test_y) == 10, f"read: {len(data.test_y)} test images")


@case("an empty CIFAR test_batch", r"test_batch: holds no images")
def empty_test_batch(tmp: Path):
    import pickle

    from kdlib.data.cifar import load_cifar10

    folder = write_cifar_batches(tmp, per_batch=10)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, 2))
    return library(lambda: load_cifar10(tmp, download=False, verify_md5=False))


@case("MNIST gzip files without the .gz suffix", r"read: 30 training images")
def gzip_without_suffix(tmp: Path):
    import gzip

    from kdlib.data.mnist import load_mnist

    for path in write_idx_dataset(tmp, n_train=30, n_test=10, names=HOJJATK_NAMES).values():
        path.write_bytes(gzip.compress(path.read_bytes()))
    data = load_mnist(tmp, download=False)
    return went_on(len(data.train_y) + len(data.val_y) == 30, f"read: {len(data.train_y) + len(data.val_y)} training images")


@case("ImageNet-100 images one folder deeper (train/<wnid>/images/)", r"found: 4 training images of 2 classes")
def imagenet_nested(tmp: Path):
    from PIL import Image

    from kdlib.data.imagenet100 import load_imagenet100

    for split, count in (("train", 2), ("val", 1)):
        for wnid in ("n00000001", "n00000002"):
            for k in range(count):
                path = tmp / split / wnid / "images" / f"{k}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20, 20), (k * 50, 0, 0)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 classes, not 100
        index = load_imagenet100(tmp, expected={"train": 2, "val": 1})
    return went_on(len(index.train) == 4, f"found: {len(index.train)} training images of {len(index.classes)} classes")


@case("ImageNet-100: JPEGs replaced by other images of the same size, rerun", r"1 image\(s\) changed since the store")
def imagenet_changed_images(tmp: Path):
    import io

    from PIL import Image

    from kdlib.data import image_store

    items = []
    for i in range(4):
        path = tmp / "src" / f"n0000000{i % 2}" / f"{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), (40 * i, 90, 0)).save(path, quality=95)
        path.write_bytes(path.read_bytes() + bytes(300))
        items.append((str(path), i % 2))
    first = image_store.build_store(items, tmp / "store", size=16, workers=1, progress=False)
    old = np.array(first.images[2])
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (0, 0, 250)).save(buffer, format="JPEG", quality=95)
    size = os.path.getsize(items[2][0])
    Path(items[2][0]).write_bytes(buffer.getvalue().ljust(size, b"\0"))  # the same name and the same size
    code, text = library(lambda: image_store.build_store(items, tmp / "store", size=16, workers=1, progress=False))
    again = image_store.open_store(tmp / "store")
    if np.array_equal(np.array(again.images[2]), old):
        return 0, "the old pixels were reused"
    return (1, text) if text else (0, "no word of the change")


# ---- issue 21: kaggle metadata -------------------------------------------------------------------------------

def _pushed_metadata(tmp: Path, edit) -> tuple[int, str]:
    """kaggle validate of a built push folder whose kernel-metadata.json a user edited."""
    from kdlib import kaggle

    folder = kaggle.build("mnist-kd", tmp / "build", owner="someone")
    path = folder / kaggle.METADATA_FILE
    path.write_text(edit(path.read_text()))
    problems = kaggle.validate_kernel_folder(folder)
    return (1 if problems else 0), "\n".join(problems)


@case("kernel-metadata.json with a trailing comma", r"kernel-metadata\.json: not valid JSON")
def metadata_trailing_comma(tmp: Path):
    return _pushed_metadata(tmp, lambda text: text.rstrip().removesuffix("}") + ",}")


@case("kernel-metadata.json: a JSON list", r"must hold a JSON object of fields, not a list")
def metadata_list(tmp: Path):
    return _pushed_metadata(tmp, lambda text: "[" + text + "]")


@case("kernel-metadata.json: a number for the title", r"title: 42 must be a string")
def metadata_number(tmp: Path):
    return _pushed_metadata(tmp, lambda text: json.dumps({**json.loads(text), "title": 42}))


@case("kernel-metadata.json: machine_shape 'gpu'", r"machine_shape: 'gpu' is not a Kaggle GPU machine shape")
def metadata_shape(tmp: Path):
    return _pushed_metadata(tmp, lambda text: json.dumps({**json.loads(text), "machine_shape": "gpu"}))


@case("kernel-metadata.json: is_private 'yes'", r"is_private: 'yes' must be true or false")
def metadata_flag(tmp: Path):
    return _pushed_metadata(tmp, lambda text: json.dumps({**json.loads(text), "is_private": "yes"}))


@case("kernel-metadata.json: dataset_sources as one string", r"^dataset_sources: 'hojjatk/mnist-dataset' must be a "
      r"list of strings[^\n]*$")
def metadata_string_list(tmp: Path):
    return _pushed_metadata(tmp, lambda text: json.dumps({**json.loads(text), "dataset_sources": "hojjatk/mnist-dataset"}))


@case("kaggle build --owner 'José Silva'", r"--owner 'José Silva' .*is not a Kaggle user name")
def owner_with_space(tmp: Path):
    return cli("kaggle", "build", "mnist-kd", "--owner", "José Silva", "--out", str(tmp / "build"))


@case("kaggle build --resume-from 'me/my kernel'", r"the slug 'my kernel' is not a Kaggle slug")
def resume_from_with_space(tmp: Path):
    return cli("kaggle", "build", "mnist-kd", "--resume-from", "me/my kernel", "--out", str(tmp / "build"))


# ---- issue 21: Ctrl-C -------------------------------------------------------------------------------------------

@case("Ctrl-C during a cifar10-ast run, then the same command", r"interrupted: the run stopped; every finished run .* "
      r"run the same command again to resume")
def ctrl_c(tmp: Path):
    out = tmp / "out"
    code, text = cli_during_run(out, lambda proc: proc.send_signal(signal.SIGINT), "cifar10-ast", "--seeds", "0",
                                "--epochs", "3", *TWO_EPOCH_METHODS)
    if code != 130:
        return code, text
    kept = sorted(p.parent.name for p in out.glob("runs/*/last.pt"))
    if not kept:
        return 1, f"{LOST}no checkpoint was kept: {text[-300:]}"
    again, rerun = cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "3",
                       *TWO_EPOCH_METHODS)
    if again != 0:
        return again, f"the rerun failed: {rerun[-1000:]}"
    return code, text


def classify(code: int, text: str, expect: str) -> str:
    if text.startswith(HANG):
        return "hang"
    if text.startswith(LOST):
        return "data lost"
    if "Traceback (most recent call last)" in text:
        return "raw traceback"
    if code == 0:
        return "silent"
    return "clear" if re.search(expect, text, re.S) else "cryptic"


VERDICTS = ("clear", "silent", "hang", "raw traceback", "cryptic", "data lost")


def replay(fn) -> tuple[int, str]:
    tmp = Path(tempfile.mkdtemp(prefix="kdlib-replay-"))
    try:
        return fn(tmp)
    except Exception:  # noqa: BLE001  (the replay's own set-up failed: count it, show it)
        return 1, "Traceback (most recent call last):\n" + traceback.format_exc()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("description, expect, fn", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(description, expect, fn):
    code, text = replay(fn)
    assert classify(code, text, expect) == "clear", text[-3000:]


def main(only: list[str]) -> int:
    cases = [c for c in CASES if not only or any(word in c[0] for word in only)]
    counts = dict.fromkeys(VERDICTS, 0)
    for description, expect, fn in cases:
        code, text = replay(fn)
        verdict = classify(code, text, expect)
        counts[verdict] += 1
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or [""]
        print(f"[{verdict}] {description}\n    {last[0][:300]}", flush=True)
    print(f"{len(cases)} tried, " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
    return 0 if counts["clear"] == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
