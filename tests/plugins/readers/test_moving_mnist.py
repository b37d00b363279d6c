"""Reader ``moving_mnist``: generated sequences and the .npy layout of mnist_test_seq.npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from framegru.config.config import load_config
from framegru.errors import DataError
from framegru_plugins.readers.moving_mnist import MovingMNIST, bouncing_digits, write_sequences

ROOT = Path(__file__).resolve().parents[3]


def test_bouncing_digits_move_and_stay_inside():
    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 10:18, 10:18] = 255
    seq = bouncing_digits(digit, 30, 64, np.random.default_rng(0))
    assert seq.shape == (30, 64, 64) and seq.dtype == np.uint8
    centers = [np.argwhere(f).mean(0) for f in seq]
    steps = [np.abs(a - b).sum() for a, b in zip(centers, centers[1:])]
    assert all(s > 0 for s in steps)  # it moves every frame
    assert all(f.sum() == 64 * 255 for f in seq)  # the whole digit is always in the canvas


def test_generated_sequences_are_reproducible_and_split_by_digits(data_root):
    train = MovingMNIST(root=data_root, split="train")
    val = MovingMNIST(root=data_root, split="val")
    item = train[5]["video"]
    assert item.shape == (20, 1, 64, 64) and 0 <= item.min() and item.max() <= 1 and item.max() > 0.9
    torch.testing.assert_close(train[5]["video"], item)
    assert not torch.equal(train[6]["video"], item)
    assert not torch.equal(val[5]["video"], item)
    # Validation sequences come from the MNIST *test* digits only; training from the training digits.
    assert val.images.shape[0] == 10_000 and train.images.shape[0] == 60_000
    assert train.info.context == 10 and train.info.future == 10 and len(val) == 1000


def test_the_default_training_split_outlasts_a_long_run(data_root):
    # A model trained seven times over a fixed pool memorizes it (BENCHMARKS.md): the default pool must
    # hold many times what the shipped checkpoint's run read (15,260 steps x 64, on the default pool) and
    # the GPU recipe's 6-minute run (5,430 x 128) so that no run repeats one.
    shipped = load_config(ROOT / "samples" / "checkpoints" / "moving_mnist.yaml")
    read = shipped.train.max_steps * shipped.train.batch_size
    assert read == 976_640 and "sequences" not in shipped.data.reader.options
    assert len(MovingMNIST(root=data_root, split="train")) >= 10 * max(read, 5_430 * 128)


def test_npy_round_trip(data_root, tmp_path):
    source = MovingMNIST(root=data_root, split="test", sequences=3)
    path = tmp_path / "seq.npy"
    write_sequences(source, path)
    array = np.load(path)
    assert array.shape == (20, 3, 64, 64) and array.dtype == np.uint8
    read = MovingMNIST(root=tmp_path, split="test", path=str(path))
    assert len(read) == 3
    torch.testing.assert_close(read[2]["video"], source[2]["video"])


@pytest.mark.parametrize("array", [
    np.zeros((20, 2, 64, 64), np.float32), np.zeros((20, 64, 64), np.uint8), np.zeros((5, 2, 64, 64), np.uint8),
])
def test_bad_npy_is_data_error(tmp_path, array):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError):
        MovingMNIST(root=tmp_path, split="test", path=str(path))


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError):
        MovingMNIST(root=tmp_path, split="test", path=str(path))


def test_missing_mnist_offline_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"MNIST not found under .*MNIST/raw .*put train-images-idx3-ubyte"):
        MovingMNIST(root=tmp_path, split="train")


def test_the_npy_writer_says_what_it_wrote(data_root, tmp_path, monkeypatch, capsys):
    import sys

    from framegru_plugins.readers import moving_mnist

    out = tmp_path / "mm.npy"
    monkeypatch.setattr(sys, "argv", ["moving_mnist", str(out), "--root", str(data_root), "--sequences", "2"])
    moving_mnist.main()
    assert capsys.readouterr().out == (f"wrote {out}: uint8 [20, 2, 64, 64] (frames, sequences, height, width), "
                                       "2 sequences of MNIST test digits, test split, seed 2024\n")
    assert np.load(out).shape == (20, 2, 64, 64)


def test_the_npy_writer_writes_the_start_of_a_training_pool(data_root, tmp_path, monkeypatch, capsys):
    import sys

    from framegru_plugins.readers import moving_mnist

    out = tmp_path / "pool.npy"
    argv = ["moving_mnist", str(out), "--root", str(data_root), "--sequences", "2", "--split", "train", "--seed", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    moving_mnist.main()
    assert capsys.readouterr().out.endswith("2 sequences of MNIST training digits, train split, seed 3\n")
    pool = MovingMNIST(root=data_root, split="train", seed=3)  # what a run with data.reader.seed: 3 reads
    written = MovingMNIST(root=tmp_path, split="test", path=str(out))
    for i in range(2):
        torch.testing.assert_close(written[i]["video"], pool[i]["video"])
    assert not torch.equal(written[0]["video"], MovingMNIST(root=data_root, split="train", seed=0)[0]["video"])


def test_the_npy_writer_refuses_a_seed_for_the_fixed_splits(data_root, tmp_path, monkeypatch, capsys):
    import sys

    from framegru_plugins.readers import moving_mnist

    out = tmp_path / "mm.npy"
    monkeypatch.setattr(sys, "argv", ["moving_mnist", str(out), "--root", str(data_root), "--seed", "1"])
    with pytest.raises(SystemExit) as stopped:
        moving_mnist.main()
    assert stopped.value.code == 2 and not out.exists()
    assert "--seed picks a training pool; the test split is fixed by seed 2024" in capsys.readouterr().err
