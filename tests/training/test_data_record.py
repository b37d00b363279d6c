"""What a checkpoint records of its training data, and predict's warning on input clearly unlike it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from framegru.config.config import validate
from framegru.io import checkpoint
from framegru.model.data_info import DataInfo
from framegru.reporting import captured
from framegru.training import data_record


class Frames(torch.utils.data.Dataset):
    def __init__(self, level: float, n: int = 12):
        self.info = DataInfo(channels=1, height=4, width=4, context=2, future=2)
        self.level, self.n = level, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        video = torch.full((4, 1, 4, 4), self.level)
        video[:, :, 0, 0] = 1.0  # one bright pixel per frame
        return {"video": video}


CONFIG = validate({"data": {"reader": {"name": "drift", "path": "/videos"}}, "model": {"head": "next_frame"}}, "t")


def test_describe_records_reader_size_and_pixel_statistics():
    record = data_record.describe(CONFIG, Frames(0.0))
    values = torch.cat([Frames(0.0)[i]["video"].flatten() for i in range(8)])
    assert record == {"reader": "drift", "path": "/videos", "channels": 1, "height": 4, "width": 4,
                      "mean": round(values.mean().item(), 4), "std": round(values.std().item(), 4)}
    assert record["mean"] == pytest.approx(1 / 16, abs=1e-4)
    assert data_record.summary(record) == "drift (/videos), 1x4x4, mean 0.06, contrast 0.24"


def test_describe_leaves_the_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    data_record.describe(CONFIG, Frames(0.0))
    assert torch.equal(torch.rand(3), expected)


def test_unlike_names_what_differs():
    record = {"mean": 0.05, "std": 0.2}
    assert data_record.unlike(record, 0.08, 0.25) is None  # the same kind of picture
    assert data_record.unlike(record, 0.45, 0.25) == "mean brightness 0.45 against 0.05"
    assert data_record.unlike(record, 0.05, 0.05) == "contrast 0.05 against 0.20"
    assert data_record.unlike(None, 0.9, 0.9) is None  # nothing known: no guess


def test_frame_statistics():
    images = [np.full((2, 2, 1), 255, np.uint8), np.zeros((2, 2, 1), np.uint8)]
    assert data_record.frame_statistics(images) == (0.5, 0.5)


def test_predict_warns_on_a_video_unlike_the_training_data(tmp_path):
    from tests.video_data import moving_digit, tiny_checkpoint, write_video

    from framegru.apps import predict
    from framegru.model.frame_model import load_model
    from framegru.plugin_manager.host import load_components

    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    saved = checkpoint.load(path)
    checkpoint.save(path, saved.weights, config=saved.config, info=saved.info, step=0,
                    extra={"data": {"reader": "moving_mnist", "path": None, "channels": 1, "height": 16,
                                    "width": 16, "mean": 0.05, "std": 0.2}})
    model = load_model(path, load_components())
    dark = write_video(tmp_path / "dark.mp4", moving_digit(3, "right", frames=20, size=16))
    bright = write_video(tmp_path / "bright.mp4", np.full((20, 16, 16), 200, np.uint8))
    with captured() as said:
        predict.predict_video(model, dark, None)
    assert said == []
    with captured() as said:
        predict.predict_video(model, bright, None)
    assert len(said) == 1 and "looks unlike what this model was trained on (moving_mnist, 1x16x16" in said[0]
    assert re.search(r": mean brightness 0\.(7[5-9]|8[0-1]) against 0\.05; contrast 0\.0\d against 0\.20 in its first 16 frames, so", said[0])
    assert "configs/video_next_frame.yaml" in said[0]
