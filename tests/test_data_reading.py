"""Data sets are read as they are, or refused with the reason: any bit depth and mode of image, class folders
compared between train/, test/ and the manifest, integer labels in range, gzip by its content, nested layouts,
the pickle check by what a pickle builds (not its protocol), and train/test duplicates counted. Generated files,
real on-disk layouts."""

import gzip
import pickle

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
