"""The GPU decode path of the image store, as far as a CPU allows: the batched code (read bytes, decode a batch,
resize on the device, per-file retry, PIL fallback) runs with torchvision's CPU decoder injected as the device;
the decoder is part of a store's identity, and stores from before it was recorded still read as PIL's."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdlib.data import image_store
from kdlib.data.image_store import build_store, decode_batch, decode_resized, open_store, resolve_decoder


def _jpegs(folder, n=6, modes=("RGB",)):
    """(path, label) of small JPEGs, 40 x 30 and 30 x 44 (both orientations), a smooth gradient per image."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        w, h = (40, 30) if i % 2 else (30, 44)
        yy, xx = np.mgrid[0:h, 0:w]
        pixels = np.stack([xx * 5 + i * 10, yy * 4, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels).convert(modes[i % len(modes)])
        path = folder / f"{i}.jpg"
        image.save(path, quality=95)
        items.append((str(path), i % 3))
    return items


def test_cpu_build_is_todays_and_says_pil_draft(tmp_path):
    items = _jpegs(tmp_path / "src")
    store = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)  # auto, no CUDA here
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert meta["decoder"] == "pil-draft" and meta["pil_fallback"] == [] and store.decoder == "pil-draft"
    for k, (path, _) in enumerate(items):  # the pixels are decode_resized's, byte for byte
        assert np.array_equal(store.images[k], decode_resized(path, 16))
    # the digests as stores built before the decoder was recorded hold them (spelt out here, not by the code under
    # test): PIL adds nothing to them, so those stores keep their identity
    layout = hashlib.sha256(b"size=16")
    for path, label in items:
        layout.update(f"{path}\t{label}\t{os.path.getsize(path)}\n".encode())
    source = hashlib.sha256(b"size=16\n")
    source.update(store.labels.astype(np.int64).tobytes() + store.digests.tobytes())
    assert meta["layout"] == layout.hexdigest() and meta["source"] == source.hexdigest()
    assert image_store.content_digest(store.labels, store.digests, 16, "nvjpeg") != meta["source"]


def test_batched_device_path_matches_pil_geometry_and_falls_back_per_file(tmp_path):
    items = _jpegs(tmp_path / "src", n=6, modes=("RGB", "L", "CMYK"))
    png = tmp_path / "src" / "x.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(png)
    datas = [Path(p).read_bytes() for p, _ in items] + [png.read_bytes(), b"\xff\xd8\xff broken", None]

    arrays, by_pil = decode_batch(datas, 16, "cpu")  # torchvision's CPU decoder through the GPU path's code
    assert by_pil == [False] * 6 + [True, False, False]  # the PNG goes to PIL; the broken file and None are unread
    assert arrays[7] is None and arrays[8] is None and arrays[6].shape == (16, 16, 3)
    for k in range(6):  # same geometry as PIL's path: the decoders differ by a few levels on smooth images
        reference = decode_resized(datas[k], 16).astype(int)
        assert arrays[k].shape == (16, 16, 3) and np.abs(arrays[k].astype(int) - reference).mean() < 1.5

    calls = []

    def fussy(tensors, device):  # a GPU decoder that rejects any batch holding the CMYK file (index 2)
        calls.append(len(tensors))
        if any(torch.equal(t, torch.frombuffer(bytearray(datas[2]), dtype=torch.uint8)) for t in tensors):
            raise RuntimeError("nvjpeg: unsupported")
        return image_store._torchvision_decode(tensors, device)

    fallback, by_pil = decode_batch(datas[:6], 16, "cpu", decode=fussy)
    assert calls == [6] + [1] * 6  # the batch, then file by file
    assert by_pil == [False, False, True, False, False, False]
    assert np.array_equal(fallback[2], decode_resized(datas[2], 16))
    assert all(np.array_equal(fallback[k], arrays[k]) for k in (0, 1, 3, 4, 5))


def test_device_build_counts_fallbacks_and_is_not_resumed_by_pil(tmp_path, monkeypatch, capsys):
    items = _jpegs(tmp_path / "src", n=7)
    real = image_store._torchvision_decode

    def no_odd_widths(tensors, device):  # stands in for files nvJPEG cannot decode: the 40 x 30 ones
        images = real(tensors, device)
        if any(image.shape[2] == 40 for image in images):
            raise RuntimeError("nvjpeg: unsupported")
        return images

    monkeypatch.setattr(image_store, "_torchvision_decode", no_odd_widths)
    store = build_store(items, tmp_path / "store", size=16, workers=2, decoder="nvjpeg", device="cpu", gpu_batch=3)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("decoded 7 images") and "3 of them by PIL" in printed[-1]  # one line
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert meta["decoder"] == store.decoder == "torchvision-cpu" and meta["complete"]
    assert meta["pil_fallback"] == [1, 3, 5] and store.pil_fallback == 3
    assert meta["layout"] == image_store.layout_digest(items, 16, "torchvision-cpu") != image_store.layout_digest(items, 16)
    assert meta["source"] != image_store.content_digest(store.labels, store.digests, 16)
    assert np.array_equal(store.images[1], decode_resized(items[1][0], 16))

    # the same files with PIL: the device-decoded store is neither reused nor resumed, it is decoded again
    monkeypatch.setattr(image_store, "_decode_chunk", (lambda real: lambda args: (calls.append(1), real(args))[1])(
        image_store._decode_chunk))
    calls = []
    with pytest.warns(UserWarning, match="decoded by torchvision-cpu, this build decodes with pil-draft"):
        again = build_store(items, tmp_path / "store", size=16, workers=1, progress=False, decoder="pil-draft")
    assert calls and again.decoder == "pil-draft" and again.pil_fallback == 0
    assert all(np.array_equal(again.images[k], decode_resized(p, 16)) for k, (p, _) in enumerate(items))


def test_a_half_built_pil_store_is_not_resumed_by_the_device_decoder(tmp_path, monkeypatch):
    items = _jpegs(tmp_path / "src", n=6)
    real, calls = image_store._decode_chunk, []

    def stop_after_one(args):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the session ended")
        return real(args)

    monkeypatch.setattr(image_store, "_decode_chunk", stop_after_one)
    with pytest.raises(RuntimeError, match="session ended"):
        build_store(items, tmp_path / "store", size=16, workers=1, chunk=3, flush_every=3, progress=False)
    assert json.loads((tmp_path / "store" / "meta.json").read_text())["done"] == 3
    decoded = []
    monkeypatch.setattr(image_store, "decode_batch", lambda datas, *a, **k: (decoded.append(len(datas)),
                                                                               real_batch(datas, *a, **k))[1])
    with pytest.warns(UserWarning, match="decoded by pil-draft"):
        store = build_store(items, tmp_path / "store", size=16, workers=1, progress=False, decoder="nvjpeg",
                            device="cpu")
    assert sum(decoded) == 6 and store.decoder == "torchvision-cpu"  # all six, not the last three


real_batch = image_store.decode_batch


def test_a_store_from_before_the_decoder_was_recorded_reads_as_pil_draft(tmp_path, monkeypatch):
    items = _jpegs(tmp_path / "src", n=4)
    build_store(items, tmp_path / "store", size=16, workers=1, progress=False, decoder="pil-draft")
    meta_path = tmp_path / "store" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key in ("decoder", "pil_fallback"):
        del meta[key]  # what stores built before this change hold
    meta_path.write_text(json.dumps(meta))
    old = open_store(tmp_path / "store")
    assert old.decoder == "pil-draft" and old.pil_fallback == 0
    monkeypatch.setattr(image_store, "_decode_chunk", lambda args: pytest.fail("an old PIL store was decoded again"))
    reused = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)  # auto = PIL on a CPU
    assert reused.decoder == "pil-draft" and np.array_equal(reused.images, old.images)


def test_auto_keeps_the_decoder_of_a_store_restored_from_an_earlier_session(tmp_path, monkeypatch):
    items = _jpegs(tmp_path / "src", n=4)
    first = build_store(items, tmp_path / "store", size=16, workers=1, progress=False, decoder="pil-draft")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU session: auto alone would pick nvJPEG
    assert resolve_decoder("auto")[0] == "nvjpeg"
    monkeypatch.setattr(image_store, "_decode_chunk", lambda args: pytest.fail("a complete store was decoded again"))
    monkeypatch.setattr(image_store, "decode_batch", lambda *a, **k: pytest.fail("the restored store was re-decoded"))
    again = build_store(items, tmp_path / "store", size=16, workers=1, progress=False)
    assert again.decoder == "pil-draft" and again.meta["source"] == first.meta["source"]


def test_decoder_choice_says_what_to_do():
    assert resolve_decoder("auto", None) == (("nvjpeg", torch.device("cuda")) if torch.cuda.is_available()
                                             else ("pil-draft", None))
    with pytest.raises(ValueError, match="use one of auto, pil-draft, nvjpeg"):
        resolve_decoder("turbo")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            resolve_decoder("nvjpeg")


def test_the_selftest_gpu_decode_row_is_skipped_on_a_cpu_with_why():
    from kdlib import selftest

    row = selftest.check_gpu_decode(torch.device("cpu"))
    assert row["status"] == "skipped" and row["gpu_row"] and "needs a CUDA GPU" in row["reason"]
    assert "gpu decode" in selftest.GPU_CHECKS  # a crash in the row is reported as a GPU row's failure


def test_resizes_split_to_bound_memory_give_the_same_pixels(monkeypatch):
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 30, 40), generator=g, dtype=torch.uint8) for _ in range(5)]
    images.insert(2, torch.randint(0, 256, (3, 44, 30), generator=g, dtype=torch.uint8))
    whole = image_store.resize_crop(images, 16)
    monkeypatch.setattr(image_store, "RESIZE_FLOATS", 3 * 30 * 40 * 2)  # two 40 x 30 images at a time
    assert whole.shape == (6, 16, 16, 3) and torch.equal(image_store.resize_crop(images, 16), whole)
    # each row is its own image's: the order survives the grouping by shape
    assert torch.equal(whole[2], image_store.resize_crop([images[2]], 16)[0])
