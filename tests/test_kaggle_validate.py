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
    probe = subprocess.run([str(python), "-c", "import kdlib"], cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0, "kdlib must not be importable from the isolated environment"
    spec_dir = tmp_path / "jupyter" / "kernels" / "kdlib-isolated"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "isolated", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "kdlib-isolated"


@pytest.mark.notebook
@pytest.mark.parametrize("layout", ["datasets/hojjatk/mnist-dataset", "mnist-dataset"], ids=["new-mount", "old-mount"])
def test_built_notebook_runs_as_a_kaggle_batch_session(tmp_path, monkeypatch, layout):
    import papermill

    from conftest import HOJJATK_NAMES, write_idx_dataset
    from kdlib.kaggle import BUNDLE_DIR, build

    folder = build("mnist-kd", tmp_path / "build", owner="someone")
    assert validate_kernel_folder(folder) == []
    kaggle_input, working = tmp_path / "kaggle" / "input", tmp_path / "kaggle" / "working"
    write_idx_dataset(kaggle_input / layout, n_train=300, n_test=60, names=HOJJATK_NAMES, nested=True)
    working.mkdir(parents=True)
    monkeypatch.setenv("KDLIB_INPUT_ROOT", str(kaggle_input))
    monkeypatch.setenv("KDLIB_WORKING_DIR", str(working))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    kernel = isolated_kernel(tmp_path, monkeypatch)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(folder / "01_mnist_kd.ipynb"), str(executed), kernel_name=kernel, cwd=str(folder),
                               parameters={"PRESET": "quick", "SEEDS": [0], "TEACHER_EPOCHS": 1, "STUDENT_EPOCHS": 1},
                               progress_bar=False)
    results = json.loads((working / "mnist-kd" / "results.json").read_text())
    assert results["hardware"]["platform"] == "kaggle" and results["dataset"]["name"] == "MNIST (idx)"
    assert results["dataset"]["source"].startswith(str(kaggle_input / layout))
    setup = next(c for c in json.loads(executed.read_text())["cells"] if "kdlib-setup" in c["metadata"].get("tags", []))
    printed = "".join("".join(o.get("text", "")) for o in setup["outputs"])
    assert f"from {BUNDLE_DIR}/kdlib" in printed  # kdlib came from the notebook itself


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
