"""Property-based fuzzing of everything that reads user files: whatever the bytes, the config loader
raises only UsageError, and the image, video and checkpoint readers give a valid result or a
DataError, in bounded time. Example counts are kept modest so the module takes seconds on 2 cores."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.video_data import ramp_video, tiny_checkpoint

from framegru.config.config import Config, load_config
from framegru.errors import DataError, FramegruError, UsageError
from framegru.io import checkpoint
from framegru.io.images import read_image
from framegru.io.video import FrameStream, probe, read_clip
from framegru.model.frame_model import load_model

# FRAMEGRU_FUZZ_EXAMPLES=2000 for a deep search on a spare machine; CI keeps the default.
EXAMPLES = int(os.environ.get("FRAMEGRU_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VIDEO_TIMEOUT_S = 30  # a decoder that takes longer on a few KB has hung


def within(seconds: float, fn):
    """``fn()``'s result, or its exception; fails the test if it runs longer than ``seconds``."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"hung for {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """``data`` with byte ``i % len`` xor-ed with ``mask`` for each ``(i, mask)``."""
    out = bytearray(data)
    for index, mask in flips:
        out[index % len(out)] ^= mask or 1
    return bytes(out)


FLIPS = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1, max_size=8)


# -- configs ------------------------------------------------------------------------------------
BASE = {"data": {"reader": "moving_mnist"}, "model": {"head": "next_frame"}}
KEYS = ["data", "model", "train", "run", "seed", "plugins", "reader", "backbone", "engine", "head", "name",
        "hidden", "kernel", "max_steps", "lr", "dir", "root", "num_workers", "batch_size", "schedule"]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4), max_leaves=12)


def loads_or_usage_error(path: Path, overrides: list[str] | None = None) -> None:
    try:
        config = load_config(path, overrides)
    except UsageError as exc:
        assert str(exc).strip()
        return
    assert isinstance(config, Config)


@pytest.mark.integration
@FUZZ
@given(text=st.text(max_size=300))
def test_config_text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    loads_or_usage_error(path)


@FUZZ
@given(tree=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_config_structures(tmp_path, tree):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, **tree}))
    loads_or_usage_error(path)


OVERRIDE_KEYS = st.lists(st.sampled_from(KEYS) | st.text(max_size=6), min_size=0, max_size=4).map(".".join)
OVERRIDES = st.lists(st.tuples(OVERRIDE_KEYS, st.sampled_from(["=", "", "=="]), st.text(max_size=20)).map("".join)
                     | st.text(max_size=30), max_size=5)


@FUZZ
@given(overrides=OVERRIDES)
def test_config_overrides(tmp_path, overrides):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    loads_or_usage_error(path, overrides)


# -- images -------------------------------------------------------------------------------------
def _picture() -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)


PNG = cv2.imencode(".png", _picture())[1].tobytes()
JPEG = cv2.imencode(".jpg", _picture())[1].tobytes()


def image_or_data_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    for channels, size in ((3, None), (1, (8, 8))):
        try:
            image = read_image(path, channels, size)
        except DataError:
            continue
        assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == channels
        assert size is None or tuple(image.shape[1:]) == size
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


@FUZZ
@given(data=st.binary(max_size=2048))
def test_image_random_bytes(tmp_path, data):
    image_or_data_error(tmp_path / "x.png", data)


@FUZZ
@given(source=st.sampled_from([PNG, JPEG]), cut=st.floats(0, 1), flips=st.none() | FLIPS)
def test_image_truncated_or_garbled(tmp_path, source, cut, flips):
    data = source[: int(len(source) * cut)]
    if flips and data:
        data = flip(data, flips)
    image_or_data_error(tmp_path / "x.img", data)


# -- videos -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_videos")
    from framegru.io.video import VideoWriter

    fragmented = folder / "fragmented.mp4"
    with VideoWriter(fragmented, fps=10, pixel_format="gray8", fragmented=True) as writer:
        for level in range(0, 240, 20):
            writer.write(np.full((16, 16, 1), level, np.uint8))
    return {"mp4": ramp_video(folder / "ramp.mp4", frames=12, size=16).read_bytes(),
            "fragmented": fragmented.read_bytes(), "mkv": ramp_video(folder / "ramp.mkv", frames=12, size=16).read_bytes()}


def decode_everything(path: Path) -> None:
    """What the readers do with a video: probe it, stream it, read a clip; frames or DataError only."""
    try:
        found = probe(path)
        assert found.frames >= 1 and found.width > 0 and found.height > 0
    except DataError:
        pass
    try:
        with FrameStream(path, size=(8, 8), channels=1) as stream:
            for frame in stream:
                assert frame.image.shape == (8, 8, 1) and frame.image.dtype == np.uint8
    except DataError:
        pass
    try:
        clip = read_clip(path, [0.0, 0.1, 0.2], size=(8, 8), channels=3)
        assert clip.shape == (3, 8, 8, 3)
    except DataError:
        pass


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(kind=st.sampled_from(["mp4", "fragmented", "mkv"]), cut=st.floats(0, 1), flips=st.none() | FLIPS)
def test_video_truncated_or_garbled(clips, tmp_path, kind, cut, flips):
    data = clips[kind][: int(len(clips[kind]) * cut)]
    if flips and data:
        data = flip(data, flips)
    path = tmp_path / f"x.{'mkv' if kind == 'mkv' else 'mp4'}"
    path.write_bytes(data)
    within(VIDEO_TIMEOUT_S, lambda: decode_everything(path))


@settings(FUZZ, max_examples=max(1, EXAMPLES // 4))
@given(data=st.binary(max_size=4096))
def test_video_reader_on_random_bytes(components, tmp_path, data):
    folder = tmp_path / "videos"
    folder.mkdir(exist_ok=True)
    (folder / "x.mp4").write_bytes(data)

    def read():
        try:
            dataset = components.readers.build("video", {"path": str(folder), "frames": 2, "size": [8, 8]},
                                               key="data.reader", root=tmp_path, split="test")
            dataset[0]
        except DataError:
            pass

    within(VIDEO_TIMEOUT_S, read)


# -- checkpoints --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> bytes:
    return tiny_checkpoint(tmp_path_factory.mktemp("fuzz_ckpt") / "c.safetensors", size=(8, 8)).read_bytes()


def checkpoint_or_data_error(path: Path) -> checkpoint.Checkpoint | None:
    try:
        ckpt = checkpoint.load(path)
    except DataError:
        return None
    assert isinstance(ckpt.config, dict) and isinstance(ckpt.info, dict) and isinstance(ckpt.extra, dict)
    assert all(torch.is_tensor(t) for t in ckpt.weights.values())
    return ckpt


@FUZZ
@given(data=st.binary(max_size=2048))
def test_checkpoint_random_bytes(tmp_path, data):
    path = tmp_path / "c.safetensors"
    path.write_bytes(data)
    checkpoint_or_data_error(path)


@FUZZ
@given(cut=st.floats(0, 1), flips=st.none() | FLIPS, header_only=st.booleans())
def test_checkpoint_truncated_or_bit_flipped(components, saved, tmp_path, cut, flips, header_only):
    data = saved[: max(1, int(len(saved) * cut))] if flips is None else saved
    if flips:
        header_len = int.from_bytes(saved[:8], "little") + 8
        # Flips in the JSON header find the parser's corners; flips in the tensor bytes only change weights.
        data = flip(data, [(i % header_len, m) for i, m in flips] if header_only else flips)
    path = tmp_path / "c.safetensors"
    path.write_bytes(data)
    if checkpoint_or_data_error(path) is None:
        return
    # What survives loading either rebuilds a model or is one FramegruError (the CLI's one line).
    try:
        model = load_model(path, components)
    except FramegruError:
        return
    assert model.task.name == "predict"
