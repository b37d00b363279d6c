"""``framegru classify-still``: tables, JSON lines, every kind of image, bad files, bad checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from framegru.apps import classify_still
from framegru.cli.app import main

from tests.still_data import stripes


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """One image of each kind a user may pass, striped like the tiny model's two classes."""
    d = tmp_path_factory.mktemp("images")
    paths = {kind: d / name for kind, name in [
        ("rgb", "rgb.png"), ("gray", "gray.png"), ("rgba", "rgba.png"), ("deep", "deep.png"),
        ("large", "large.jpg"), ("corrupt", "corrupt.png")]}
    horizontal, vertical = stripes((8, 8), vertical=False), stripes((8, 8), vertical=True)
    cv2.imwrite(str(paths["rgb"]), np.repeat(horizontal[:, :, None], 3, axis=2).astype(np.uint8))
    cv2.imwrite(str(paths["gray"]), vertical.astype(np.uint8))
    rgba = np.dstack([np.repeat(horizontal[:, :, None], 3, axis=2), np.full((8, 8), 90.0)]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(paths["rgba"])
    cv2.imwrite(str(paths["deep"]), (vertical * 257).astype(np.uint16))  # 16-bit
    large = np.kron(horizontal, np.ones((40, 50)))  # 320x400: shrinks back to the 8x8 stripes
    cv2.imwrite(str(paths["large"]), large.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    return paths


EXPECTED = {"rgb": "horizontal", "gray": "vertical", "rgba": "horizontal", "deep": "vertical", "large": "horizontal"}


def run_json(capfd, args: list[str]) -> tuple[int, list[dict], list[str]]:
    """Exit status, JSON lines and stderr lines; capfd also sees what C libraries (OpenCV) write."""
    code = main(["classify-still", *args, "--json"])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.splitlines()


@pytest.mark.integration
def test_json_lines_for_every_kind_of_image(capfd, still_checkpoint, images):
    names = [str(images[k]) for k in EXPECTED]
    code, lines, err = run_json(capfd, [*names, "--checkpoint", str(still_checkpoint), "--topk", "2"])
    assert code == 0 and err == []
    assert [line["image"] for line in lines] == names
    for kind, line in zip(EXPECTED, lines):
        assert set(line) == {"image", "label", "prob", "topk"}
        assert line["label"] == EXPECTED[kind], kind
        assert sorted(pair[0] for pair in line["topk"]) == ["horizontal", "vertical"]
        assert line["topk"][0] == [line["label"], line["prob"]]
        assert line["prob"] >= line["topk"][1][1] and line["prob"] > 0.5
        assert sum(p for _, p in line["topk"]) == pytest.approx(1.0, abs=1e-5)  # both classes: all the mass


@pytest.mark.integration
def test_a_corrupt_image_is_one_line_and_the_others_are_classified(capfd, still_checkpoint, images):
    args = [str(images["rgb"]), str(images["corrupt"]), str(images["gray"]), str(images["rgb"].parent / "missing.png")]
    code, lines, err = run_json(capfd, [*args, "--checkpoint", str(still_checkpoint)])
    assert code == 1
    assert [(line["image"], line["label"]) for line in lines] == [(args[0], "horizontal"), (args[2], "vertical")]
    assert len(err) == 2
    assert err[0].startswith("framegru: error: cannot decode image") and "corrupt.png" in err[0]
    assert err[1].startswith("framegru: error: image not found") and "missing.png" in err[1]
    assert all(len(line["topk"]) == 2 for line in lines)  # --topk 5 is capped by the two classes


@pytest.mark.integration
def test_rich_table(capsys, still_checkpoint, images):
    assert main(["classify-still", str(images["rgb"]), "--checkpoint", str(still_checkpoint), "--topk", "1"]) == 0
    out = capsys.readouterr().out
    assert "rgb.png" in out and "horizontal" in out and "vertical" not in out and "%" in out


def test_bad_arguments_and_checkpoints(capsys, tmp_path, images, monkeypatch):
    assert main(["classify-still", str(images["rgb"]), "--topk", "0"]) == 2
    assert "argument --topk: must be an integer from 1 to 100,000, got 0" in capsys.readouterr().err
    assert main(["classify-still", str(images["rgb"]), "--checkpoint", str(tmp_path / "none.safetensors")]) == 1
    assert capsys.readouterr().err.strip() == f"framegru: error: checkpoint not found: {tmp_path / 'none.safetensors'}"
    monkeypatch.setattr(classify_still, "DEFAULT_CHECKPOINT", tmp_path / "shipped.safetensors")
    assert main(["classify-still", str(images["rgb"])]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "shipped CIFAR-10 checkpoint is missing" in err[0] and "--checkpoint" in err[0]


@pytest.mark.integration
@pytest.mark.skipif(not classify_still.DEFAULT_CHECKPOINT.is_file(), reason="no shipped CIFAR-10 checkpoint")
def test_the_shipped_cifar10_model_is_the_default(capfd):
    from framegru_plugins.readers.torchvision_datasets import CIFAR10_CLASSES

    sample = Path(__file__).resolve().parents[2] / "samples" / "cifar.png"
    code, lines, err = run_json(capfd, [str(sample), "--topk", "3"])
    assert code == 0 and err == [] and len(lines) == 1
    assert lines[0]["label"] in CIFAR10_CLASSES and len(lines[0]["topk"]) == 3
