"""``framegru export``: the exported step and still classifier, run in ONNX Runtime (and torch.export),
compute what the PyTorch model computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tests.video_data import tiny_checkpoint

from framegru import __version__
from framegru.cli.app import main
from framegru.config.config import validate
from framegru.io import checkpoint
from framegru.model.data_info import DataInfo
from framegru.model.frame_model import build_model, load_model
from framegru.plugin_manager.host import load_components

# Every test here exports whole models (torch.export, ONNX) and runs them: seconds each.
pytestmark = pytest.mark.integration

TOL = dict(rtol=1e-4, atol=1e-5)  # float32 through two runtimes: the same math in another order


def save_model(path: Path, model_spec: dict, info: DataInfo, reader: dict, contrast: float = 1.0) -> Path:
    """A freshly built model of ``model_spec`` saved as a framegru checkpoint."""
    config = validate({"data": {"reader": reader}, "model": model_spec}, "test")
    torch.manual_seed(0)
    model = build_model(config, load_components(), info)
    if contrast != 1.0:  # predictions that vary with the input instead of sitting at 0.5 gray
        with torch.no_grad():
            model.head.decode[2].weight.mul_(contrast)
    checkpoint.save(path, model.state_dict(), config=config.to_dict(), info=info.to_dict(), step=0)
    return path


@pytest.fixture(scope="module")
def two_layer(tmp_path_factory) -> Path:
    """A next-frame model with two ConvGRU layers of different widths, 2-channel 16x12 frames."""
    info = DataInfo(channels=2, height=16, width=12, context=3, future=3)
    spec = {"backbone": {"name": "identity", "patch": 2}, "engine": {"hidden": [8, 6], "kernel": 3},
            "head": {"name": "next_frame", "width": 8}}
    return save_model(tmp_path_factory.mktemp("ckpt") / "two.safetensors", spec, info,
                      {"name": "video", "frames": 6, "context": 3}, contrast=20.0)


@pytest.fixture(scope="module")
def still_rows(tmp_path_factory) -> Path:
    """A bidirectional rows classifier with mirror-image averaging (flip_tta), RGB 12x10 stills."""
    info = DataInfo(channels=3, height=12, width=10, classes=["a", "b", "c"], still=True)
    spec = {"backbone": {"name": "conv", "channels": [8], "downsample": 1},
            "engine": {"hidden": 8, "kernel": 3, "bidirectional": True},
            "head": {"name": "classify", "dropout": 0.0}, "flip_tta": True}
    return save_model(tmp_path_factory.mktemp("ckpt") / "rows.safetensors", spec, info, {"name": "image_folder"})


def export(ckpt: Path, out: Path, *extra: str) -> ort.InferenceSession:
    assert main(["export", str(ckpt), "--out", str(out), *extra]) == 0
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])


def run_step(session: ort.InferenceSession, frame: torch.Tensor, state: list[np.ndarray]) -> tuple[np.ndarray, list]:
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, {"frame": frame.numpy(), **dict(zip(names[1:], state))})
    return outputs[0], outputs[1:]


def zero_state(session: ort.InferenceSession, batch: int) -> list[np.ndarray]:
    return [np.zeros((batch, *i.shape[1:]), np.float32) for i in session.get_inputs()[1:]]


def assert_steps_match(model, session: ort.InferenceSession, frames: torch.Tensor) -> np.ndarray:
    """Step PyTorch (from no state) and the session (from all-zero states: the start of a video) over
    ``frames`` ``[T, B, C, H, W]``; outputs and states must agree at every step. Returns the last output."""
    state_pt, state_ort = None, zero_state(session, frames.shape[1])
    for frame in frames:
        with torch.no_grad():
            expected, state_pt = model.predict_next(frame, state_pt)
        got, state_ort = run_step(session, frame, state_ort)
        np.testing.assert_allclose(got, expected.numpy(), **TOL)
        for a, b in zip(state_ort, state_pt):
            np.testing.assert_allclose(a, b.numpy(), **TOL)
    return got


def test_step_has_the_documented_interface(two_layer, tmp_path):
    session = export(two_layer, tmp_path / "step.onnx")
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("frame", ["batch", 2, 16, 12]), ("state_0", ["batch", 8, 8, 6]), ("state_1", ["batch", 6, 8, 6])]
    assert [o.name for o in session.get_outputs()] == ["next_frame", "state_out_0", "state_out_1"]


def test_step_matches_pytorch_over_several_steps_at_batch_3(two_layer, tmp_path):
    session = export(two_layer, tmp_path / "step.onnx")
    torch.manual_seed(1)
    got = assert_steps_match(load_model(two_layer, load_components()), session, torch.rand(5, 3, 2, 16, 12))
    assert np.abs(got).mean() > 0.01 and got.std() > 0.01  # pictures, not a constant


def test_samples_of_a_batch_are_independent(two_layer, tmp_path):
    session = export(two_layer, tmp_path / "step.onnx")
    frames = torch.rand(4, 2, 2, 16, 12)
    batch, _ = run_step(session, frames[0], zero_state(session, 2))
    alone, _ = run_step(session, frames[0, 1:], zero_state(session, 1))
    np.testing.assert_allclose(batch[1:], alone, **TOL)


def test_context_then_own_outputs_reproduces_evals_rollout(two_layer, tmp_path):
    """What `framegru eval` scores: the context frames read, every later frame predicted from the last prediction."""
    session = export(two_layer, tmp_path / "step.onnx")
    model = load_model(two_layer, load_components())
    video = torch.rand(2, 7, 2, 16, 12)
    context = model.info.context
    with torch.no_grad():
        expected = model.rollout(video, context)  # [B, T-1, C, H, W]
    state, predictions = zero_state(session, 2), []
    for t in range(video.shape[1] - 1):
        frame = video[:, t] if t < context else torch.from_numpy(predictions[-1])
        prediction, state = run_step(session, frame, state)
        predictions.append(prediction)
    np.testing.assert_allclose(np.stack(predictions, axis=1), expected.numpy(), **TOL)


@pytest.mark.parametrize("name", load_components().backbones.names())
def test_every_registered_backbone_exports_in_a_streaming_step(name, tmp_path):
    """Registry-driven: a new backbone is exported and checked against PyTorch without touching this file."""
    from tests.model.test_contracts import TINY

    backbone = load_components().backbones.build(name, TINY.get(name, {}), key="test", in_channels=1)
    head = {"name": "decoder"} if getattr(backbone, "skip_channels", ()) else {"name": "next_frame", "width": 4}
    info = DataInfo(channels=1, height=16, width=16, context=2, future=2)
    spec = {"backbone": {"name": name, **TINY.get(name, {})}, "engine": {"hidden": 4}, "head": head}
    ckpt = save_model(tmp_path / f"{name}.safetensors", spec, info, {"name": "video", "frames": 4, "context": 2})
    session = export(ckpt, tmp_path / f"{name}.onnx")
    model = load_model(ckpt, load_components())
    assert model.skips == bool(getattr(backbone, "skip_channels", ()))  # a U-Net's maps go around the ConvGRU
    assert_steps_match(model, session, torch.rand(2, 2, 1, 16, 16))


@pytest.mark.parametrize("input_kernel", [None, 1])
def test_a_warp_head_model_exports_and_steps_as_in_pytorch(tmp_path, input_kernel):
    """The frame goes around the ConvGRU to the head (identity with skips) and is moved by grid sampling;
    also with 1x1 input kernels (``model.engine.input_kernel``)."""
    info = DataInfo(channels=1, height=16, width=16, context=2, future=2)
    spec = {"backbone": {"name": "identity", "patch": 4, "skips": True},
            "engine": {"hidden": [6, 4], "input_kernel": input_kernel}, "head": {"name": "warp", "width": 8}}
    config = validate({"data": {"reader": {"name": "video", "frames": 4, "context": 2}}, "model": spec}, "test")
    torch.manual_seed(0)
    model = build_model(config, load_components(), info)
    with torch.no_grad():
        for p in model.head.parameters():  # away from the zero start: flows of a few pixels, masks between 0 and 1
            p.normal_(std=0.3)
    ckpt = tmp_path / "warp.safetensors"
    checkpoint.save(ckpt, model.state_dict(), config=config.to_dict(), info=info.to_dict(), step=0)
    side = input_kernel or 3
    assert all(cell.input_conv.weight.shape[-2:] == (side, side) for cell in model.engine.layers)
    session = export(ckpt, tmp_path / "warp.onnx")
    torch.manual_seed(1)
    got = assert_steps_match(load_model(ckpt, load_components()), session, torch.rand(4, 2, 1, 16, 16))
    assert got.std() > 0.01


def test_metadata_carries_what_a_deployer_needs(two_layer, tmp_path):
    export(two_layer, tmp_path / "step.onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "step.onnx")).metadata_props}
    assert meta["framegru_version"] == __version__ and meta["framegru_kind"] == "step" and meta["task"] == "predict"
    assert (meta["channels"], meta["height"], meta["width"], meta["context"]) == ("2", "16", "12", "3")
    assert json.loads(meta["classes"]) is None
    assert json.loads(meta["state_shapes"]) == [[8, 8, 6], [6, 8, 6]]
    config = json.loads(meta["config"])
    assert config["model"]["engine"]["hidden"] == [8, 6] and config["model"]["head"]["name"] == "next_frame"
    assert json.loads(meta["info"])["context"] == 3


def test_still_classifier_matches_pytorch(still_rows, tmp_path):
    session = export(still_rows, tmp_path / "still.onnx")  # --what defaults to still for a rows model
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["logits"]
    model = load_model(still_rows, load_components())
    images = torch.rand(4, 3, 12, 10)
    with torch.no_grad():
        expected = model.sequence_output({"image": images})  # with flip_tta: the mean with the mirror image
    np.testing.assert_allclose(session.run(None, {"image": images.numpy()})[0], expected.numpy(), **TOL)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "still.onnx")).metadata_props}
    assert json.loads(meta["classes"]) == ["a", "b", "c"] and meta["framegru_kind"] == "still"


def test_video_classifier_step_gives_each_frames_logits(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "video.safetensors", task="classify")
    session = export(ckpt, tmp_path / "video.onnx")
    assert [o.name for o in session.get_outputs()] == ["logits", "state_out_0"]
    model = load_model(ckpt, load_components())
    video = torch.rand(2, 4, 1, 16, 16)
    state = zero_state(session, 2)
    for t in range(video.shape[1]):
        logits, state = run_step(session, video[:, t], state)
        with torch.no_grad():  # the head on this frame's ConvGRU output, after the frames before it
            out, _ = model.engine(model.encode(video[:, : t + 1])[0])
            expected = model.head(out[:, -1:])
        np.testing.assert_allclose(logits, expected.numpy(), **TOL)


def test_torch_export_program_matches(two_layer, tmp_path):
    assert main(["export", str(two_layer), "--out", str(tmp_path / "step.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "step.pt2")).module()
    model = load_model(two_layer, load_components())
    frame, state = torch.rand(3, 2, 16, 12), [torch.zeros(3, 8, 8, 6), torch.zeros(3, 6, 8, 6)]
    with torch.no_grad():
        expected, expected_state = model.predict_next(frame, None)
        got, *got_state = program(frame, *state)
        expected, _ = model.predict_next(expected, expected_state)
        got, *_ = program(got, *got_state)
    torch.testing.assert_close(got, expected, **TOL)


def one_line_error(capsys, args: list[str], status: int) -> str:
    assert main(args) == status
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("framegru: error: ") and not err.out, err
    return lines[0]


def test_what_cannot_be_exported_is_one_line(capsys, two_layer, still_rows, tmp_path):
    out = str(tmp_path / "x.onnx")
    assert "--what still needs a still-image classifier" in one_line_error(
        capsys, ["export", str(two_layer), "--out", out, "--what", "still"], 2)
    assert "--what step needs a video model" in one_line_error(
        capsys, ["export", str(still_rows), "--out", out, "--what", "step"], 2)
    assert "name an .onnx" in one_line_error(capsys, ["export", str(two_layer), "--out", str(tmp_path / "x.txt")], 2)
    (tmp_path / "dir.onnx").mkdir()
    assert "is a folder" in one_line_error(capsys, ["export", str(two_layer), "--out", str(tmp_path / "dir.onnx")], 2)
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert "cannot write" in one_line_error(capsys, ["export", str(two_layer), "--out", str(blocked / "x.onnx")], 1)
    assert "checkpoint not found" in one_line_error(capsys, ["export", str(tmp_path / "none.safetensors"), "--out", out], 1)
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "x.onnx").exists()


def test_a_bidirectional_video_model_has_no_step(capsys, tmp_path):
    info = DataInfo(channels=1, height=8, width=8, classes=["a", "b"])
    spec = {"engine": {"hidden": 4, "bidirectional": True}, "head": {"name": "classify"}}
    ckpt = save_model(tmp_path / "bi.safetensors", spec, info, {"name": "video", "frames": 4})
    assert "bidirectional ConvGRU" in one_line_error(capsys, ["export", str(ckpt), "--out", str(tmp_path / "x.onnx")], 2)


UNEXPORTABLE_PLUGIN = '''
from torch import nn
import torch
from framegru import hookimpl


class CumMax(nn.Module):
    """A backbone with an operator ONNX lacks (cummax)."""

    def __init__(self, *, in_channels):
        super().__init__()
        self.out_channels, self.stride = in_channels, 1

    def forward(self, x):
        return torch.cummax(x, dim=2).values


@hookimpl
def framegru_register_backbones(register):
    register("cummax", CumMax)
'''


def test_a_plugin_component_that_cannot_be_exported_is_named_in_one_line(capsys, tmp_path):
    plugin = tmp_path / "cummax_plugin.py"
    plugin.write_text(UNEXPORTABLE_PLUGIN)
    info = DataInfo(channels=1, height=8, width=8, context=2, future=2)
    config = validate({"data": {"reader": {"name": "video"}}, "plugins": [str(plugin)],
                       "model": {"backbone": "cummax", "engine": {"hidden": 4}, "head": {"name": "next_frame", "width": 4}}},
                      "test")
    from framegru.plugin_manager.host import PluginHost

    host = PluginHost()
    host.load_entry_points()
    host.load([str(plugin)])
    model = build_model(config, host.components(), info)
    ckpt = tmp_path / "cummax.safetensors"
    checkpoint.save(ckpt, model.state_dict(), config=config.to_dict(), info=info.to_dict(), step=0)
    line = one_line_error(capsys, ["export", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--plugin", str(plugin)], 2)
    assert "backbone 'cummax'" in line and "cannot be exported to ONNX" in line and "cummax" in line.split(": ", 2)[2]
    assert not (tmp_path / "x.onnx").exists()


def test_the_written_file_is_readable_by_others(two_layer, tmp_path):
    export(two_layer, tmp_path / "step.onnx")
    assert (tmp_path / "step.onnx").stat().st_mode & 0o044  # not mkstemp's private 0600
