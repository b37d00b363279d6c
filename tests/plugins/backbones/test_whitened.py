"""Backbone ``whitened`` (plugins/backbones/whitened.py): the patch whitening, the contract, training,
export, and the pooled control (``model.engine.hidden: 0``)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from framegru import DataInfo
from framegru.cli.app import main
from framegru.config.config import validate
from framegru.io import checkpoint
from framegru.io.images import read_image
from framegru.model.frame_model import NoRecurrence, build_model, load_model
from framegru.plugin_manager.host import load_components
from framegru_plugins.backbones.whitened import PatchWhitening, WhitenedBackbone

INFO = DataInfo(channels=3, height=16, width=16, classes=["a", "b"], still=True)
TINY = {"name": "whitened", "widths": [8, 12], "pools": 2}


def smooth_images(count: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels are correlated, as in photos: a far-from-white patch covariance."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, size // 4, size // 4, generator=g)
    return (F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
            + 0.02 * torch.rand(count, 3, size, size, generator=g)).clamp(0, 1)


def test_whitened_patches_have_identity_covariance_on_their_sample():
    x = smooth_images(64)
    layer = PatchWhitening(3, patch=2, eps=1e-9).train()
    y = layer(x)  # the first training batch fits it
    assert layer.fitted.item() == 1 and y.shape == (64, 24, 16, 16)
    inside = y[:, :12, :-1, :-1].permute(1, 0, 2, 3).flatten(1).double()  # the unpadded positions, one sign
    covariance = torch.cov(inside)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert inside.mean(1).abs().max() < 1e-4
    assert torch.allclose(y[:, 12:], -y[:, :12])  # each filter with its negative
    before = torch.cov(F.unfold(x.double(), 2).transpose(1, 2).flatten(0, 1).T)
    assert before.diagonal().max() / before.diagonal().min() < 10 and before[0, 1] > 0.5 * before[0, 0]  # far from white


def test_whitening_is_fitted_once_in_training_and_never_in_evaluation():
    layer = PatchWhitening(3).eval()
    layer(smooth_images(4))
    assert layer.fitted.item() == 0 and layer.weight.abs().sum() == 0
    layer.train()(smooth_images(8, seed=1))
    weight = layer.weight.clone()
    layer(smooth_images(8, seed=2))
    assert torch.equal(layer.weight, weight)


def test_backbone_declares_its_channels_and_stride_and_keeps_the_whitening_in_its_state():
    backbone = WhitenedBackbone(in_channels=3, widths=[8, 16, 12], pools=3)
    assert (backbone.out_channels, backbone.stride) == (12, 8)
    assert backbone.train()(smooth_images(2, size=32)).shape == (2, 12, 4, 4)
    state = backbone.state_dict()
    assert {"whiten.weight", "whiten.bias", "whiten.fitted"} <= set(state) and state["whiten.fitted"].item() == 1
    again = WhitenedBackbone(in_channels=3, widths=[8, 16, 12], pools=3)
    again.load_state_dict(state)
    x = smooth_images(3, size=32, seed=4)
    assert torch.allclose(again.eval()(x), backbone.eval()(x))
    with pytest.raises(ValueError, match="pools"):
        WhitenedBackbone(in_channels=3, widths=[8], pools=2)


def build(engine: dict, translate_tta: int = 0) -> torch.nn.Module:
    config = validate({"data": {"reader": {"name": "image_folder"}},
                       "model": {"backbone": TINY, "engine": engine, "head": {"name": "classify", "dropout": 0.0},
                                 "flip_tta": True, "translate_tta": translate_tta},
                       "train": {"label_smoothing": 0.2}}, "test")
    torch.manual_seed(0)
    return build_model(config, load_components(), INFO), config


def stripes(count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Label 0: horizontal stripes, 1: vertical, with noise: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, (count,), generator=g)
    wave = (torch.arange(16) % 2).float()
    rows, cols = wave[None, :, None].expand(count, 16, 16), wave[None, None, :].expand(count, 16, 16)
    pattern = torch.where(labels[:, None, None] == 0, rows, cols)[:, None].expand(count, 3, 16, 16)
    return {"image": (0.2 + 0.6 * pattern + 0.1 * torch.rand(count, 3, 16, 16, generator=g)).clamp(0, 1), "label": labels}


@pytest.mark.integration
@pytest.mark.parametrize("engine", [{"hidden": 8, "bidirectional": True}, {"hidden": 0}])
def test_a_few_steps_reduce_the_loss(engine):
    model, config = build(engine)
    assert isinstance(model.engine, NoRecurrence) == (engine["hidden"] == 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = stripes(32)
    model.train()
    losses = []
    for step in range(15):
        loss = model.task.training_loss(model, batch, step=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.backbone.whiten.fitted.item() == 1
    assert losses[-1] < 0.7 * losses[0]


def test_translate_tta_averages_six_views_in_evaluation_only():
    model, _ = build({"hidden": 8, "bidirectional": True}, translate_tta=1)
    model.train().sequence_output(stripes(16))
    image = stripes(2, seed=6)["image"]
    padded = F.pad(image, (1, 1, 1, 1), mode="reflect")
    views = [image, padded[..., :16, :16], padded[..., 2:, 2:]]
    views += [v.flip(-1) for v in views]
    model.eval()
    with torch.no_grad():
        expected = torch.stack([model._rows_output(v) for v in views]).mean(0)
        assert torch.allclose(model.sequence_output({"image": image}), expected, atol=1e-6)
        assert not torch.allclose(expected, (model._rows_output(image) + model._rows_output(image.flip(-1))) / 2)


def test_exported_still_classifier_matches_pytorch(tmp_path):
    model, config = build({"hidden": 8, "bidirectional": True}, translate_tta=1)
    model.train().sequence_output(stripes(16))  # fits the whitening, as a first training batch does
    path = tmp_path / "whitened.safetensors"
    checkpoint.save(path, model.state_dict(), config=config.to_dict(), info=INFO.to_dict(), step=0)
    assert main(["export", str(path), "--out", str(tmp_path / "still.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "still.onnx"), providers=["CPUExecutionProvider"])
    loaded = load_model(path, load_components())
    assert loaded.backbone.whiten.fitted.item() == 1
    images = stripes(4, seed=3)["image"]
    with torch.no_grad():
        expected = loaded.sequence_output({"image": images})  # the flipped and shifted views too
    np.testing.assert_allclose(session.run(None, {"image": images.numpy()})[0], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_classify_still_reads_the_new_model(tmp_path, capsys):
    model, config = build({"hidden": 8, "bidirectional": True})
    model.train().sequence_output(stripes(16))
    path = tmp_path / "whitened.safetensors"
    checkpoint.save(path, model.state_dict(), config=config.to_dict(), info=INFO.to_dict(), step=0)
    image = tmp_path / "image.png"
    pixels = (stripes(1, seed=5)["image"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(image), pixels[:, :, ::-1])
    capsys.readouterr()
    assert main(["classify-still", str(image), "--checkpoint", str(path), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    with torch.no_grad():
        probs = load_model(path, load_components()).sequence_output({"image": read_image(image, 3, (16, 16))[None]}).softmax(-1)[0]
    assert line["label"] == INFO.classes[int(probs.argmax())] and line["prob"] == pytest.approx(float(probs.max()), abs=1e-4)
