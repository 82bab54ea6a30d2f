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
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True and meta["enable_internet"] is False
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
