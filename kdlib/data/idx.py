"""Reader for LeCun's IDX files (MNIST), plain or gzip, with header and size checks."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .splits import CorruptDataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension


GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip: told by its first two bytes, not its name (a .gz file
    renamed without the suffix, or a plain file named .gz, reads as what it is)."""
    compressed = False
    try:
        raw = path.read_bytes()
        compressed = raw[:2] == GZIP_MAGIC
        return gzip.decompress(raw) if compressed else raw
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise CorruptDataError(
            f"{path}: cannot be read as {'gzip' if compressed else 'IDX'} ({exc}). "
            "The file is truncated or corrupt: re-download it or re-attach the dataset."
        ) from exc


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Return the array stored in an IDX file, checking magic number, dimensions and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 8:
        raise CorruptDataError(f"{path}: {len(raw)} bytes is too short to hold an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC) or (expected_magic and magic != expected_magic):
        want = expected_magic or f"{LABELS_MAGIC} or {IMAGES_MAGIC}"
        raise CorruptDataError(f"{path}: IDX magic number {magic}, expected {want}: not an MNIST IDX file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataError(f"{path}: header cut short ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise CorruptDataError(
            f"{path}: header says {'x'.join(map(str, dims))} bytes of data ({expected} bytes in all) but the "
            f"file holds {len(raw)}: it is {'truncated' if len(raw) < expected else 'longer than its header says'}. "
            "Re-download it or re-attach the dataset."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
