import gzip

import numpy as np
import pytest
import torch

from conftest import HOJJATK_NAMES, TORCHVISION_NAMES, fake_digits, idx_bytes, write_csv_dataset, write_idx_dataset
from kdlib.data import CorruptDataError, DataNotFoundError
from kdlib.data.idx import read_idx
from kdlib.data.mnist import find_mnist_files, load_digits_28, load_mnist


def _check_labels_match_images(x: torch.Tensor, y: torch.Tensor):
    # fake_digits draws a bright row at 4 + 2 * label: the loader must keep images and labels paired.
    rows = x[:, 0].float().mean(dim=2).argmax(dim=1)
    assert torch.equal(rows, 4 + 2 * y)


@pytest.mark.parametrize("names", [TORCHVISION_NAMES, HOJJATK_NAMES], ids=["torchvision", "hojjatk"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_idx_found_in_explicit_dir(tmp_path, names, gz, nested):
    write_idx_dataset(tmp_path / "mnist", n_train=60, n_test=20, names=names, gz=gz, nested=nested)
    data = load_mnist(tmp_path / "mnist", download=False)
    assert data.info()["n_train"] + data.info()["n_val"] == 60 and data.info()["n_test"] == 20
    assert data.train_x.shape[1:] == (1, 28, 28) and data.train_x.dtype == torch.uint8
    _check_labels_match_images(data.train_x, data.train_y)
    _check_labels_match_images(data.test_x, data.test_y)


@pytest.mark.parametrize("layout", ["old", "new"])
def test_found_under_kaggle_input_both_layouts(input_root, layout):
    base = input_root / "mnist-dataset" if layout == "old" else input_root / "datasets" / "hojjatk" / "mnist-dataset"
    write_idx_dataset(base, names=HOJJATK_NAMES, nested=True)
    data = load_mnist(download=False)
    assert str(base) in data.source and data.info()["n_test"] == 20


def test_csv_found_under_kaggle_input(input_root):
    write_csv_dataset(input_root / "datasets" / "oddrationale" / "mnist-in-csv", n_train=50, n_test=15)
    data = load_mnist(download=False)
    assert data.name == "MNIST (csv)" and data.info()["n_test"] == 15
    _check_labels_match_images(data.test_x, data.test_y)


def test_fashion_mnist_is_not_taken_for_mnist(input_root):
    write_idx_dataset(input_root / "fashionmnist", seed=5)
    write_idx_dataset(input_root / "mnist-dataset", n_train=40, n_test=10)
    files = find_mnist_files(input_root)
    assert "fashion" not in str(files["train_images"].relative_to(input_root))


def test_files_of_two_datasets_are_never_mixed(input_root):
    # Each dataset folder holds only half the files: no complete copy exists anywhere.
    paths = write_idx_dataset(input_root / "a")
    for role in ("test_images", "test_labels"):
        target = input_root / "b" / paths[role].name
        target.parent.mkdir(exist_ok=True)
        paths[role].rename(target)
    with pytest.raises(DataNotFoundError):
        load_mnist(download=False)


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    write_idx_dataset(tmp_path, n_train=100, n_test=10)
    a, b = load_mnist(tmp_path, n_val=20, seed=3, download=False), load_mnist(tmp_path, n_val=20, seed=3, download=False)
    c = load_mnist(tmp_path, n_val=20, seed=4, download=False)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    assert len(a.val_y) == 20 and len(a.train_y) == 80
    # train and validation together are exactly the original training set
    joined = torch.cat([a.train_x, a.val_x]).flatten(1)
    original = torch.from_numpy(fake_digits(100, 0)[0]).flatten(1)
    assert sorted(map(bytes, joined.numpy())) == sorted(map(bytes, original.numpy()))


def test_single_unsplit_pair_is_split_train_val_test(tmp_path):
    images, labels = fake_digits(200, 9)
    (tmp_path / "images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    data = load_mnist(tmp_path, download=False)
    info = data.info()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (144, 16, 40)
    assert "200 images" in data.name
    _check_labels_match_images(data.val_x, data.val_y)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_named_in_the_error(tmp_path, gz):
    paths = write_idx_dataset(tmp_path, gz=gz)
    raw = paths["train_images"].read_bytes()
    if gz:
        paths["train_images"].write_bytes(gzip.compress(gzip.decompress(raw)[:-100]))
    else:
        paths["train_images"].write_bytes(raw[:-100])
    with pytest.raises(CorruptDataError, match="truncated") as err:
        load_mnist(tmp_path, download=False)
    assert str(paths["train_images"]) in str(err.value)


def test_corrupt_gzip_is_named_in_the_error(tmp_path):
    paths = write_idx_dataset(tmp_path, gz=True)
    paths["test_labels"].write_bytes(paths["test_labels"].read_bytes()[:20])
    with pytest.raises(CorruptDataError) as err:
        load_mnist(tmp_path, download=False)
    assert str(paths["test_labels"]) in str(err.value)


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x09\x99" + b"\x00" * 20)
    with pytest.raises(CorruptDataError, match="magic"):
        read_idx(path)


def test_label_count_mismatch(tmp_path):
    paths = write_idx_dataset(tmp_path)
    paths["train_labels"].write_bytes(idx_bytes(np.zeros(59, dtype=np.uint8)))
    with pytest.raises(CorruptDataError, match="60 images but"):
        load_mnist(tmp_path, download=False)


def test_missing_dataset_says_what_to_attach(input_root):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(download=False)
    message = str(err.value)
    assert "hojjatk/mnist-dataset" in message and "DATA_DIR" in message and str(input_root) in message


def test_wrong_data_dir(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope", download=False)
    with pytest.raises(DataNotFoundError, match="no complete copy of MNIST"):
        load_mnist(tmp_path, download=False)


def test_bad_csv_is_named(tmp_path):
    write_csv_dataset(tmp_path)
    (tmp_path / "mnist_test.csv").write_text("label,a,b\n1,2,3\n")
    with pytest.raises(CorruptDataError, match="mnist_test.csv"):
        load_mnist(tmp_path, download=False)


def test_digits_are_named_and_shaped_like_mnist():
    data = load_digits_28()
    info = data.info()
    assert "digits" in data.name and "not MNIST" in data.name
    assert info["n_train"] + info["n_val"] + info["n_test"] == 1797
    assert data.train_x.shape[1:] == (1, 28, 28) and data.train_x.dtype == torch.uint8
    # MNIST-like framing: a 4-pixel empty border around the 20x20 digit
    assert data.train_x[:, :, :4].max() == 0 and data.train_x[:, :, :, -4:].max() == 0
    assert data.train_x.max() > 200
    assert torch.equal(load_digits_28().test_y, data.test_y)  # split fixed by the data seed
