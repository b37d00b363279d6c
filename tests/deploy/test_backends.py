"""``--backend torch|onnxruntime``: the same answers from either, end to end through the CLI.

The comparisons run with ``--device cpu``: on a CUDA machine ONNX Runtime runs on the GPU only with the
onnxruntime-gpu package, which framegru does not install (the test marked ``gpu`` checks what it says)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tests.still_data import stripes
from tests.video_data import moving_digit, tiny_checkpoint, write_video

from framegru.cli.app import main
from framegru.deploy import backends
from framegru.io.video import FrameStream
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", contrast=20.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "digit.mp4", moving_digit(4, "down", frames=12, size=32))


def decode(path: Path) -> np.ndarray:
    with FrameStream(path, channels=1) as stream:
        return np.stack([f.image for f in stream]).astype(np.float32)


def test_onnx_model_steps_like_the_pytorch_model(predictor):
    model = load_model(predictor, load_components())
    onnx_model = backends.OnnxModel(model, "step", threads=1)
    frames = torch.rand(4, 2, 1, 16, 16)
    state_pt = state_ort = None
    for frame in frames:
        with torch.no_grad():
            expected, state_pt = model.predict_next(frame, state_pt)
        got, state_ort = onnx_model.predict_next(frame, state_ort)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_predict_writes_the_same_video_with_either_backend(predictor, clip, tmp_path, capsys):
    outputs = {}
    for backend in backends.BACKENDS:
        outputs[backend] = tmp_path / f"{backend}.mp4"
        assert main(["predict", str(clip), "--checkpoint", str(predictor), "--out", str(outputs[backend]),
                     "--backend", backend, "--scale", "1", "--json", "--device", "cpu"]) == 0
        stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert stats["frames"] == 12 and stats["model_fps"] > 0
    torch_video, onnx_video = decode(outputs["torch"]), decode(outputs["onnxruntime"])
    assert torch_video.shape == onnx_video.shape == (12, 16, 32, 1)
    assert np.abs(torch_video - onnx_video).max() <= 2  # H.264 of pixels equal to float rounding
    assert torch_video[:, :, 16:].std() > 5  # the predictions are pictures


def test_webcam_runs_a_predictor_on_onnxruntime(predictor, clip, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    assert main(["webcam", "--source", str(clip), "--checkpoint", str(predictor), "--no-window", "--out", str(out),
                 "--max-frames", "5", "--backend", "onnxruntime", "--device", "cpu"]) == 0
    assert "5 frames" in capsys.readouterr().err and len(decode(out)) == 5


def test_a_video_classifier_live_needs_torch(tmp_path, clip, capsys):
    ckpt = tiny_checkpoint(tmp_path / "video.safetensors", task="classify")
    args = ["webcam", "--source", str(clip), "--checkpoint", str(ckpt), "--no-window", "--out", str(tmp_path / "x.mp4"),
            "--max-frames", "2"]
    assert main([*args, "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs --backend torch" in err[0]
    assert main(args) == 0  # by default it stays with PyTorch


@pytest.mark.integration
def test_classify_still_gives_the_same_answers_with_either_backend(still_checkpoint, tmp_path, capsys):
    paths = []
    for i, vertical in enumerate((False, True, False)):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], stripes((8, 8), vertical=vertical).astype(np.uint8))
    answers = {}
    for backend in backends.BACKENDS:
        assert main(["classify-still", *paths, "--checkpoint", str(still_checkpoint), "--json", "--backend", backend,
                     "--device", "cpu"]) == 0
        answers[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for a, b in zip(answers["torch"], answers["onnxruntime"]):
        assert a["label"] == b["label"] and abs(a["prob"] - b["prob"]) < 1e-4
    assert [a["label"] for a in answers["torch"]] == ["horizontal", "vertical", "horizontal"]


def test_the_default_is_the_fastest_measured_for_the_device(predictor, tmp_path):
    model = load_model(predictor, load_components())
    assert isinstance(backends.with_backend(model, None, 1), backends.OnnxModel)  # CPU: ONNX Runtime
    assert backends.with_backend(model, "torch", 1) is model
    video = load_model(tiny_checkpoint(tmp_path / "video.safetensors", task="classify"), load_components())
    assert backends.with_backend(video, None, 1) is video


@pytest.mark.gpu
def test_onnxruntime_on_cuda_matches_pytorch_or_says_what_is_missing(predictor):
    from framegru.errors import UsageError

    model = load_model(predictor, load_components(), "cuda")
    try:
        onnx_model = backends.OnnxModel(model, "step", threads=1, device=torch.device("cuda"))
    except UsageError as exc:  # onnxruntime without its CUDA provider
        assert "onnxruntime-gpu" in str(exc)
        return
    frame = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        expected, _ = model.predict_next(frame.cuda(), None)
    got, _ = onnx_model.predict_next(frame, None)
    torch.testing.assert_close(got, expected.cpu(), rtol=1e-3, atol=1e-4)


@pytest.mark.integration
def test_webcam_classifies_stills_on_onnxruntime_like_on_torch(still_checkpoint, components):
    from framegru.apps.classify_still import load_classifier
    from framegru.apps.webcam import LiveModel

    model = load_classifier(Path(still_checkpoint), components, torch.device("cpu"))
    bgr = np.repeat(stripes((8, 8), vertical=True)[:, :, None], 3, axis=2).astype(np.uint8)
    expected = LiveModel(model).step(bgr)
    got = LiveModel(backends.with_backend(model, "onnxruntime", 1)).step(bgr)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert abs(float(got.sum()) - 1) < 1e-5
