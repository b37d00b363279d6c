"""``framegru bench stream``: well-formed figures for every backend on a tiny model (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.video_data import tiny_checkpoint

from framegru.bench.stream import step_flops
from framegru.cli.app import main
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components

# Every test here runs a benchmark of the streaming step through the command line.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_step_flops_count_every_convolution_of_the_step(predictor):
    # identity patch 2: 1x16x16 frames -> 4x8x8 features; ConvGRU hidden 8, 3x3; head: 3x3 8->8, 1x1 8->4.
    pixels = 8 * 8
    convs = [(4, 24, 9), (8, 16, 9), (8, 8, 9), (8, 8, 9), (8, 4, 1)]  # (in, out, kernel area)
    expected = sum(2 * pixels * c_in * c_out * k for c_in, c_out, k in convs)
    assert step_flops(load_model(predictor, load_components())) == expected


def test_cli_bench_stream_json(predictor, capsys):
    # On the CPU: on CUDA the plain onnxruntime package has no GPU provider, and the bench times PyTorch alone.
    assert main(["bench", "stream", "--checkpoint", str(predictor), "--repeats", "1", "--frames", "3", "--json",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["backends"]) == {"torch eager", "onnxruntime"}
    for entry in result["backends"].values():
        assert entry["fps"] > 0 and entry["latency_ms"] > 0 and entry["roofline_fraction"] > 0
    assert result["batch"] == 1 and result["frames"] == 3 and result["threads"] >= 1
    assert result["state_shapes"] == [[8, 8, 8]] and result["roofline"]["gflops"] > 0 and result["gemm"]["gflops"] > 0
    assert set(result["speedup_vs_torch"]) == {"onnxruntime"}


def test_cli_bench_stream_table(predictor, capsys):
    assert main(["bench", "stream", "--checkpoint", str(predictor), "--repeats", "1", "--frames", "2"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "torch eager" in out and "roofline:" in out and "GFLOP a step" in out


def test_cli_bench_stream_errors_are_one_line(predictor, tmp_path, capsys):
    assert main(["bench", "stream", "--checkpoint", str(predictor), "--frames", "0"]) == 2
    still = tiny_checkpoint(tmp_path / "still.safetensors", task="classify", still=True)
    assert main(["bench", "stream", "--checkpoint", str(still)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("framegru: error:") for line in err)
    assert "argument --frames: must be an integer from 1 to" in err[0] and "--what step needs a video model" in err[1]
