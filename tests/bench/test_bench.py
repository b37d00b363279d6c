"""framegru bench (and its textbook baseline, and framegru.runtime.timing): tiny sizes, well-formed results.

No timing is asserted anywhere: the figures belong to BENCHMARKS.md, not to tests.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from framegru.bench import EngineSizes, bench_decode, bench_engine, bench_train, convgru_flops
from framegru.cli.app import main
from framegru.engine.convgru import ConvGRU, ExecutionPlan
from framegru.engine.textbook import TextbookConvGRU, textbook_from
from framegru.runtime import timing

from tests.video_data import ramp_video

# Every test here runs a benchmark: timed training steps and engine loops.
pytestmark = pytest.mark.integration

TINY = ["--batch", "2", "--time", "3", "--channels", "3", "--size", "6", "--hidden", "4", "5", "--repeats", "1"]
DATA = Path(os.environ.get("FRAMEGRU_DATA", "/work/shared/data"))


@pytest.mark.parametrize("plan", [ExecutionPlan(), ExecutionPlan(fused=False, channels_last=False)])
def test_textbook_computes_what_the_engine_computes_with_the_same_weights(plan):
    torch.manual_seed(0)
    engine = ConvGRU(3, [4, 5], 3, num_layers=2, plan=plan)
    for cell in engine.layers:
        torch.nn.init.uniform_(cell.input_conv.bias, -0.5, 0.5)
    book = textbook_from(engine)
    x = torch.randn(2, 6, 3, 7, 5)
    out_e, states_e = engine(x)
    out_b, states_b = book(x)
    torch.testing.assert_close(out_b, out_e, rtol=1e-5, atol=1e-6)
    for b, e in zip(states_b, states_e):
        torch.testing.assert_close(b, e, rtol=1e-5, atol=1e-6)

    # The same gradients too, once the textbook's six convolutions are mapped back onto the engine's three.
    out_e.square().mean().backward()
    out_b.square().mean().backward()
    for cell, tb in zip(engine.layers, book.cells):
        torch.testing.assert_close(torch.cat([tb.conv_xz.weight.grad, tb.conv_xr.weight.grad, tb.conv_xn.weight.grad]),
                                   cell.input_conv.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.cat([tb.conv_xz.bias.grad, tb.conv_xr.bias.grad, tb.conv_xn.bias.grad]),
                                   cell.input_conv.bias.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.cat([tb.conv_hz.weight.grad, tb.conv_hr.weight.grad]),
                                   cell.hidden_zr.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(tb.conv_hn.weight.grad, cell.hidden_n.weight.grad, rtol=1e-4, atol=1e-6)


def test_textbook_has_six_convolutions_per_layer():
    book = TextbookConvGRU(3, [4], 3)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in book.modules()) == 6


def test_textbook_from_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="unidirectional"):
        textbook_from(ConvGRU(3, 4, 3, bidirectional=True))
    with pytest.raises(ValueError, match="square"):
        textbook_from(ConvGRU(3, 4, (1, 3)))


def test_flops_count_the_convolutions_each_implementation_runs():
    s = EngineSizes(batch=2, time=3, channels=5, height=4, width=4, hidden=[6], kernel=3)
    inputs = 2 * 2 * 3 * 16 * 5 * 18 * 9  # input projections of all frames: 5 -> 3*6 channels
    step = 2 * 2 * 16 * 6 * 18 * 9  # hidden convolutions of one step: 6 -> 3*6 channels
    assert convgru_flops(s) == (inputs + 2 * step, 3 * (inputs + 2 * step) - inputs)
    assert convgru_flops(s, textbook=True) == (inputs + 3 * step, 3 * (inputs + 3 * step) - inputs - step)


def test_bench_engine_returns_every_figure():
    s = EngineSizes(batch=2, time=3, channels=3, height=6, width=6, hidden=[4, 5], kernel=3)
    result = bench_engine(s, torch.device("cpu"), repeats=2, warmup=0, variants=True)
    assert result["benchmark"] == "engine" and result["sizes"]["hidden"] == [4, 5]
    for mode in ("inference", "training"):
        r = result[mode]
        for impl in ("engine", "textbook"):
            assert len(r[impl]["samples_s"]) == 2
            assert 0 < r[impl]["min_s"] <= r[impl]["median_s"]
            assert r[impl]["gflops"] > 0 and r[impl]["roofline_fraction"] > 0 and r[impl]["roofline_fraction_cpu"] > 0
        assert r["speedup"] > 0 and r["speedup_cpu"] > 0
        assert r["roofline"]["best_format"] in ("nchw", "channels_last") and r["roofline"]["gflops"] > 0
        plans = {"fused, batched inputs, channels_last", "fused, batched inputs, nchw", "fused, per-step inputs, nchw",
                 "autograd, per-step inputs, nchw"}
        assert set(result["variants"][mode]) == plans
    memory = result["memory"]
    assert "profiler" in memory["method"]
    # Deterministic, unlike times: the engine needs less than the textbook, checkpointing less again.
    assert 0 < memory["engine checkpoint_time_bytes"] < memory["engine_bytes"] <= memory["textbook_bytes"]


def test_cli_bench_engine_json(capsys):
    assert main(["bench", "engine", "--json", "--device", "cpu", *TINY]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"machine", "sizes", "plan", "inference", "training", "memory"} <= set(result)
    assert {"date", "cpu", "cores", "torch", "load_average_1m_end"} <= set(result["machine"])


def test_cli_bench_prints_a_table(capsys):
    assert main(["bench", "engine", "--device", "cpu", *TINY]) == 0
    out = capsys.readouterr().out
    assert "textbook" in out and "roofline" in out and "speed-up" in out and "GFLOP/s" in out


def test_cli_bench_usage_errors_are_one_line(capsys):
    assert main(["bench", "engine", "--kernel", "2", *TINY]) == 2
    assert main(["bench", "engine", "--dtype", "fp8"]) == 2
    if not torch.cuda.is_available():
        assert main(["bench", "engine", "--device", "cuda", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("framegru: error:") for line in err)


def test_bench_decode_counts_frames_with_every_decoder(tmp_path):
    video = ramp_video(tmp_path / "ramp.mp4", frames=12, size=16)
    result = bench_decode(video, repeats=1, threads=1)
    assert result["frames"] == 12
    assert {"pyav (rgb24 arrays)", "opencv (bgr arrays)", "framegru reader (threaded pyav)"} <= set(result["decoders"])
    assert all(e["fps"] > 0 for e in result["decoders"].values())
    if shutil.which("ffmpeg"):
        assert "ffmpeg cli (decode only, -f null)" in result["decoders"]
    else:
        assert "not on PATH" in result["notes"]["ffmpeg cli"]


def test_cli_bench_decode_missing_video_is_a_data_error(tmp_path, capsys):
    assert main(["bench", "decode", "--video", str(tmp_path / "nope.mp4")]) == 1
    assert "video not found" in capsys.readouterr().err


@pytest.mark.skipif(not (DATA / "MNIST" / "raw").is_dir(), reason="needs MNIST under FRAMEGRU_DATA")
def test_bench_train_reports_speed_and_memory(monkeypatch):
    monkeypatch.setenv("FRAMEGRU_DATA", str(DATA))
    config = Path(__file__).resolve().parents[2] / "configs" / "moving_mnist.yaml"
    overrides = ["train.batch_size=2", "data.reader.frames=4", "data.reader.context=2", "model.engine.hidden=[4]",
                 "model.head.width=8"]
    result = bench_train(config, overrides, torch.device("cpu"), steps=1, repeats=1)
    assert set(result["models"]) == {"engine", "engine checkpoint_time"}
    for entry in result["models"].values():
        assert entry["sequences_per_s"] > 0 and entry["peak_step_mib"] > 0
    assert result["batch"] == 2 and result["frames"] == 4 and result["parameters"] > 0


def test_interleaved_rotates_the_order_and_times_every_run():
    calls = []
    times = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: (len(v.wall), len(v.cpu)) for k, v in times.items()} == {"a": (3, 3), "b": (3, 3)}
    assert all(w >= 0 and c >= 0 for v in times.values() for w, c in zip(v.wall, v.cpu))


def test_paired_ratio_is_the_median_of_per_repetition_ratios():
    assert timing.paired_ratio([2.0, 10.0, 3.0], [1.0, 1.0, 3.0]) == 2.0


def test_cpu_peak_bytes_sees_a_temporary_allocation():
    def work():
        big = torch.ones(1000, 1000)  # 4 MB, freed before the end
        return float(big.sum())

    assert timing.cpu_peak_bytes(work) >= 4_000_000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_engine_on_cuda_in_bf16():
    s = EngineSizes(batch=2, time=3, channels=3, height=8, width=8, hidden=[8], kernel=3, dtype="bf16")
    result = bench_engine(s, torch.device("cuda"), repeats=1, warmup=1)
    assert "gpu" in result["machine"] and "max_memory_allocated" in result["memory"]["method"]
    assert result["training"]["engine"]["gflops"] > 0
