"""The built-in TensorBoard listener: real event files in run.dir, read back with TensorBoard's own reader."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from framegru.config.config import load_config
from framegru.training.optimization import learning_rate
from framegru.training.runner import run_config
from tests.training.test_runner import KillAt, components_for, config_path  # noqa: F401  (the drift reader's config)

# Every test here trains or starts processes.
pytestmark = pytest.mark.integration


def read_events(run_dir) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})  # 0: keep every event
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in events.Scalars(tag)}


def test_a_run_logs_loss_lr_metrics_and_pictures(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=12", "train.eval_every=4"])
    run_config(config, components_for(config))
    run = tmp_path / "run"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    events = read_events(run)
    lr = scalars(events, "train/lr")
    assert sorted(lr) == list(range(1, 13))
    for step, value in lr.items():  # the rate step `step` trained with, as float32
        assert value == pytest.approx(learning_rate(config, step - 1), rel=1e-6)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    loss = scalars(events, "train/loss")
    assert sorted(loss) == list(range(1, 13))
    for metrics in logged:
        assert loss[metrics["step"]] == pytest.approx(metrics["loss"], rel=1e-6)
        for name in ("mse", "mae", "ssim", "psnr"):
            assert scalars(events, f"eval/{name}")[metrics["step"]] == pytest.approx(metrics[name], rel=1e-6), name
    # next-frame evaluation has no loss of its own: `loss` is the training loss; a count is no metric
    assert not {"eval/step", "eval/loss", "eval/seconds", "eval/sequences"} & set(events.Tags()["scalars"])
    [picture] = events.Images("pictures/predictions")
    png = Image.open(run / "predictions.png")
    assert (picture.step, picture.width, picture.height) == (12, *png.size)
    decoded = Image.open(io.BytesIO(picture.encoded_image_string)).convert("RGB")
    assert np.array_equal(np.asarray(decoded), np.asarray(png.convert("RGB")))


@pytest.mark.integration
def test_a_classifier_logs_its_validation_loss_and_no_count(still_tree, tmp_path):
    from tests.still_data import tiny_rows_config, write_config

    path = write_config(tmp_path / "rows.yaml", tiny_rows_config(still_tree, tmp_path / "run", max_steps=6))
    config = load_config(path, ["train.eval_every=3", "run.pictures=0"])
    run_config(config, components_for(config))
    events = read_events(tmp_path / "run")
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [3, 6]
    validation, accuracy = scalars(events, "eval/loss"), scalars(events, "eval/accuracy")
    train = scalars(events, "train/loss")
    for metrics in logged:
        assert validation[metrics["step"]] == pytest.approx(metrics["loss"], rel=1e-6)
        assert validation[metrics["step"]] != pytest.approx(train[metrics["step"]], rel=1e-6)
        assert accuracy[metrics["step"]] == pytest.approx(metrics["accuracy"], rel=1e-6)
    assert "eval/images" not in events.Tags()["scalars"]


def test_a_resumed_run_replaces_what_the_killed_one_logged_after_its_checkpoint(config_path, tmp_path):
    config = load_config(config_path, ["train.checkpoint_every=4", "run.pictures=0"])
    with pytest.raises(KeyboardInterrupt):
        run_config(config, components_for(config), listeners=[KillAt(9)])  # dies in step 10; last is step 8
    run_config(config, components_for(config), resume=True)
    events = read_events(tmp_path / "run")
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 13))  # steps 9.. logged once more, the first ones purged
    assert [e.step for e in events.Scalars("eval/mse")] == [4, 8, 12]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [4, 8, 12]
    assert scalars(events, "eval/mse")[12] == pytest.approx(logged[-1]["mse"], rel=1e-6)


def test_switched_off_it_writes_nothing(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=2", "train.eval_every=2", "run.tensorboard=false"])
    run_config(config, components_for(config))
    assert (tmp_path / "run" / "metrics.jsonl").is_file()
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_overwrite_starts_the_curves_over(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=4", "train.eval_every=4", "run.pictures=0"])
    run_config(config, components_for(config))
    run_config(config, components_for(config), overwrite=True)
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 1
    assert [e.step for e in read_events(tmp_path / "run").Scalars("train/loss")] == [1, 2, 3, 4]
