"""A row-ConvGRU classifier end to end: ``framegru run`` for two steps, then ``framegru eval --json``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from framegru.cli.app import main
from framegru.config.config import validate
from framegru.model.frame_model import build_model, load_model
from framegru.plugin_manager.host import load_components
from framegru.runtime.device import autocast_for
from framegru_plugins.readers.image_folder import image_folder

from tests.still_data import tiny_rows_config, write_config


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.integration
def test_two_step_run_then_eval_on_a_folder(capsys, tmp_path, still_tree):
    config = write_config(tmp_path / "tiny.yaml", tiny_rows_config(still_tree, tmp_path / "run", max_steps=2))
    assert main(["run", str(config), "--json"]) == 0
    metrics = last_json(capsys)
    assert metrics["step"] == 2 and metrics["images"] == 6 and 0 <= metrics["accuracy"] <= 1
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"best.safetensors", "last.safetensors", "config.yaml", "metrics.jsonl"}

    ckpt = run / "best.safetensors"
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--data", str(still_tree), "--json"]) == 0
    result = last_json(capsys)
    assert result["images"] == 24 and set(result) >= {"accuracy", "images"}

    # The same number by hand: every image of the tree through the checkpoint's model.
    model = load_model(ckpt, load_components())
    data = image_folder(root=tmp_path, split="test", path=str(still_tree), size=[8, 8])
    with torch.no_grad():
        logits = model.sequence_output({"image": torch.stack([data[i]["image"] for i in range(len(data))])})
    labels = torch.tensor([data[i]["label"] for i in range(len(data))])
    assert result["accuracy"] == (logits.argmax(1) == labels).sum().item() / 24

    # Without --data: the images training held out (the run's own validation split), and it says so.
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--json"]) == 0
    captured = capsys.readouterr()
    held_out = json.loads(captured.out.strip().splitlines()[-1])
    assert held_out["images"] == 6 and held_out["accuracy"] == metrics["accuracy"]
    assert f"scored the held-out 'val' split of {still_tree} (6 images; not used for training" in captured.err


@pytest.mark.integration
def test_eval_refuses_a_missing_folder(capsys, tmp_path, still_checkpoint, still_tree):
    config = write_config(tmp_path / "tiny.yaml", tiny_rows_config(still_tree, tmp_path / "run", max_steps=2))
    assert main(["eval", str(config), "--checkpoint", str(still_checkpoint), "--data", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == f"framegru: error: --data: no such file or folder: {tmp_path / 'nope'}"


@pytest.mark.integration
def test_cpu_bf16_trains_in_bf16_and_keeps_fp32_weights(capsys, tmp_path, still_tree):
    weights = {}
    for bf16 in (False, True):
        config = tiny_rows_config(still_tree, tmp_path / f"run_{bf16}", max_steps=3)
        config["train"]["cpu_bf16"] = bf16
        assert main(["run", str(write_config(tmp_path / f"{bf16}.yaml", config)), "--json"]) == 0
        assert 0 <= last_json(capsys)["accuracy"] <= 1
        weights[bf16] = load_file(tmp_path / f"run_{bf16}" / "last.safetensors")
    engine = [k for k in weights[True] if k.startswith("engine.") and k.endswith("weight")]
    assert engine and all(weights[True][k].dtype == torch.float32 for k in engine)
    # Same seed and batches: only the bf16 arithmetic of the forward and backward passes tells the runs apart.
    assert any(not torch.equal(weights[False][k], weights[True][k]) for k in engine)
    assert all(torch.allclose(weights[False][k], weights[True][k], atol=0.05) for k in engine)


def test_autocast_bf16_on_the_cpu_only_when_asked():
    cpu = torch.device("cpu")
    for amp, cpu_bf16, expected in ((True, False, False), (False, True, True), (True, True, True)):
        with autocast_for(cpu, amp, cpu_bf16)():
            assert torch.is_autocast_enabled("cpu") is expected
            if expected:
                assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_flip_tta_averages_an_image_with_its_mirror_in_evaluation(tmp_path, still_tree):
    config = tiny_rows_config(still_tree, tmp_path / "run", max_steps=1)
    torch.manual_seed(0)
    info = image_folder(root=tmp_path, split="test", path=str(still_tree), size=[8, 8]).info
    plain = build_model(validate(config, "test"), load_components(), info).eval()
    config["model"]["flip_tta"] = True
    tta = build_model(validate(config, "test"), load_components(), info).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        expected = (plain.sequence_output({"image": x}) + plain.sequence_output({"image": x.flip(-1)})) / 2
        assert torch.allclose(tta.sequence_output({"image": x}), expected, atol=1e-6)
        assert torch.allclose(tta.sequence_output({"image": x.flip(-1)}), expected, atol=1e-6)  # mirror images agree
        assert not torch.allclose(plain.sequence_output({"image": x}), expected, atol=1e-4)
        # Training sees one view: the flips are the reader's augmentation there.
        assert torch.equal(tta.train().sequence_output({"image": x}), plain.train().sequence_output({"image": x}))


@pytest.mark.integration
def test_own_photos_with_the_cifar_config_take_the_models_size(capsys, tmp_path, still_tree):
    """image_folder on 8x8 photos under configs/cifar10_rows.yaml: resized to the 32x32 the model is
    built for (data.size), said at start; cifar10's options it cannot take are dropped with a note."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    args = ["run", str(root / "configs" / "cifar10_rows.yaml"), "data.reader.name=image_folder",
            f"data.reader.path={still_tree}", "train.max_steps=1", "train.batch_size=4", "data.num_workers=0",
            f"run.dir={tmp_path / 'run'}", "train.device=cpu", "model.engine.hidden=8",
            "model.backbone.channels=[8,8,8]", "model.backbone.stem=8"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "data image_folder: 22 training / 2 validation images, frames 3x32x32 (data.size) (CxHxW), 2 classes" in err
    assert "per_device.cpu applied" in err
