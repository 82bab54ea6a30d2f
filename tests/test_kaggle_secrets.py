"""Credentials never travel inside a built notebook: the bundle carries only kdlib's own files (an allow-list),
its contents are scanned before a build, and `validate` looks inside the bundle of a built notebook."""

import base64
import io
import json
import shutil
import tomllib
import zipfile
from pathlib import Path

import pytest

from kdlib import kaggle
from kdlib.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
FAKE_KAGGLE_JSON = json.dumps({"username": "someone", "key": "0123456789abcdef" * 2})


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the kdlib package that `bundle_package` bundles instead of the real one."""
    copy = tmp_path / "kdlib"
    shutil.copytree(ROOT / "kdlib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(kaggle, "__file__", str(copy / "kaggle.py"))
    return copy


def bundled_names(bundle: str) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(bundle))).namelist()


def test_bundle_holds_the_sources_and_the_known_data_files_only(package_copy):
    (package_copy / "kaggle.json").write_text(FAKE_KAGGLE_JSON)
    (package_copy / "data" / "notes.json").write_text("{}")
    (package_copy / "stray.txt").write_text("x")
    names = bundled_names(kaggle.bundle_package())
    assert "kdlib/kaggle.json" not in names and "kdlib/data/notes.json" not in names and "kdlib/stray.txt" not in names
    manifests = {f"kdlib/data/manifests/{name}.json" for name in ("cifar10", "imagenet100", "mnist")}
    assert manifests <= set(names) and "kdlib/__init__.py" in names
    assert all(name.endswith(".py") or name in manifests for name in names)


def test_every_package_data_file_is_bundled():
    """The allow-list follows pyproject.toml's package-data: a data file added there must be added here too."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    declared = {path.relative_to(ROOT / "kdlib").as_posix() for package, patterns in package_data.items()
                for pattern in patterns for path in (ROOT / package.replace(".", "/")).glob(pattern)}
    # the notebooks and kernel folders ship in the wheel for `run` and `kaggle build`; a kernel is its notebook, so
    # the copy of kdlib inside it carries neither
    shipped = {name for name in declared if name.split("/")[0] in ("notebooks", "kaggle_kernels")}
    assert shipped and declared - shipped == set(kaggle.BUNDLE_DATA_FILES)
    assert all((ROOT / "kdlib" / name).is_file() for name in kaggle.BUNDLE_DATA_FILES)


@pytest.mark.parametrize("where, text", [
    ("settings.py", "KAGGLE_" + 'KEY = "0123456789abcdef0123"\n'),
    ("data/manifests/imagenet100.json", FAKE_KAGGLE_JSON),
    ("runtime.py", "TOKEN = 'KGAT" + "_0123456789abcdefABCDEF'\n"),
], ids=["key-in-a-new-source", "kaggle-json-as-data-file", "token-in-a-source"])
def test_build_refuses_a_bundle_with_a_credential(package_copy, tmp_path, capsys, where, text):
    path = package_copy / where
    path.write_text((path.read_text() if path.suffix == ".py" and path.exists() else "") + text)
    with pytest.raises(ValueError, match="credential") as refused:
        kaggle.build("mnist-kd", tmp_path / "build", owner="someone")
    assert where in str(refused.value) and "0123456789abcdef" not in str(refused.value)
    assert not (tmp_path / "build" / "mnist-kd").exists()
    assert main(["kaggle", "build", "mnist-kd", "--out", str(tmp_path / "cli"), "--owner", "someone"]) == 1
    err = capsys.readouterr().err
    assert where in err and "credential" in err and "0123456789abcdef" not in err


def test_validate_looks_inside_the_bundled_package(tmp_path, monkeypatch):
    folder = kaggle.build("mnist-kd", tmp_path, owner="someone")
    assert kaggle.validate_kernel_folder(folder) == []
    # a notebook built by an older kdlib, whose bundle took every .json under kdlib/
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("kdlib/__init__.py", "__version__ = '0'\n")
        zf.writestr("kdlib/kaggle.json", FAKE_KAGGLE_JSON)
    monkeypatch.setattr(kaggle, "bundle_package", lambda: base64.b64encode(buffer.getvalue()).decode("ascii"))
    folder = kaggle.build("mnist-kd", tmp_path, owner="someone")
    problems = kaggle.validate_kernel_folder(folder)
    assert any("kdlib/kaggle.json" in p and "credential" in p for p in problems), problems
    assert not any("0123456789abcdef" in p for p in problems)
