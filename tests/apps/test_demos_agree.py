"""``predict`` and ``webcam`` agree: the same out-of-domain warning, the same pane labels, the same classifier."""

from __future__ import annotations

import numpy as np
import pytest
from tests.video_data import moving_digit, tiny_checkpoint, write_video

from framegru.apps import predict
from framegru.apps.webcam import run_webcam
from framegru.cli.app import main
from framegru.io import checkpoint
from framegru.io.camera import LiveCapture
from framegru.io.video import FrameStream
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components
from framegru.reporting import captured

DIGITS = {"reader": "moving_mnist", "path": None, "channels": 1, "height": 16, "width": 16, "mean": 0.05, "std": 0.2}


@pytest.fixture
def digit_model(tmp_path):
    """A tiny next-frame model whose checkpoint says it was trained on dark digit frames."""
    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    saved = checkpoint.load(path)
    checkpoint.save(path, saved.weights, config=saved.config, info=saved.info, step=0, extra={"data": DIGITS})
    return path


def test_webcam_gives_the_warning_predict_gives(digit_model, tmp_path):
    model = load_model(digit_model, load_components())
    bright = str(write_video(tmp_path / "bright.mp4", np.full((20, 16, 16), 200, np.uint8)))
    dark = str(write_video(tmp_path / "dark.mp4", moving_digit(3, "right", frames=20, size=16)))
    said: dict[str, list[str]] = {"predict": [], "webcam": []}
    for source in (dark, bright):
        with captured() as lines:
            predict.predict_video(model, source, None)
        said["predict"] += lines
        with captured() as lines:
            run_webcam(model, LiveCapture(source), window=False, out=None)
        said["webcam"] += lines
    assert len(said["predict"]) == 1 and said["webcam"] == said["predict"]
    assert said["webcam"][0].startswith(f"framegru: warning: {bright} looks unlike what this model was trained on "
                                        "(moving_mnist, 1x16x16, mean 0.05, contrast 0.20): mean brightness 0.78")
    assert "in its first 16 frames, so the predictions will likely mean little" in said["webcam"][0]
    short = str(write_video(tmp_path / "short.mp4", np.full((5, 16, 16), 200, np.uint8)))
    with captured() as said_predict:
        predict.predict_video(model, short, None)
    with captured() as said_webcam:
        run_webcam(model, LiveCapture(short), window=False, out=None)
    said = {"predict": said_predict, "webcam": said_webcam}
    assert len(said["webcam"]) == 1 and said["webcam"] == said["predict"] and "in its first 5 frames" in said["webcam"][0]


def test_a_classifier_is_told_to_train_on_images(tmp_path):
    path = tiny_checkpoint(tmp_path / "still.safetensors", task="classify", still=True)
    model = load_model(path, load_components())
    line = predict.out_of_domain(model, DIGITS, [np.full((16, 16, 1), 200, np.uint8)], "cam")
    assert "so the classes will likely mean little" in line and "data.reader.name=image_folder" in line
    digit = np.zeros((16, 16, 1), np.uint8)
    digit.reshape(-1)[:11] = 255  # mean 0.043, contrast 0.20: like the record
    assert predict.out_of_domain(model, DIGITS, [digit], "cam") is None


def test_predict_labels_its_panes_as_webcam_does(digit_model, tmp_path):
    model = load_model(digit_model, load_components())
    clip = write_video(tmp_path / "digit.mp4", moving_digit(3, "right", frames=4, size=16))
    out = tmp_path / "labelled.mp4"
    predict.predict_video(model, clip, out, scale=16)  # 256-pixel panes: room for the labels
    with FrameStream(out, channels=1) as stream:
        first = next(iter(stream)).image[:, :, 0].astype(np.float32)
    assert first.shape == (256, 512)
    with FrameStream(clip, size=(16, 16), channels=1) as stream:
        seen = next(iter(stream)).image  # frame 0 as the model saw it; nothing is predicted before it
    expected = predict.labelled_panes(seen, np.zeros_like(seen), 16)[:, :, 0].astype(np.float32)
    bare = np.repeat(np.repeat(np.concatenate([seen, np.zeros_like(seen)], axis=1)[:, :, 0], 16, 0), 16, 1)
    labels = expected != bare
    assert labels[:30, :60].any() and labels[:30, 256:380].any() and not labels[40:].any()  # the two top-left corners
    assert expected[:, 256:].max() == 255  # "predicted next" in white on the black pane
    assert np.abs(first - expected)[labels].mean() < 20 < np.abs(first - bare)[labels].mean()


def test_small_panes_stay_unlabelled_pixel_for_pixel(digit_model, tmp_path):
    model = load_model(digit_model, load_components())
    clip = write_video(tmp_path / "digit.mp4", np.zeros((3, 16, 16), np.uint8))
    out = tmp_path / "small.mp4"
    predict.predict_video(model, clip, out, scale=1)
    with FrameStream(out, channels=1) as stream:
        frames = np.stack([f.image for f in stream])
    assert frames.shape == (3, 16, 32, 1) and frames[0, :, 16:].max() < 8  # no label drawn on a 16-pixel pane


def test_webcam_classify_defaults_to_classify_stills_model(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mp4", moving_digit(3, "right", frames=3, size=32))
    out = tmp_path / "cls.mp4"
    assert main(["webcam", "--source", str(clip), "--task", "classify", "--no-window", "--out", str(out),
                 "--max-frames", "2"]) == 0
    err = capsys.readouterr().err
    assert "the shipped CIFAR-10 classifier, classify-still's (10 classes, 3x32x32)" in err
