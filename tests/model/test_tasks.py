"""Tasks as plugins: the README's third task trains, evaluates and picks ``best`` by its own metric; and
components that break the contract are named in one line before training starts."""

from __future__ import annotations

import json

import pytest
import torch

from framegru.cli.app import main
from framegru.io import checkpoint

from tests.cli.test_app import readme_example


def write_readme_task(folder):
    (folder / "my_task.py").write_text(readme_example("my_task.py"))
    text = readme_example("my_task.yaml", language="yaml")
    (folder / "my_task.yaml").write_text(text)


@pytest.mark.integration
def test_readme_task_trains_evaluates_and_picks_best_by_its_metric(tmp_path, capfd, monkeypatch):
    write_readme_task(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "my_task.yaml", "train.eval_every=25"]) == 0
    run = tmp_path / "runs" / "speed"
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [25, 50, 75, 100, 125, 150]
    assert all({"rmse", "mae", "sequences"} <= set(m) for m in logged)
    best = min(logged, key=lambda m: m["rmse"])
    saved = checkpoint.load(run / "best.safetensors")
    assert saved.step == best["step"] and saved.extra["best"] == pytest.approx(best["rmse"])
    assert saved.extra["components"]["task"] == {"name": "regress", "plugin": str(tmp_path / "my_task.py"),
                                                 "package": None, "version": None}
    assert saved.extra["components"]["backbone"]["package"] == "framegru"
    capfd.readouterr()
    assert main(["eval", "my_task.yaml", "--checkpoint", str(run / "best.safetensors"), "--json"]) == 0
    scores = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert set(scores) == {"rmse", "mae", "sequences"} and scores["sequences"] == 256
    assert scores["rmse"] < 0.35  # it learned: a constant guess of the uniform 0-2 speeds scores 0.577


@pytest.mark.integration
def test_a_checkpoint_names_the_package_of_a_missing_component(tmp_path, capfd, monkeypatch):
    write_readme_task(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "my_task.yaml", "train.max_steps=2", "train.eval_every=2"]) == 0
    capfd.readouterr()
    code = main(["export", "runs/speed/best.safetensors", "--out", "speed.onnx"])  # without --plugin my_task.py
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "needs head 'speed' from plugin" in err[0] and "my_task.py" in err[0]


BROKEN = '''
import torch
from torch import nn
from torch.utils.data import Dataset

from framegru import DataInfo, hookimpl


class Videos(Dataset):
    """8 frames of 16x16 noise, with labels; ``key`` and ``size`` break the contract on purpose."""

    def __init__(self, *, root, split, key: str = "video", size: int = 16, labels: bool = True, peak: float = 1.0):
        self.info = DataInfo(channels=1, height=16, width=16, classes=["a", "b"], context=4, future=4)
        self.key, self.size, self.labels, self.peak = key, size, labels, peak

    def __len__(self):
        return 8

    def __getitem__(self, index):
        item = {self.key: self.peak * torch.rand(8, 1, self.size, self.size, generator=torch.Generator().manual_seed(index))}
        return {**item, "label": index % 2} if self.labels else item


class DictOut(nn.Module):
    out_channels, stride = 4, 1

    def __init__(self, *, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)

    def forward(self, x):
        return {"features": self.conv(x)}


class WrongStride(DictOut):
    stride = 2  # but the output keeps the input's size

    def forward(self, x):
        return self.conv(x)


class Pool(nn.Module):
    def __init__(self, *, in_channels, info, stride, classes: int = 2):
        super().__init__()
        self.out = nn.Linear(in_channels, classes)

    def forward(self, x):
        return self.out(x[:, -1].mean(dim=(-2, -1)))


class NoTask(Pool):
    pass


class AlienTask(Pool):
    task = "regress"


class WrongSize(Pool):
    task = "classify"


@hookimpl
def framegru_register_readers(register):
    register("videos", Videos)


@hookimpl
def framegru_register_backbones(register):
    register("dict_out", DictOut)
    register("bare_conv", lambda *, in_channels: nn.Conv2d(in_channels, 4, 3, padding=1))
    register("wrong_stride", WrongStride)


@hookimpl
def framegru_register_heads(register):
    register("no_task", NoTask)
    register("alien_task", AlienTask)
    register("wrong_size", WrongSize)
'''

MODEL = "model: {backbone: {name: conv, channels: [4], downsample: 1}, engine: {hidden: 4}, head: classify}\n"


@pytest.mark.parametrize("overrides, message", [
    (["model.backbone=dict_out"], "backbone 'dict_out' returned dict; it must return a tensor"),
    (["model.backbone=bare_conv"], "backbone 'bare_conv' has stride=(1, 1); a backbone must have positive int"),
    (["model.backbone=wrong_stride"], "backbone 'wrong_stride' returned [1, 4, 16, 16] for [1, 1, 16, 16] frames, "
                                           "but its out_channels=4 and stride=2 say [1, 4, 8, 8]"),
    (["model.head=no_task"], "head 'no_task' has no `task` attribute naming the task it serves (tasks: "),
    (["model.head=alien_task"], "head 'alien_task' serves task 'regress', which no plugin registers"),
    (["model.head=wrong_size", "model.head.classes=3"],
     "head 'wrong_size' does not give what task 'classify' expects: it returned [1, 3] where the logits of 2 classes are [1, 2]"),
    (["data.reader.key=frames"], "reader 'videos' items have ['frames', 'label'] but need 'video' (task 'classify')"),
    (["data.reader.size=8"], "reader 'videos' item 'video' is [8, 1, 8, 8], but its info says [T, C, H, W] with CxHxW 1x16x16"),
    (["data.reader.labels=false"], "reader 'videos' items have ['video'] but need 'label' (task 'classify')"),
    (["data.reader.peak=255"], "reader 'videos' item 'video' has values from 0.0"),
])
def test_a_component_that_breaks_the_contract_is_named_before_training(tmp_path, capfd, overrides, message):
    (tmp_path / "broken.py").write_text(BROKEN)
    config = tmp_path / "config.yaml"
    config.write_text(f"plugins: [broken.py]\ndata: {{reader: videos, num_workers: 0}}\n{MODEL}"
                      f"train: {{max_steps: 1, batch_size: 2, device: cpu}}\nrun: {{dir: {tmp_path / 'run'}}}\n")
    code = main(["run", str(config), *overrides])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert message in err[0]
    assert not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.integration
def test_the_good_components_of_that_plugin_train(tmp_path, capfd):
    """The same config without a broken part runs: the failures above are the parts', not the harness's."""
    (tmp_path / "broken.py").write_text(BROKEN)
    config = tmp_path / "config.yaml"
    config.write_text(f"plugins: [broken.py]\ndata: {{reader: videos, num_workers: 0}}\n{MODEL}"
                      f"train: {{max_steps: 2, batch_size: 2, eval_every: 2, device: cpu}}\nrun: {{dir: {tmp_path / 'run'}}}\n")
    assert main(["run", str(config)]) == 0
    assert torch.isfinite(torch.tensor(json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["loss"]))


def test_task_options_come_from_the_config_and_are_checked(tmp_path):
    from framegru import DataInfo, UsageError
    from framegru.config.config import load_config
    from framegru.model.frame_model import build_model
    from framegru.plugin_manager.host import load_components

    from tests.kill_points import tiny_moving_mnist

    components = load_components()
    config_path = tmp_path / "mm.yaml"
    config_path.write_text(json.dumps(tiny_moving_mnist(tmp_path / "run")))
    info = DataInfo(channels=1, height=32, width=32, context=3, future=3)  # what the reader would say
    model = build_model(load_config(config_path, ["task.l1_weight=0.5"]), components, info)
    output, video = torch.rand(2, 5, 1, 32, 32), torch.rand(2, 6, 1, 32, 32)
    expected = (output - video[:, 1:]).square().mean() + 0.5 * (output - video[:, 1:]).abs().mean()
    assert model.task.loss(output, {"video": video}) == pytest.approx(expected.item(), rel=1e-6)
    plain = build_model(load_config(config_path), components, info)
    assert plain.task.loss(output, {"video": video}) == pytest.approx((output - video[:, 1:]).square().mean().item())
    with pytest.raises(UsageError) as raised:
        build_model(load_config(config_path, ["task.l2_weight=1"]), components, info)
    assert str(raised.value) == "unknown option 'task.l2_weight' for task 'predict' — did you mean 'l1_weight'? (options: l1_weight, reverse_sampling)"
