import pickle

import numpy as np
import pytest
import torch

from conftest import write_cifar_batches
from kdlib.data import CorruptDataError, DataNotFoundError
from kdlib.data.cifar import CLASSES, load_cifar10


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
