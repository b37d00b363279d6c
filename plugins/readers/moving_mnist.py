"""Reader ``moving_mnist``: bouncing MNIST digits, generated on the fly, or read from a ``.npy`` file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from framegru import DataError, DataInfo, hookimpl

from .mnist_files import load_mnist

# The documented seed of the fixed validation/test sequences (made from MNIST *test* digits only).
EVAL_SEED = 2024
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
# Training sequences by default: more than any run reads, since a model memorizes the sequences it sees
# again (benchmarks/LOG.md, "Long runs memorized their training pool").
TRAIN_SEQUENCES = 10_000_000


def bouncing_digits(digits: np.ndarray, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One sequence ``uint8 [frames, size, size]`` of ``digits`` (``[K, 28, 28]``) bouncing off the edges.

    As in Srivastava et al. (2015): each digit starts at a random position with a random direction and
    moves 0.1 of the free range per frame, reflecting at the borders; overlaps take the maximum.
    """
    canvas = np.zeros((frames, size, size), np.uint8)
    free = size - digits.shape[-1]
    for digit in digits:
        pos = rng.uniform(0, 1, 2)
        theta = rng.uniform(0, 2 * np.pi)
        vel = 0.1 * np.array([np.sin(theta), np.cos(theta)])
        for t in range(frames):
            y, x = (pos * free).round().astype(int)
            patch = canvas[t, y : y + 28, x : x + 28]
            np.maximum(patch, digit, out=patch)
            pos = pos + vel
            for axis in range(2):  # reflect at the borders
                if pos[axis] < 0:
                    pos[axis], vel[axis] = -pos[axis], -vel[axis]
                elif pos[axis] > 1:
                    pos[axis], vel[axis] = 2 - pos[axis], -vel[axis]
    return canvas


class MovingMNIST(Dataset):
    """Moving MNIST: ``digits`` MNIST digits bouncing in a 64x64 canvas (train: MNIST train digits).

    Args:
        root: data root with ``MNIST/raw`` (downloaded there when missing and online).
        split: ``train`` (training digits, a new random sequence per index), ``val`` and ``test``
            (test digits, fixed by ``EVAL_SEED``).
        path: read sequences from a ``.npy`` file ``uint8 [T, N, 64, 64]`` (the public
            ``mnist_test_seq.npy`` layout) instead of generating them.
        digits: digits per sequence.
        frames: frames per sequence (``context + future``).
        context: frames given before the model predicts.
        size: canvas side in pixels.
        sequences: sequences in the split (default: ``TRAIN_SEQUENCES`` train, 1000 val, 10000 test).
        seed: seed of the training sequences.
    """

    def __init__(self, *, root: Path, split: str, path: str | None = None, digits: int = 2, frames: int = 20,
                 context: int = 10, size: int = 64, sequences: int | None = None, seed: int = 0):
        if not 0 < context < frames:
            raise ValueError(f"context must be between 1 and frames - 1 = {frames - 1}, got {context}")
        if path is None and size < 28:  # the canvas must hold a digit: else numpy's broadcast error at step 1
            raise ValueError(f"size must be at least 28 (an MNIST digit's side), got {size}")
        self.split, self.frames, self.size, self.digits = split, frames, size, digits
        self.array: np.ndarray | None = None
        if path is not None:
            self.array = read_sequences(Path(path), frames)
            size = self.array.shape[-1]
            self.length = self.array.shape[1] if sequences is None else min(sequences, self.array.shape[1])
        else:
            images, _ = load_mnist(Path(root), "train" if split == "train" else "test")
            self.images = images
            self.length = sequences or {"train": TRAIN_SEQUENCES, "val": 1_000}.get(split, 10_000)
        self.seed = seed if split == "train" else EVAL_SEED
        self.info = DataInfo(channels=1, height=size, width=size, context=context, future=frames - context)

    def __len__(self) -> int:
        return self.length

    def sequence(self, index: int) -> np.ndarray:
        """The ``uint8 [frames, size, size]`` sequence at ``index``; the same every time."""
        if self.array is not None:
            return np.array(self.array[: self.frames, index])  # a writable copy out of the memory map
        rng = np.random.default_rng([self.seed, SPLIT_IDS.get(self.split, 3), index])
        picks = rng.integers(0, len(self.images), self.digits)
        return bouncing_digits(self.images[picks], self.frames, self.size, rng)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return {"video": torch.from_numpy(self.sequence(index)).unsqueeze(1).float().div_(255)}


def read_sequences(path: Path, frames: int) -> np.ndarray:
    """Memory-map a ``uint8 [T, N, H, W]`` array; never unpickles."""
    expected = "a .npy array of uint8 [T, N, H, W] (mnist_test_seq.npy's layout: uint8 [20, N, 64, 64])"
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; expected {expected}") from None
    except (ValueError, OSError, EOFError) as exc:
        # numpy's own message would suggest allow_pickle, which runs the file's code: never pass it on.
        if magic != b"\x93NUMPY":
            what = "is not a .npy array (no .npy header)"
        elif "pickle" in str(exc) or "Python objects" in str(exc):  # np.load and np.load(mmap_mode=...)
            what = "holds Python objects (pickled), which framegru never loads"
        else:
            what = "is a damaged or truncated .npy file"
        raise DataError(f"{path} {what}; expected {expected}") from None
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[2] != array.shape[3]:
        raise DataError(f"{path} holds {array.dtype} {array.shape}; expected uint8 [T, N, H, H] like mnist_test_seq.npy (uint8 [20, N, 64, 64])")
    if array.shape[0] < frames:
        raise DataError(f"{path} has {array.shape[0]} frames per sequence; the config needs {frames}")
    return array


def write_sequences(dataset: MovingMNIST, path: Path) -> None:
    """Write the split as ``uint8 [T, N, H, W]``, the public ``mnist_test_seq.npy`` layout."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                    shape=(dataset.frames, len(dataset), dataset.size, dataset.size))
    for i in range(len(dataset)):
        out[:, i] = dataset.sequence(i)
    out.flush()


@hookimpl
def framegru_register_readers(register):
    register("moving_mnist", MovingMNIST)


MAX_WRITTEN_SEQUENCES = 10_000_000  # 10 million sequences of 20 frames of 64x64 bytes: 819 GB


def main() -> None:
    parser = argparse.ArgumentParser(description="Write fixed Moving MNIST sequences: from MNIST test digits "
                                     "(val, test), or the first of a training pool (train) to see what a model memorized.")
    parser.add_argument("out", type=Path, help="output .npy file, uint8 [T, N, 64, 64]")
    parser.add_argument("--root", type=Path, required=True, help="data root holding MNIST/raw")
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--split", default="test", choices=["val", "test", "train"])
    parser.add_argument("--seed", type=int,
                        help="train split only: the pool's seed (a run's data.reader.seed, default 0; another seed, "
                             "new sequences)")
    args = parser.parse_args()
    if not 1 <= args.sequences <= MAX_WRITTEN_SEQUENCES:  # bounded as framegru's own flags are (framegru/cli/flags.py)
        parser.error(f"--sequences must be from 1 to {MAX_WRITTEN_SEQUENCES:,}, got {args.sequences}")
    if args.seed is not None and args.split != "train":  # val and test are fixed by EVAL_SEED: say so, not ignore it
        parser.error(f"--seed picks a training pool; the {args.split} split is fixed by seed {EVAL_SEED}")
    dataset = MovingMNIST(root=args.root, split=args.split, sequences=args.sequences, seed=args.seed or 0)
    write_sequences(dataset, args.out)
    digits = "training" if args.split == "train" else "test"
    print(f"wrote {args.out}: uint8 [{dataset.frames}, {len(dataset)}, {dataset.size}, {dataset.size}] "
          f"(frames, sequences, height, width), {len(dataset):,} sequences of MNIST {digits} digits, "
          f"{args.split} split, seed {dataset.seed}")


if __name__ == "__main__":
    main()
