"""framegru.io.video (threaded PyAV decoding, clips by seeking, the writer) and the ``video`` reader."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from tests.video_data import (DIRECTIONS, cut_in_half, faststart_noise_video, moving_digit, ramp_video,
                        write_direction_tree, write_video)

from framegru.config.config import load_config, validate
from framegru.errors import DataError
from framegru.io.video import FrameStream, VideoWriter, convert, probe, read_clip
from framegru.plugin_manager.host import load_components
from framegru.training.runner import run_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "video_classify.yaml"


@pytest.fixture(scope="module")
def components():
    return load_components()


@pytest.fixture(scope="module")
def ramp(tmp_path_factory) -> Path:
    return ramp_video(tmp_path_factory.mktemp("ramp") / "ramp.mp4")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_direction_tree(tmp_path_factory.mktemp("videos") / "tree", per_class=4, frames=12, size=32)


def broken_files(folder: Path) -> list[Path]:
    """An unreadable file, an empty one, a truncated one and a video stream without frames."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.mp4"
    text.write_text("not a video")
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    whole = write_video(folder / "whole.mp4", moving_digit(3, "left", frames=12))
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[:600])  # the MP4 index is at the end: nothing decodable
    whole.unlink()
    no_frames = folder / "no_frames.mp4"
    with av.open(str(no_frames), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 16, 16
        container.start_encoding()  # the header, then no frame at all
    return [text, empty, truncated, no_frames]


# -- decoding ------------------------------------------------------------------------------------
def test_stream_gives_every_frame_in_order_with_times(ramp):
    with FrameStream(ramp, channels=1) as stream:
        frames = list(stream)
    assert len(frames) == 40
    levels = np.array([f.image.mean() for f in frames])
    np.testing.assert_allclose(levels, np.arange(40) * 5, atol=2)
    np.testing.assert_allclose([f.time for f in frames], np.arange(40) / 10, atol=1e-3)
    assert [f.index for f in frames] == list(range(40))
    assert frames[0].image.shape == (16, 16, 1) and frames[0].image.dtype == np.uint8
    assert stream.decode_seconds > 0


def test_decoder_converts_and_resizes(tmp_path):
    # 32 wide, 16 tall; a white stripe in the left quarter: a centre crop cuts it, a stretch keeps it.
    image = np.zeros((4, 16, 32), np.uint8)
    image[:, :, :8] = 255
    path = write_video(tmp_path / "stripe.mp4", image)
    with FrameStream(path, size=(8, 8), channels=3, fit="stretch") as stream:
        stretched = next(iter(stream)).image
    with FrameStream(path, size=(8, 8), channels=3, fit="crop") as stream:
        cropped = next(iter(stream)).image
    assert stretched.shape == cropped.shape == (8, 8, 3)
    assert stretched[:, :2].mean() > 200 and stretched[:, 4:].mean() < 30
    assert cropped.mean() < 30


def colourful_picture() -> np.ndarray:
    """A 64x48 RGB picture of smooth colour ramps and a sharp square."""
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 4, y * 5, 255 - x * 2], axis=-1).astype(np.uint8)
    rgb[10:20, 30:44] = (250, 20, 120)
    return rgb


def colourful_frame(format: str) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(colourful_picture(), format="rgb24").reformat(format=format)


@pytest.mark.parametrize("channels", [1, 3])
def test_fast_conversion_shows_the_picture_as_ffmpegs_scaler_does(channels):
    # Unscaled video-range 4:2:0 frames skip swscale (OpenCV converts): they must show the source picture
    # at least as faithfully as swscale, which every other frame still goes through.
    frame = colourful_frame("yuv420p")
    truth = colourful_picture()
    if channels == 1:
        truth = cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY)  # BT.601 luma, as the encoder computed it
    truth = truth.reshape(48, 64, channels).astype(int)
    fast = convert(frame, None, channels, "crop")
    scaler = frame.to_ndarray(format="gray8" if channels == 1 else "rgb24").reshape(truth.shape)
    assert fast.shape == truth.shape and fast.dtype == np.uint8
    fast_error, scaler_error = np.abs(fast - truth).mean(), np.abs(scaler - truth).mean()
    assert fast_error < 2.5 and fast_error <= scaler_error + 0.5, (fast_error, scaler_error)
    assert np.abs(fast.astype(int) - scaler).max() <= 3


def test_other_pixel_formats_convert_through_ffmpeg():
    # Full-range (JPEG) 4:2:0 and 4:4:4 frames take swscale's path; both show the same picture as 4:2:0.
    reference = convert(colourful_frame("yuv420p"), None, 3, "crop").astype(int)
    for format in ("yuvj420p", "yuv444p", "rgb24"):
        image = convert(colourful_frame(format), None, 3, "crop")
        assert image.shape == (48, 64, 3)
        assert np.abs(image.astype(int) - reference).mean() < 3, format


def test_rotation_metadata_comes_out_upright(tmp_path):
    # Stored landscape 32x16 with a marker top-left, tagged like a phone held upright (-90: turn clockwise).
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "0"})
        stream.width, stream.height = 32, 16
        stream.set_display_rotation(-90)
        for _ in range(3):
            pixels = np.zeros((16, 32, 3), np.uint8)
            pixels[:4, :4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    found = probe(path)
    assert (found.width, found.height, found.rotation) == (16, 32, 270)
    with FrameStream(path, channels=1) as stream:
        upright = next(iter(stream)).image[:, :, 0]
    assert upright.shape == (32, 16)
    assert upright[:4, -4:].mean() > 200 and upright[:4, :4].mean() < 30  # top-left went top-right


def test_variable_frame_rate_times_are_kept(tmp_path):
    times = [0.0, 0.05, 0.3, 0.35, 1.0]
    path = tmp_path / "vfr.mp4"
    with VideoWriter(path, fps=10, pixel_format="gray8") as writer:
        for t in times:
            writer.write(np.full((16, 16), int(t * 200), np.uint8), time=t)
    assert probe(path).times == pytest.approx(times, abs=1e-3)
    with FrameStream(path, channels=1) as stream:
        assert [f.time for f in stream] == pytest.approx(times, abs=1e-3)


def test_read_clip_seeks_to_the_frames_asked_for(ramp):
    found = probe(ramp)
    assert found.frames == 40 and found.fps == pytest.approx(10)
    clip = read_clip(ramp, [found.times[i] for i in (23, 25, 27, 27)], size=(8, 8), channels=1)
    assert clip.shape == (4, 8, 8, 1)
    np.testing.assert_allclose(clip.mean(axis=(1, 2, 3)), [115, 125, 135, 135], atol=2)
    tail = read_clip(ramp, [3.8, 3.9, 4.5], size=(8, 8), channels=1)  # the video ends: the last frame repeats
    np.testing.assert_allclose(tail.mean(axis=(1, 2, 3)), [190, 195, 195], atol=2)


def test_broken_files_are_one_clear_data_error(tmp_path):
    for path in broken_files(tmp_path) + [tmp_path / "missing.mp4"]:
        with pytest.raises(DataError, match=path.name):
            probe(path)
        with pytest.raises(DataError, match=path.name), FrameStream(path) as stream:
            list(stream)


def test_closing_a_stream_early_stops_its_thread(ramp):
    stream = FrameStream(ramp, queue_size=1)
    first = next(iter(stream))
    assert first.index == 0
    stream.close()
    assert not stream._thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "decode ramp.mp4"]


def test_a_stalled_decoder_is_given_up_on(ramp, monkeypatch):
    import framegru.io.video as video

    monkeypatch.setattr(video, "STALL_S", 0.2)
    monkeypatch.setattr(video, "convert", lambda *args: threading.Event().wait(1.0))  # a decoder stuck for 1 s
    with pytest.raises(DataError, match="produced nothing for 0.2 s"), FrameStream(ramp) as stream:
        list(stream)


def test_writer_finalizes_when_the_writing_code_fails(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, fps=10, scale=2) as writer:
        for i in range(7):
            writer.write(np.full((9, 11, 3), 30 * i, np.uint8))  # odd sides: padded to even by the writer
        raise RuntimeError("boom")
    with FrameStream(path) as stream:
        frames = list(stream)
    assert len(frames) == 7 and frames[0].image.shape == (18, 22, 3)  # 2x, then even
    np.testing.assert_allclose([f.image.mean() for f in frames], np.arange(7) * 30, atol=3)


@pytest.mark.parametrize("fragmented", [False, True])
def test_videos_follow_the_umask(tmp_path, monkeypatch, fragmented):
    from framegru.io import files

    monkeypatch.setattr(files, "_UMASK", 0o027)  # read once at import
    old = os.umask(0o027)  # a fragmented video is written in place: the process's umask applies
    try:
        with VideoWriter(tmp_path / "v.mp4", fps=10, fragmented=fragmented) as writer:
            for i in range(3):
                writer.write(np.full((8, 8, 3), 40 * i, np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "v.mp4").stat().st_mode & 0o777 == 0o640


def test_writer_without_frames_leaves_no_file(tmp_path):
    with VideoWriter(tmp_path / "nothing.mp4"):
        pass
    assert not (tmp_path / "nothing.mp4").exists()


def test_a_truncated_video_reads_the_same_with_any_decoder_threads(tmp_path):
    whole = faststart_noise_video(tmp_path / "whole.mp4", frames=200)
    half = cut_in_half(whole, tmp_path / "half.mp4")
    read = {}
    for threads in (0, 1, 2):  # 0: FFmpeg's frame threads, which used to drop the cut-off packet silently
        with FrameStream(half, threads=threads, size=(16, 16)) as stream:
            read[threads] = ([f.image for f in stream], stream.problem)
    frames, problem = read[0]
    assert 50 <= len(frames) < 150
    assert problem == f"{half} ends after {len(frames)} of the 200 frames its header declares (truncated or damaged)"
    for threads in (1, 2):
        assert read[threads][1] == problem and len(read[threads][0]) == len(frames)
        assert all(np.array_equal(a, b) for a, b in zip(read[threads][0], frames))
    with FrameStream(whole, threads=0) as stream:
        assert sum(1 for _ in stream) == 200 and stream.problem is None


# -- the reader ----------------------------------------------------------------------------------
def build(components, **options):
    options.setdefault("root", Path("/"))
    return components.readers.build("video", {k: v for k, v in options.items() if k not in ("root", "split")},
                                    key="data.reader", root=options["root"], split=options.get("split", "train"))


def test_reader_gives_labelled_clips(components, tree):
    test = build(components, path=str(tree), split="test", frames=4, stride=2, channels=1, size=[16, 16])
    assert test.info.classes == list(DIRECTIONS) and (test.info.channels, test.info.height, test.info.width) == (1, 16, 16)
    assert len(test) == 16
    item = test[5]
    assert item["video"].shape == (4, 1, 16, 16) and item["video"].dtype == torch.float32
    assert item["label"] == 1  # sorted folders: down, left, right, up; video 5 is the second of "left"
    assert 0 < item["video"].mean() < 0.5 and item["video"].max() <= 1
    assert torch.equal(test[5]["video"], item["video"])  # uniform sampling: the same clip every time
    # Moving left 2 px a frame, stride 2: each frame of the clip is the previous one rolled 4 px left.
    video = item["video"][:, 0]
    for t in range(3):
        shifted = torch.roll(video[t], -2, dims=1)  # 4 px at 32 px is 2 px at 16 px
        assert (shifted - video[t + 1]).abs().mean() < (video[t] - video[t + 1]).abs().mean()

    train = build(components, path=str(tree), split="train", frames=4, clips_per_video=2, size=[16, 16])
    val = build(components, path=str(tree), split="val", frames=4, size=[16, 16], val_fraction=0.25)
    assert len(train) == 2 * 14 and len(val) == 4  # 10% of 16 rounds to 2 held out; 25% to 4
    assert set(map(str, train.paths)).isdisjoint(map(str, build(components, path=str(tree), split="val", frames=4).paths))
    torch.manual_seed(0)
    starts = {train[0]["video"].numpy().tobytes() for _ in range(6)}
    assert len(starts) > 1  # random sampling: the clip moves between accesses


def test_reader_without_classes_is_for_prediction(components, tmp_path):
    for i in range(2):
        write_video(tmp_path / f"{i}.mp4", moving_digit(i, "right", frames=10, size=16))
    clips = build(components, path=str(tmp_path), split="test", frames=6, context=4, channels=1)
    assert clips.info.classes is None and (clips.info.context, clips.info.future) == (4, 2)
    assert set(clips[0]) == {"video"} and clips[0]["video"].shape == (6, 1, 16, 16)


def test_reader_skips_broken_files_and_warns_once(components, tree, tmp_path, caplog):
    mixed = tmp_path / "mixed"
    for name in DIRECTIONS[:2]:
        (mixed / name).mkdir(parents=True)
        for video in sorted((tree / name).glob("*.mp4"))[:2]:
            (mixed / name / video.name).symlink_to(video)
    broken = broken_files(mixed / "left")
    clips = build(components, path=str(mixed), split="test", frames=4, size=[16, 16])
    assert len(clips) == 8
    items = [clips[i] for i in range(len(clips))]
    assert all(item["video"].shape == (4, 3, 16, 16) for item in items)
    assert sorted(p.name for p in clips.skipped_paths) == sorted(p.name for p in broken)
    del clips, items
    gc.collect()
    said = [m for m in caplog.messages if "unreadable" in m]
    assert len(said) == 1 and said[0].startswith("framegru: warning: skipped 4 unreadable videos of 8 in the test split")
    assert "text.mp4" in said[0]


def test_reader_with_nothing_readable_is_a_data_error(components, tmp_path):
    broken_files(tmp_path / "a")
    with pytest.raises(DataError, match="none of the 4 videos"):
        build(components, path=str(tmp_path), split="test", frames=4)


def tiny_video_config(tree: Path, run_dir: Path, **reader) -> dict:
    """configs/video_classify.yaml made small enough to train on the test videos in seconds."""
    raw = load_config(CONFIG).to_dict()
    raw["data"]["reader"].update(path=str(tree), frames=6, stride=1, size=[16, 16], channels=1, **reader)
    raw["data"]["num_workers"] = 0
    raw["model"] = {"backbone": {"name": "conv", "channels": [8], "downsample": 1},
                    "engine": {"hidden": 8, "kernel": 3}, "head": {"name": "classify", "dropout": 0.0}}
    raw["train"].update(max_steps=4, batch_size=4, eval_every=4, device="cpu", amp=False,
                        time_budget_minutes=None)  # the cpu section sizes a real run; this one is 4 steps
    raw["run"]["dir"] = str(run_dir)
    return raw


@pytest.mark.integration
def test_shipped_config_trains_a_few_steps(components, tree, tmp_path):
    assert load_config(CONFIG).data.reader.name == "video"
    metrics = run_config(validate(tiny_video_config(tree, tmp_path / "run"), "test"), components)
    assert metrics["step"] == 4 and np.isfinite(metrics["loss"]) and 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "run" / "best.safetensors").is_file()


@pytest.mark.integration
def test_training_with_a_broken_file_finishes_and_warns(components, tree, tmp_path, caplog):
    mixed = tmp_path / "mixed"
    for name in DIRECTIONS:
        (mixed / name).mkdir(parents=True)
        for video in (tree / name).glob("*.mp4"):
            (mixed / name / video.name).symlink_to(video)
    (mixed / "down" / "zz_broken.mp4").write_text("garbage")  # index 4 of 17: in the train split
    raw = tiny_video_config(mixed, tmp_path / "run", sampling="uniform")
    raw["data"]["num_workers"] = 1  # the broken file is found in a worker process
    metrics = run_config(validate(raw, "test"), components)
    assert metrics["step"] == 4 and np.isfinite(metrics["loss"])
    gc.collect()
    assert "framegru: warning: skipped 1 unreadable video of 15 in the train split: zz_broken.mp4" in caplog.messages
