"""A row-ConvGRU classifier end to end: ``framegru run`` for two steps, then ``framegru eval --json``."""

from __future__ import annotations

import json

import torch

from framegru.cli import main
from framegru.model import load_model
from framegru.plugin_manager import load_components
from framegru_plugins.readers.image_folder import image_folder

from still_data import tiny_rows_config, write_config


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


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
        logits = model.classify({"image": torch.stack([data[i]["image"] for i in range(len(data))])})
    labels = torch.tensor([data[i]["label"] for i in range(len(data))])
    assert result["accuracy"] == (logits.argmax(1) == labels).sum().item() / 24

    # Without --data: the reader's test split, here every image of the configured tree.
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--json"]) == 0
    assert last_json(capsys) == result


def test_eval_refuses_a_missing_folder(capsys, tmp_path, still_checkpoint, still_tree):
    config = write_config(tmp_path / "tiny.yaml", tiny_rows_config(still_tree, tmp_path / "run", max_steps=2))
    assert main(["eval", str(config), "--checkpoint", str(still_checkpoint), "--data", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == f"framegru: error: --data: no such file or folder: {tmp_path / 'nope'}"
