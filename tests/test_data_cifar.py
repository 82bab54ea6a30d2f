import pickle
import shutil

import numpy as np
import pytest
import torch

from conftest import write_cifar_batches, write_cifar_tree
from kdlib.data import CorruptDataError, DataNotFoundError
from kdlib.data.cifar import CLASSES, CifarImageTree, cifar10_source, load_cifar10


def _red_encodes_label(x, y):
    assert torch.equal(x[:, 0, 0, 0].long(), 20 * y)


def test_explicit_dir_and_channel_order(tmp_path):
    write_cifar_batches(tmp_path, per_batch=20)
    with pytest.warns(UserWarning, match="checksums"):  # generated files are not the official ones
        data = load_cifar10(tmp_path, download=False)
    info = data.info()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (90, 10, 20)
    assert data.train_x.shape[1:] == (3, 32, 32) and data.classes == CLASSES
    _red_encodes_label(data.train_x, data.train_y)
    _red_encodes_label(data.test_x, data.test_y)


@pytest.mark.parametrize("layout", ["old", "new"])
def test_found_under_kaggle_input(input_root, layout):
    base = input_root / "cifar10-python" if layout == "old" else input_root / "datasets" / "pankrzysiu" / "cifar10-python"
    folder = write_cifar_batches(base)
    data = load_cifar10(download=False, verify_md5=False)
    assert data.source == str(folder)


def test_truncated_batch_is_named(tmp_path):
    folder = write_cifar_batches(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = write_cifar_batches(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2))
    with pytest.raises(CorruptDataError, match=r"objects other than arrays \((__builtin__|builtins)\.print\)\. It was not loaded"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


def test_wrong_shape_is_named(tmp_path):
    folder = write_cifar_batches(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, f, protocol=2)
    with pytest.raises(CorruptDataError, match="data_batch_1.*3072"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


def test_missing_dataset(input_root, tmp_path):
    with pytest.raises(DataNotFoundError, match="pankrzysiu/cifar10-python"):
        load_cifar10(download=False)
    folder = write_cifar_batches(tmp_path / "partial")
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataNotFoundError, match="no complete"):
        load_cifar10(tmp_path / "partial", download=False)


# ---- CIFAR-10 as image folders ----------------------------------------------------------------------------

def test_image_tree_with_test_folder(tmp_path):
    root = write_cifar_tree(tmp_path / "cifar10", per_class=6, test_per_class=2)
    (root / "train" / "cat").rename(root / "train" / "Cat")  # class folders are matched by name, in any case
    (root / "train" / "Cat" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    data = load_cifar10(root, download=False)
    assert data.name == "CIFAR-10 (PNG image folders)" and data.classes == CLASSES
    assert (len(data.train_y) + len(data.val_y), len(data.test_y)) == (60, 20)
    assert len(data.val_y) == 6  # a tenth of train, as for the pickles
    assert data.train_x.shape[1:] == (3, 32, 32) and data.train_x.dtype == torch.uint8
    _red_encodes_label(data.train_x, data.train_y)  # labels follow CIFAR-10's class order, not the folders'
    _red_encodes_label(data.test_x, data.test_y)
    assert torch.equal(data.test_y.bincount(), torch.full((10,), 2))
    assert data.notes == []


def test_image_tree_without_test_carves_a_stratified_seeded_split(tmp_path):
    root = write_cifar_tree(tmp_path, per_class=12, test_per_class=None, fmt="jpg")
    data = load_cifar10(root, download=False)
    assert data.name == "CIFAR-10 (JPEG image folders)"
    assert torch.equal(data.test_y.bincount(minlength=10), torch.full((10,), 2))  # round(12 / 6) of every class
    assert len(data.train_y) + len(data.val_y) == 100
    info = data.info()
    assert any("carved from train/" in n and "not the official CIFAR-10 test set" in n for n in info["notes"])
    again, other = load_cifar10(root, download=False), load_cifar10(root, download=False, seed=1)
    assert torch.equal(again.test_x, data.test_x) and not torch.equal(other.test_x, data.test_x)
    # JPEG is lossy (the noise in green and blue bleeds into red), but each class's mean red still rises with its label
    red = data.test_x[:, 0].float().mean((1, 2))
    assert (torch.stack([red[data.test_y == c].mean() for c in range(10)]).diff() > 0).all()


def test_bad_image_files_are_skipped_counted_and_said_once(tmp_path):
    root = write_cifar_tree(tmp_path, per_class=3, test_per_class=1)
    (root / "train" / "dog" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "test" / "ship" / "0000.png").write_bytes(b"")
    from PIL import Image
    Image.new("RGB", (40, 48), (20 * CLASSES.index("frog"), 0, 0)).save(root / "train" / "frog" / "big.png")
    with pytest.warns(UserWarning) as caught:
        data = load_cifar10(root, download=False)
    # only the loader's own: a ResourceWarning from another test's file, collected meanwhile, is recorded too
    lines = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(lines) == 2 and all("\n" not in line for line in lines)  # one line per split with bad files
    assert any("1 of 31 train image files could not be decoded" in line and "dog/0001.png" in line for line in lines)
    assert len(data.train_y) + len(data.val_y) == 30 and len(data.test_y) == 9
    assert "1 train images were not 32x32 and were resized to it" in data.notes
    assert sum("could not be decoded" in n for n in data.info()["notes"]) == 2
    _red_encodes_label(data.train_x, data.train_y)


def test_image_tree_discovery(input_root, tmp_path):
    tree = write_cifar_tree(input_root / "datasets" / "someone" / "cifar10-pngs" / "cifar10", per_class=3)
    source = cifar10_source(local_only=True)
    assert isinstance(source.files, CifarImageTree) and source.files.root == tree
    assert source.name == "CIFAR-10 (PNG image folders)"
    assert source.where == str(input_root / "datasets" / "someone" / "cifar10-pngs")
    # the pickles, when also attached, are preferred: they are the official pixels
    write_cifar_batches(input_root / "cifar10-python")
    assert isinstance(cifar10_source(local_only=True).files, dict)


def test_incomplete_tree_is_not_taken_and_the_error_is_one_line(input_root, tmp_path):
    root = write_cifar_tree(tmp_path / "partial", per_class=2)
    shutil.rmtree(root / "train" / "truck")
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(root, download=False)
    assert "no complete copy" in str(err.value) and "train/<class>/" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataNotFoundError, match="train/<class>"):
        cifar10_source(local_only=False, download=False)
