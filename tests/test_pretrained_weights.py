"""Pretrained weights without the internet: found under /kaggle/input in a Kaggle model's or a dataset's mount
layout, checked (the hash a torchvision name publishes, keys and shapes), refused at once with what to attach when
there are none and no internet, and the imagenet100-ast kernel valid with the internet off and a model attached."""

import hashlib
import json

import pytest
import torch

from kdlib import kaggle
from kdlib.experiments import NOTEBOOKS
from kdlib.experiments import imagenet100_ast
from kdlib.models import pretrained
from kdlib.models.pretrained import PretrainedWeightsInvalid, PretrainedWeightsNotFound


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No internet and an empty torch.hub cache; every connectivity probe is recorded."""
    probes = []
    monkeypatch.setattr(pretrained, "_internet", lambda *a: probes.append(a) or False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("a download was attempted with the internet off"))
    return probes


def _torchvision_named(folder, payload: bytes, prefix: str | None = None):
    """A file named as torchvision names its weights: resnet50-<first 8 hex of its sha256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"resnet50-{prefix or hashlib.sha256(payload).hexdigest()[:8]}.pth"
    path.write_bytes(payload)
    return path


def _saved(state: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("layout", [
    "resnet50/pytorch/default/1",  # a Kaggle model: <model-slug>/<framework>/<variation>/<version>
    "models/someone/resnet50/pytorch/default/1",  # the same under models/<owner>/
    "my-weights/torchvision/imagenet",  # a dataset, nested; only the file names the architecture
    "datasets/someone/my-weights",  # a dataset under datasets/<owner>/
])
def test_attached_weights_are_found_in_every_mount_layout(input_root, offline, layout):
    from test_data_imagenet100 import write_tree

    write_tree(input_root / "imagenet100", ["n00000000", "n00000001"], "kaggle-ambityga",
               per_class={"train": 2, "val": 1})  # ImageNet beside them: its class folders are not searched
    (input_root / "notes").mkdir()
    (input_root / "notes" / "resnet18.pth").write_bytes(b"")  # another architecture: not taken
    path = _torchvision_named(input_root / layout, b"weights")
    assert pretrained.find_weights("resnet50") == path
    assert pretrained.resolve_weights("resnet50") == (path, str(path))
    assert offline == []  # found without asking the network


def test_timm_files_in_a_model_mount_are_found_safetensors_after_pth(input_root):
    folder = input_root / "resnet-50" / "pytorch" / "a1-in1k" / "1"
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        (folder / name).write_bytes(b"")
    assert pretrained.weight_files("resnet50", input_root) == [folder / "pytorch_model.bin",
                                                               folder / "model.safetensors"]


def test_a_renamed_wrong_file_is_refused_by_its_published_hash(input_root, offline):
    path = _torchvision_named(input_root / "resnet50" / "pytorch" / "default" / "1", b"not the weights", "11ad3fa6")
    with pytest.raises(PretrainedWeightsInvalid, match=r"resnet50-11ad3fa6\.pth: its name publishes sha256 11ad3fa6"):
        pretrained.check_weights("resnet50")
    copy = path.with_name("resnet50-11ad3fa6 (1).pth")  # a browser's second download keeps the hash checked
    path.rename(copy)
    assert pretrained.published_hash(copy) == "11ad3fa6"
    with pytest.raises(PretrainedWeightsInvalid, match="its name publishes sha256"):
        pretrained.check_weights("resnet50")


def test_a_shape_mismatch_is_one_line_naming_the_key(input_root, offline):
    payload = _saved({"conv1.weight": torch.zeros(64, 3, 3, 3)})  # a 3x3 stem where ResNet-50 has 7x7
    path = _torchvision_named(input_root / "resnet50" / "pytorch" / "default" / "1", payload)  # its hash is right
    with pytest.raises(PretrainedWeightsInvalid) as caught:
        pretrained.check_weights("resnet50")
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{path} does not fit resnet50: 'conv1.weight' has shape (64, 3, 3, 3), the model's is (64, 3, 7, 7)"


def test_a_file_missing_a_key_names_it(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(PretrainedWeightsInvalid, match=r"x.pth does not fit resnet50: it has no '0.bias' \(shape \(3,\)\)"):
        pretrained.fitting_state({"0.weight": torch.zeros(3, 2)}, model, tmp_path / "x.pth", "resnet50")


def test_no_weights_and_no_internet_stop_before_any_data_is_loaded(input_root, offline, monkeypatch):
    from test_data_imagenet100 import write_tree

    write_tree(input_root / "imagenet100", ["n00000000", "n00000001"], "kaggle-ambityga",
               per_class={"train": 2, "val": 1})
    monkeypatch.setattr(imagenet100_ast.image_store, "build_store", lambda *a, **k: pytest.fail("data was loaded"))
    cfg = imagenet100_ast.make_config("quick", progress=False)
    with pytest.raises(PretrainedWeightsNotFound) as caught:
        imagenet100_ast.locate_data(cfg)  # the notebook's first check of its inputs
    message = str(caught.value)
    assert "\n" not in message and len(offline) == 1
    for said in ("no ImageNet-1k weights for resnet50", str(input_root), "torch.hub's cache", "Add Input > Models",
                 f"'{pretrained.MODEL_SOURCE_EXAMPLE}'", "model_sources or dataset_sources", "internet on"):
        assert said in message, said


def test_the_hub_cache_is_used_before_any_download(input_root, offline, tmp_path):
    cached = _torchvision_named(tmp_path / "hub" / "checkpoints", b"cached")
    assert pretrained.resolve_weights("resnet50") == (cached, f"torch.hub cache ({cached})")
    assert offline == []


def test_the_download_is_torchvisions_checked_one_into_the_hub_cache(input_root, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(pretrained, "_internet", lambda url: url.startswith("https://download.pytorch.org/"))
    calls = []

    def download(url, map_location=None, check_hash=False):
        calls.append((url, check_hash))
        _torchvision_named(tmp_path / "hub" / "checkpoints", b"x", url.rsplit("-", 1)[1][:8])

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)
    path, origin = pretrained.resolve_weights("resnet50")
    assert calls == [("https://download.pytorch.org/models/resnet50-11ad3fa6.pth", True)]
    assert path == tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth" and "IMAGENET1K_V2" in origin


def test_the_committed_kernel_runs_with_the_internet_off_and_a_model_attached():
    meta = json.loads((kaggle.KERNELS_DIR / "imagenet100-ast" / kaggle.METADATA_FILE).read_text())
    assert meta["enable_internet"] is False and kaggle.weights_sources(meta, "resnet50") == meta["model_sources"] != []
    assert kaggle.validate_kernel("imagenet100-ast") == []


def test_the_built_kernel_validates_with_the_internet_off(tmp_path):
    folder = kaggle.build("imagenet100-ast", tmp_path, owner="someone")
    meta = json.loads((folder / kaggle.METADATA_FILE).read_text())
    assert meta["enable_internet"] is False and meta["model_sources"]
    assert kaggle.validate_kernel_folder(folder) == []
    intro = json.loads((folder / NOTEBOOKS["imagenet100-ast"]).read_text())["cells"][0]["source"]
    assert "internet off" in "".join(intro) and f"`{meta['model_sources'][0]}`" in "".join(intro)


@pytest.mark.parametrize("sources, refused", [
    ({"model_sources": [], "dataset_sources": ["ambityga/imagenet100"]}, True),
    ({"model_sources": ["google/efficientnet/pyTorch/b0/1"]}, True),  # attached, but not the architecture's
    ({"model_sources": ["someone/resnet-50/pyTorch/default/1"]}, False),
    ({"dataset_sources": ["ambityga/imagenet100", "someone/resnet50-weights"]}, False),
])
def test_internet_off_without_weights_attached_is_refused_in_one_line(tmp_path, sources, refused):
    import shutil

    from kdlib.paths import NOTEBOOK_DIR

    folder = tmp_path / "imagenet100-ast"
    shutil.copytree(kaggle.KERNELS_DIR / "imagenet100-ast", folder)
    shutil.copy(NOTEBOOK_DIR / NOTEBOOKS["imagenet100-ast"], folder)
    meta = json.loads((folder / kaggle.METADATA_FILE).read_text())
    (folder / kaggle.METADATA_FILE).write_text(json.dumps({**meta, **sources}))
    problems = kaggle.validate_kernel_folder(folder)
    if refused:
        assert len(problems) == 1 and problems[0].startswith(
            "enable_internet: false, but 03_imagenet100_ast.ipynb fine-tunes pretrained resnet50 weights and none are "
            "attached: add a Kaggle model"), problems
    else:
        assert problems == []
    (folder / kaggle.METADATA_FILE).write_text(json.dumps({**meta, **sources, "enable_internet": True}))
    assert kaggle.validate_kernel_folder(folder) == []  # with the internet on, torchvision downloads them
