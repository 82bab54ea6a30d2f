"""Replays the bad inputs and events of issue 11 against the CLI and the library, as a user meets them, and
sorts each outcome: *clear* (refused, exit code non-zero or a kdlib error, with one line that names the
problem), *silent* (it went through and would have given wrong results) or a *raw traceback*.

    python tests/replay_bad_inputs.py            # prints one line per case, then 'N tried, N clear, ...'
    python tests/replay_bad_inputs.py kaggle     # only the cases whose description contains 'kaggle'

Exits 1 unless every case is clear. Uses generated files only (no network, no real data sets).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from conftest import HOJJATK_NAMES, idx_bytes, tiny_splits, write_cifar_batches, write_idx_dataset  # noqa: E402

CPU = torch.device("cpu")
CASES = []


def case(description: str, expect: str):
    """``expect``: a regex the clear message must match."""
    def register(fn):
        CASES.append((description, expect, fn))
        return fn
    return register


def cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "kdlib", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stderr + proc.stdout


class Refused(Exception):
    """What a case returns when kdlib refused: the message the user saw."""


def library(fn):
    """Run ``fn``; a kdlib error (or a warning that names the problem) is the user's message."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    except Exception as exc:  # noqa: BLE001
        from kdlib.data.splits import CorruptDataError, DataNotFoundError
        from kdlib.fileio import WriteError
        from kdlib.runs import DamagedRunError, RunMismatchError
        from kdlib.checkpoint import CheckpointError

        kdlib_errors = (CorruptDataError, DataNotFoundError, WriteError, RunMismatchError, DamagedRunError,
                        CheckpointError)
        raised_in = traceback.extract_tb(exc.__traceback__)[-1].filename
        if isinstance(exc, kdlib_errors) or (type(exc) is ValueError and f"{os.sep}kdlib{os.sep}" in raised_in):
            return 1, f"{type(exc).__name__}: {exc}"
        return 1, "Traceback (most recent call last):\n" + traceback.format_exc()
    user_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return (0, "\n".join(user_warnings))


# ---- silently wrong before ---------------------------------------------------------------------------------

@case("cifar10-ast demo on the digits, then --data a CIFAR-10 folder into the same --out", r"other data")
def another_dataset_same_out(tmp: Path):
    out = tmp / "out"
    code, text = cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "2")
    assert code == 0, text[-2000:]
    write_cifar_batches(tmp / "cifar", per_batch=40)
    return cli("run", "cifar10-ast", "--out", str(out), "--seeds", "0", "--epochs", "2", "--data", str(tmp / "cifar"))


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

    cfg = exp.make_config("demo", epochs=2, progress=False)
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

    cfg = exp.make_config("demo", seeds=[0], epochs=3, progress=False)
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


def classify(code: int, text: str, expect: str) -> str:
    if "Traceback (most recent call last)" in text:
        return "raw traceback"
    if code == 0:
        return "silent"
    return "clear" if re.search(expect, text, re.S) else "cryptic"


def main(only: list[str]) -> int:
    cases = [c for c in CASES if not only or any(word in c[0] for word in only)]
    counts = {"clear": 0, "silent": 0, "raw traceback": 0, "cryptic": 0}
    for description, expect, fn in cases:
        tmp = Path(tempfile.mkdtemp(prefix="kdlib-replay-"))
        try:
            code, text = fn(tmp)
        except Exception:  # noqa: BLE001  (the replay's own set-up failed: count it, show it)
            code, text = 1, "Traceback (most recent call last):\n" + traceback.format_exc()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        verdict = classify(code, text, expect)
        counts[verdict] += 1
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or [""]
        print(f"[{verdict}] {description}\n    {last[0][:300]}")
    print(f"{len(cases)} tried, {counts['clear']} clear, {counts['silent']} silent, "
          f"{counts['raw traceback']} raw tracebacks, {counts['cryptic']} cryptic")
    return 0 if counts["clear"] == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
