"""The still-image readers: image_folder on a generated tree, cifar10 on a CIFAR-style tree, mnist on
the real files (skipped without FRAMEGRU_DATA), and the held-out validation split."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from framegru.config.config import load_config
from framegru.errors import DataError, UsageError
from framegru.plugin_manager.host import load_components
from framegru.training.batches import build_reader
from framegru_plugins.readers.image_folder import image_folder
from framegru_plugins.readers.stills import hold_out, split_indices
from framegru_plugins.readers.torchvision_datasets import CIFAR10_CLASSES, cifar10, mnist

from tests.still_data import write_image_tree

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_image_folder_classes_labels_and_values(tmp_path):
    for name, value in (("zebra", 200), ("ant", 10)):  # created out of order: classes come out sorted
        (tmp_path / name).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((6, 4, 3), value + i, np.uint8))
    (tmp_path / "ant" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "ant" / "._0.png").write_bytes(b"macOS resource fork, not a PNG")
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    data = image_folder(root=tmp_path, split="test")
    assert data.info.classes == ["ant", "zebra"]
    assert (data.info.channels, data.info.height, data.info.width, data.info.still) == (3, 6, 4, True)
    items = [data[i] for i in range(len(data))]
    assert [item["label"] for item in items] == [0, 0, 0, 1, 1, 1]
    means = [round(float(item["image"].mean()) * 255) for item in items]
    assert means == [10, 11, 12, 200, 201, 202]


def test_image_folder_resizes_converts_and_finds_nested_images(tmp_path):
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "deeper" / "x.jpg"), np.full((40, 50, 3), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "b" / "y.png"), np.full((9, 9), 0, np.uint8))
    data = image_folder(root=tmp_path, split="test", size=[16, 12], channels=1)
    assert len(data) == 2 and data.info.channels == 1
    assert data[0]["image"].shape == (1, 16, 12) and data[0]["image"].min() > 0.95
    assert data[1]["image"].shape == (1, 16, 12) and data[1]["image"].max() == 0


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        image_folder(root=tmp_path, split="train", path="missing")
    with pytest.raises(DataError, match="no class subfolders"):
        image_folder(root=tmp_path, split="train")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no images under"):
        image_folder(root=tmp_path, split="train")
    write_image_tree(tmp_path / "tree")
    with pytest.raises(DataError, match=r"has classes \['horizontal', 'vertical'\], expected"):
        image_folder(root=tmp_path, split="train", path="tree", classes=["cat", "dog"])


@pytest.mark.parametrize("count,fraction", [(24, 0.25), (50_000, 0.1), (60_000, 1 / 12), (3, 0.5)])
def test_hold_out_is_a_disjoint_fixed_partition(count, fraction):
    train, val = hold_out(count, fraction)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(count))
    assert len(val) == max(1, round(count * fraction))
    assert (train, val) == hold_out(count, fraction)  # the same split on every call (and in every worker)
    assert split_indices(count, "test", fraction) == list(range(count))
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(count, "test", 1.5)


def test_image_folder_splits_and_augments_train_only(still_tree):
    train = image_folder(root=still_tree, split="train", val_fraction=0.25, crop_padding=2, flip=True)
    val = image_folder(root=still_tree, split="val", val_fraction=0.25, crop_padding=2, flip=True)
    test = image_folder(root=still_tree, split="test")
    assert (len(train), len(val), len(test)) == (18, 6, 24)
    assert not {str(train.load.paths[i]) for i in train.indices} & {str(val.load.paths[i]) for i in val.indices}
    assert torch.equal(val[0]["image"], val[0]["image"])  # no randomness outside training
    torch.manual_seed(0)
    draws = [train[0]["image"] for _ in range(8)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # random crops and flips
    assert all(d.shape == (3, 8, 8) for d in draws)


def test_datasets_pickle_for_spawned_workers(still_tree):
    data = image_folder(root=still_tree, split="val", val_fraction=0.25)
    again = pickle.loads(pickle.dumps(data))
    assert torch.equal(again[1]["image"], data[1]["image"]) and again[1]["label"] == data[1]["label"]


def _cifar_tree(folder: Path) -> Path:
    return write_image_tree(folder, CIFAR10_CLASSES, per_class=2, size=(40, 36))


def test_cifar10_reads_a_class_per_folder_tree(tmp_path):
    tree = _cifar_tree(tmp_path / "cifar10" / "train")
    train = cifar10(root=tmp_path, split="train")
    val = cifar10(root=tmp_path, split="val")
    test = cifar10(root=tmp_path, split="test")  # no test/ folder: the held-out images
    assert (len(train), len(val)) == (18, 2)
    assert [val.indices, val.load.paths] == [test.indices, test.load.paths]
    assert train.info.classes == CIFAR10_CLASSES and (train.info.height, train.info.width) == (32, 32)
    assert train[0]["image"].shape == (3, 32, 32)
    assert (train.crop_padding, train.flip, val.crop_padding, val.flip) == (4, True, 0, False)
    elsewhere = cifar10(root=tmp_path / "unused", split="test", path=str(tree))  # what `eval --data` passes
    assert len(elsewhere) == 20 and elsewhere.info.classes == CIFAR10_CLASSES


def test_cifar10_refuses_a_tree_of_other_classes(still_tree, tmp_path):
    with pytest.raises(DataError, match="expected"):
        cifar10(root=tmp_path, split="train", path=str(still_tree))


def test_cifar10_rows_config_points_at_another_tree_with_one_key(tmp_path, still_tree):
    """The documented one-key changes of configs/cifar10_rows.yaml."""
    components = load_components()
    cifar_tree = _cifar_tree(tmp_path / "mine")
    config = load_config(CONFIGS / "cifar10_rows.yaml", [f"data.reader.path={cifar_tree}"])
    data = build_reader(config, components, "train")
    assert len(data) == 18 and data.crop_padding == 4 and data.flip
    # Another data set altogether: the same recipe with the generic reader, which keeps every option.
    config = load_config(CONFIGS / "cifar10_rows.yaml", ["data.reader.name=image_folder", f"data.reader.path={still_tree}"])
    data = build_reader(config, components, "train")
    assert data.info.classes == ["horizontal", "vertical"] and data.crop_padding == 4 and data.flip
    with pytest.raises(UsageError, match="unknown option 'data.reader.size' for reader 'cifar10'"):
        build_reader(load_config(CONFIGS / "cifar10_rows.yaml", ["data.reader.size=[8,8]"]), components, "train")


MNIST_ROOT = Path(os.environ.get("FRAMEGRU_DATA", "/nonexistent"))
needs_mnist = pytest.mark.skipif(not (MNIST_ROOT / "MNIST" / "raw").is_dir(), reason="MNIST not under $FRAMEGRU_DATA")


@needs_mnist
def test_mnist_values():
    train, val, test = (mnist(root=MNIST_ROOT, split=s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (55_000, 5_000, 10_000)
    assert not set(train.indices) & set(val.indices)
    assert train.labels[0] == 5 and test.labels[0] == 7  # the first training and test digits
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    seven = test[0]
    assert seven["label"] == 7 and seven["image"].shape == (1, 28, 28) and seven["image"].dtype == torch.float32
    assert seven["image"].min() == 0 and seven["image"].max() == 1 and 0.05 < seven["image"].mean() < 0.3
    assert test.info.classes == [str(d) for d in range(10)] and test.info.still


@needs_mnist
def test_mnist_shifts_train_digits_only():
    train = mnist(root=MNIST_ROOT, split="train", crop_padding=2)
    test = mnist(root=MNIST_ROOT, split="test", crop_padding=2)
    assert test.crop_padding == 0 and torch.equal(test[0]["image"], test[0]["image"])
    torch.manual_seed(1)
    shifted = [train[0]["image"] for _ in range(6)]
    assert any(not torch.equal(shifted[0], s) for s in shifted[1:])
    assert all(torch.isclose(s.sum(), shifted[0].sum(), atol=8) for s in shifted)  # shifted, barely cropped
