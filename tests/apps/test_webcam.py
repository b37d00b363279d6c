"""``framegru webcam`` (headless: file sources and fake cameras), the live capture and the ``webcam`` reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tests.video_data import moving_digit, tiny_checkpoint, write_video

from framegru.apps.webcam import LiveModel, run_webcam
from framegru.cli.app import main
from framegru.errors import UsageError
from framegru.io.camera import LiveCapture
from framegru.io.video import FrameStream
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "predict.safetensors", contrast=20.0)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> np.ndarray:
    return moving_digit(4, "right", frames=80, size=32, speed=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, digits) -> Path:
    """80 frames of a digit moving right, 1 px a frame."""
    return write_video(tmp_path_factory.mktemp("clip") / "digit.mp4", digits, fps=25)


class FakeCamera:
    """A cv2.VideoCapture stand-in: ``count`` frames (frame ``i`` filled with ``i % 256``), then failure."""

    def __init__(self, count: int, interval: float = 0.0):
        self.count, self.interval, self.sent, self.released = count, interval, 0, False

    def read(self):
        if self.sent >= self.count:
            time.sleep(0.01)
            return False, None
        time.sleep(self.interval)
        self.sent += 1
        return True, np.full((24, 32, 3), (self.sent - 1) % 256, np.uint8)

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def decode(path: Path) -> np.ndarray:
    with FrameStream(path, channels=1) as stream:
        return np.stack([f.image[:, :, 0] for f in stream]).astype(np.float32)


def test_file_source_writes_exactly_max_frames_in_order(predictor, clip, digits, tmp_path, capsys):
    out, png = tmp_path / "live.mp4", tmp_path / "frame.png"
    assert main(["webcam", "--source", str(clip), "--checkpoint", str(predictor), "--no-window",
                 "--out", str(out), "--max-frames", "60", "--snapshot", str(png)]) == 0
    assert "60 frames" in capsys.readouterr().err
    frames = decode(out)
    assert frames.shape == (60, 360 + 24, 360 + 4 + 360)  # live | predicted next, each 360 tall, status bar
    # Every source frame in order, none dropped: annotated frame k shows source frame k.
    live = np.stack([cv2.resize(f[:360, :360], (32, 32), interpolation=cv2.INTER_AREA) for f in frames])
    for k in (0, 17, 59):
        errors = [np.abs(live[k] - digits[j]).mean() for j in range(80)]
        assert errors[k] <= min(errors) + 0.5 and errors[k] < errors[k - 1] - 5  # (the motion repeats every 32)
    snapshot = cv2.imread(str(png))
    assert snapshot.shape == (384, 724, 3)
    assert np.abs(cv2.cvtColor(snapshot, cv2.COLOR_BGR2GRAY).astype(np.float32) - frames[-1]).mean() < 8


def test_whole_file_ends_cleanly(predictor, tmp_path, capsys):
    short = write_video(tmp_path / "short.mp4", moving_digit(1, "up", frames=12, size=32))
    out = tmp_path / "short_live.mp4"
    assert main(["webcam", "--source", str(short), "--checkpoint", str(predictor), "--no-window", "--out", str(out)]) == 0
    assert "stopped: the source ended" in capsys.readouterr().err
    assert len(decode(out)) == 12


def test_missing_camera_is_status_2_with_one_line(tmp_path, capsys):
    assert main(["webcam", "--source", "9", "--no-window", "--out", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "camera 9 cannot be opened" in err[0]
    assert not (tmp_path / "x.mp4").exists()


def test_no_display_and_no_out_is_a_usage_error(clip, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["webcam", "--source", str(clip)]) == 2
    assert "--out" in capsys.readouterr().err


def test_camera_that_stops_mid_run_stops_cleanly(predictor, tmp_path):
    model = load_model(predictor, load_components())
    camera = FakeCamera(5, interval=0.05)
    out = tmp_path / "cut.mp4"
    stats = run_webcam(model, LiveCapture(0, capture=camera), window=False, out=out, height=48)
    assert "stopped delivering frames after 5" in stats.error
    assert stats.frames >= 1 and stats.frames + stats.dropped == 5
    assert camera.released and len(decode(out)) == stats.frames  # the recording is finalized and playable


def test_live_source_keeps_only_the_newest_frame():
    camera = FakeCamera(60, interval=0.002)
    capture = LiveCapture(0, capture=camera)
    seen = []
    while (frame := capture.read()) is not None:
        seen.append(frame.index)
        time.sleep(0.02)  # a model slower than the camera
    capture.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert capture.dropped > 0 and len(seen) + capture.dropped == 60  # every frame either shown or counted
    assert capture.error == "camera 0 stopped delivering frames after 60"


def test_streaming_predictions_match_predict_next(predictor, digits):
    model = load_model(predictor, load_components())
    live = LiveModel(model)
    state = None
    for frame in digits[:5]:
        bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        got = live.step(bgr)
        x = torch.from_numpy(cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA)).float().div(255)[None, None]
        with torch.no_grad():
            expected, state = model.predict_next(x, state)
        assert np.abs(got[:, :, 0].astype(np.float32) / 255 - expected[0, 0].numpy()).max() <= 1 / 255 + 1e-6


def test_video_classifier_pools_the_frames_seen_so_far(tmp_path, digits):
    model = load_model(tiny_checkpoint(tmp_path / "cls.safetensors", task="classify"), load_components())
    live = LiveModel(model)
    assert live.outputs.maxlen == 6  # the clip length in the checkpoint's config
    inputs = []
    for frame in digits[:4]:
        probs = live.step(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        inputs.append(torch.from_numpy(cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA)).float().div(255)[None])
        with torch.no_grad():
            expected = model.sequence_output({"video": torch.stack(inputs)[None]}).softmax(-1)[0].numpy()
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        assert probs.sum() == pytest.approx(1, abs=1e-5)


def test_still_classifier_classifies_each_frame_alone(tmp_path, digits):
    model = load_model(tiny_checkpoint(tmp_path / "still.safetensors", task="classify", still=True), load_components())
    first, second = (cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in (digits[0], digits[40]))
    alone = LiveModel(model).step(second)
    after = LiveModel(model)
    after.step(first)
    np.testing.assert_allclose(after.step(second), alone, atol=1e-6)


def test_classify_overlay_in_the_recording(tmp_path, clip, capsys):
    classifier = tiny_checkpoint(tmp_path / "cls.safetensors", task="classify")
    out = tmp_path / "cls.mp4"
    assert main(["webcam", "--source", str(clip), "--checkpoint", str(classifier), "--task", "classify",
                 "--no-window", "--out", str(out), "--max-frames", "3"]) == 0
    frames = decode(out)
    assert frames.shape == (3, 384, 360)
    assert main(["webcam", "--source", str(clip), "--checkpoint", str(classifier), "--task", "predict",
                 "--no-window", "--out", str(out)]) == 2  # a classifier cannot predict frames


@pytest.mark.integration
def test_ctrl_c_finalizes_the_recording(predictor, tmp_path):
    long = write_video(tmp_path / "long.mp4", moving_digit(2, "left", frames=400, size=32), fps=25)
    out = tmp_path / "interrupted.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "framegru", "webcam", "--source", str(long), "--checkpoint", str(predictor),
         "--no-window", "--out", str(out)], stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 20_000):
        time.sleep(0.1)  # wait until frames are being recorded
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped: interrupted" in err and "Traceback" not in err
    written = len(decode(out))
    assert 0 < written < 400 and f"{written} frames" in err


def test_webcam_reader_gives_consecutive_clips(clip, digits):
    reader = load_components().readers.build("webcam", {"source": str(clip), "frames": 5, "context": 3, "size": [32, 32],
                                                        "clips": 3}, key="data.reader", root=Path("."), split="train")
    assert (reader.info.context, reader.info.future, len(reader)) == (3, 2, 3)
    first, second = reader[0]["video"], reader[1]["video"]
    assert first.shape == (5, 1, 32, 32)
    got = torch.cat([first, second])[:, 0].numpy()
    np.testing.assert_allclose(got, digits[:10] / 255, atol=0.03)  # frames 0-4, then 5-9


def test_an_opencv_without_gui_falls_back_to_recording(predictor, clip, tmp_path, monkeypatch):
    def no_gui(*args):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "imshow", no_gui)
    model = load_model(predictor, load_components())
    out = tmp_path / "fallback.mp4"
    stats = run_webcam(model, LiveCapture(str(clip)), window=True, out=out, max_frames=4, height=48)
    assert stats.frames == 4 and len(decode(out)) == 4
    with pytest.raises(UsageError, match="--no-window"):
        run_webcam(model, LiveCapture(str(clip)), window=True, out=None, max_frames=4, height=48)
