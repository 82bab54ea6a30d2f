"""ImageNet-100 discovery (both folder layouts, both mount layouts), the class-list identification, the
decoded image store (skip-and-count, resume, reuse) and the on-device crops, on generated JPEG trees."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kdlib.data import image_store, imagenet100
from kdlib.data.image_store import CenterCropResize, RandomResizedCropFlip, StoreLoader, build_store, open_store
from kdlib.data.splits import DataNotFoundError

ROOT = Path(__file__).resolve().parent.parent
SUBSETS = imagenet100.manifest()["subsets"]
SMALL = {"train": 2, "val": 1}  # expected images per class in these generated trees


def write_jpeg(path: Path, label: int, size=(20, 14)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[...] = (label * 2, 128, 64)  # flat colour: the class reads back from red (JPEG keeps flat areas close)
    Image.fromarray(pixels).save(path, quality=95)


def write_tree(root: Path, wnids, layout: str, per_class=SMALL) -> Path:
    for i, wnid in enumerate(wnids):
        if layout == "kaggle-ambityga":
            train_dir, val_dir = root / f"train.X{i % 4 + 1}" / wnid, root / "val.X" / wnid
        else:
            train_dir, val_dir = root / "train" / wnid, root / "val" / wnid
        for k in range(per_class["train"]):
            write_jpeg(train_dir / f"{wnid}_{k}.JPEG", i)
        for k in range(per_class["val"]):
            write_jpeg(val_dir / f"ILSVRC2012_val_{i:05d}{k}.JPEG", i)
    if layout == "kaggle-ambityga":
        (root / "Labels.json").write_text(json.dumps({w: f"class {w}" for w in wnids}))
    return root


def test_manifest_is_the_one_in_data_manifests_and_holds_both_lists():
    assert json.loads((ROOT / "data_manifests" / "imagenet100.json").read_text()) == imagenet100.manifest()
    cmc, kaggle = (SUBSETS[k]["wnids"] for k in ("cmc", "kaggle-ambityga"))
    assert len(set(cmc)) == len(set(kaggle)) == 100 and len(set(cmc) & set(kaggle)) == 8
    assert kaggle == sorted(kaggle) and all(imagenet100.WNID.fullmatch(w) for w in cmc + kaggle)


def test_kaggle_layout_under_the_new_mount(input_root):
    wnids = SUBSETS["kaggle-ambityga"]["wnids"]
    write_tree(input_root / "datasets" / "ambityga" / "imagenet100", wnids, "kaggle-ambityga")
    index = imagenet100.load_imagenet100(expected=SMALL)
    assert index.layout == "kaggle-ambityga" and index.subset == "kaggle-ambityga"
    assert index.classes == sorted(wnids) and len(index.train) == 200 and len(index.val) == 100
    assert set(index.counts("train").values()) == {2} and index.names[wnids[0]] == f"class {wnids[0]}"
    assert index.problems == []
    path, label = index.val[0]
    assert Path(path).parent.name == index.classes[label]


def test_image_folder_layout_under_the_old_mount_is_identified_as_cmc(input_root):
    wnids = SUBSETS["cmc"]["wnids"]
    write_tree(input_root / "imagenet100-cmc" / "data", wnids, "image-folder")
    index = imagenet100.load_imagenet100(expected=SMALL)
    assert index.layout == "image-folder" and index.subset == "cmc"
    assert index.info()["name"] == "ImageNet-100 (cmc class list)"


def test_other_classes_are_unknown_and_short_counts_are_reported(tmp_path):
    cmc, kaggle = (set(SUBSETS[k]["wnids"]) for k in ("cmc", "kaggle-ambityga"))
    write_tree(tmp_path, sorted(cmc - kaggle)[:50] + sorted(kaggle - cmc)[:3], "image-folder")
    with pytest.warns(UserWarning) as caught:
        index = imagenet100.load_imagenet100(tmp_path)  # the real expectation: about 1,300 and 50 a class
    assert index.subset == "unknown"
    assert any("53 classes found" in p for p in index.problems)
    assert any("fewer than 50% of the expected 1300 train images" in p for p in index.problems)
    assert len(caught) == len(index.problems)
    assert imagenet100.identify_subset(index.classes)[1] == {"cmc": 50, "kaggle-ambityga": 3}


def test_missing_data_names_the_kaggle_dataset(tmp_path, input_root):
    with pytest.raises(DataNotFoundError, match="ambityga/imagenet100"):
        imagenet100.load_imagenet100()
    (tmp_path / "train").mkdir()
    with pytest.raises(DataNotFoundError, match="no complete copy"):
        imagenet100.load_imagenet100(tmp_path)


# ---- the decoded store ---------------------------------------------------------------------------------

def _items(tmp_path, n_classes=4, per_class=3):
    wnids = sorted(SUBSETS["cmc"]["wnids"][:n_classes])  # sorted: write_tree colours by position = class index
    write_tree(tmp_path / "src", wnids, "image-folder", {"train": per_class, "val": 1})
    index = imagenet100.index_folder(tmp_path / "src", expected={"train": 1, "val": 1})
    return index.train


def test_store_decodes_once_skips_corrupt_images_and_is_reused(tmp_path, monkeypatch):
    items = _items(tmp_path)
    Path(items[4][0]).write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a broken JPEG
    with pytest.warns(UserWarning, match="1 image"):  # two worker processes, as on Kaggle's CPUs
        store = build_store(items, tmp_path / "store", size=16, workers=2, chunk=4, progress=False)
    assert store.images.shape == (12, 16, 16, 3) and store.skipped == [items[4][0]]
    assert not store.valid[4] and store.valid.sum() == 11
    assert list(store.labels) == [label for _, label in items]
    # the stored pixels are the image's: red channel = 2 x class index (JPEG keeps it within a few levels)
    assert all(abs(int(store.images[i, 8, 8, 0]) - 2 * items[i][1]) <= 4 for i in store.valid_indices)

    monkeypatch.setattr(image_store, "_decode_chunk", lambda args: pytest.fail("a complete store was decoded again"))
    again = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    assert np.array_equal(again.images, store.images)


def test_interrupted_build_resumes_where_it_stopped(tmp_path, monkeypatch):
    items = _items(tmp_path)
    fresh = build_store(items, tmp_path / "fresh", size=16, workers=1, progress=False)
    calls = []
    real = image_store._decode_chunk

    def fail_after_two(args):
        calls.append(len(args[0]))
        if len(calls) > 2:
            raise RuntimeError("the session ended")  # mid-build
        return real(args)

    monkeypatch.setattr(image_store, "_decode_chunk", fail_after_two)
    with pytest.raises(RuntimeError, match="session ended"):
        build_store(items, tmp_path / "resumed", size=16, workers=1, chunk=3, flush_every=3, progress=False)
    meta = json.loads((tmp_path / "resumed" / "meta.json").read_text())
    assert meta["done"] == 6 and not meta["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        open_store(tmp_path / "resumed")
    monkeypatch.setattr(image_store, "_decode_chunk", lambda args: (calls.append(len(args[0])), real(args))[1])
    calls.clear()
    resumed = build_store(items, tmp_path / "resumed", size=16, workers=1, chunk=3, flush_every=3, progress=False)
    assert sum(calls) == 6  # only the second half was decoded
    assert np.array_equal(resumed.images, fresh.images)


# ---- batches on the device -----------------------------------------------------------------------------

def test_full_box_crop_is_a_resize_and_flip_mirrors():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    whole = RandomResizedCropFlip(8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    out = whole(x, torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False, antialias=False)
    assert out.shape == (3, 3, 8, 8) and torch.allclose(out, expected, atol=1e-5)
    flipped = RandomResizedCropFlip(8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)(x, torch.Generator().manual_seed(0))
    for a, b in zip(flipped, out):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(2), atol=1e-5)


def test_random_crops_differ_per_image_and_repeat_with_the_seed():
    x = torch.arange(16.0).repeat(16, 1).expand(4, 3, 16, 16).contiguous()  # value = column
    crop = RandomResizedCropFlip(8, scale=(0.1, 0.3), flip=False)
    a, b = crop(x, torch.Generator().manual_seed(1)), crop(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    left_edges = a[:, 0, 0, 0]
    assert len(set(left_edges.tolist())) > 1  # each image got its own box
    assert crop(x, torch.Generator().manual_seed(2)).ne(a).any()


def test_center_crop_resize():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    assert torch.equal(CenterCropResize(4, crop_fraction=0.5)(x), x[..., 2:6, 2:6])


def test_store_loader_covers_every_sample_once_with_normalised_images(tmp_path):
    items = _items(tmp_path)
    store = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    subset = store.valid_indices[::-1].copy()
    loader = StoreLoader(store, subset, 5, "cpu", [0.5] * 3, [0.25] * 3, shuffle=True, seed=3, channels_last=False)
    loader.set_epoch(1)
    seen, batches = [], list(loader)
    for x, y, index in batches:
        seen += index.tolist()
        rows = subset[index.numpy()]
        assert torch.equal(y, torch.from_numpy(store.labels[rows]))
        raw = torch.from_numpy(store.images[rows]).permute(0, 3, 1, 2).float()
        assert torch.allclose(x, (raw / 255 - 0.5) / 0.25, atol=1e-5)
    assert sorted(seen) == list(range(len(subset))) and len(batches) == len(loader) == 3
    again = [i.tolist() for _, _, i in loader]
    assert again == [i.tolist() for _, _, i in batches]  # same epoch, same order
    loader.set_epoch(2)
    assert [i.tolist() for _, _, i in loader] != again


def test_store_loader_epoch_of_given_positions(tmp_path):
    store = build_store(_items(tmp_path), tmp_path / "store", size=16, workers=1, progress=False)
    subset = store.valid_indices[::-1].copy()
    loader = StoreLoader(store, subset, 3, "cpu", [0.5] * 3, [0.25] * 3, shuffle=True, drop_last=True, seed=3,
                         channels_last=False)
    positions = torch.tensor([0, 2, 5, 7, 8, 10, 11])
    loader.set_epoch(1, indices=positions)
    assert len(loader) == 2  # 7 positions: two full batches of 3
    batches = list(loader)
    seen = [i for _, _, index in batches for i in index.tolist()]
    assert len(seen) == len(set(seen)) == 6 and set(seen) <= set(positions.tolist())
    for x, y, index in batches:
        rows = subset[index.numpy()]
        assert torch.equal(y, torch.from_numpy(store.labels[rows]))
        raw = torch.from_numpy(store.images[rows]).permute(0, 3, 1, 2).float()
        assert torch.allclose(x, (raw / 255 - 0.5) / 0.25, atol=1e-5)
    assert [i for _, _, index in loader for i in index.tolist()] == seen  # same epoch, same order
    loader.set_epoch(2, indices=positions)
    assert [i for _, _, index in loader for i in index.tolist()] != seen
    loader.set_epoch(3)
    assert len(loader) == len(subset) // 3


def test_the_training_loop_runs_from_the_store(tmp_path):
    from kdlib.models import create_model
    from kdlib.train import TrainConfig, fit

    items = _items(tmp_path, n_classes=4, per_class=6)
    store = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    indices = store.valid_indices
    train = StoreLoader(store, indices[:18], 6, "cpu", MEAN3, STD3, augment=RandomResizedCropFlip(12), shuffle=True,
                        drop_last=True, channels_last=False)
    val = StoreLoader(store, indices[18:], 8, "cpu", MEAN3, STD3, augment=CenterCropResize(12), channels_last=False)
    config = TrainConfig(epochs=2, batch_size=6, lr=0.05, warmup_epochs=0, progress=False, channels_last=False)
    result = fit(create_model("simplecnn", 4, 3), None, config, device=torch.device("cpu"), train_loader=train,
                 val_loader=val, checkpoint_dir=tmp_path / "run")
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["samples_forwarded"] == 18 and 0 <= result.best_val_accuracy <= 1
    assert (tmp_path / "run" / "last.pt").exists()


MEAN3, STD3 = [0.5] * 3, [0.25] * 3
