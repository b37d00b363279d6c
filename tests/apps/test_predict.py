"""``framegru predict``: a next-frame model streamed over a whole video, input | prediction written out."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.video_data import cut_in_half, faststart_noise_video, moving_digit, tiny_checkpoint, write_video

from framegru.apps import predict
from framegru.cli.app import main
from framegru.io.video import FrameStream, probe
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components

PANCAKE = Path(os.environ.get("FRAMEGRU_DATA", "/work/shared/data")) / "videos" / "flipping_a_pancake.mkv"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", contrast=20.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """20 frames of a digit moving right, 32x32 gray."""
    return write_video(tmp_path_factory.mktemp("clip") / "digit.mp4", moving_digit(7, "right", frames=20, size=32))


def decode(path: Path, channels: int = 1) -> np.ndarray:
    with FrameStream(path, channels=channels) as stream:
        return np.stack([f.image for f in stream]).astype(np.float32)


def test_output_is_input_beside_the_models_prediction(checkpoint, clip, tmp_path):
    model = load_model(checkpoint, load_components())
    out = tmp_path / "out.mp4"
    stats = predict.predict_video(model, clip, out, scale=2)
    assert stats.frames == 20 and stats.model_seconds > 0 and stats.decode_seconds > 0
    written = decode(out)[:, ::2, ::2, 0] / 255  # undo the 2x enlargement
    assert written.shape == (20, 16, 32)
    # The reference: the same frames through the whole-sequence ConvGRU in one call.
    inputs = decode_at(clip, (16, 16))
    with torch.no_grad():
        features, _ = model.engine(model.encode(torch.from_numpy(inputs)[None])[0])
        expected = model.head(features)[0, :, 0].numpy()  # [T, H, W]: prediction of frame t + 1
    left, right = written[:, :, :16], written[:, :, 16:]
    assert np.abs(left - inputs[:, 0]).mean() < 0.03
    assert np.abs(right[0]).max() < 0.05  # nothing predicted frame 0
    error = np.abs(right[1:] - expected[:-1]).mean()
    assert error < 0.03
    assert error < 0.3 * np.abs(expected - expected.mean()).mean()  # the predictions are pictures, not flat gray


def decode_at(path: Path, size: tuple[int, int]) -> np.ndarray:
    with FrameStream(path, size=size, channels=1) as stream:
        return np.stack([f.image for f in stream]).transpose(0, 3, 1, 2).astype(np.float32) / 255


def test_cli_json_reports_frames_and_speeds(checkpoint, clip, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main(["predict", str(clip), "--checkpoint", str(checkpoint), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert list(result) == ["frames", "fps", "decode_fps", "model_fps", "backend"]
    assert result["backend"] == ("torch" if torch.cuda.is_available() else "onnxruntime")  # the fastest measured
    assert result["frames"] == 20 and min(result["fps"], result["decode_fps"], result["model_fps"]) > 0
    assert "decode" in captured.err and "model" in captured.err
    found = probe(out)
    assert found.frames == 20 and (found.height, found.width) == (256, 512)  # default: at least 256 px tall


def test_any_video_is_converted_to_what_the_checkpoint_expects(tmp_path, capsys):
    colour = np.zeros((9, 24, 40, 3), np.uint8)  # RGB, 40x24: not the model's 16x16 gray
    colour[:, :, 16:24, 0] = 255
    video = write_video(tmp_path / "colour.mp4", colour)
    gray = tiny_checkpoint(tmp_path / "gray.safetensors", size=(16, 16), channels=1)
    rgb = tiny_checkpoint(tmp_path / "rgb.safetensors", size=(8, 12), channels=3)
    for ckpt, panel in ((gray, (16, 16, 1)), (rgb, (8, 12, 3))):
        out = tmp_path / f"{ckpt.stem}.mp4"
        assert main(["predict", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--scale", "1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["frames"] == 9
        frames = decode(out, channels=panel[2])
        assert frames.shape[0] == 9 and frames.shape[1:3] == (panel[0], 2 * panel[1])
        centre = frames[0, :, panel[1] // 2 - 1 : panel[1] // 2 + 1]
        assert centre.mean() > 40  # the red bar in the middle survived the crop, in the left panel


@pytest.mark.parametrize("content", [b"", b"definitely not a video", None])
def test_undecodable_input_is_one_line_and_status_1(checkpoint, tmp_path, capfd, content):
    video = tmp_path / "bad.mp4"
    if content is not None:
        video.write_bytes(content)
    out = tmp_path / "never.mp4"
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("framegru: error:") and "bad.mp4" in err[0]
    assert not out.exists()


def test_missing_default_checkpoint_is_one_clear_line(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(predict.DEFAULT_CHECKPOINTS, "predict", tmp_path / "not_there.safetensors")
    assert main(["predict", str(clip), "--out", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not_there.safetensors" in err[0] and "--checkpoint" in err[0]


def test_a_classifier_checkpoint_is_refused(clip, tmp_path, capsys):
    classifier = tiny_checkpoint(tmp_path / "cls.safetensors", task="classify")
    assert main(["predict", str(clip), "--checkpoint", str(classifier), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "next-frame" in capsys.readouterr().err


@pytest.mark.skipif(not PANCAKE.is_file(), reason="FRAMEGRU_DATA has no videos/flipping_a_pancake.mkv")
def test_real_clip_keeps_every_frame(checkpoint, tmp_path, capsys):
    out = tmp_path / "pancake.mp4"
    assert main(["predict", str(PANCAKE), "--checkpoint", str(checkpoint), "--out", str(out), "--scale", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["frames"] == 310
    assert probe(out).frames == 310


def limit_file_size(limit: int):
    """A ``preexec_fn``: files of the process may grow to ``limit`` bytes, then writes fail (EFBIG) as on a
    full disk; SIGXFSZ, which would kill the process instead, is ignored."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.integration
@pytest.mark.parametrize("full", ["file size limit", "16 KB tmpfs"])
def test_a_full_disk_is_one_line_and_leaves_the_previous_output(checkpoint, clip, tmp_path, full):
    import tests.private_mount as private_mount

    folder, previous = tmp_path / "disk", b"the previous prediction"
    folder.mkdir()
    out = folder / "out.mp4"
    command = [sys.executable, "-m", "framegru", "predict", str(clip), "--checkpoint", str(checkpoint),
               "--out", str(out), "--scale", "16"]
    run = {"capture_output": True, "text": True, "env": {**os.environ, "OMP_NUM_THREADS": "1"}, "timeout": 120}
    if full == "16 KB tmpfs":  # a real ENOSPC, on a tmpfs only the child process sees
        if not private_mount.available():
            pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs root)")
        left = tmp_path / "left"
        done = private_mount.run_on_tmpfs(folder, "16k", command, left, files={"out.mp4": previous}, **run)
    else:
        out.write_bytes(previous)
        done = subprocess.run(command, preexec_fn=limit_file_size(8_000), **run)
        left = folder
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"framegru: error: cannot write video {out}: "), lines
    assert ("No space left on device" if full == "16 KB tmpfs" else "File too large") in lines[0]
    assert (left / "out.mp4").read_bytes() == previous  # never a broken video, nor a lost one
    assert sorted(p.name for p in left.iterdir()) == ["out.mp4"]  # no temporary file left behind


def test_a_failure_while_predicting_leaves_no_output(checkpoint, clip, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the model broke")

    model = load_model(checkpoint, load_components())
    monkeypatch.setattr(model, "predict_next", fail)
    with pytest.raises(RuntimeError):
        predict.predict_video(model, clip, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_video_is_a_warning_or_with_strict_an_error(checkpoint, tmp_path, capfd):
    half = cut_in_half(faststart_noise_video(tmp_path / "whole.mp4"), tmp_path / "half.mp4")
    out = tmp_path / "out.mp4"
    assert main(["predict", str(half), "--checkpoint", str(checkpoint), "--out", str(out), "--json"]) == 0
    captured = capfd.readouterr()
    result = json.loads(captured.out.splitlines()[-1])
    declared = f"{half} ends after {result['frames']} of the 200 frames its header declares"
    assert result["frames"] < 200 and result["warning"].startswith(declared)
    assert captured.err.startswith(f"framegru: warning: {declared}") and probe(out).frames == result["frames"]
    out.unlink()
    assert main(["predict", str(half), "--checkpoint", str(checkpoint), "--out", str(out), "--strict"]) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"framegru: error: {declared}") and "--strict" in lines[0]
    assert not out.exists()
