"""Reverse scheduled sampling (PredRNN-v2, ``task.reverse_sampling``): the context is read, per sample,
from the model's own outputs with a probability that rises to 1 while the later frames' teacher forcing
falls to 0."""

from __future__ import annotations

import pytest
import torch

from framegru import DataInfo
from framegru.config.config import validate
from framegru.errors import UsageError
from framegru.model.frame_model import build_model
from framegru.plugin_manager.host import load_components

COMPONENTS = load_components()
INFO = DataInfo(channels=1, height=16, width=16, context=3, future=3)


def model_with(task: dict | None = None, **train):
    config = validate({"data": {"reader": {"name": "video", "frames": 6, "context": 3}},
                       "model": {"backbone": {"name": "identity", "patch": 4, "skips": True},
                                 "engine": {"hidden": [6, 5], "kernel": 3}, "head": {"name": "warp", "width": 8}},
                       "train": {"max_steps": 100, **train}, "task": task or {}}, "test")
    torch.manual_seed(0)
    model = build_model(config, COMPONENTS, INFO).eval()
    with torch.no_grad():
        for p in model.head.parameters():  # away from the zero start, so that predictions differ from inputs
            p.normal_(std=0.3)
    return model


@torch.no_grad()
def test_a_context_of_own_outputs_runs_free_from_the_first_frame():
    model, video = model_with(), torch.rand(2, 6, 1, 16, 16)
    free = model.rollout(video, context=3, context_teacher=0.0)
    state, predictions, frame = None, [], video[:, 0]
    for _ in range(5):
        frame, state = model.predict_next(frame, state)
        predictions.append(frame)
    torch.testing.assert_close(free, torch.stack(predictions, 1), atol=1e-6, rtol=1e-6)
    assert (free - model.rollout(video, context=3)).abs().max() > 1e-3  # the true context changes the forecast


@torch.no_grad()
def test_a_true_context_read_frame_by_frame_matches_the_batched_read():
    model, video = model_with(), torch.rand(2, 6, 1, 16, 16)
    nearly_one = 1 - 1e-12  # below 1, so the frame-by-frame path runs; above every draw, so all frames are true
    torch.testing.assert_close(model.rollout(video, context=3, context_teacher=nearly_one),
                               model.rollout(video, context=3), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_each_sample_draws_its_own_context_frames():
    model = model_with()
    video = torch.rand(1, 6, 1, 16, 16).expand(64, -1, -1, -1, -1).contiguous()
    mixed = model.rollout(video, context=3, context_teacher=0.5, generator=torch.Generator().manual_seed(1))
    true_read = model.rollout(video[:1], context=3)[:, 1]  # frame 2, predicted after reading frame 1 ...
    own_read = model.rollout(video[:1], context=3, context_teacher=0.0)[:, 1]  # ... or the model's own frame 1
    is_true = (mixed[:, 1] - true_read).flatten(1).abs().amax(1) < 1e-5
    is_own = (mixed[:, 1] - own_read).flatten(1).abs().amax(1) < 1e-5
    assert bool((is_true ^ is_own).all())  # each sample read one or the other, never a blend
    assert 16 < int(is_true.sum()) < 48  # about half of them each


def test_the_schedule_rises_in_the_context_and_falls_after_it():
    reverse = model_with({"reverse_sampling": 0.5}).task
    assert [reverse.teacher(step) for step in (0, 25, 50, 90)] == [(0.5, 0.5), (0.75, 0.25), (1.0, 0.0), (1.0, 0.0)]
    plain = model_with(scheduled_sampling=0.5).task  # without it: the true context, teacher forcing 1 -> 0
    assert [plain.teacher(step) for step in (0, 25, 50, 90)] == [(1.0, 1.0), (1.0, 0.5), (1.0, 0.0), (1.0, 0.0)]


def test_a_fraction_outside_zero_to_one_is_refused():
    with pytest.raises(UsageError, match=r"reverse_sampling must be a fraction of the steps in \[0, 1\], got 2"):
        model_with({"reverse_sampling": 2})
