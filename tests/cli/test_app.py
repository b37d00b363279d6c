"""The command line: exit statuses, one-line errors, --debug, plugins listing, run and eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.forked_cli import without_start_line

from framegru.cli.app import main

ROOT = Path(__file__).resolve().parents[2]


def framegru(*args, cwd=None):
    """Run the installed console script as a user would."""
    return subprocess.run([sys.executable, "-m", "framegru", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"}, timeout=300)


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_in_process(capfd, *args, cwd=None, monkeypatch=None):
    """``framegru ARGS`` in this process (faster than a subprocess: torch is imported once)."""
    if cwd is not None:
        monkeypatch.chdir(cwd)
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return Result(code, out, err)


def one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = without_start_line(result.stderr).strip().splitlines()  # a subprocess says what it loads first
    assert len(lines) == 1 and lines[0].startswith("framegru: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


EXAMPLES = ROOT / "docs" / "examples"


def readme_example(name: str = "my_plugin.py", language: str = "python") -> str:
    """The plugin guide's example file ``docs/examples/NAME`` (the page shows the file), which these tests
    execute; ``language`` is kept for callers of the README-block version."""
    return (EXAMPLES / name).read_text()


@pytest.mark.integration
def test_plugins_json_lists_a_users_plugin_beside_builtins(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(readme_example())
    result = framegru("plugins", "--json", "--plugin", plugin)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(listing) == {"readers", "backbones", "heads", "tasks", "listeners", "commands", "disabled",
                            "problems"}
    readers = {r["name"]: r for r in listing["readers"]}
    assert readers["noise"]["plugin"] == str(plugin)
    assert readers["noise"]["doc"]
    assert readers["moving_mnist"]["plugin"] == "moving_mnist"
    assert (readers["noise"]["package"], readers["moving_mnist"]["package"]) == (None, "framegru")
    assert readers["noise"]["options"] == [{"name": "sequences", "type": "int", "default": 16, "required": False}]
    assert readers["moving_mnist"]["version"]
    assert {"progress", "metrics_log", "tensorboard"} <= {e["name"] for e in listing["listeners"]}
    commands = {c["name"]: c for c in listing["commands"]}
    assert {"plugins", "run", "eval", "predict", "bench"} <= set(commands) and commands["run"]["package"] == "framegru"
    assert {"identity", "conv", "resnet"} <= {b["name"] for b in listing["backbones"]}


@pytest.mark.integration
def test_readme_plugin_trains(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(readme_example())
    config = tmp_path / "noise.yaml"
    config.write_text(f"""
plugins: [my_plugin.py]
data: {{reader: noise}}
model: {{engine: {{hidden: 4}}, head: {{name: next_frame, width: 4}}}}
train: {{max_steps: 2, batch_size: 2, eval_every: 2, eval_batches: 1, device: cpu}}
run: {{dir: {tmp_path / 'run'}, pictures: 1}}
""")
    assert main(["run", str(config)]) == 0
    assert (tmp_path / "run" / "last.safetensors").is_file()


NOISE_RUN = """
plugins: [my_plugin.py]
data: {{reader: noise}}
model: {{engine: {{hidden: 4}}, head: {{name: next_frame, width: 4}}}}
train: {{max_steps: 20, batch_size: 2, eval_every: 10, eval_batches: 1, device: cpu}}
run: {{dir: {run}, pictures: 0}}
"""


@pytest.mark.integration
def test_readme_listener_logs_a_run(tmp_path, capfd, monkeypatch):
    for name in ("my_plugin.py", "my_listener.py"):
        (tmp_path / name).write_text(readme_example(name))
    config = tmp_path / "noise.yaml"
    config.write_text(NOISE_RUN.format(run=tmp_path / "run"))
    result = run_in_process(capfd, "run", config, "--plugin", "my_listener.py", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "run" / "my_log.jsonl").read_text().splitlines()]
    assert [(line["step"], sorted(line)) for line in lines] == [
        (10, ["loss", "step"]), (10, ["eval", "step"]), (20, ["loss", "step"]), (20, ["eval", "step"])]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["eval"] for line in lines[1::2]] == logged
    assert lines[2]["loss"] == logged[1]["loss"]  # the step's loss, as the evaluation of that step records it


@pytest.mark.integration
def test_a_failing_listener_is_one_line_naming_its_plugin(tmp_path, capfd, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(readme_example())
    (tmp_path / "flaky.py").write_text(textwrap.dedent('''
        from framegru import hookimpl

        class Flaky:
            def __init__(self, *, run):
                pass

            @hookimpl
            def framegru_run_step(self, step):
                if step == 3:
                    raise ConnectionError("the tracking server went away")

        @hookimpl
        def framegru_register_listeners(register):
            register("flaky", Flaky)
    '''))
    config = tmp_path / "noise.yaml"
    config.write_text(NOISE_RUN.format(run=tmp_path / "run"))
    result = run_in_process(capfd, "run", config, "--plugin", "flaky.py", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    # An OSError of a plugin's is the plugin's, not a write to run.dir that failed.
    assert result.stderr.strip().splitlines()[-1] == (
        f"framegru: error: listener 'flaky' of plugin '{tmp_path / 'flaky.py'}' failed in framegru_run_step: "
        "ConnectionError: the tracking server went away")


@pytest.mark.integration
def test_a_plugin_adds_a_command(tmp_path, capfd, monkeypatch, builtin_components):
    (tmp_path / "my_command.py").write_text(readme_example("my_command.py"))
    result = run_in_process(capfd, "count", "--plugin", "my_command.py", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    readers, backbones = len(builtin_components.readers.names()), len(builtin_components.backbones.names())
    assert result.stdout.strip() == f"{readers} readers, {backbones} backbones"
    with pytest.raises(SystemExit) as exit_:
        main(["--plugin", "my_command.py", "--help"])
    assert exit_.value.code == 0 and "count the registered components" in capfd.readouterr().out
    listing = run_in_process(capfd, "plugins", "--json", "--plugin", "my_command.py")
    commands = {c["name"]: c for c in json.loads(listing.stdout.strip().splitlines()[-1])["commands"]}
    assert commands["count"]["plugin"] == str(tmp_path / "my_command.py") and commands["count"]["package"] is None


@pytest.mark.integration
def test_a_command_added_twice_names_both_plugins(tmp_path, capfd):
    plugin = tmp_path / "clash.py"
    plugin.write_text(textwrap.dedent('''
        from framegru import hookimpl

        @hookimpl
        def framegru_register_commands(subparsers):
            subparsers.add_parser("run")
    '''))
    line = one_line_error(run_in_process(capfd, "plugins", "--plugin", plugin), 2)
    assert line.startswith("framegru: error: command 'run' is added twice: by plugin 'commands' (package framegru ")
    assert line.endswith(f"and by plugin '{plugin}' (rename one, or leave one plugin out)")


@pytest.mark.integration
def test_a_broken_installed_plugin_is_one_line_naming_the_switch(tmp_path, capfd, monkeypatch, builtins_only):
    from tests.plugin_manager.test_host import install_fake_package

    install_fake_package(tmp_path / "site", "acme-broken", "0.1", {"acme_broken": "raise RuntimeError('boom')\n"},
                         {"broken": "acme_broken"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = run_in_process(capfd, "plugins")  # the command that diagnoses it runs, and says it
    assert result.returncode == 0 and "moving_mnist" in result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("switched off by")]
    assert len(lines) == 1 and lines[0].startswith("framegru: warning: plugin 'broken' (package acme-broken 0.1) "
                                                   "failed to import: RuntimeError: boom"), lines
    assert lines[0].endswith("switch it off: FRAMEGRU_DISABLE_PLUGINS=acme-broken)")
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    shown = capfd.readouterr()
    assert "failed to import: RuntimeError: boom" in shown.err and "COMMAND" in shown.out
    result = run_in_process(capfd, "config", ROOT / "configs" / "moving_mnist.yaml")  # needs none of it: runs
    assert result.returncode == 0 and "moving_mnist" in result.stdout and "boom" in result.stderr
    monkeypatch.setenv("FRAMEGRU_DISABLE_PLUGINS", "acme-broken")
    result = run_in_process(capfd, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["disabled"] == ["acme-broken"]


@pytest.mark.integration
def test_plugins_table_shows_packages_and_options():
    result = framegru("plugins")  # 200 columns wide
    assert result.returncode == 0, result.stderr
    for shown in ("package", "options", "0.1.0", "patch", "listeners", "tensorboard", "commands"):  # cells may wrap
        assert shown in result.stdout, shown


@pytest.mark.integration
def test_typo_in_override_exits_2_with_suggestion():
    result = framegru("run", ROOT / "configs" / "moving_mnist.yaml", "train.max_stpes=10")
    line = one_line_error(result, 2)
    assert line.endswith("unknown key 'train.max_stpes' — did you mean 'train.max_steps'?")


@pytest.mark.integration
@pytest.mark.parametrize("args,code,needle", [
    (["run", "nope.yaml"], 2, "config not found: nope.yaml"),
    (["frobnicate"], 2, "invalid choice"),
    (["run"], 2, "the following arguments are required"),
    (["plugins", "--plugin", "missing_plugin_xyz"], 2, "plugin 'missing_plugin_xyz' not found"),
    (["eval", "configs/moving_mnist.yaml", "--checkpoint", "nope.safetensors"], 1, "checkpoint not found"),
])
def test_user_errors_are_one_line(args, code, needle, capfd, monkeypatch):
    line = one_line_error(run_in_process(capfd, *args, cwd=ROOT, monkeypatch=monkeypatch), code)
    assert needle in line


@pytest.mark.integration
def test_unknown_component_in_config(tmp_path, capfd, builtins_only):
    config = tmp_path / "c.yaml"
    config.write_text("data: {reader: moving_mnist}\nmodel: {backbone: resnt, head: next_frame}\n")
    line = one_line_error(run_in_process(capfd, "run", config), 2)
    assert line.endswith("unknown backbone 'resnt' — did you mean 'resnet'? (available: conv, encoder, identity, resnet, vgg, whitened)")


@pytest.mark.integration
def test_debug_shows_the_traceback(capfd):
    result = run_in_process(capfd, "run", "nope.yaml", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_help_lists_commands(capfd):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    result = Result(0, *capfd.readouterr())
    for command in ("plugins", "run", "eval", "classify-still", "predict", "webcam", "bench"):
        assert command in result.stdout


@pytest.mark.integration
def test_eval_json_on_a_npy_file(tmp_path, data_root):
    from framegru_plugins.readers.moving_mnist import MovingMNIST, write_sequences

    config = tmp_path / "mm.yaml"
    config.write_text(f"""
data: {{reader: {{name: moving_mnist, sequences: 4}}, root: {data_root}}}
model: {{backbone: {{name: identity, patch: 4}}, engine: {{hidden: 8}}, head: {{name: next_frame, width: 8}}}}
train: {{max_steps: 1, batch_size: 2, eval_every: 1, device: cpu}}
run: {{dir: {tmp_path / 'run'}, pictures: 0}}
""")
    assert main(["run", str(config)]) == 0
    npy = tmp_path / "seq.npy"
    write_sequences(MovingMNIST(root=data_root, split="test", sequences=3), npy)
    result = framegru("eval", config, "--checkpoint", tmp_path / "run" / "last.safetensors", "--data", npy, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) >= {"mse", "mae", "ssim", "psnr", "sequences"} and metrics["sequences"] == 3
    assert 0 < metrics["mse"] < 64 * 64 and -1 <= metrics["ssim"] <= 1


@pytest.mark.integration
def test_eval_save_predictions_reproduces_the_metrics(tmp_path, data_root):
    """The saved future frames, in the data's order, give back the MSE that eval printed."""
    import numpy as np

    from framegru_plugins.readers.moving_mnist import MovingMNIST, write_sequences

    config = tmp_path / "mm.yaml"
    config.write_text(f"""
data: {{reader: {{name: moving_mnist, sequences: 4}}, root: {data_root}}}
model: {{backbone: {{name: encoder, channels: [4, 8]}}, engine: {{hidden: 8, kernel: 3}}, head: {{name: decoder, width: 8}}}}
train: {{max_steps: 2, batch_size: 2, eval_every: 2, device: cpu}}
run: {{dir: {tmp_path / 'run'}, pictures: 0}}
""")
    assert main(["run", str(config)]) == 0
    npy, out = tmp_path / "seq.npy", tmp_path / "pred.npy"
    write_sequences(MovingMNIST(root=data_root, split="test", sequences=4), npy)
    result = framegru("eval", config, "--checkpoint", tmp_path / "run" / "last.safetensors", "--data", npy,
                      "--save-predictions", out, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    pred = np.load(out)
    assert pred.shape == (4, 10, 1, 64, 64) and pred.dtype == np.float32
    assert 0.0 <= pred.min() and pred.max() <= 1.0
    truth = np.load(npy).transpose(1, 0, 2, 3)[:, 10:, None].astype(np.float64) / 255.0  # [20, N, H, W] layout
    assert abs(((pred - truth) ** 2).sum(axis=(2, 3, 4)).mean() - metrics["mse"]) < 1e-3 * metrics["mse"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.integration
def test_eval_save_predictions_needs_a_npy_name(tmp_path, still_checkpoint):
    result = framegru("eval", still_checkpoint.parent / "config.yaml", "--checkpoint", still_checkpoint,
                      "--save-predictions", tmp_path / "out.txt")
    assert result.returncode == 2 and "must end in .npy" in result.stderr and "Traceback" not in result.stderr


def test_json_output_is_strict_json_without_nan_or_infinity(capsys):
    from framegru.cli.app import print_json

    print_json({"mse": float("nan"), "psnr": float("inf"), "per_class": [1.5, float("-inf")], "label": "up"})
    line = capsys.readouterr().out.strip()
    assert line == '{"mse": null, "psnr": null, "per_class": [1.5, null], "label": "up"}'
    json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
