"""``task.feedback: false``: after the context the ConvGRU runs on without input and the head sees the
last context frame (``FrameModel.forecast``), instead of reading the model's own predictions back."""

from __future__ import annotations

import pytest
import torch

from framegru import DataInfo
from framegru.config import validate
from framegru.errors import UsageError
from framegru.model import build_model
from framegru.plugin_manager import load_components

COMPONENTS = load_components()
INFO = DataInfo(channels=1, height=16, width=16, context=3, future=3)


def model_with(task: dict | None = None, scramble: bool = True):
    config = validate({"data": {"reader": {"name": "video", "frames": 6, "context": 3}},
                       "model": {"backbone": {"name": "identity", "patch": 4, "skips": True},
                                 "engine": {"hidden": [6, 5], "kernel": 3}, "head": {"name": "warp", "width": 8}},
                       "train": {"max_steps": 100}, "task": task or {}}, "test")
    torch.manual_seed(0)
    model = build_model(config, COMPONENTS, INFO).eval()
    if scramble:
        with torch.no_grad():
            for p in model.head.parameters():  # away from the zero start, so that flow and mask vary
                p.normal_(std=0.3)
    return model


@torch.no_grad()
def test_the_forecast_is_the_context_read_then_steps_without_input_beside_the_last_frame():
    model, video = model_with(), torch.rand(2, 6, 1, 16, 16)
    forecast = model.forecast(video, context=3)
    state, expected = None, []
    for t in range(3):
        frame, state = model.predict_next(video[:, t], state)
        expected.append(frame)
    features, skips = model.features(video[:, 2])
    for _ in range(2):  # frames 4 and 5: no input, the skip maps of frame 2, the last one read
        y, state = model.engine.step(torch.zeros_like(features), state)
        expected.append(model.decode(y[:, None], [s[:, None] for s in skips])[:, 0])
    torch.testing.assert_close(forecast, torch.stack(expected, 1), atol=1e-5, rtol=1e-5)
    rollout = model.rollout(video, context=3)
    torch.testing.assert_close(forecast[:, :3], rollout[:, :3], atol=1e-5, rtol=1e-5)  # the same context read
    assert (forecast[:, 3:] - rollout[:, 3:]).abs().max() > 1e-3  # but not the same forecast


@torch.no_grad()
def test_a_warp_head_moves_the_last_true_frame_not_its_own_last_prediction():
    model, video = model_with(scramble=False), torch.rand(1, 6, 1, 16, 16)  # zero start: no flow, mask 0.5, drawn 0
    last = video[:, 2]
    forecast, rollout = model.forecast(video, context=3), model.rollout(video, context=3)
    for k in (1, 2, 3):  # the k-th predicted frame
        torch.testing.assert_close(forecast[:, 1 + k], 0.5 * last)
        torch.testing.assert_close(rollout[:, 1 + k], 0.5**k * last)  # each move of its own frame halves it again


def test_the_task_trains_and_scores_the_forecast_without_drawing_teacher_frames():
    model, video = model_with({"feedback": False}), torch.rand(2, 6, 1, 16, 16)
    generator = torch.Generator().manual_seed(3)
    before = generator.get_state()
    with torch.no_grad():
        trained = model({"video": video}, step=0, generator=generator)  # step 0: teacher forcing would be 1
        scored = model.task.evaluation_output(model, {"video": video})
    assert torch.equal(generator.get_state(), before)
    expected = model.forecast(video, context=3)
    torch.testing.assert_close(trained, expected)
    torch.testing.assert_close(scored, expected[:, 2:])


def test_reverse_sampling_without_feedback_is_refused():
    with pytest.raises(UsageError, match="reverse_sampling feeds predictions back: it needs feedback: true"):
        model_with({"feedback": False, "reverse_sampling": 0.5})
