"""A user's own image tree cannot go silently wrong: checked before step 1, degenerate trees told in one
line, and ``eval`` with the config a checkpoint was trained with."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.still_data import tiny_rows_config, write_config, write_image_tree

from framegru.cli.app import main
from framegru.config.config import load_config
from framegru.errors import DataError
from framegru.training.batches import size_notes
from framegru_plugins.readers.image_folder import image_folder


def corrupt(tree: Path, *names: str) -> list[Path]:
    """Replace images of ``tree`` by a JPEG cut in half and a file of garbage."""
    good = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    paths = [tree / name for name in names]
    for i, path in enumerate(paths):
        path.write_bytes(good[: len(good) // 2] if i % 2 == 0 else b"definitely not an image")
    return paths


def test_a_bad_image_is_an_error_naming_each_before_training(tmp_path):
    tree = write_image_tree(tmp_path / "tree")
    bad = corrupt(tree, "horizontal/003.png", "vertical/007.png")
    with pytest.raises(DataError) as caught:
        image_folder(root=tmp_path, split="test", path="tree")
    message = str(caught.value)
    assert message.startswith(f"2 of the 24 test images under {tree} cannot be read: ")
    assert all(f"cannot decode image {path}: not an image, or corrupt" in message for path in bad)
    assert message.endswith("replace or remove them, or set data.reader.on_bad_image=skip")


def test_skip_leaves_bad_images_out_and_says_how_many(tmp_path, caplog):
    tree = write_image_tree(tmp_path / "tree")
    corrupt(tree, "horizontal/003.png", "vertical/007.png")
    data = image_folder(root=tmp_path, split="test", path="tree", on_bad_image="skip")
    assert len(data) == 22 and [data[i]["label"] for i in range(len(data))] == [0] * 11 + [1] * 11
    assert caplog.messages == [f"framegru: warning: skipped 2 unreadable images of the 24 test images under {tree} "
                               "(data.reader.on_bad_image: skip)"]
    train = image_folder(root=tmp_path, split="train", path="tree", val_fraction=0.25, on_bad_image="skip")
    val = image_folder(root=tmp_path, split="val", path="tree", val_fraction=0.25, on_bad_image="skip")
    assert len(train) + len(val) == 22 and not set(train.indices) & set(val.indices)
    with pytest.raises(ValueError, match="on_bad_image must be one of error, skip, got 'ignore'"):
        image_folder(root=tmp_path, split="test", path="tree", on_bad_image="ignore")


def test_degenerate_trees_are_one_clear_error(tmp_path):
    tree = write_image_tree(tmp_path / "tree")
    (tree / "zebra").mkdir()
    with pytest.raises(DataError, match=r"tree: class folder without images: zebra \(each would still count as a "
                                        r"class\): add images or remove the folder$"):
        image_folder(root=tmp_path, split="train", path="tree")
    one = write_image_tree(tmp_path / "one", classes=["cat"])
    with pytest.raises(DataError, match=r"one has a single class folder \(cat\): a classifier needs at least two"):
        image_folder(root=tmp_path, split="train", path="one")
    assert len(image_folder(root=tmp_path, split="test", path="one")) == 12  # scoring one class is fine
    layout = tmp_path / "layout"
    write_image_tree(layout / "train")
    write_image_tree(layout / "test")
    with pytest.raises(DataError) as caught:
        image_folder(root=tmp_path, split="train", path="layout")
    assert str(caught.value) == (f"{layout} holds test/, train/ with the classes inside, not class folders: point "
                                 f"data.reader.path at {layout / 'train'} (this reader splits off validation itself)")
    tiny = write_image_tree(tmp_path / "tiny", per_class=1)
    (tiny / "vertical" / "000.png").unlink()
    (tiny / "vertical").rmdir()
    with pytest.raises(DataError, match="1 image: too few to train on and hold out a validation split"):
        image_folder(root=tmp_path, split="val", path="tiny")


def test_small_splits_are_said(tmp_path):
    tree = write_image_tree(tmp_path / "tree", per_class=6)  # 12 images: 9 training, 3 validation
    config = load_config(write_config(tmp_path / "c.yaml", tiny_rows_config(tree, tmp_path / "run", 2)),
                         ["train.batch_size=32"])
    train, val = (image_folder(root=tmp_path, split=s, path=str(tree), size=[8, 8], val_fraction=0.25)
                  for s in ("train", "val"))
    assert size_notes(config, train, val) == [
        "warning: the training split holds 9 images, fewer than a batch of 32: every batch repeats them "
        "(about 3.6 times each); train.batch_size=9 fits them once",
        "warning: the validation split holds only 3 images: its metrics, and the `best` checkpoint they choose, "
        "are mostly noise (raise data.reader.val_fraction or add images)",
    ]
    big = write_image_tree(tmp_path / "big", per_class=24)
    train, val = (image_folder(root=tmp_path, split=s, path=str(big), size=[8, 8], val_fraction=0.25)
                  for s in ("train", "val"))
    assert size_notes(load_config(tmp_path / "c.yaml", ["train.batch_size=8"]), train, val) == []


@pytest.mark.integration
def test_a_run_on_a_small_tree_says_so_before_it_trains(tmp_path, capfd):
    tree = write_image_tree(tmp_path / "tree", per_class=6)
    config = write_config(tmp_path / "c.yaml", tiny_rows_config(tree, tmp_path / "run", 2))
    assert main(["run", str(config), "train.batch_size=32"]) == 0
    err = capfd.readouterr().err
    assert "warning: the training split holds 9 images, fewer than a batch of 32" in err
    assert err.index("fewer than a batch") < err.index("eval @ 2")


@pytest.mark.integration
def test_eval_of_a_checkpoint_alone_uses_its_own_config(still_checkpoint, capsys):
    run = still_checkpoint.parent
    assert main(["eval", str(still_checkpoint), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert main(["eval", str(run / "config.yaml"), "--checkpoint", str(still_checkpoint), "--json"]) == 0
    with_config = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert alone == with_config and 0 <= alone["accuracy"] <= 1 and alone["images"] == 6
    assert main(["eval", str(run / "config.yaml")]) == 2
    assert "pass --checkpoint CKPT, or the checkpoint alone" in capsys.readouterr().err


@pytest.mark.integration
def test_a_class_count_mismatch_names_the_runs_config(still_checkpoint, tmp_path, capsys):
    other = write_image_tree(tmp_path / "three", classes=["a", "b", "c"], per_class=4)
    config = write_config(tmp_path / "three.yaml", tiny_rows_config(other, tmp_path / "run", 2))
    assert main(["eval", str(config), "--checkpoint", str(still_checkpoint)]) == 1
    err = capsys.readouterr().err.strip()
    run_config = still_checkpoint.parent / "config.yaml"
    assert err == (f"framegru: error: the data has 3 classes, the checkpoint 2: evaluate it with the config it "
                   f"was trained with: framegru eval {run_config} --checkpoint {still_checkpoint}, or framegru eval "
                   f"{still_checkpoint} (the config inside it)")
