"""The line ``framegru run`` and ``framegru eval`` say before PyTorch loads: when, what it says, and when not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.forked_cli import START_LINE
from tests.still_data import tiny_rows_config, write_config

from framegru.cli import start_line

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = "then the config, the data and the model"


@pytest.fixture
def cold(monkeypatch, tmp_path):
    """This process as a fresh one: PyTorch not loaded, rank 0, an empty start-up cache."""
    monkeypatch.delitem(sys.modules, "torch")  # put back after the test; nothing here imports it
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def said(capfd, argv: list[str]) -> str:
    start_line.announce(argv)
    captured = capfd.readouterr()
    assert captured.out == ""
    return captured.err


def test_a_run_says_what_it_loads_and_then_how_long_it_took(cold, capfd):
    assert said(capfd, ["run", "moving_mnist", "train.max_steps=1", "--json"]) == (
        f"framegru run moving_mnist: loading PyTorch and the plugins, {SHIPPED}\n")
    start_line.remember(time.perf_counter() - 2.5)  # a start-up that took 2.5 s
    assert 2.5 <= start_line.last_start() < 60
    again = said(capfd, ["--plugin", "x.py", "run", "moving_mnist", "--resume"])
    assert START_LINE.match(again) and " last time), " in again, again
    assert [p.name for p in (cold / "cache" / "framegru").iterdir()] == ["start_seconds"]  # no temporary left


def test_eval_of_a_checkpoint_or_of_a_config_with_one(cold, capfd):
    (cold / "c.yaml").write_text("seed: 0\n")
    (cold / "m.safetensors").write_bytes(b"x")
    assert said(capfd, ["eval", "m.safetensors", "--json"]).startswith("framegru eval m.safetensors: loading PyTorch")
    assert said(capfd, ["eval", "c.yaml", "--checkpoint=m.safetensors", "--data", "d.npy"]).startswith(
        "framegru eval c.yaml: loading PyTorch")


@pytest.mark.parametrize("argv", [
    ["run", "nope.yaml"],                                # the config is missing: its error alone
    ["run", "."],                                        # a folder
    ["run", "moving_mnist", "--help"],
    ["-h", "run", "moving_mnist"],
    ["run", "moving_mnist", "--bogus"],
    ["run", "moving_mnist", "--res"],                    # an abbreviation: argparse's to read
    ["run", "moving_mnist", "train.max_steps"],          # not an override
    ["run", "moving_mnist", "--resume", "--overwrite"],
    ["run"],
    ["eval", "moving_mnist"],                            # a config needs --checkpoint
    ["eval", "moving_mnist", "--checkpoint", "nope.safetensors"],
    ["eval", "moving_mnist", "--checkpoint"],
    ["plugins", "--json"],                               # no long start-up to announce
    ["config", "moving_mnist"],
    [],
])
def test_no_start_line_where_the_command_line_has_a_problem_or_is_quick(cold, capfd, argv):
    assert said(capfd, argv) == ""


def test_no_start_line_from_other_ranks_or_with_pytorch_loaded(cold, capfd, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert said(capfd, ["run", "moving_mnist"]) == ""
    monkeypatch.setenv("RANK", "0")
    assert said(capfd, ["run", "moving_mnist"]) != ""
    monkeypatch.setitem(sys.modules, "torch", os)  # main() called in a process that has PyTorch: quick
    assert said(capfd, ["run", "moving_mnist"]) == ""


@pytest.mark.parametrize("cached", [b"", b"soon\n", b"nan", b"-3", b"1e9", b"\xff\xfe"])
def test_a_corrupt_cache_is_no_duration(cold, capfd, cached):
    (cold / "cache" / "framegru").mkdir(parents=True)
    (cold / "cache" / "framegru" / "start_seconds").write_bytes(cached)
    assert start_line.last_start() is None
    assert said(capfd, ["run", "moving_mnist"]) == f"framegru run moving_mnist: loading PyTorch and the plugins, {SHIPPED}\n"


def test_a_cache_that_cannot_be_written_is_no_error(cold):
    (cold / "cache").write_text("a file where the folder would go")
    start_line.remember(time.perf_counter() - 2.5)
    assert start_line.last_start() is None


@pytest.mark.integration
def test_the_cli_imports_neither_torch_nor_the_media_libraries():
    code = ("import sys, framegru.cli.app; heavy = ('torch', 'av', 'cv2', 'onnxruntime', 'pydantic'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == ""


def framegru(*args, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    return subprocess.run([sys.executable, "-m", "framegru", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.integration
def test_a_real_run_and_eval_say_it_first_and_leave_json_stdout_alone(tmp_path, still_tree):
    config = write_config(tmp_path / "tiny.yaml", tiny_rows_config(still_tree, tmp_path / "run", max_steps=2))
    cache = tmp_path / "cache"
    run = framegru("run", config, "--json", cwd=tmp_path, cache=cache)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == f"framegru run {config}: loading PyTorch and the plugins, {SHIPPED}"
    assert len(run.stdout.splitlines()) == 1 and "accuracy" in json.loads(run.stdout)  # the metrics alone
    evaluated = framegru("eval", tmp_path / "run" / "last.safetensors", "--json", cwd=tmp_path, cache=cache)
    assert evaluated.returncode == 0, evaluated.stderr
    first = evaluated.stderr.splitlines()[0]
    assert START_LINE.match(first) and first.endswith("last time), then the checkpoint and the data"), first
    assert len(evaluated.stdout.splitlines()) == 1 and "accuracy" in json.loads(evaluated.stdout)
