"""Data sets are read as they are, or refused with the reason: any bit depth and mode of image, class folders
compared between train/, test/ and the manifest, integer labels in range, gzip by its content, nested layouts,
the pickle check by what a pickle builds (not its protocol), and train/test duplicates counted. Generated files,
real on-disk layouts."""

import gzip
import re
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import HOJJATK_NAMES, write_cifar_batches, write_cifar_tree, write_idx_dataset
from kdlib.data import CorruptDataError, DataNotFoundError
from kdlib.data.cifar import CLASSES, cifar10_source, decode_images, load_cifar10
from kdlib.data.image_store import decode_resized
from kdlib.data.pixels import to_rgb


# ---- any bit depth and mode ---------------------------------------------------------------------------------

def _sixteen_bit_gray(path, level=40_000):
    Image.fromarray(np.full((32, 32), level, np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"  # what Pillow makes of a 16-bit grayscale PNG
    return round(level * 255 / 65535)


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    expected = _sixteen_bit_gray(tmp_path / "a.png")
    x, ok, _ = decode_images([str(tmp_path / "a.png")])
    assert ok.all() and abs(int(x.max()) - expected) <= 1 and abs(int(x.min()) - expected) <= 1  # not 255
    stored = decode_resized(str(tmp_path / "a.png"), 16)  # the ImageNet-100 store's decoder
    assert abs(int(stored.max()) - expected) <= 1


@pytest.mark.parametrize("mode", ["L", "P", "LA", "RGBA", "CMYK", "1", "I", "F", "I;16"])
def test_every_mode_reads_as_its_8_bit_rgb(mode):
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))
    base = Image.fromarray(gray).convert("RGB")
    if mode == "I;16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(gray.astype(np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(gray.astype(np.float32) / 255)
    else:
        image = base.convert(mode)
    got = np.asarray(to_rgb(image), dtype=int)
    want = np.asarray(base.convert(mode).convert("RGB") if mode in ("P", "CMYK", "1") else base, dtype=int)
    assert got.shape == (32, 32, 3) and np.abs(got - want).max() <= 1, mode


def test_pixels_beyond_16_bits_are_refused_not_guessed():
    from kdlib.data.pixels import UnsupportedPixelsError

    with pytest.raises(UnsupportedPixelsError, match="beyond 16 bits"):
        to_rgb(Image.fromarray(np.full((4, 4), 70_000, np.int32)))


# ---- class folders: train/ against test/ and the manifest ----------------------------------------------------

def test_a_class_missing_from_train_is_named(tmp_path, input_root):
    import shutil

    root = write_cifar_tree(tmp_path / "cifar", per_class=2)
    shutil.rmtree(root / "train" / "truck")
    with pytest.raises(DataNotFoundError, match=r"no complete copy of CIFAR-10 in .*\(.*train has no folder for the "
                                                r"CIFAR-10 class\(es\) truck\)"):
        load_cifar10(root, download=False)
    shutil.copytree(root, input_root / "cifar10-pngs")  # found by the search, not named: the same reason
    with pytest.raises(DataNotFoundError, match=r"class\(es\) truck"):
        cifar10_source(download=False)


def test_a_class_missing_from_test_is_named_not_taken_for_no_test_folder(tmp_path):
    import shutil

    root = write_cifar_tree(tmp_path, per_class=3, test_per_class=1)
    shutil.rmtree(root / "test" / "cat")
    with pytest.raises(CorruptDataError, match=r"test has no folder for the CIFAR-10 class\(es\) cat.*remove test/"):
        cifar10_source(root, download=False)


def test_an_empty_class_folder_is_named(tmp_path):
    root = write_cifar_tree(tmp_path, per_class=3, test_per_class=1)
    for image in (root / "train" / "bird").iterdir():
        image.unlink()
    with pytest.raises(CorruptDataError, match=r"train: the class folder\(s\) bird hold no"):
        load_cifar10(root, download=False)


def test_an_eleventh_class_folder_is_noted_not_dropped_silently(tmp_path):
    import shutil

    root = write_cifar_tree(tmp_path, per_class=3, test_per_class=1)
    shutil.copytree(root / "train" / "cat", root / "train" / "tiger")
    data = load_cifar10(root, download=False)
    assert "train/ holds folder(s) that are not CIFAR-10 classes, not used: tiger" in data.notes
    assert data.num_classes == 10


def test_an_unlabelled_test_folder_is_said_and_a_test_split_carved(tmp_path):
    root = write_cifar_tree(tmp_path, per_class=6, test_per_class=None)
    (root / "test").mkdir()
    Image.new("RGB", (32, 32)).save(root / "test" / "1.png")
    data = load_cifar10(root, download=False)
    assert any("test/ holds no CIFAR-10 class folders (unlabelled images?)" in n for n in data.notes)
    assert any("no labelled test/ folder" in n for n in data.notes)


def test_partial_pickles_name_the_missing_batch(tmp_path):
    folder = write_cifar_batches(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataNotFoundError, match=r"cifar-10-batches-py lacks data_batch_4"):
        load_cifar10(tmp_path, download=False)


# ---- labels are integers in range ---------------------------------------------------------------------------

def _rewrite_batch(folder, name, **changes):
    path = folder / name
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    entry.update({k.encode(): v for k, v in changes.items()})
    path.write_bytes(pickle.dumps(entry, protocol=2))


@pytest.mark.parametrize("labels, message", [
    ([0.5] * 20, r"labels must be integers 0-9; found float64 values such as 0\.5"),
    ([True] * 20, r"labels must be integers 0-9; found bool values such as True"),
    (["1"] * 20, r"labels must be integers 0-9; found str\d* values such as '1'"),
    ([10] + [0] * 19, r"label 10 is out of range 0-9"),
    ([-1] + [0] * 19, r"label -1 is out of range 0-9"),
])
def test_cifar_labels_must_be_integers_in_range(tmp_path, labels, message):
    folder = write_cifar_batches(tmp_path, per_batch=20)
    _rewrite_batch(folder, "data_batch_2", labels=labels)
    with pytest.raises(CorruptDataError, match=rf"data_batch_2: {message}"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


def test_mnist_labels_out_of_range_are_named(tmp_path):
    from conftest import idx_bytes
    from kdlib.data.mnist import load_mnist

    paths = write_idx_dataset(tmp_path, n_train=30, n_test=10)
    paths["test_labels"].write_bytes(idx_bytes(np.array([12] + [0] * 9, np.uint8)))
    with pytest.raises(CorruptDataError, match=r"t10k-labels-idx1-ubyte: label 12 is out of range 0-9"):
        load_mnist(tmp_path, download=False)


# ---- gzip is told by its content ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["gzip without .gz", ".gz not gzipped"])
def test_gzip_is_recognised_by_its_content_not_its_name(tmp_path, case):
    from kdlib.data.mnist import load_mnist

    if case == "gzip without .gz":
        paths = write_idx_dataset(tmp_path, n_train=30, n_test=10, names=HOJJATK_NAMES)
        for path in paths.values():
            path.write_bytes(gzip.compress(path.read_bytes()))
    else:
        paths = write_idx_dataset(tmp_path, n_train=30, n_test=10, gz=True)
        for path in paths.values():
            path.write_bytes(gzip.decompress(path.read_bytes()))
    data = load_mnist(tmp_path, download=False)
    assert len(data.train_y) + len(data.val_y) == 30 and len(data.test_y) == 10


def test_a_truncated_gzip_is_named_as_gzip(tmp_path):
    from kdlib.data.mnist import load_mnist

    paths = write_idx_dataset(tmp_path, n_train=30, n_test=10, names=HOJJATK_NAMES)
    path = paths["train_images"]
    path.write_bytes(gzip.compress(path.read_bytes())[:100])
    with pytest.raises(CorruptDataError, match=r"train-images\.idx3-ubyte: cannot be read as gzip"):
        load_mnist(tmp_path, download=False)


# ---- the pickle check goes by what a pickle builds ----------------------------------------------------------

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_holding_only_arrays_is_read(tmp_path, protocol):
    folder = write_cifar_batches(tmp_path, per_batch=20)
    for path in folder.glob("*_batch*"):
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        path.write_bytes(pickle.dumps(entry, protocol=protocol))
    data = load_cifar10(tmp_path, download=False, verify_md5=False)
    assert len(data.test_y) == 20


@pytest.mark.parametrize("protocol", [2, 5])
def test_an_empty_batch_is_said_to_be_empty_not_an_attack(tmp_path, protocol):
    folder = write_cifar_batches(tmp_path, per_batch=20)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []},
                                                     protocol=protocol))
    with pytest.raises(CorruptDataError, match=r"test_batch: holds no images"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_building_other_objects_is_refused_naming_the_object(tmp_path, protocol):
    import collections

    folder = write_cifar_batches(tmp_path, per_batch=20)
    (folder / "test_batch").write_bytes(pickle.dumps(collections.OrderedDict(data=1), protocol=protocol))
    with pytest.raises(CorruptDataError, match=r"test_batch: it holds objects other than arrays \(collections\.OrderedDict\)"):
        load_cifar10(tmp_path, download=False, verify_md5=False)


# ---- nested ImageNet layouts ----------------------------------------------------------------------------------

def _jpeg(path, red):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (red, 128, 64)).save(path, quality=95)


@pytest.mark.parametrize("layout", ["images one folder deeper", "class folders one folder deeper"])
def test_a_nested_imagenet_layout_is_found(tmp_path, layout):
    from kdlib.data import imagenet100

    wnids = [f"n{i:08d}" for i in range(3)]
    for label, wnid in enumerate(wnids):
        for split, count in (("train", 2), ("val", 1)):
            for k in range(count):
                if layout == "images one folder deeper":  # Tiny ImageNet's train/<wnid>/images/
                    path = tmp_path / split / wnid / "images" / f"{k}.JPEG"
                else:  # an archive that unpacks train/train/<wnid>/
                    path = tmp_path / split / split / wnid / f"{k}.JPEG"
                _jpeg(path, 40 * label)
    with pytest.warns(UserWarning):  # 3 classes, not 100
        index = imagenet100.load_imagenet100(tmp_path, expected={"train": 2, "val": 1})
    assert index.classes == wnids and len(index.train) == 6 and len(index.val) == 3


def test_class_folders_without_images_are_named(tmp_path):
    from kdlib.data import imagenet100

    for split in ("train", "val"):
        (tmp_path / split / "n00000001" / "deeper").mkdir(parents=True)
        (tmp_path / split / "n00000001" / "deeper" / "readme.txt").write_text("no images here")
    with pytest.raises(DataNotFoundError, match=r"the train class folders in .*train hold no .*images at any depth"):
        imagenet100.load_imagenet100(tmp_path)


# ---- exact copies between train and test are counted ----------------------------------------------------------

def test_test_images_copied_from_train_are_counted_and_noted(tmp_path):
    import shutil

    root = write_cifar_tree(tmp_path, per_class=4, test_per_class=2)
    for name in ("cat", "ship"):
        shutil.copy(root / "train" / name / "0000.png", root / "test" / name / "0000.png")  # leakage
    data = load_cifar10(root, download=False)
    assert "2 of the 20 test images are exact copies of training or validation images (leakage): test accuracy " \
           "on them is not held out" in data.notes
    assert any("exact copies" in n for n in data.info()["notes"])  # results.json's dataset.notes


@pytest.mark.parametrize("fmt", ["pickles", "idx"])
def test_duplicates_are_counted_in_every_format(tmp_path, fmt):
    from kdlib.data.mnist import load_mnist

    if fmt == "pickles":
        folder = write_cifar_batches(tmp_path, per_batch=20)
        with open(folder / "data_batch_1", "rb") as f:
            train = pickle.load(f, encoding="bytes")
        _rewrite_batch(folder, "test_batch", data=train[b"data"][:20], labels=train[b"labels"][:20])
        data = load_cifar10(tmp_path, download=False, verify_md5=False)
    else:
        from conftest import fake_digits, idx_bytes

        paths = write_idx_dataset(tmp_path, n_train=30, n_test=10)
        paths["test_images"].write_bytes(idx_bytes(fake_digits(30, 0)[0][:10]))  # the first ten training images
        paths["test_labels"].write_bytes(idx_bytes(fake_digits(30, 0)[1][:10]))
        data = load_mnist(tmp_path, download=False)
    assert any(n.startswith(f"{len(data.test_y)} of the {len(data.test_y)} test images are exact copies") for n in data.notes)
    clean = load_cifar10(write_cifar_batches(tmp_path / "clean").parent, download=False, verify_md5=False) \
        if fmt == "pickles" else load_mnist(write_idx_dataset(tmp_path / "clean")["train_images"].parent, download=False)
    assert not any("exact copies" in n for n in clean.notes)


# ---- the ImageNet-100 store is keyed by content ---------------------------------------------------------------

def _store_items(tmp_path, n=6):
    items = []
    for i in range(n):
        path = tmp_path / "src" / f"n0000000{i % 3}" / f"{i}.JPEG"
        _jpeg(path, 30 * i)
        path.write_bytes(path.read_bytes() + bytes(200))  # room for another picture of the same byte size
        items.append((str(path), i % 3))
    return items


def _replace_keeping_the_size(path, red):
    """Another picture in the same file, of the same pixel size and the same byte size (a JPEG ignores what
    follows its end marker)."""
    import io

    old = path.read_bytes()
    buffer = io.BytesIO()
    Image.new("RGB", (20, 16), (red, 0, 200)).save(buffer, format="JPEG", quality=95)
    new = buffer.getvalue()
    assert len(new) <= len(old)
    path.write_bytes(new + bytes(len(old) - len(new)))


def test_a_changed_image_is_seen_and_decoded_again(tmp_path, monkeypatch):
    from kdlib.data import image_store

    items = _store_items(tmp_path)
    store = image_store.build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    before, source = np.array(store.images), store.meta["source"]
    _replace_keeping_the_size(tmp_path / "src" / "n00000001" / "4.JPEG", 250)
    decoded = []
    real = image_store._decode_chunk
    monkeypatch.setattr(image_store, "_decode_chunk", lambda args: decoded.extend(args[0]) or real(args))
    with pytest.warns(UserWarning, match=r"1 image\(s\) changed since the store .* was built .*4\.JPEG.*decoded again"):
        again = image_store.build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    assert decoded == [items[4][0]]  # only the changed image, once
    assert again.meta["source"] != source  # the data fingerprint covers it: runs on the old pixels are refused
    assert abs(int(again.images[4, 8, 8, 2]) - 200) <= 4 and np.array_equal(again.images[:4], before[:4])
    decoded.clear()
    image_store.build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    assert decoded == []  # unchanged now: reused without a decode


def test_the_content_digest_is_the_same_wherever_the_files_are(tmp_path):
    import shutil

    from kdlib.data import image_store

    items = _store_items(tmp_path)
    a = image_store.build_store(items, tmp_path / "a", size=16, workers=1, progress=False)
    shutil.copytree(tmp_path / "src", tmp_path / "copy")
    moved = [(p.replace(str(tmp_path / "src"), str(tmp_path / "copy")), label) for p, label in items]
    b = image_store.build_store(moved, tmp_path / "b", size=16, workers=1, progress=False)
    assert a.meta["source"] == b.meta["source"]


def test_a_restored_store_linked_read_only_is_not_written_through(tmp_path):
    from kdlib.data import image_store

    items = _store_items(tmp_path)
    image_store.build_store(items, tmp_path / "earlier", size=16, workers=1, progress=False)
    linked = tmp_path / "linked"
    linked.mkdir()
    for path in (tmp_path / "earlier").iterdir():
        (linked / path.name).symlink_to(path)  # as sessions.restore_store links a complete store
    kept = (tmp_path / "earlier" / "images.u8").read_bytes()
    _replace_keeping_the_size(tmp_path / "src" / "n00000000" / "0.JPEG", 250)
    with pytest.warns(UserWarning, match="changed"):
        image_store.build_store(items, linked, size=16, workers=1, progress=False)
    assert (tmp_path / "earlier" / "images.u8").read_bytes() == kept


def test_imagenet_test_images_copied_from_train_are_counted(tmp_path):
    import shutil

    from kdlib.data import image_store

    items = _store_items(tmp_path)
    test_items = [(str(tmp_path / "val" / f"{i}.JPEG"), i % 3) for i in range(3)]
    (tmp_path / "val").mkdir()
    shutil.copy(items[1][0], test_items[0][0])  # one copied from train
    for path, label in test_items[1:]:
        _jpeg(Path(path), 7 + label)
    train = image_store.build_store(items, tmp_path / "train-store", size=16, workers=1, progress=False)
    test = image_store.build_store(test_items, tmp_path / "test-store", size=16, workers=1, progress=False)
    assert image_store.copies_between(train, test) == 1


@pytest.mark.parametrize("value, said", [("3.5", "holds 3.5 (row 2)"), ("", "holds a missing value (row 2)")])
def test_mnist_csv_values_must_be_whole_numbers(tmp_path, value, said):
    from conftest import write_csv_dataset
    from kdlib.data.mnist import load_mnist

    paths = write_csv_dataset(tmp_path, n_train=20, n_test=10)
    lines = paths["train"].read_text().splitlines()
    lines[2] = value + lines[2][1:]  # the second image's label
    paths["train"].write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptDataError, match=rf"mnist_train\.csv: column 'label' {re.escape(said)}"):
        load_mnist(tmp_path, download=False)


def test_data_dir_naming_an_archive_says_to_extract_it(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DataNotFoundError, match=r"is a file, not a folder \(an archive\? extract it"):
        load_cifar10(tmp_path / "cifar-10-python.tar.gz", download=False)
