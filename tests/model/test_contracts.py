"""Every registered backbone and head meets the contract (found through the registry, so a new
component is tested without touching this file): shapes, gradients, no NaN on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from framegru import DataInfo
from framegru.plugin_manager.host import load_components

COMPONENTS = load_components()
# Options a component needs to be cheap in a test (defaults are sized for real data).
TINY = {"resnet": {"stages": 1, "small_input": True}, "conv": {"channels": [4, 6]},
        "vgg": {"stem": 4, "channels": [4, 6], "pools": 2}, "whitened": {"widths": [4, 6], "pools": 2}}
# Heads that move the pixels of the frame just read: behind `identity` with `skips: true`, their one skip
# map is that frame.
FRAME_SKIP = {"warp"}


# A batch for which the test heads' outputs (2 videos of 4 steps, 3 classes) are right, per built-in task.
# A head of a task installed by another package is checked for what every head gives: finite gradients.
TASK_BATCHES = {"classify": {"label": torch.zeros(2, dtype=torch.long)},
                "predict": {"video": torch.zeros(2, 5, 3, 8, 8)}}


def _tiny_config():
    from framegru.config.config import validate

    return validate({"data": {"reader": "moving_mnist"}, "model": {"head": "next_frame"}}, "test")


CONFIG = _tiny_config()


def frame_skip(name: str, frames: torch.Tensor) -> tuple[dict, tuple]:
    """The extra factory options and call arguments of head ``name`` given the frames ``[B, T, C, H, W]``."""
    return ({"skip_channels": [frames.shape[2]]}, ([frames],)) if name in FRAME_SKIP else ({}, ())


@pytest.mark.parametrize("name", COMPONENTS.backbones.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_backbone_contract(name, channels):
    torch.manual_seed(0)
    backbone = COMPONENTS.backbones.build(name, TINY.get(name, {}), key="test", in_channels=channels)
    x = torch.rand(2, channels, 16, 16, requires_grad=True)
    y = backbone(x)
    skips: list[torch.Tensor] = []
    if getattr(backbone, "skip_channels", ()):
        y, skips = y
        assert [s.shape[:2] for s in skips] == [(2, c) for c in backbone.skip_channels]
        sizes = [s.shape[-1] for s in skips]
        assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 16 // backbone.stride, "finest first"
    assert y.shape == (2, backbone.out_channels, 16 // backbone.stride, 16 // backbone.stride)
    assert torch.isfinite(y).all() and all(torch.isfinite(s).all() for s in skips)
    (y.square().mean() + sum(s.square().mean() for s in skips)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", COMPONENTS.heads.names())
def test_head_contract(name):
    torch.manual_seed(0)
    info = DataInfo(channels=3, height=8, width=8, classes=["a", "b", "c"], context=2, future=2)
    extra, skips = frame_skip(name, torch.rand(2, 4, 3, 8, 8))
    head = COMPONENTS.heads.build(name, {}, key="test", in_channels=5, info=info, stride=2, **extra)
    x = torch.randn(2, 4, 5, 4, 4, requires_grad=True)
    if name in FRAME_SKIP:  # its last layer starts at zero (no flow): give x a path to the output
        torch.nn.init.normal_(head.decode[2].weight, std=0.1)
    y = head.eval()(x, *skips)
    assert head.task in COMPONENTS.tasks, f"head '{name}' serves task '{head.task}', which no plugin registers"
    batch = TASK_BATCHES.get(head.task)
    if batch is not None:  # framegru's own tasks: the head meets its task's own check
        task = COMPONENTS.tasks.build(head.task, {}, key="task", config=CONFIG, info=info)
        assert task.check_output(y, batch) is None
    if head.task == "predict":
        assert 0 <= y.min() and y.max() <= 1
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in COMPONENTS.heads.names()
                                  if "skip_channels" in COMPONENTS.heads.get(n).options()])
def test_head_with_skip_maps_uses_them(name):
    """A head that takes skip maps draws from them: their gradient is not zero."""
    torch.manual_seed(0)
    info = DataInfo(channels=1, height=8, width=8, context=2, future=2)
    x = torch.randn(2, 4, 5, 2, 2)
    if name in FRAME_SKIP:
        skips = [torch.rand(2, 4, 1, 8, 8, requires_grad=True)]
    else:
        skips = [torch.randn(2, 4, 3, 8, 8, requires_grad=True), torch.randn(2, 4, 4, 4, 4, requires_grad=True)]
    head = COMPONENTS.heads.build(name, {}, key="test", in_channels=5, info=info, stride=4,
                                  skip_channels=[s.shape[2] for s in skips])
    y = head.train()(x, skips)
    assert y.shape == (2, 4, 1, 8, 8)
    y.square().sum().backward()
    assert all(s.grad.abs().sum() > 0 for s in skips)


@pytest.mark.parametrize("name", COMPONENTS.readers.names())
def test_reader_documents_itself(name):
    entry = COMPONENTS.readers.get(name)
    assert entry.doc, f"reader '{name}' needs a docstring: it is its description"
    assert {"root", "split"} <= set(entry.options()), "readers are called with root= and split="


@pytest.mark.parametrize("name", COMPONENTS.tasks.names())
def test_task_contract(name):
    """Every registered task has what the core calls, and names a metric that picks `best`."""
    from framegru.model.contracts import check_task

    info = DataInfo(channels=1, height=8, width=8, classes=["a", "b"], context=2, future=2)
    entry = COMPONENTS.tasks.get(name)
    task = COMPONENTS.tasks.build(name, {}, key="task", config=CONFIG, info=info)
    check_task(task, name, entry.origin())
    assert isinstance(task.best_metric, str) and task.best_metric
    assert entry.doc, f"task '{name}' needs a docstring: it is its description"
