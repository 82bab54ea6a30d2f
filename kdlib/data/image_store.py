"""A compact store of resized images: decode every JPEG once, then train from a memory-mapped uint8 array.

JPEG decoding bounds ImageNet-style training on a few CPU cores. ``build_store`` decodes each image once
(PIL's draft mode lets libjpeg decode at a reduced scale, which is most of the saving), resizes its shorter
side to ``size``, centre-crops to ``size`` x ``size`` and writes it into ``images.u8`` (N x size x size x 3).
Later epochs and later sessions only read that file. A build is resumable: progress is flushed every
``flush_every`` images, and a re-run continues where it stopped. An unreadable image is skipped and counted
(its slot is marked invalid), never a crash. The store is keyed by its files' content: their bytes are hashed as
they are decoded, and hashed again (read, not decoded) before a store is reused, so a changed image is seen.

Where there is a CUDA device (``decoder="auto"``), JPEG bytes are read on CPU threads and decoded in batches on the
GPU (torchvision's ``decode_jpeg``, nvJPEG), then resized there with the same geometry. Its pixels are not PIL's
draft-mode pixels, so the decoder is part of a store's identity (``meta['decoder']``, the layout and content
digests): a store is never resumed or reused by the other decoder (``auto`` keeps an existing store's). A file the
GPU cannot decode is decoded by PIL and counted (``meta['pil_fallback']``).

Random-resized-crop and flip then happen on the training device on whole batches
(``RandomResizedCropFlip``); validation uses a fixed centre crop (``CenterCropResize``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..interrupt import RunInterrupted

META = "meta.json"
PIL_DECODER = "pil-draft"  # what a store from before the decoder was recorded holds
GPU_DECODER = "nvjpeg"  # torchvision's decode_jpeg on a CUDA device
DECODERS = ("auto", PIL_DECODER, GPU_DECODER)


def resolve_decoder(decoder: str = "auto", device: torch.device | str | None = None) -> tuple[str, torch.device | None]:
    """(the decoder's name as recorded in a store, the device its batches decode on; None for PIL). ``auto``: nvJPEG
    on a CUDA device when there is one, else PIL. ``nvjpeg`` with a CPU ``device`` runs the same batched code on
    torchvision's CPU decoder (what tests use) and is recorded as ``torchvision-cpu``."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r}: use one of {', '.join(DECODERS)}")
    if decoder == "auto":
        decoder = GPU_DECODER if torch.cuda.is_available() else PIL_DECODER
    if decoder == PIL_DECODER:
        return PIL_DECODER, None
    device = torch.device(device if device is not None else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("decoder='nvjpeg' needs a CUDA device and none is visible; use decoder='pil-draft' or 'auto'")
    return (GPU_DECODER if device.type == "cuda" else f"torchvision-{device.type}"), device


def store_decoder(meta: dict) -> str:
    """Which decoder wrote a store; a meta from before the field was recorded means PIL's draft mode."""
    return meta.get("decoder", PIL_DECODER)


def decode_resized(source: str | bytes, size: int) -> np.ndarray | None:
    """``size`` x ``size`` x 3 uint8 of an image file (its path, or its bytes): shorter side resized to ``size``,
    centre crop. None if unreadable."""
    from PIL import Image

    from .pixels import to_rgb

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at the smallest DCT scale still >= size
            image = to_rgb(image)  # 16-bit scaled, not clipped
            w, h = image.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            image = image.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
            left, top = (nw - size) // 2, (nh - size) // 2
            array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except Exception:  # truncated, not an image, unreadable: the caller counts it
        return None
    return array if array.shape == (size, size, 3) else None


DIGEST_BYTES = 16
UNREADABLE = bytes(DIGEST_BYTES)  # the digest of a file that could not be read at all


def _read(path: str) -> tuple[bytes | None, bytes]:
    """The file's bytes (None if it cannot be read) and their digest: what the store is keyed by."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None, UNREADABLE
    return data, hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def _decode_chunk(args) -> list[tuple[np.ndarray | None, bytes]]:
    """(pixels or None, content digest) of each path: the digest comes from the bytes the decoder reads, so keying
    the store by content costs no second read."""
    paths, size = args
    decoded = []
    for path in paths:
        data, digest = _read(path)
        decoded.append((None if data is None else decode_resized(data, size), digest))
    return decoded


def _hash_chunk(paths: list[str]) -> list[bytes]:
    return [_read(path)[1] for path in paths]


def _torchvision_decode(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    import torchvision.io as tvio

    with warnings.catch_warnings():  # torchvision 0.29 marks its decoders deprecated (for TorchCodec); they work
        warnings.simplefilter("ignore", DeprecationWarning)
        return tvio.decode_jpeg(tensors, mode=tvio.ImageReadMode.RGB, device=device)


RESIZE_FLOATS = 1 << 27  # at most 512 MB of float pixels resized at once (a run of same-shaped large photos)


def resize_crop(images: list[torch.Tensor], size: int) -> torch.Tensor:
    """``decode_resized``'s geometry on the device: shorter side to ``size`` (bilinear, antialiased, as PIL's
    resize is), centre crop. ``images``: (3, H, W) uint8; returns (N, size, size, 3) uint8 on their device. Images
    of one shape are resized in one call (most ImageNet files share a few shapes)."""
    out = torch.empty((len(images), size, size, 3), dtype=torch.uint8,
                      device=images[0].device if images else "cpu")
    groups: dict[tuple[int, int], list[int]] = {}
    for k, image in enumerate(images):
        groups.setdefault(tuple(image.shape[1:]), []).append(k)
    parts = []
    for (h, w), ks in groups.items():
        step = max(1, RESIZE_FLOATS // (3 * h * w))
        parts += [((h, w), ks[i:i + step]) for i in range(0, len(ks), step)]
    for (h, w), ks in parts:
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        batch = torch.stack([images[k] for k in ks]).float()
        if (nh, nw) != (h, w):
            batch = F.interpolate(batch, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        left, top = (nw - size) // 2, (nh - size) // 2
        crop = batch[:, :, top:top + size, left:left + size].round_().clamp_(0, 255).to(torch.uint8)
        out[torch.tensor(ks, device=out.device)] = crop.permute(0, 2, 3, 1)
    return out


def decode_batch(datas: list[bytes | None], size: int, device: torch.device | str,
                 decode=None) -> tuple[list[np.ndarray | None], list[bool]]:
    """(pixels or None, decoded by PIL instead) of each file's bytes: the JPEGs decoded together by ``decode`` on
    ``device`` and resized there. A batch the decoder rejects is retried file by file; a file it still rejects (CMYK,
    progressive, not a JPEG, corrupt) goes to PIL (``decode_resized``). ``decode`` is injectable so tests reach
    the fallback on a CPU."""
    device, decode = torch.device(device), decode or _torchvision_decode
    arrays: list[np.ndarray | None] = [None] * len(datas)
    by_pil = [False] * len(datas)
    # only files that start like a JPEG go to the JPEG decoder (a PNG would fail the whole batch)
    jpegs = [k for k, d in enumerate(datas) if d is not None and d[:2] == b"\xff\xd8"]
    tensors = [torch.frombuffer(bytearray(datas[k]), dtype=torch.uint8) for k in jpegs]  # writable: no warning
    decoded: dict[int, torch.Tensor] = {}
    try:
        decoded = dict(zip(jpegs, decode(tensors, device))) if tensors else {}
    except Exception:  # nvJPEG fails the batch for one bad file: find which, one by one
        for k, tensor in zip(jpegs, tensors):
            try:
                decoded[k] = decode([tensor], device)[0]
            except Exception:
                pass
    keep = [k for k in jpegs if k in decoded and decoded[k].dim() == 3 and decoded[k].shape[0] == 3]
    if keep:
        pixels = resize_crop([decoded[k] for k in keep], size).cpu().numpy()
        for k, array in zip(keep, pixels):
            arrays[k] = array
    for k, data in enumerate(datas):
        if data is not None and arrays[k] is None:
            arrays[k] = decode_resized(data, size)
            by_pil[k] = arrays[k] is not None  # an unreadable file is counted as skipped, not here
    return arrays, by_pil


def _decoder_tag(decoder: str) -> str:
    # PIL's draft mode adds nothing to the digests, so stores built before the decoder was recorded stay valid
    return "" if decoder == PIL_DECODER else f"decoder={decoder}\n"


def layout_digest(items: list[tuple[str, int]], size: int, decoder: str = PIL_DECODER) -> str:
    """Which files a store is built from: every path with its label and file size, the image size and the decoder.
    A build resumes only into a store of the same layout; what it holds is ``content_digest``."""
    h = hashlib.sha256(f"{_decoder_tag(decoder)}size={size}".encode())
    for path, label in items:
        try:
            nbytes = os.path.getsize(path)
        except OSError:
            nbytes = -1
        h.update(f"{path}\t{label}\t{nbytes}\n".encode())
    return h.hexdigest()


def content_digest(labels: np.ndarray, digests: np.ndarray, size: int, decoder: str = PIL_DECODER) -> str:
    """What a store holds: every image's label and the digest of its file's bytes, the image size and the decoder
    (its pixels differ from another's). One changed image gives another value (the store's ``meta['source']``,
    which the data fingerprint covers)."""
    h = hashlib.sha256(f"{_decoder_tag(decoder)}size={size}\n".encode())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    h.update(np.ascontiguousarray(digests, dtype=np.uint8).data)
    return h.hexdigest()


@dataclass
class ImageStore:
    folder: Path
    images: np.ndarray  # memmap, N x S x S x 3 uint8
    labels: np.ndarray  # N int64
    valid: np.ndarray  # N bool: False where the source image could not be decoded
    size: int
    meta: dict
    digests: np.ndarray | None = None  # N x DIGEST_BYTES: each image file's content digest

    def __len__(self) -> int:
        return len(self.labels)

    def __reduce__(self):
        # Sent to another process (a data-parallel rank) as its folder, and opened there: never a copy of the images.
        return open_store, (str(self.folder),)

    @property
    def valid_indices(self) -> np.ndarray:
        return np.flatnonzero(self.valid)

    @property
    def skipped(self) -> list[str]:
        return self.meta["skipped"]

    @property
    def decoder(self) -> str:
        return store_decoder(self.meta)

    @property
    def pil_fallback(self) -> int:
        """How many images the GPU decoder could not decode and PIL did (0 for a PIL-built store)."""
        return len(self.meta.get("pil_fallback", []))


def copies_between(train: ImageStore, test: ImageStore) -> int:
    """How many of ``test``'s images are exact copies (the same file bytes) of one of ``train``'s, from the digests
    kept while decoding: no file is read again."""
    seen = {row.tobytes() for row in train.digests[train.valid_indices]}
    return sum(row.tobytes() in seen for row in test.digests[test.valid_indices])


def open_store(folder: str | Path) -> ImageStore:
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    if not meta.get("complete"):
        raise ValueError(f"the image store in {folder} is incomplete ({meta['done']} of {meta['n']}); build it again to finish")
    n, s = meta["n"], meta["size"]
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=(n, s, s, 3))
    return ImageStore(folder, images, np.load(folder / "labels.npy"), np.load(folder / "valid.npy"), s, meta,
                      np.load(folder / "digests.npy"))


STORE_FILES = ("images.u8", "labels.npy", "valid.npy", "digests.npy")


def _own_files(folder: Path) -> None:
    """Replace store files that are links (a store restored read-only from an earlier session) by copies, so a
    rewrite of some images never writes through a link."""
    import shutil

    for name in STORE_FILES:
        path = folder / name
        if path.is_symlink():
            tmp = path.with_name(f".{name}.copy")
            shutil.copyfile(path, tmp)
            os.replace(tmp, path)


def _start_store(folder: Path, items: list[tuple[str, int]], size: int, layout: str, decoder: str) -> dict:
    n = len(items)
    for name in STORE_FILES:  # new files, never written through a restored link
        (folder / name).unlink(missing_ok=True)
    np.memmap(folder / "images.u8", dtype=np.uint8, mode="w+", shape=(max(n, 1), size, size, 3)).flush()
    np.save(folder / "labels.npy", np.array([label for _, label in items], dtype=np.int64))
    np.save(folder / "valid.npy", np.ones(n, dtype=bool))
    np.save(folder / "digests.npy", np.zeros((n, DIGEST_BYTES), dtype=np.uint8))
    return {"layout": layout, "source": None, "n": n, "size": size, "done": 0, "skipped": [], "complete": False,
            "decoder": decoder, "pil_fallback": []}


def _as_rows(digests: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def build_store(items: list[tuple[str, int]], folder: str | Path, size: int = 160, workers: int | None = None,
                chunk: int = 64, flush_every: int = 2048, progress: bool = True, decoder: str = "auto",
                device: torch.device | str | None = None, gpu_batch: int = 256) -> ImageStore:
    """Decode ``items`` ((path, label) pairs) into ``folder``, keyed by content: each file's bytes are hashed as they
    are decoded (``digests.npy``; ``meta['source']`` is their ``content_digest``). A store of the same layout is
    reused, or resumed where its build stopped, once the files of the images it holds have been hashed again (a
    read, not a decode): an image whose bytes changed since, even under the same name and size, is decoded again,
    never served from the old pixels.

    ``decoder``: ``auto`` (nvJPEG on ``device``, default the current CUDA device, when there is one; else PIL),
    ``pil-draft`` or ``nvjpeg`` (see ``resolve_decoder``). nvJPEG reads ``gpu_batch`` files at a time on ``workers``
    threads and decodes them together. A store another decoder wrote is built again, never resumed or reused,
    except that ``auto`` keeps the decoder of an existing store of the same files (when it can run here)."""
    from ..runtime import progress_bar as tqdm  # none in a batch run: its redraws would each be kept

    asked = decoder
    decoder, decode_device = resolve_decoder(decoder, device)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout, n = layout_digest(items, size, decoder), len(items)
    meta_path = folder / META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    stored = store_decoder(meta) if meta else decoder
    if asked == "auto" and stored != decoder and stored in (PIL_DECODER, GPU_DECODER):
        # "auto" keeps the decoder a store of these files already has (a store restored from an earlier session):
        # its pixels, and so the data fingerprint, stay the same across sessions, and nothing is decoded again
        other, other_device = resolve_decoder(stored, device) if stored == PIL_DECODER or torch.cuda.is_available() \
            else (None, None)
        if other and meta.get("layout") == layout_digest(items, size, other):
            decoder, decode_device, layout = other, other_device, meta["layout"]
    workers = workers or os.cpu_count() or 1
    # One worker: decode in this process (no pool to start; what tests and tiny stores want). The GPU path only
    # reads and hashes on the CPU, which threads do (file reads and blake2b release the GIL).
    if decode_device is not None:
        pool = ThreadPoolExecutor(workers)
    else:
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
    run = pool.map if pool else map
    paths = [p for p, _ in items]
    try:
        changed = np.zeros(0, dtype=np.int64)
        if meta and meta.get("layout") != layout and store_decoder(meta) != decoder:
            warnings.warn(f"the store in {folder} was decoded by {store_decoder(meta)}, this build decodes with "
                          f"{decoder} (other pixels): decoding it again", stacklevel=2)
        if not meta or meta.get("layout") != layout:  # other files (or a store from before content keys): start over
            meta = _start_store(folder, items, size, layout, decoder)
        elif meta["done"]:
            stored = np.load(folder / "digests.npy")
            done = meta["done"]
            chunks = [paths[i:min(i + chunk, done)] for i in range(0, done, chunk)]
            bar = tqdm(total=done, desc="checking the stored images against their files", disable=not progress,
                       mininterval=2.0)
            current = []
            for digests in run(_hash_chunk, chunks):
                current += digests
                bar.update(len(digests))
            bar.close()
            changed = np.flatnonzero((_as_rows(current) != stored[:done]).any(axis=1))
            if meta.get("complete") and not len(changed):
                return open_store(folder)
            if len(changed):
                warnings.warn(f"{len(changed)} image(s) changed since the store in {folder} was built (e.g. "
                              f"{paths[changed[0]]}): decoded again", stacklevel=2)
                _own_files(folder)
        images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r+", shape=(max(n, 1), size, size, 3))
        valid, digests = np.load(folder / "valid.npy"), np.load(folder / "digests.npy")
        by_pil = set(meta.get("pil_fallback", []))  # rows the GPU decoder left to PIL
        meta["decoder"] = decoder
        start = meta["done"]
        bar = tqdm(total=n, initial=start - len(changed), desc=f"decoding images to {size}px", disable=not progress,
                   mininterval=2.0)

        def save_progress(done: int, complete: bool) -> None:
            images.flush()
            np.save(folder / "valid.npy", valid)
            np.save(folder / "digests.npy", digests)
            meta.update(done=done, complete=complete, skipped=[paths[i] for i in np.flatnonzero(~valid[:done])],
                        pil_fallback=sorted(by_pil),
                        source=content_digest(np.load(folder / "labels.npy"), digests, size, decoder)
                        if complete else None)
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, meta_path)

        def gpu_batches(rows: list[int]):
            """(pixels, digest) per row: the next batch's files are read while this one decodes on the device."""
            batches = [rows[k:k + gpu_batch] for k in range(0, len(rows), gpu_batch)]
            reading = pool.map(_read, [paths[r] for r in batches[0]]) if batches else None
            for b, batch in enumerate(batches):
                read = list(reading)
                if b + 1 < len(batches):
                    reading = pool.map(_read, [paths[r] for r in batches[b + 1]])
                arrays, pil = decode_batch([data for data, _ in read], size, decode_device)
                for row, array, digest, fell_back in zip(batch, arrays, (d for _, d in read), pil):
                    if fell_back:
                        by_pil.add(row)
                    else:
                        by_pil.discard(row)  # decoded again (its file changed), by the GPU this time
                    yield array, digest

        def decode(rows: list[int]) -> None:
            if decode_device is not None:
                decoded = gpu_batches(rows)
            else:
                jobs = [([paths[r] for r in rows[k:k + chunk]], size) for k in range(0, len(rows), chunk)]
                decoded = (one for part in run(_decode_chunk, jobs) for one in part)
            for row, (array, digest) in zip(rows, decoded):
                valid[row] = array is not None
                if array is not None:
                    images[row] = array
                digests[row] = np.frombuffer(digest, dtype=np.uint8)
                bar.update(1)

        save_progress(start, False)  # not complete while any image is being decoded (again)
        decode(changed.tolist())
        for i in range(start, n, flush_every):
            decode(list(range(i, min(n, i + flush_every))))
            save_progress(min(n, i + flush_every), False)
        bar.close()
    except KeyboardInterrupt:
        raise RunInterrupted(f"decoding into {folder} stopped; the {meta['done']:,} of {n:,} images decoded before "
                             "the last save are kept: run the same command (or cell) again to go on from "
                             "there") from None
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    save_progress(n, True)
    if decode_device is not None and decode_device.type == "cuda":
        torch.cuda.empty_cache()  # the decode's cached blocks: leave the GPU's memory to training
    if decode_device is not None and progress:
        print(f"decoded {n:,} images into {folder} with {decoder} on {decode_device}; {len(by_pil):,} of them by PIL "
              "(files the GPU decoder could not read)")
    if meta["skipped"]:
        warnings.warn(f"{len(meta['skipped'])} image(s) could not be decoded and are left out, e.g. "
                      f"{meta['skipped'][0]}", stacklevel=2)
    return open_store(folder)


# ---- batches on the device -----------------------------------------------------------------------------

class RandomResizedCropFlip:
    """torchvision's RandomResizedCrop + horizontal flip for a whole float batch (N, C, S, S), on its device:
    one box per image (area fraction in ``scale``, log-uniform aspect ratio in ``ratio``, clamped to the
    image), the flip folded into the same affine map, and one ``affine_grid`` + ``grid_sample`` call for the
    batch (bilinear, one sample per output pixel; measured 30% cheaper than ``roi_align`` on a CPU)."""

    def __init__(self, out_size: int, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
        self.out_size, self.scale, self.ratio, self.flip = out_size, scale, ratio, flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        u = torch.rand(n, 5, generator=generator, device=x.device)
        area = (self.scale[0] + u[:, 0] * (self.scale[1] - self.scale[0])) * h * w
        log_r = math.log(self.ratio[0]) + u[:, 1] * (math.log(self.ratio[1]) - math.log(self.ratio[0]))
        aspect = torch.exp(log_r)
        bw = torch.sqrt(area * aspect).clamp(max=w)
        bh = torch.sqrt(area / aspect).clamp(max=h)
        x0, y0 = u[:, 2] * (w - bw), u[:, 3] * (h - bh)
        # output [-1, 1] -> the box, in grid_sample's coordinates (align_corners=False: -1 and 1 are the outer
        # edges of the border pixels); a flipped image reads the box right to left
        sign = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if self.flip else torch.ones(n, device=x.device)
        zero = torch.zeros(n, device=x.device)
        theta = torch.stack([torch.stack([sign * bw / w, zero, (2 * x0 + bw) / w - 1], 1),
                             torch.stack([zero, bh / h, (2 * y0 + bh) / h - 1], 1)], 1).to(x.dtype)
        grid = F.affine_grid(theta, [n, c, self.out_size, self.out_size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __repr__(self) -> str:
        return f"RandomResizedCropFlip(out_size={self.out_size}, scale={self.scale}, ratio={self.ratio}, flip={self.flip})"


class CenterCropResize:
    """Validation view: the central ``crop_fraction`` of the stored square, resized to ``out_size``."""

    def __init__(self, out_size: int, crop_fraction: float = 0.875):
        self.out_size, self.crop_fraction = out_size, crop_fraction

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        s = x.shape[-1]
        c = max(1, round(s * self.crop_fraction))
        o = (s - c) // 2
        x = x[..., o:o + c, o:o + c]
        return x if c == self.out_size else F.interpolate(x, size=(self.out_size, self.out_size), mode="bilinear",
                                                          antialias=True, align_corners=False)


class StoreLoader:
    """(images, labels, indices) batches from an ``ImageStore``: uint8 rows are read from the memory map
    by a background thread (one batch ahead), moved to the device (pinned, non-blocking on CUDA), then
    converted, augmented and normalised there. ``indices`` are positions 0..len(subset)-1 within
    ``subset``, for algorithms that keep per-sample state (AST)."""

    def __init__(self, store: ImageStore, subset: np.ndarray, batch_size: int, device: torch.device | str,
                 mean, std, augment=None, shuffle: bool = False, drop_last: bool = False, seed: int = 0,
                 channels_last: bool = True):
        self.store, self.subset = store, np.asarray(subset, dtype=np.int64)
        self.batch_size, self.device = batch_size, torch.device(device)
        self.augment, self.shuffle, self.drop_last, self.seed = augment, shuffle, drop_last, seed
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.labels = torch.from_numpy(store.labels[self.subset]).to(self.device)
        self.epoch, self.rows = 0, None

    def set_epoch(self, epoch: int, indices=None) -> None:
        """The epoch (data order and augmentation draws from (seed, epoch)) and the positions it iterates:
        ``indices`` (positions in ``subset``, a selection rule's), in a seeded shuffle, or all when None."""
        self.epoch = epoch
        self.rows = None if indices is None else np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)

    @property
    def num_rows(self) -> int:
        return len(self.subset)

    def __len__(self) -> int:
        n = len(self.subset) if self.rows is None else len(self.rows)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> np.ndarray:
        positions = np.arange(len(self.subset)) if self.rows is None else self.rows
        if not self.shuffle:
            return positions
        return positions[np.random.default_rng(self.seed * 100_003 + self.epoch).permutation(len(positions))]

    def _read(self, positions: np.ndarray) -> torch.Tensor:
        rows = self.subset[positions]
        order = np.argsort(rows)  # read the memory map front to back, then undo the sort
        batch = np.empty((len(rows),) + self.store.images.shape[1:], dtype=np.uint8)
        batch[order] = self.store.images[rows[order]]
        tensor = torch.from_numpy(batch)
        if self.device.type == "cuda":
            return tensor.pin_memory()  # uint8 over PCIe (4x fewer bytes than float); converted on the GPU
        # on a CPU the conversion happens here, in the reading thread, overlapping the previous batch's crops
        return tensor.permute(0, 3, 1, 2).float()

    def __iter__(self):
        order = self._order()
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 100_003 + self.epoch)
        slot: dict = {}

        def fetch(k: int) -> None:
            slot[k] = self._read(batches[k])

        worker = None
        if batches:
            worker = threading.Thread(target=fetch, args=(0,))
            worker.start()
        for k, positions in enumerate(batches):
            worker.join()
            raw = slot.pop(k)
            if k + 1 < len(batches):
                worker = threading.Thread(target=fetch, args=(k + 1,))
                worker.start()
            x = raw.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() if raw.dtype == torch.uint8 else raw
            if self.augment is not None:
                x = self.augment(x, generator)
            x = x.sub_(self.mean).div_(self.std) if self.augment is not None else (x - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            index = torch.from_numpy(positions).to(self.device)
            yield x, self.labels[index], index
