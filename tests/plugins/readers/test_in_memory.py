"""Still images decoded once into memory and augmented a batch at a time (plugins/readers/in_memory.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.still_data import write_image_tree
from torch.utils.data import DataLoader

from framegru.io import files
from framegru.training import seeding
from framegru.training.batches import _collate
from framegru_plugins.readers.image_folder import ImageFiles, image_folder, scan
from framegru_plugins.readers.in_memory import augment_batch, cutout, decoded_images, random_crop, random_flip


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEGRU_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def images(count: int = 6, size: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_augmentation_keeps_shape_dtype_and_device():
    x = images()
    y = augment_batch(x, padding=2, flip=True, cutout_size=3, pad_mode="reflect", generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8 and y.device == x.device
    assert not torch.equal(x, y)


def test_flips_mirror_each_image_exactly_or_leave_it():
    x = images(count=32)
    y = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(a, b.flip(-1)) for a, b in zip(x, y)]
    kept = [torch.equal(a, b) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 4 < sum(flipped) < 28  # about half of them


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crops_are_windows_of_the_padded_image(mode):
    x, p = images(count=16), 3
    y = random_crop(x, p, torch.Generator().manual_seed(0), mode)
    padded = F.pad(x.float(), (p,) * 4, mode="reflect" if mode == "reflect" else "constant")
    offsets = set()
    for a, b in zip(padded, y.float()):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if torch.equal(a[:, dy : dy + 8, dx : dx + 8], b)]
        assert found, "every crop is a window of its padded image"
        offsets.add(found[0])
    assert len(offsets) > 4  # the offsets vary from image to image


def test_cutout_zeroes_one_square_of_at_most_its_size():
    x = torch.full((8, 1, 10, 10), 200, dtype=torch.uint8)
    y = cutout(x, 4, torch.Generator().manual_seed(0))
    zeros = (y == 0).sum(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 16).all() and (y[y != 0] == 200).all()


def test_the_same_generator_seed_gives_the_same_batch():
    x = images()
    a, b = (augment_batch(x, padding=2, flip=True, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)


def test_decoded_images_round_trip_through_the_cache(tmp_path, cache):
    tree = write_image_tree(tmp_path / "tree", per_class=5)
    _, paths, _ = scan(tree)
    reader = image_folder(root=tree, split="test")
    first = decoded_images(paths, 3, (8, 8), reader.load.read)
    expected = torch.stack([reader.load(i) for i in range(len(paths))]).mul(255).round().to(torch.uint8)
    assert first.dtype == torch.uint8 and torch.equal(first, expected)
    assert len(list((cache / "images").glob("*.safetensors"))) == 1 and not files.unfinished_writes(cache / "images")

    def no_decoding(path):
        raise AssertionError("a cached image set is not decoded again")

    assert torch.equal(decoded_images(paths, 3, (8, 8), no_decoding), first)
    smaller = decoded_images(paths, 3, (4, 4), ImageFiles(paths, 3, (4, 4)).read)  # another size: its own entry
    assert smaller.shape == (10, 3, 4, 4) and len(list((cache / "images").glob("*.safetensors"))) == 2


def test_in_memory_reader_has_the_same_split_and_values(tmp_path, cache):
    tree = write_image_tree(tmp_path / "tree", per_class=10)
    for split in ("train", "val"):
        on_disk = image_folder(root=tree, split=split, val_fraction=0.25)
        in_memory = image_folder(root=tree, split=split, val_fraction=0.25, in_memory=True)
        assert on_disk.indices == in_memory.indices and len(on_disk) == len(in_memory)
    batch = in_memory.__getitems__([0, 2])  # val: no augmentation
    assert torch.allclose(batch["image"][1], on_disk[2]["image"], atol=0.5 / 255)
    assert batch["label"].tolist() == [on_disk[0]["label"], on_disk[2]["label"]]
    assert in_memory[2]["label"] == on_disk[2]["label"] and in_memory[2]["image"].shape == (3, 8, 8)


def test_training_batches_are_read_whole_and_replay_by_step(tmp_path, cache):
    tree = write_image_tree(tmp_path / "tree", per_class=10)
    data = image_folder(root=tree, split="train", in_memory=True, crop_padding=2, flip=True, cutout=2, pad_mode="reflect")
    order = [[0, 1, 2, 3], [4, 5, 6, 7]]

    def read():
        batches = seeding.seeded_batches(iter(order), seed=0, start=0, rank=0)
        return list(DataLoader(seeding.SeededItems(data), batch_sampler=batches, collate_fn=_collate))

    first, again = read(), read()
    assert first[0]["image"].shape == (4, 3, 8, 8) and first[0]["image"].dtype == torch.float32
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))
    assert not torch.equal(first[0]["image"], data.__getitems__([0, 1, 2, 3])["image"])  # augmented


def test_options_that_need_memory_are_refused_without_it(tmp_path):
    tree = write_image_tree(tmp_path / "tree", per_class=2)
    with pytest.raises(ValueError, match="in_memory"):
        image_folder(root=tree, split="train", cutout=4)
