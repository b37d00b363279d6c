"""Write samples/moving_digits.mp4: two MNIST test digits bouncing in 64x64, as Moving MNIST.

The README's ``framegru predict`` and ``framegru webcam`` examples run on it. Made from the MNIST test
digits with the ``moving_mnist`` reader's own generator and a fixed seed, so it is the same every time:

    FRAMEGRU_DATA=/path/to/data python samples/make_moving_digits.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from framegru.io.video import VideoWriter
from framegru_plugins.readers.mnist_files import load_mnist
from framegru_plugins.readers.moving_mnist import bouncing_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "moving_digits.mp4")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("FRAMEGRU_DATA", "~/.cache/framegru/data")).expanduser())
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    images, _ = load_mnist(args.root, "test")
    rng = np.random.default_rng(args.seed)
    clip = bouncing_digits(images[rng.integers(0, len(images), 2)], args.frames, 64, rng)
    # Twice the size, nearest neighbour: plays visibly anywhere; the decoder scales it back to 64x64 exactly.
    with VideoWriter(args.out, fps=args.fps, scale=2, pixel_format="gray8", crf=18) as writer:
        for frame in clip:
            writer.write(frame)
    print(f"wrote {args.out}: {args.frames} frames, 128x128, {args.fps:g} fps")


if __name__ == "__main__":
    main()
