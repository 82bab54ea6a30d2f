"""Kernel metadata is validated by type, and against the kaggle client's accepted values where it has them: one
line per problem, naming the field, and at most one problem per field."""

import json
import shutil

import pytest

from kdlib import kaggle
from kdlib.__main__ import main
from kdlib.kaggle import METADATA_FILE, validate_kernel_folder
from test_kaggle_validate import push_folder


def _with(tmp_path, text=None, **changes):
    folder = push_folder(tmp_path, "mnist-kd")
    path = folder / METADATA_FILE
    if text is not None:
        path.write_text(text)
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return validate_kernel_folder(folder)


@pytest.mark.parametrize("changes, expected", [
    ({"title": 123}, "title: 123 must be a string"),
    ({"id": ["kdlib-owner/kdlib-mnist-kd"]}, "id: ['kdlib-owner/kdlib-mnist-kd'] must be a string"),
    ({"code_file": 1}, "code_file: 1 must be a string"),
    ({"machine_shape": "gpu"}, "machine_shape: 'gpu' is not a Kaggle GPU machine shape"),
    ({"machine_shape": "TpuV5E8"}, "machine_shape: 'TpuV5E8' is not a Kaggle GPU machine shape"),
    ({"machine_shape": "Tpu1VmV38"}, "machine_shape: 'Tpu1VmV38' is retired"),
    ({"machine_shape": 4}, "machine_shape: 4 must be a string"),
    ({"is_private": "yes"}, "is_private: 'yes' must be true or false"),
    ({"enable_gpu": 1}, "enable_gpu: 1 must be true or false"),
    ({"enable_internet": "maybe"}, "enable_internet: 'maybe' must be true or false"),
    ({"id": "some one/kdlib-mnist-knowledge-distillation"}, "the owner 'some one' is not a Kaggle user name"),
    ({"id": "zoë/kdlib-mnist-knowledge-distillation"}, "the owner 'zoë' is not a Kaggle user name"),
    ({"dataset_sources": "hojjatk/mnist-dataset"},
     "dataset_sources: 'hojjatk/mnist-dataset' must be a list of strings, e.g. ['hojjatk/mnist-dataset']"),
    ({"dataset_sources": ["hojjatk/mnist dataset"]}, "the slug 'mnist dataset' is not a Kaggle slug"),
    ({"kernel_sources": ["me/My-Kernel"]}, "the slug 'My-Kernel' is not a Kaggle slug"),
    ({"kernel_sources": [7]}, "kernel_sources: [7] must be a list of strings"),
    ({"docker_image_pinning_type": "newest"}, "docker_image_pinning_type: 'newest'; use one of ['original', 'latest']"),
    ({"keywords": "deep learning"}, "keywords: 'deep learning' must be a list of strings, e.g. ['deep learning']"),
    ({"keywords": ["deep learning, pytorch"]},
     "keywords: 'deep learning, pytorch': give each tag as its own non-empty string, e.g. ['deep learning', 'pytorch']"),
    ({"keywords": ["gpu", " "]}, "keywords: ' ': give each tag as its own non-empty string"),
])
def test_each_wrong_type_or_value_is_one_problem_naming_its_field(tmp_path, changes, expected):
    problems = _with(tmp_path, **changes)
    field = next(iter(changes))
    mine = [p for p in problems if p.startswith(f"{field}:")]
    assert len(mine) == 1 and expected in mine[0], problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("name", kaggle.kernel_names())
def test_every_kernel_names_kaggle_tags_the_validator_accepts(tmp_path, name):
    """keywords: Kaggle's tags, lower case as Kaggle lists them, one per string; the kernel still validates."""
    meta = kaggle.read_metadata(kaggle.KERNELS_DIR / name / METADATA_FILE)
    assert meta["keywords"] and all(k == k.strip().lower() and "," not in k for k in meta["keywords"])
    assert "deep learning" in meta["keywords"] and kaggle.metadata_problems(meta) == []
    assert kaggle.validate_kernel(name) == []


@pytest.mark.parametrize("flag", ["true", "false", True])
def test_flags_the_client_accepts_pass(tmp_path, flag):
    assert _with(tmp_path, is_private=flag) == []


@pytest.mark.parametrize("text, expected", [
    ('{"id": "a/b",}', r"kernel-metadata.json: not valid JSON \(.*line 1"),
    ("[1, 2]", r"kernel-metadata.json: must hold a JSON object of fields, not a list"),
])
def test_broken_metadata_is_one_line(tmp_path, text, expected):
    import re

    problems = _with(tmp_path, text=text)
    assert len(problems) == 1 and re.search(expected, problems[0]), problems


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """A copy of kaggle_kernels/ that the CLI reads."""
    folder = tmp_path / "kaggle_kernels"
    shutil.copytree(kaggle.KERNELS_DIR, folder)
    monkeypatch.setattr(kaggle, "KERNELS_DIR", folder)
    return folder


def test_cli_names_broken_metadata_in_one_line_for_validate_and_build(kernels, tmp_path, capsys):
    path = kernels / "mnist-kd" / METADATA_FILE
    path.write_text(path.read_text().replace('"model_sources": []', '"model_sources": [],'))  # a trailing comma
    assert main(["kaggle", "validate", "mnist-kd"]) == 1
    out = capsys.readouterr().out
    assert "mnist-kd: 1 problem(s)" in out and "not valid JSON" in out and "Traceback" not in out
    assert main(["kaggle", "build", "mnist-kd", "--out", str(tmp_path / "build")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "kernel-metadata.json: not valid JSON" in err and "Traceback" not in err


def test_two_kernel_folders_with_one_id_are_refused(kernels, capsys):
    mine = json.loads((kernels / "mnist-kd" / METADATA_FILE).read_text())
    theirs = json.loads((kernels / "cifar10-ast" / METADATA_FILE).read_text())
    theirs.update(id=mine["id"], title=mine["title"])
    (kernels / "cifar10-ast" / METADATA_FILE).write_text(json.dumps(theirs))
    assert main(["kaggle", "validate"]) == 1
    out = capsys.readouterr().out
    assert f"id: {mine['id']!r} is also the id of kaggle_kernels/cifar10-ast" in out


@pytest.mark.parametrize("argv, expected", [
    (["--owner", "some one"], "--owner 'some one' (or $KAGGLE_USERNAME) is not a Kaggle user name"),
    (["--resume-from", "me/my kernel"], "--resume-from: 'me/my kernel': the slug 'my kernel' is not a Kaggle slug"),
])
def test_cli_build_refuses_owners_and_slugs_kaggle_would_refuse(tmp_path, capsys, argv, expected):
    assert main(["kaggle", "build", "mnist-kd", "--out", str(tmp_path / "build"), *argv]) == 1
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_cli_push_refuses_an_unknown_accelerator_before_building(tmp_path, capsys):
    assert main(["kaggle", "push", "mnist-kd", "--dry-run", "--accelerator", "gpu", "--out", str(tmp_path / "b")]) == 1
    assert "--accelerator: 'gpu' is not a Kaggle GPU machine shape" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
