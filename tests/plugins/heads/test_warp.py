"""The ``warp`` head moves the frame it is given along its flow, and a model built with it steps frame by
frame exactly as it rolls out a whole sequence."""

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


def warp_head(flow_x: float, flow_y: float, mask_logit: float, drawn: float = 0.0):
    """A warp head whose output is the same everywhere: this flow (pixels), mask and drawn value."""
    head = COMPONENTS.heads.build("warp", {"width": 4}, key="test", in_channels=3, info=INFO, stride=4,
                                  skip_channels=[1])
    last = head.decode[2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([flow_x, flow_y, mask_logit, drawn]).repeat_interleave(16))
    return head.eval()


def test_a_flow_moves_the_frame_by_that_many_pixels():
    frames = torch.zeros(1, 1, 1, 16, 16)
    frames[..., 5, 9] = 1.0  # one bright pixel at row 5, column 9
    moved = warp_head(flow_x=2, flow_y=-1, mask_logit=30)(torch.randn(1, 1, 3, 4, 4), [frames])
    # output pixel (y, x) is taken from (y - 1, x + 2): the bright pixel lands at row 6, column 7
    expected = torch.zeros_like(frames)
    expected[..., 6, 7] = 1.0
    torch.testing.assert_close(moved, expected, atol=1e-6, rtol=0)


def test_a_fractional_flow_interpolates_and_the_mask_blends_in_drawn_pixels():
    frames = torch.zeros(1, 1, 1, 16, 16)
    frames[..., 8, 8] = 1.0
    half = warp_head(flow_x=0.5, flow_y=0, mask_logit=30)(torch.randn(1, 1, 3, 4, 4), [frames])
    assert half[0, 0, 0, 8, 7].item() == 0.5 and half[0, 0, 0, 8, 8].item() == 0.5 and half.sum().item() == 1.0
    drawn = warp_head(flow_x=3, flow_y=3, mask_logit=-30, drawn=0.25)(torch.randn(1, 1, 3, 4, 4), [frames])
    torch.testing.assert_close(drawn, torch.full_like(frames, 0.25))


def test_stepping_frame_by_frame_gives_the_rollout():
    config = validate({"data": {"reader": {"name": "video", "frames": 6, "context": 3}},
                       "model": {"backbone": {"name": "identity", "patch": 4, "skips": True},
                                 "engine": {"hidden": [6, 5], "kernel": 3}, "head": {"name": "warp", "width": 8}}},
                      "test")
    torch.manual_seed(0)
    model = build_model(config, COMPONENTS, INFO).eval()
    with torch.no_grad():
        for p in model.head.parameters():  # away from the zero start, so that flow and mask vary
            p.normal_(std=0.3)
        video = torch.rand(2, 6, 1, 16, 16)
        expected = model.rollout(video, context=3)
        state, predictions = None, []
        for t in range(5):
            frame = video[:, t] if t < 3 else predictions[-1]
            prediction, state = model.predict_next(frame, state)
            predictions.append(prediction)
    assert expected.shape == (2, 5, 1, 16, 16) and expected.std() > 0.01
    torch.testing.assert_close(torch.stack(predictions, 1), expected, atol=1e-5, rtol=1e-5)


def test_without_the_frame_it_says_what_it_needs():
    config = validate({"data": {"reader": {"name": "video", "frames": 6, "context": 3}},
                       "model": {"backbone": {"name": "identity", "patch": 4}, "engine": {"hidden": 4},
                                 "head": {"name": "warp"}}}, "test")
    with pytest.raises(UsageError, match=r"^head 'warp' \(model.head\): needs the frame itself as its one skip map: "
                                         r"use backbone 'identity' with skips: true$"):
        build_model(config, COMPONENTS, INFO)
