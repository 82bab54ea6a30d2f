"""Data follows the platform, the budget follows the preset: the real data set whenever it is here (DATA_DIR or
under /kaggle/input), in every preset; demo falls back to the embedded digits only when nothing is, and never
downloads; quick/full download or stop with the message. Plus the notebook's first line, DATA_DIR="kaggle:..."
through kagglehub, and what the notebooks ask of Colab."""

import json
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from conftest import HOJJATK_NAMES, write_cifar_batches, write_idx_dataset
from kdlib import runtime
from kdlib.data import cifar, mnist
from kdlib.data.splits import DataNotFoundError
from kdlib.experiments import NOTEBOOKS, cifar10_ast, imagenet100_ast, mnist_kd

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty download cache, and any download attempt recorded and refused (as with the network off)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    attempts = []

    def refuse(cache):
        attempts.append(cache)
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist, "_download", refuse)
    monkeypatch.setattr(cifar, "_download", refuse)
    return attempts


@pytest.mark.parametrize("layout", ["datasets/hojjatk/mnist-dataset", "mnist-dataset"])
def test_demo_trains_on_mnist_attached_under_kaggle_input(input_root, no_download, layout):
    write_idx_dataset(input_root / layout, n_train=100, n_test=30, names=HOJJATK_NAMES, nested=True)
    cfg = mnist_kd.make_config("demo")
    source = mnist_kd.locate_data(cfg)
    assert source.name == "MNIST (idx)" and not source.embedded
    assert source.where == str(input_root / layout) and source.reason == f"found under {input_root}"
    data = mnist_kd.load_data(cfg, source=source)
    assert data.name == "MNIST (idx)" and len(data.test_y) == 30
    assert mnist_kd.load_data(cfg).info() == data.info()  # the same choice without a source given
    line = runtime.describe_run(source, cfg.preset, torch.device("cpu"))
    assert line == (f"data: MNIST (idx) from {input_root / layout} (found under {input_root}); preset demo; "
                    "device cpu (no CUDA GPU visible)")
    assert no_download == []


def test_demo_without_data_takes_the_digits_and_never_downloads(input_root, no_download, tmp_path):
    # a copy in kdlib's download cache is not "here": only DATA_DIR and /kaggle/input count for demo
    write_idx_dataset(tmp_path / "home" / ".cache" / "kdlib" / "mnist")
    source = mnist_kd.locate_data(mnist_kd.make_config("demo"))
    assert source.embedded and "not MNIST" in source.name and str(input_root) in source.reason
    assert "not MNIST" in mnist_kd.load_data(mnist_kd.make_config("demo"), source=source).name
    assert "not CIFAR-10" in cifar10_ast.locate_data(cifar10_ast.make_config("demo")).name
    assert imagenet100_ast.locate_data(imagenet100_ast.make_config("demo")).embedded
    assert no_download == []


def test_demo_with_data_dir_uses_it(tmp_path, input_root, no_download):
    write_idx_dataset(tmp_path / "mine", n_train=50, n_test=10)
    source = mnist_kd.locate_data(mnist_kd.make_config("demo"), tmp_path / "mine")
    assert source.name == "MNIST (idx)" and source.where == str(tmp_path / "mine") and source.reason == "DATA_DIR"
    with pytest.raises(DataNotFoundError, match="does not exist"):
        mnist_kd.locate_data(mnist_kd.make_config("demo"), tmp_path / "missing")


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_quick_and_full_without_network_stop_with_what_to_attach(input_root, no_download, preset):
    with pytest.raises(DataNotFoundError, match="hojjatk/mnist-dataset"):
        mnist_kd.locate_data(mnist_kd.make_config(preset))
    with pytest.raises(DataNotFoundError, match="pankrzysiu/cifar10-python"):
        cifar10_ast.locate_data(cifar10_ast.make_config(preset))
    with pytest.raises(DataNotFoundError, match="ambityga/imagenet100"):
        imagenet100_ast.locate_data(imagenet100_ast.make_config(preset))
    assert len(no_download) == 2  # MNIST and CIFAR-10 tried to download; ImageNet-100 has no download


def test_quick_downloads_where_the_network_allows(input_root, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist, "_download", lambda cache: write_idx_dataset(cache, n_train=40, n_test=10))
    source = mnist_kd.locate_data(mnist_kd.make_config("quick"))
    cache = tmp_path / "home" / ".cache" / "kdlib" / "mnist"
    assert source.where == str(cache) and source.reason == f"not found locally; downloaded into {cache}"


def test_cifar_demo_uses_attached_cifar(input_root, no_download):
    write_cifar_batches(input_root / "datasets" / "pankrzysiu" / "cifar10-python", per_batch=12)
    cfg = cifar10_ast.make_config("demo")
    source = cifar10_ast.locate_data(cfg)
    assert source.name == "CIFAR-10" and source.where == str(input_root / "datasets" / "pankrzysiu" / "cifar10-python")
    data = cifar10_ast.load_data(cfg, source=source)
    assert data.name == "CIFAR-10" and len(data.test_y) == 12 and data.train_x.shape[1:] == (3, 32, 32)


def test_imagenet_demo_uses_attached_imagenet_and_its_own_store(input_root, tmp_path):
    from test_data_imagenet100 import write_tree

    wnids = [f"n0000000{i}" for i in range(3)]
    write_tree(input_root / "imagenet100", wnids, "kaggle-ambityga", per_class={"train": 12, "val": 2})
    cfg = imagenet100_ast.make_config("demo", progress=False)
    source = imagenet100_ast.locate_data(cfg)
    assert source.name.startswith("ImageNet-100") and source.where == str(input_root / "imagenet100")
    data = imagenet100_ast.load_data(cfg, out_dir=tmp_path / "out", source=source, workers=1)
    assert data.info["name"] == source.name and data.info["n_test"] == 6
    assert Path(data.info["store"]["train"]).name == "imagenet100-36px-train"  # never the digits' store
    # which decoder wrote it, and how many files it left to PIL, are reported (no GPU here: PIL, none left)
    assert (data.info["store"]["decoder"], data.info["store"]["pil_fallback"]) == ("pil-draft", 0)


def test_the_device_part_of_the_line_says_why(monkeypatch):
    from kdlib.data.discovery import DataSource

    source = DataSource("X", None, "here", "because")
    assert runtime.describe_run(source, "quick", torch.device("cpu"), "cpu").endswith("device cpu (DEVICE='cpu')")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert runtime.describe_run(source, "full", torch.device("cuda")) == (
        "data: X from here (because); preset full; device cuda (2 CUDA GPUs visible: Tesla T4)")


def test_data_dir_from_kaggle_through_kagglehub(monkeypatch, tmp_path, input_root, no_download):
    asked = []

    def dataset_download(handle):
        asked.append(handle)
        folder = tmp_path / "kagglehub" / handle / "versions" / "1"
        write_idx_dataset(folder, n_train=50, n_test=10, names=HOJJATK_NAMES, nested=True)
        return str(folder)

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))
    # on Colab the credentials come from the notebook's secrets
    secrets = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "0" * 32}

    def get(name):
        if name not in secrets:
            raise KeyError(name)
        return secrets[name]

    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=get)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "KAGGLE_WORKING", tmp_path / "no-kaggle")
    source = mnist_kd.locate_data(mnist_kd.make_config("quick"), "kaggle:hojjatk/mnist-dataset")
    assert asked == ["hojjatk/mnist-dataset"] and source.name == "MNIST (idx)"
    assert source.reason == "DATA_DIR 'kaggle:hojjatk/mnist-dataset', through kagglehub"
    import os

    assert os.environ["KAGGLE_USERNAME"] == "someone"


def test_kagglehub_missing_says_how_to_install_it(monkeypatch, input_root):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # import kagglehub -> ImportError
    with pytest.raises(ModuleNotFoundError, match="pip install kagglehub"):
        mnist_kd.locate_data(mnist_kd.make_config("demo"), "kaggle:hojjatk/mnist-dataset")


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.values()))
def test_notebooks_ask_colab_for_a_t4_and_print_the_data_line_first(notebook):
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    assert nb.metadata["accelerator"] == "GPU" and nb.metadata["colab"]["gpuType"] == "T4"
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    config = nb.cells[i + 1].source
    first_print = config[config.index("print("):]
    assert first_print.startswith("print(runtime.describe_run(source, cfg.preset, device, DEVICE))")
    assert "exp.locate_data(cfg, DATA_DIR)" in config
