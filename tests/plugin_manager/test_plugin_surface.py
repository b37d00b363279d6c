"""The plugin surface as a third-party author meets it: pre-flight checks on the reader's real items,
tasks refused when built without what the core calls, listeners switched by config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from framegru import UsageError
from framegru.config.config import validate
from framegru.model.contracts import item_shapes
from framegru.model.frame_model import build_model
from framegru.plugin_manager.host import load_components

FIXTURE = Path(__file__).parents[1] / "fixtures" / "thirdparty_plugin"
FRAMETRACK = FIXTURE / "framegru_frametrack" / "__init__.py"


def frametrack_config(**train):
    return validate({"data": {"reader": "dots"},
                     "model": {"backbone": {"name": "conv", "channels": [4], "downsample": 1},
                               "engine": {"hidden": 4}, "head": "dot_tracker"},
                     "train": {"device": "cpu", **train}}, "test")


@pytest.fixture
def frametrack(builtins_only):
    """framegru's own components and the fixture package's, loaded from its file (installed, it is off)."""
    return load_components([str(FRAMETRACK)])


def test_per_frame_targets_pass_the_preflight_check_on_a_real_item(frametrack):
    reader = frametrack.readers.build("dots", {}, key="data.reader", root=Path("."), split="train")
    item = reader[0]
    assert item["target"].shape == (6, 2)
    model = build_model(frametrack_config(), frametrack, reader.info, item)
    assert model.task.name == "track"
    output = model.task.forward(model, {k: v[None] for k, v in item.items()})
    assert output.shape == (1, 6, 2) and ((0 < output) & (output < 1)).all()


def test_a_checkpoints_item_shapes_rebuild_the_same_check(frametrack):
    reader = frametrack.readers.build("dots", {"frames": 3}, key="data.reader", root=Path("."), split="val")
    shapes = item_shapes(reader[0])
    assert shapes == {"video": {"shape": [3, 1, 16, 16], "dtype": "float32"},
                      "target": {"shape": [3, 2], "dtype": "float32"}}
    assert build_model(frametrack_config(), frametrack, reader.info, item_shapes=shapes).task.name == "track"
    # without the item's shapes, a [1] target per video: the head's [B, T, 2] is refused, naming why
    with pytest.raises(UsageError, match=r"head 'dot_tracker' does not give what task 'track' expects: it returned "
                                         r"\[1, 2, 2\] for targets \[1\]"):  # 2 frames: context 0, one step
        build_model(frametrack_config(), frametrack, reader.info)


TASKLESS = '''
from torch import nn
from framegru import ClassifyMetrics, Task, hookimpl

class NoLoss(Task):
    def metrics(self):
        return ClassifyMetrics()

class NoMetrics(Task):
    def loss(self, output, batch):
        return output.mean()

class OwnTrainingLoss(Task):
    def training_loss(self, model, batch, *, step, generator=None):
        return model(batch).mean()
    def metrics(self):
        return ClassifyMetrics()

class NotATask:
    def __init__(self, *, config, info):
        pass
    def loss(self, output, batch):
        return output.mean()

def head(serves):
    class Head(nn.Module):
        task = serves
        def __init__(self, *, in_channels, info, stride):
            super().__init__()
            self.out = nn.Conv2d(in_channels, info.channels, 1)
        def forward(self, x):
            return self.out(x.flatten(0, 1)).unflatten(0, x.shape[:2]).sigmoid()
    return Head

@hookimpl
def framegru_register_tasks(register):
    for name, task in {"no_loss": NoLoss, "no_metrics": NoMetrics, "own_loss": OwnTrainingLoss,
                       "not_a_task": NotATask}.items():
        register(name, task)

@hookimpl
def framegru_register_heads(register):
    for name in ("no_loss", "no_metrics", "own_loss", "not_a_task"):
        register(f"{name}_head", head(name))
'''


@pytest.mark.parametrize("task, missing", [("no_loss", "loss"), ("no_metrics", "metrics"),
                                           ("not_a_task", "forward, training_loss, evaluation_output, metrics")])
def test_a_task_without_what_the_core_calls_is_refused_when_built(tmp_path, task, missing):
    from framegru import DataInfo

    (tmp_path / "taskless.py").write_text(TASKLESS)
    components = load_components([str(tmp_path / "taskless.py")])
    config = validate({"data": {"reader": "moving_mnist"}, "model": {"head": f"{task}_head"}}, "test")
    with pytest.raises(UsageError) as raised:
        build_model(config, components, DataInfo(channels=1, height=8, width=8, context=2, future=2))
    message = str(raised.value)
    assert message.startswith(f"task '{task}' of plugin '{tmp_path / 'taskless.py'}' defines no {missing}")
    assert "\n" not in message and "framegru.Task" in message


def test_a_task_with_its_own_training_loss_needs_no_loss(tmp_path):
    from framegru import DataInfo

    (tmp_path / "taskless.py").write_text(TASKLESS)
    components = load_components([str(tmp_path / "taskless.py")])
    config = validate({"data": {"reader": "moving_mnist"}, "model": {"head": "own_loss_head"}}, "test")
    model = build_model(config, components, DataInfo(channels=1, height=8, width=8, context=2, future=2))
    assert model.task.name == "own_loss"
    assert torch.isfinite(model.task.training_loss(model, {"video": torch.rand(1, 3, 1, 8, 8)}, step=0))


# -- listeners: section ------------------------------------------------------------------------
def listeners_config(**sections):
    return validate({"data": {"reader": "moving_mnist"}, "model": {"head": "next_frame"}, **sections}, "test")


def test_run_tensorboard_and_its_listener_switch_are_one_switch():
    assert listeners_config().listeners == {} and listeners_config().run.tensorboard is True
    old = listeners_config(run={"tensorboard": False})
    assert old.listeners["tensorboard"].enabled is False
    new = listeners_config(listeners={"tensorboard": {"enabled": False}})
    assert new.run.tensorboard is False
    both = listeners_config(run={"tensorboard": True}, listeners={"tensorboard": {"enabled": False}})
    assert both.run.tensorboard is False  # off when either says off


def opened_listeners(config, components):
    from types import SimpleNamespace

    from framegru.training.events import RunEvents

    run = SimpleNamespace(config=config, dir=Path("unused"))
    events = RunEvents(components, lambda: run)
    events.open()
    try:
        return [type(listener).__name__ for listener in events._listening]
    finally:
        events.close()


@pytest.fixture
def own_components(builtins_only):
    """framegru's own components alone: another package's listener may need a real run."""
    return load_components()


def test_listeners_are_switched_off_one_by_one_and_given_their_options(own_components):
    components = own_components
    config = listeners_config(listeners={"progress": {"log_every_s": 5}, "metrics_log": {"enabled": False}},
                              run={"tensorboard": False})
    opened = opened_listeners(config, components)
    assert "ProgressDisplay" in opened and "MetricsLog" not in opened and "TensorBoardLog" not in opened
    config = listeners_config(listeners={"progress": {"enabled": False}, "tensorboard": {"enabled": False}})
    assert "ProgressDisplay" not in opened_listeners(config, components)


def test_a_listener_option_or_name_that_does_not_exist_is_one_line(own_components):
    components = own_components
    with pytest.raises(UsageError, match=r"unknown option 'listeners.progress.every' for listener 'progress' "
                                         r"— did you mean 'log_every_s'"):
        opened_listeners(listeners_config(listeners={"progress": {"every": 5}}), components)
    with pytest.raises(UsageError, match=r"unknown listener 'tensorbord' — did you mean 'tensorboard'\?"):
        opened_listeners(listeners_config(listeners={"tensorbord": {"enabled": False}}), components)


def test_framegru_config_shows_every_listener_with_its_switch_and_options(capsys):
    import json

    from framegru.cli.app import main

    config = Path(__file__).resolve().parents[2] / "configs" / "moving_mnist.yaml"
    assert main(["config", str(config), "--json", "run.tensorboard=false", "listeners.progress.log_every_s=5"]) == 0
    shown = json.loads(capsys.readouterr().out)["listeners"]
    assert shown["progress"] == {"enabled": True, "log_every_s": 5}
    assert shown["tensorboard"] == {"enabled": False} and shown["metrics_log"] == {"enabled": True}
