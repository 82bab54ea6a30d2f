import pytest
import torch

from kdlib.data.device_loader import DeviceLoader, RandomAffine


def _loader(n=10, batch=4, **kw):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 5, 5).contiguous()
    return DeviceLoader(x, torch.arange(n), batch, "cpu", mean=[0.0], std=[1.0], **kw)


def test_every_sample_once_per_epoch_with_indices():
    loader = _loader(shuffle=True)
    seen = torch.cat([idx for _, _, idx in loader])
    assert sorted(seen.tolist()) == list(range(10)) and len(loader) == 3
    for x, y, idx in loader:
        assert torch.equal(y, idx) and torch.allclose(x[:, 0, 0, 0] * 255, idx.float())


def test_order_depends_on_epoch_and_repeats_for_the_same_epoch():
    loader = _loader(n=50, batch=50, shuffle=True)
    loader.set_epoch(3)
    a = next(iter(loader))[2]
    b = next(iter(loader))[2]
    loader.set_epoch(4)
    c = next(iter(loader))[2]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_an_epoch_of_given_rows_iterates_just_those_in_a_seeded_shuffle():
    loader = _loader(n=20, batch=4, shuffle=True, drop_last=True)
    rows = torch.tensor([1, 3, 4, 8, 9, 12, 15, 17, 19])
    loader.set_epoch(2, indices=rows)
    assert len(loader) == 2  # 9 rows: two full batches of 4, the partial last one dropped
    batches = list(loader)
    seen = torch.cat([idx for _, _, idx in batches])
    assert len(seen) == 8 and len(set(seen.tolist())) == 8 and set(seen.tolist()) <= set(rows.tolist())
    for x, y, idx in batches:
        assert torch.equal(y, idx) and torch.allclose(x[:, 0, 0, 0] * 255, idx.float())
    assert torch.equal(seen, torch.cat([idx for _, _, idx in loader]))  # the same epoch: the same order
    loader.set_epoch(3, indices=rows)
    assert not torch.equal(seen, torch.cat([idx for _, _, idx in loader]))
    loader.set_epoch(4)  # all rows again
    assert len(loader) == 5 and sorted(torch.cat([idx for _, _, idx in loader]).tolist()) == list(range(20))


def test_drop_last_and_bad_batch_size():
    assert len(_loader(drop_last=True)) == 2
    with pytest.raises(ValueError):
        _loader(batch=0)


def test_integer_shift_moves_pixels_exactly():
    x = torch.zeros(2, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    u = torch.tensor([[0.0, -1.0, 1.0, 1.0], [0.0, -1.0, -1.0, 0.5]])  # no rotation, scale 1
    y = RandomAffine(max_shift=2.0).apply(x, u)
    assert y[0, 0].argmax().item() == 2 * 9 + 2  # 2 pixels up and left
    assert y[1, 0].argmax().item() == 3 * 9 + 6  # 2 right, 1 up
    assert torch.allclose(y.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)  # integer shifts do not blur


def test_augmentation_is_random_per_sample_and_seeded():
    x = torch.rand(16, 1, 12, 12)
    aug = RandomAffine(max_shift=2, max_rotate_deg=10, scale=(0.9, 1.1))
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert RandomAffine(0, 0)(x, torch.Generator().manual_seed(1)).sub(x).abs().max() < 1e-5


def test_normalisation_and_layout():
    loader = _loader(n=4, batch=4, channels_last=True)
    loader.mean, loader.std = torch.tensor(0.5).view(1, 1, 1, 1), torch.tensor(0.25).view(1, 1, 1, 1)
    x, _, _ = next(iter(loader))
    assert torch.allclose(x[:, 0, 0, 0], (torch.arange(4) / 255 - 0.5) / 0.25)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_crop_flip_hand_case():
    from kdlib.data.device_loader import RandomCropFlip

    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4).repeat(3, 2, 1, 1)
    aug = RandomCropFlip(pad=1, padding_mode="constant")
    offsets = torch.tensor([[1, 1], [0, 0], [2, 1]])  # (1, 1) is the identity crop
    flips = torch.tensor([False, False, True])
    y = aug.apply(x, offsets, flips)
    assert torch.equal(y[0], x[0])
    assert torch.equal(y[1, 0, 1:, 1:], x[1, 0, :3, :3]) and y[1, 0, 0].abs().sum() == 0  # moved down-right
    assert torch.equal(y[2, 0, :3], x[2, 0, 1:].flip(1))  # moved up, then mirrored
    assert torch.equal(y[:, 0], y[:, 1])  # every channel of a sample gets the same crop


def test_crop_flip_random_and_seeded():
    from kdlib.data.device_loader import RandomCropFlip

    x = torch.rand(32, 3, 8, 8)
    aug = RandomCropFlip(pad=2)
    a, b = aug(x, torch.Generator().manual_seed(0)), aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
