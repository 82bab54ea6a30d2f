import json
import shutil
from pathlib import Path

import pytest

from kdlib.experiments import NOTEBOOKS
from kdlib.kaggle import KERNELS_DIR, METADATA_FILE, validate_kernel_folder

ROOT = Path(__file__).resolve().parent.parent


def push_folder(tmp_path: Path, name: str) -> Path:
    """The kernel's metadata with its notebook beside it, as a push folder holds them."""
    folder = tmp_path / name
    shutil.copytree(KERNELS_DIR / name, folder)
    shutil.copy(ROOT / "notebooks" / NOTEBOOKS[name], folder)
    return folder


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_kernels_are_valid(tmp_path, name):
    folder = push_folder(tmp_path, name)
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["code_file"] == NOTEBOOKS[name]
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True
    # internet off except where pretrained weights are downloaded (ImageNet-100's ResNet-50)
    assert meta["enable_internet"] is (name == "imagenet100-ast")
    assert validate_kernel_folder(folder) == []


def _mutate(folder: Path, **changes):
    path = folder / METADATA_FILE
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, expected", [
    ({"title": "kd"}, "title: must be at least 5"),
    ({"title": "Another title entirely"}, "must equal the title's slug"),
    ({"id": "me/abc"}, "at least five characters"),
    ({"id": None}, "id: set it"),
    ({"language": "julia"}, "language: 'julia'"),
    ({"kernel_type": "app"}, "kernel_type: 'app'"),
    ({"dataset_sources": ["mnist"]}, "dataset_sources: 'mnist'"),
    ({"model_sources": ["google/resnet"]}, "model_sources: 'google/resnet'"),
    ({"machine_shape": None}, "machine_shape: not set"),
    ({"machine_shape": "NvidiaTeslaP100"}, "P100"),
    ({"enable_internet": None}, "enable_internet: state it explicitly"),
    ({"code_file": "missing.ipynb"}, "code_file: "),
])
def test_each_problem_names_its_field(tmp_path, changes, expected):
    folder = push_folder(tmp_path, "mnist-kd")
    _mutate(folder, **changes)
    problems = validate_kernel_folder(folder)
    assert any(expected in p for p in problems), problems


def test_stored_outputs_and_credentials_are_caught(tmp_path):
    folder = push_folder(tmp_path, "mnist-kd")
    nb_path = folder / NOTEBOOKS["mnist-kd"]
    nb = json.loads(nb_path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    nb_path.write_text(json.dumps(nb))
    (folder / "kaggle.json").write_text('{"username": "someone", "key": "' + "0123456789abcdef" * 2 + '"}')
    problems = validate_kernel_folder(folder)
    assert any("stored outputs" in p for p in problems)
    assert any("kaggle.json" in p and "credential" in p for p in problems)
    assert not any("0123456789abcdef" in p for p in problems)  # a credential is never echoed


def test_missing_or_broken_metadata(tmp_path):
    assert "missing" in validate_kernel_folder(tmp_path)[0]
    (tmp_path / METADATA_FILE).write_text("{not json")
    assert "not valid JSON" in validate_kernel_folder(tmp_path)[0]


def test_cli_validates_every_kernel(capsys):
    from kdlib.__main__ import main

    assert main(["kaggle", "validate"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}: ok" in out for name in NOTEBOOKS)
    assert main(["kaggle", "validate", "nope"]) == 1


def isolated_kernel(tmp_path: Path, monkeypatch) -> str:
    """A Jupyter kernel whose Python sees the installed libraries (torch, ipykernel...) but not kdlib: the
    project venv's site-packages are on its path without their .pth files, so the editable install of kdlib
    is not active. Returns the kernel name."""
    import site
    import subprocess
    import sys

    venv = tmp_path / "isolated-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = next(venv.glob("lib/python*/site-packages"))
    (target / "project-libraries.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    import os

    without_checkout = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as the kernels are started
    probe = subprocess.run([str(python), "-c", "import kdlib"], cwd=tmp_path, capture_output=True, env=without_checkout)
    assert probe.returncode != 0, "kdlib must not be importable from the isolated environment"
    spec_dir = tmp_path / "jupyter" / "kernels" / "kdlib-isolated"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "isolated", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "kdlib-isolated"


# Kaggle with the internet off: the kernel's Python refuses every connection that leaves the machine (the
# kernel's own ZeroMQ sockets are local and not Python sockets); programs it starts (git, via pip) get a dead proxy.
NO_NETWORK = """
import socket

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
_LOCAL = {"localhost", "127.0.0.1", "::1", "", None}


def _check(host):
    host = host.decode() if isinstance(host, bytes) else host
    if host not in _LOCAL:
        raise OSError(101, f"Network is unreachable: {host} (the internet is off in this test)")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


def kaggle_session(tmp_path: Path, monkeypatch, **env) -> tuple[str, dict, Path, Path]:
    """What a Kaggle batch session gives a notebook: a fresh kernel that cannot import kdlib (no PYTHONPATH
    to a checkout, a cwd away from one), KAGGLE_KERNEL_RUN_TYPE=Batch, the network refused, and a generated
    /kaggle/input and /kaggle/working. Returns (kernel name, its environment, input root, working dir)."""
    import os

    kernel = isolated_kernel(tmp_path, monkeypatch)
    site_dir = tmp_path / "no-network"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(NO_NETWORK)
    kaggle_input, working = tmp_path / "kaggle" / "input", tmp_path / "kaggle" / "working"
    kaggle_input.mkdir(parents=True)
    working.mkdir(parents=True)
    dead_proxy = "http://127.0.0.1:9"
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KDLIB_INSTALL_SOURCE")}
    environment.update(PYTHONPATH=str(site_dir), KAGGLE_KERNEL_RUN_TYPE="Batch", KDLIB_INPUT_ROOT=str(kaggle_input),
                       KDLIB_WORKING_DIR=str(working), HOME=str(tmp_path / "home"), HTTP_PROXY=dead_proxy,
                       HTTPS_PROXY=dead_proxy, http_proxy=dead_proxy, https_proxy=dead_proxy, PIP_NO_INPUT="1",
                       # not Kaggle's, this machine's: its few cores are shared, and two OpenMP threads spinning
                       # against other processes made the demo 8 times slower (measured)
                       OMP_NUM_THREADS="1", **env)
    return kernel, environment, kaggle_input, working


def run_as_kaggle_does(notebook: Path, kernel: str, env: dict, cwd: Path, timeout: int = 600):
    """Execute the notebook as it is (no parameters injected), in cwd, as Kaggle's batch run does. Returns the
    executed notebook and the error that stopped it (None when it ran to the end)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, resources={"metadata": {"path": str(cwd)}})
    error = None
    try:
        client.execute(env=env, cwd=str(cwd))
    except CellExecutionError as exc:
        error = exc
    nbformat.write(nb, cwd.parent / f"executed-{notebook.name}")  # kept beside /kaggle/working, to read after a failure
    return nb, error


def outputs_of(cell) -> str:
    return "".join("".join(o.get("text", "")) + str(o.get("evalue", "")) for o in cell.get("outputs", []))


ATTACHED = {  # kernel -> (its data set's folder under /kaggle/input, the name results.json gives it, its test count)
    "mnist-kd": ("mnist-dataset", "MNIST (idx)", 60),  # the old mount; the fast tests cover both
    "cifar10-ast": ("cifar10-python", "CIFAR-10", 20),
    "imagenet100-ast": ("imagenet100", "ImageNet-100 (unknown class list)", 15),
}


def attach(kaggle_input: Path, name: str) -> Path:
    from conftest import HOJJATK_NAMES, write_cifar_batches, write_idx_dataset

    folder = kaggle_input / ATTACHED[name][0]
    if name == "mnist-kd":
        write_idx_dataset(folder, n_train=300, n_test=60, names=HOJJATK_NAMES, nested=True)
    elif name == "cifar10-ast":
        write_cifar_batches(folder, per_batch=20)
    else:  # ambityga/imagenet100's layout (train.X1..4, val.X, Labels.json), 5 classes of its real list
        from test_data_imagenet100 import SUBSETS, write_tree

        write_tree(folder, SUBSETS["kaggle-ambityga"]["wnids"][:5], "kaggle-ambityga", per_class={"train": 30, "val": 3})
    return folder


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(ATTACHED))
def test_built_kernel_runs_as_kaggle_runs_it(tmp_path, monkeypatch, name):
    """`python -m kdlib kaggle build NAME --preset demo`, executed as Kaggle's batch run does with the data set
    attached in its real layout: the demo trains on the attached data, not the digits, in the preset built in."""
    from kdlib.kaggle import BUNDLE_DIR, build

    folder = build(name, tmp_path / "build", owner="someone", preset="demo")
    assert validate_kernel_folder(folder) == []
    kernel, env, kaggle_input, working = kaggle_session(tmp_path, monkeypatch)
    attached = attach(kaggle_input, name)
    nb, error = run_as_kaggle_does(folder / NOTEBOOKS[name], kernel, env, cwd=working)
    assert error is None, str(error)[-3000:]
    results = json.loads((working / name / "results.json").read_text())
    _, dataset_name, n_test = ATTACHED[name]
    assert results["preset"] == "demo" and results["hardware"]["platform"] == "kaggle"
    assert results["dataset"]["name"] == dataset_name and results["dataset"]["n_test"] == n_test
    assert results["dataset"]["source"].startswith(str(attached))
    cells = nb.cells
    setup = next(c for c in cells if "kdlib-setup" in c.metadata.get("tags", []))
    assert f"from {BUNDLE_DIR}/kdlib" in outputs_of(setup)  # kdlib came from the notebook itself
    first_line = outputs_of(cells[[i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])][0] + 1])
    assert first_line.startswith(f"data: {dataset_name} from {attached} (found under {kaggle_input}); preset demo; "
                                 "device cpu (no CUDA GPU visible)\n")


def repository_copy(tmp_path: Path) -> Path:
    """What `pip install git+REPOSITORY` would fetch, as a local folder (no network needed)."""
    source = tmp_path / "repository"
    shutil.copytree(ROOT / "kdlib", source / "kdlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    return source


@pytest.mark.notebook
def test_raw_notebook_opened_from_the_badge_on_kaggle_installs_kdlib(tmp_path, monkeypatch):
    """The Open-in-Kaggle badge: the notebook from notebooks/ as it is, on Kaggle with the internet on. The setup
    cell pip-installs kdlib (here from a local copy of the repository, as KDLIB_INSTALL_SOURCE allows)."""
    kernel, env, kaggle_input, working = kaggle_session(
        tmp_path, monkeypatch, KDLIB_INSTALL_SOURCE=f"--no-deps --no-build-isolation {repository_copy(tmp_path)}")
    attached = attach(kaggle_input, "mnist-kd")
    notebook = working / NOTEBOOKS["mnist-kd"]
    shutil.copy(ROOT / "notebooks" / NOTEBOOKS["mnist-kd"], notebook)
    nb, error = run_as_kaggle_does(notebook, kernel, env, cwd=working)
    assert error is None, str(error)[-3000:]
    results = json.loads((working / "mnist-kd" / "results.json").read_text())
    assert results["preset"] == "demo" and results["dataset"]["name"] == "MNIST (idx)"
    assert results["dataset"]["source"].startswith(str(attached)) and results["dataset"]["n_test"] == 60
    assert list(tmp_path.glob("isolated-venv/lib/python*/site-packages/kdlib/__init__.py"))  # pip installed it there


def test_raw_notebook_with_the_internet_off_says_what_to_do(tmp_path, monkeypatch):
    kernel, env, _, working = kaggle_session(tmp_path, monkeypatch)
    notebook = working / NOTEBOOKS["mnist-kd"]
    shutil.copy(ROOT / "notebooks" / NOTEBOOKS["mnist-kd"], notebook)
    nb, error = run_as_kaggle_does(notebook, kernel, env, cwd=working, timeout=180)
    assert error is not None and error.ename == "RuntimeError", error
    assert "fatal: unable to access" in error.evalue  # what went wrong, from pip's output
    assert "kdlib could not be installed" in error.evalue and "Settings > Internet" in error.evalue
    assert "kaggle push" in error.evalue and "ModuleNotFoundError" not in str(error)
    setup = next(c for c in nb.cells if "kdlib-setup" in c.metadata.get("tags", []))
    assert "Settings > Internet" in outputs_of(setup)  # the setup cell, not a later one, stopped the run


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_build_replaces_only_the_setup_cell(tmp_path, name):
    """...and adds the preset's injected-parameters cell (tested in test_platform_data)."""
    import nbformat

    from kdlib.kaggle import build

    folder = build(name, tmp_path, owner="someone")
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["id"].startswith("someone/")
    source = nbformat.read(ROOT / "notebooks" / NOTEBOOKS[name], as_version=4)
    built = nbformat.read(folder / NOTEBOOKS[name], as_version=4)
    built.cells = [c for c in built.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert len(source.cells) == len(built.cells)
    for a, b in zip(source.cells, built.cells):
        if "kdlib-setup" in a.metadata.get("tags", []):
            assert "base64.b64decode" in b.source and "import kdlib" in b.source
        else:
            assert a.source == b.source
    assert all(not c.get("outputs") for c in built.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_build_injects_the_preset_after_the_parameters_cell(tmp_path, name):
    import nbformat

    from kdlib.kaggle import build

    default = json.loads((KERNELS_DIR / name / "kdlib.json").read_text())["preset"]
    for preset, expected in ((None, default), ("demo", "demo")):
        folder = build(name, tmp_path / str(preset), owner="someone", preset=preset)
        cells = nbformat.read(folder / NOTEBOOKS[name], as_version=4).cells
        i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        injected = cells[i + 1]
        assert injected.metadata["tags"] == ["injected-parameters"]
        assert injected.source == f'# Parameters\nPRESET = "{expected}"\n'
        assert sum("injected-parameters" in c.metadata.get("tags", []) for c in cells) == 1
        assert validate_kernel_folder(folder) == []
    with pytest.raises(ValueError, match="demo, quick, full"):
        build(name, tmp_path / "bad", preset="huge")


def test_default_presets_are_the_t4_ones():
    from kdlib.kaggle import default_preset

    assert {name: default_preset(name) for name in NOTEBOOKS} == {
        "mnist-kd": "full", "cifar10-ast": "full", "imagenet100-ast": "quick"}


def test_cli_build_takes_a_preset(tmp_path, capsys):
    import nbformat

    from kdlib.__main__ import main

    assert main(["kaggle", "build", "mnist-kd", "--preset", "demo", "--out", str(tmp_path)]) == 0
    assert "PRESET='demo'" in capsys.readouterr().out
    cells = nbformat.read(tmp_path / "mnist-kd" / NOTEBOOKS["mnist-kd"], as_version=4).cells
    assert any(c.source == '# Parameters\nPRESET = "demo"\n' for c in cells)
