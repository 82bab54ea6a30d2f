import json
import re
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
    # internet off everywhere: ImageNet-100's pretrained ResNet-50 comes from an attached Kaggle model
    assert meta["enable_internet"] is False
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
    first_line = outputs_of(cells[[i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])][0] + 1])
    assert first_line.startswith(f"data: {dataset_name} from {attached} (found under {kaggle_input}); preset demo; "
                                 "device cpu (no CUDA GPU visible)\n")
    # nbclient, as Kaggle runs it (no papermill), writes the results cell's update into the glance at the top
    glance = next(c for c in cells if "glance" in c.metadata.get("tags", []))
    shown = "".join(o.get("data", {}).get("text/markdown", "") for o in glance.outputs)
    assert shown.startswith("## Results at a glance") and dataset_name in shown and "**Verdicts**" in shown


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


def _assignments(cells, name="PRESET"):
    """(cell index, line) of every top-level assignment of ``name`` in the code cells."""
    import re

    line = re.compile(rf"^{name}\s*=")
    return [(i, text) for i, c in enumerate(cells) if c.cell_type == "code"
            for text in c.source.splitlines() if line.match(text)]


HIDDEN_FLAGS = {"_kg_hide-input": True, "_kg_hide-output": True}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_build_changes_only_the_setup_and_parameters_cells_behind_an_intro(tmp_path, name):
    """The source's cells in order behind one intro cell; the setup cell bundles kdlib and is hidden (Kaggle and
    Jupyter), the parameters cell differs from the source in its PRESET line only."""
    import nbformat

    from kdlib.kaggle import build

    folder = build(name, tmp_path, owner="someone")
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["id"].startswith("someone/")
    source = nbformat.read(ROOT / "notebooks" / NOTEBOOKS[name], as_version=4)
    built = nbformat.read(folder / NOTEBOOKS[name], as_version=4)
    intro, *rest = built.cells
    assert intro.cell_type == "markdown" and intro.metadata["tags"] == ["kdlib-kernel-intro"]
    assert len(source.cells) == len(rest)
    for a, b in zip(source.cells, rest):
        if "kdlib-setup" in a.metadata.get("tags", []):
            assert "base64.b64decode" in b.source and "import kdlib" in b.source
            assert {k: b.metadata[k] for k in HIDDEN_FLAGS} == HIDDEN_FLAGS
            assert b.metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
        elif "parameters" in a.metadata.get("tags", []):
            differ = [(x, y) for x, y in zip(a.source.splitlines(), b.source.splitlines()) if x != y]
            assert len(a.source.splitlines()) == len(b.source.splitlines()) and len(differ) <= 1
            assert all(x.startswith("PRESET") for x, _ in differ)
        else:
            assert a.source == b.source and a.metadata == b.metadata
    # the bundle is hidden, and beside it only what the source hides itself (the glance cell's one-line source)
    hidden_in_source = [c for c in source.cells if c.metadata.get("_kg_hide-input")
                        and "kdlib-setup" not in c.metadata.get("tags", [])]
    assert sum(bool(c.metadata.get("_kg_hide-input")) for c in built.cells) == 1 + len(hidden_in_source)
    assert all(not c.get("outputs") for c in built.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_build_writes_the_preset_into_the_parameters_cell(tmp_path, name):
    """What a person sees in the parameters cell is what runs: one PRESET assignment in the whole notebook, in
    the cell tagged 'parameters', equal to the preset asked for, its comment kept; no injected cell after it."""
    import ast

    import nbformat

    from kdlib.kaggle import build

    default = json.loads((KERNELS_DIR / name / "kdlib.json").read_text())["preset"]
    source = nbformat.read(ROOT / "notebooks" / NOTEBOOKS[name], as_version=4)
    (_, source_line), = _assignments(source.cells)
    for preset, expected in ((None, default), ("demo", "demo"), ("quick", "quick"), ("full", "full")):
        folder = build(name, tmp_path / str(preset), owner="someone", preset=preset)
        cells = nbformat.read(folder / NOTEBOOKS[name], as_version=4).cells
        (i, line), = _assignments(cells)
        assert "parameters" in cells[i].metadata.get("tags", [])
        assert ast.literal_eval(line.split("=", 1)[1].split("#", 1)[0].strip()) == expected
        assert line.split("#", 1)[1] == source_line.split("#", 1)[1]  # the comment survives
        assert line.index("#") == source_line.index("#")  # in its column
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in cells)
        assert f"preset `{expected}`" in cells[0].source
        assert validate_kernel_folder(folder) == []
    with pytest.raises(ValueError, match="demo, quick, full"):
        build(name, tmp_path / "bad", preset="huge")


def _notebook(*cells, kernel="python3"):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": kernel, "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {}) for source, tags in cells]
    return nb


def test_set_parameters_rewrites_the_assignment_and_keeps_every_comment():
    from kdlib.kaggle import set_parameters

    params = ('# the run\n'
              'PRESET = "demo"      # demo | quick | full (café)\n'
              'SEEDS = ["é",\n'
              '         "ü"]  # two\n'
              'OUT_DIR = None\n')
    nb = _notebook(("x = 1", None), (params, ["parameters"]), ('PRESET = "quick"', ["injected-parameters"]))
    set_parameters(nb, PRESET="quick", SEEDS=[3], OUT_DIR="runs/a")
    assert [c.source for c in nb.cells] == ["x = 1", (
        '# the run\n'
        'PRESET = "quick"     # demo | quick | full (café)\n'
        'SEEDS = [3]  # two\n'
        'OUT_DIR = "runs/a"\n')]  # papermill's rendering of the values; the stale injected cell is gone


@pytest.mark.parametrize("params, expected", [
    ('SEEDS = None  # seeds\n', "its parameters cell has no line 'PRESET = ...' (the form papermill reads"),
    ('PRESET = OTHER = "demo"\n', "its parameters cell has no line 'PRESET = ...'"),
    ('PRESET = "demo"\nPRESET = "full"\n', "assigns PRESET 2 times; keep one line 'PRESET = ...'"),
    ('PRESET = "demo"\nSEEDS = [0,\n', "its parameters cell is not valid Python (line 2: "),
])
def test_set_parameters_refuses_a_cell_it_cannot_rewrite_in_one_line(params, expected):
    from kdlib.kaggle import set_parameters

    with pytest.raises(ValueError, match="^nb.ipynb: ") as refused:
        set_parameters(_notebook((params, ["parameters"])), "nb.ipynb", PRESET="full")
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_build_keeps_working_when_the_source_gains_cells_and_hides_its_setup(tmp_path, monkeypatch):
    """Another cell above the setup (a results summary, markdown) and the source's own hiding of the setup cell:
    build keeps both; a code cell importing kdlib above the setup cell is refused in one line."""
    import nbformat

    from kdlib import kaggle

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(kaggle, "NOTEBOOK_DIR", notebooks)
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOKS["cifar10-ast"], as_version=4)
    setup = next(c for c in nb.cells if "kdlib-setup" in c.metadata.get("tags", []))
    setup.metadata["jupyter"] = {"source_hidden": True}
    setup.metadata["collapsed"] = True
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("## More above the setup", metadata={"tags": ["extra"]}))
    nbformat.write(nb, notebooks / NOTEBOOKS["cifar10-ast"])
    folder = kaggle.build("cifar10-ast", tmp_path / "build", owner="someone")
    built = nbformat.read(folder / NOTEBOOKS["cifar10-ast"], as_version=4)
    assert [c.metadata.get("tags") for c in built.cells[:5]] == [["kdlib-kernel-intro"], None, ["extra"], ["glance"],
                                                                 ["kdlib-setup"]]
    assert built.cells[4].metadata["collapsed"] is True and built.cells[4].metadata["_kg_hide-input"] is True
    assert built.cells[4].metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert validate_kernel_folder(folder) == []

    nb.cells.insert(2, nbformat.v4.new_code_cell("from kdlib import results_io"))
    nbformat.write(nb, notebooks / NOTEBOOKS["cifar10-ast"])
    with pytest.raises(ValueError, match=r"^02_cifar10_ast.ipynb: cell 3 imports kdlib before the cell tagged "
                                         r"'kdlib-setup' \(cell 5\)"):
        kaggle.build("cifar10-ast", tmp_path / "refused", owner="someone")


def test_intro_says_what_the_kernel_runs_and_how_to_change_it(tmp_path):
    import nbformat

    from kdlib.kaggle import build, push

    folder = build("imagenet100-ast", tmp_path / "b", owner="me", preset="full",
                   resume_from="me/kdlib-imagenet-100-adaptive-sparse-training")
    intro = nbformat.read(folder / NOTEBOOKS["imagenet100-ast"], as_version=4).cells[0].source
    assert intro.startswith("## This kernel: kdlib ImageNet-100 adaptive sparse training, preset `full`")
    for said in ("notebooks/03_imagenet100_ast.ipynb", "`full` preset", "`ambityga/imagenet100`",
                 "`me/kdlib-imagenet-100-adaptive-sparse-training`", "`NvidiaTeslaT4`", "internet off",
                 "edit `PRESET` in the parameters cell", "Save & Run All", "--preset quick", "docs/kaggle.md#run-times"):
        assert said in intro, said
    sent = push("cifar10-ast", tmp_path / "p", owner="me", dry_run=True, accelerator="NvidiaTeslaT4Highmem")
    intro = nbformat.read(Path(sent["folder"]) / NOTEBOOKS["cifar10-ast"], as_version=4).cells[0].source
    assert "`NvidiaTeslaT4Highmem`" in intro and "internet off" in intro and "`pankrzysiu/cifar10-python`" in intro
    selftest = nbformat.read(build("gpu-selftest", tmp_path / "s", owner="me") / "00_gpu_selftest.ipynb",
                             as_version=4).cells[0].source
    assert "no presets" in selftest and "PRESET" not in selftest and "Data attached** (under `/kaggle/input`): none" \
        in selftest


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
    (i, line), = _assignments(cells)
    assert "parameters" in cells[i].metadata["tags"] and line.startswith('PRESET = "demo"  ')


# A duration: "94 min", "1.5-2 h", "202 s", "12 hours" (not "12-hour").
_DURATION = re.compile(r"\b\d+(?:[.,]\d+)?(?:\s*-\s*\d+(?:[.,]\d+)?)?\s*(?:h|hours?|min|minutes|s)\b(?!-)")
# Durations that are not run times: Kaggle's session limit, the checkpoint interval, a target (not an estimate).
_NOT_RUN_TIMES = ("at most 12 hours", "save every 10 minutes", "within 15 minutes on a T4 (the estimate in",
                  "cell-timeout")  # a limit a user sets, not how long a run takes


def test_run_times_are_stated_once_in_the_kaggle_page_table():
    """docs/kaggle.md's 'Run times' is the one place a run's time is given (the built kernel's intro links to it);
    every other page points there instead of repeating a figure, so no two pages can disagree again."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    kaggle_page = (ROOT / "docs" / "kaggle.md").read_text()
    assert kaggle_page.count("\n## Run times\n") == 1
    start = kaggle_page.index("\n## Run times\n")
    end = kaggle_page.find("\n## ", start + 1)
    table = kaggle_page[start:end if end > 0 else None]
    rows = [[cell.strip(" `") for cell in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| experiment")]
    assert all(kind in ("measured", "estimate") for *_, kind, _ in [r[:6] for r in rows])  # ..., kind, based on
    from kdlib.kaggle import default_preset, kernel_names

    for name in kernel_names():  # each kernel's own preset has its row
        preset = default_preset(name) or "none"
        assert any(r[0] in (name, "all three") and r[1].startswith(preset) for r in rows), (name, preset)
    for page in pages:
        text = page.read_text()
        if page.name == "kaggle.md":
            text = text.replace(table, "")
        for match in _DURATION.finditer(text):
            around = text[max(0, match.start() - 40):match.end() + 30]
            assert any(allowed in around for allowed in _NOT_RUN_TIMES), (
                f"{page.relative_to(ROOT)} states a time ({around!r}): give it in docs/kaggle.md's Run times table "
                "and point there")
