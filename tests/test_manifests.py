"""The data manifests are the one source of truth for md5s and class lists: the loaders read them, no code
repeats them, and data_manifests/ (where the documentation points) is the folder the package carries."""

import importlib
import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from conftest import write_cifar_batches
from kdlib import kaggle, paths
from kdlib.data import cifar, imagenet100, mnist

ROOT = Path(__file__).resolve().parent.parent
MD5 = re.compile(r"\b[0-9a-f]{32}\b")


def test_data_manifests_is_the_folder_the_package_carries():
    assert (ROOT / "data_manifests").resolve() == paths.MANIFEST_DIR.resolve()
    assert sorted(p.stem for p in paths.MANIFEST_DIR.glob("*.json")) == sorted(paths.MANIFESTS)
    assert {f"data/manifests/{name}.json" for name in paths.MANIFESTS} == set(kaggle.BUNDLE_DATA_FILES)


def test_no_checksum_or_class_list_is_copied_into_code():
    manifests = {name: paths.read_manifest(name) for name in paths.MANIFESTS}
    checksums = {m for name in paths.MANIFESTS for m in MD5.findall(paths.manifest_path(name).read_text())}
    wnids = {w for subset in manifests["imagenet100"]["subsets"].values() for w in subset["wnids"]}
    assert len(checksums) >= 10 and len(wnids) == 192
    sources = {p: p.read_text() for p in (ROOT / "kdlib").rglob("*.py")}
    for path, text in sources.items():
        assert not checksums & set(MD5.findall(text)), f"{path} repeats a manifest's md5"
        assert not wnids & set(re.findall(r"n\d{8}", text)), f"{path} repeats a class list's wnids"
        assert '"airplane", "automobile"' not in text, f"{path} repeats CIFAR-10's class list"


def test_the_loaders_take_their_checksums_and_classes_from_the_manifests(tmp_path, monkeypatch):
    """A manifest that holds the generated files' md5s and other class names: the CIFAR loader then accepts the
    files without a warning and names the classes as the manifest does."""
    folder = write_cifar_batches(tmp_path / "data")
    manifests = tmp_path / "manifests"
    shutil.copytree(paths.MANIFEST_DIR, manifests)
    manifest = json.loads((manifests / "cifar10.json").read_text())
    for entry in manifest["files"]:
        if "images" in entry:
            entry["md5"] = cifar.md5(folder / entry["name"])
    manifest["classes"] = [f"class {i}" for i in range(10)]
    (manifests / "cifar10.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(paths, "MANIFEST_DIR", manifests)
    try:
        reloaded = importlib.reload(cifar)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a checksum mismatch would warn
            data = reloaded.load_cifar10(tmp_path / "data", download=False)
        assert data.classes == manifest["classes"]
    finally:
        monkeypatch.undo()
        importlib.reload(cifar)
    with pytest.warns(UserWarning, match="checksums"):  # the official md5s again: the generated files differ
        cifar.load_cifar10(tmp_path / "data", download=False)
    assert cifar.CLASSES[:2] == ["airplane", "automobile"]
    assert mnist.CLASSES == paths.read_manifest("mnist")["classes"]
    assert imagenet100.manifest()["subsets"].keys() == {"cmc", "kaggle-ambityga"}
