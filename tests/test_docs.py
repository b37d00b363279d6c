"""The documentation: the README's length and its commands, the site's strict build, the generated config
reference, and the plugin guide's example files.

Every shell command in the README's code blocks is in :data:`README_COMMANDS`, which says how a test runs
it; a command added to the README without an entry there fails :func:`test_every_readme_command_is_registered`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "docs" / "examples"
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class Exercise:
    """How a test runs one README command.

    Args:
        extra: arguments appended to keep it cheap (a step count for a 55-minute training, say).
        instead: the command run in its place, where the README's needs a camera.
        replace: placeholders of the README's command and what the test puts there (``DIR`` -> a tree).
        by: where it runs instead of here: ``.ci/run`` (checked to hold it) or a test of this file.
        not_run: why no test can run it (the network); kept to the one install line.
        expect: a text its output must contain.
        after: the README command whose outputs it reads, run first where they are missing.
        in_checkout: it runs from the repository's root (the tests), not from a user's folder.
    """

    extra: tuple[str, ...] = ()
    instead: str | None = None
    replace: dict[str, str] = field(default_factory=dict)
    by: str | None = None
    not_run: str | None = None
    expect: str | None = None
    after: str | None = None
    in_checkout: bool = False


CHEAP_MOVING_MNIST = ("train.max_steps=2", "train.eval_every=2", "train.eval_batches=1", "run.pictures=1")
CHEAP_STILLS = ("train.max_steps=2", "train.eval_every=2", "train.batch_size=8", "train.eval_batches=1",
                "data.num_workers=0")

README_COMMANDS: dict[str, Exercise] = {
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu":
        Exercise(not_run="downloads PyTorch: tests need no network"),
    "pip install -e '.[dev]'": Exercise(by=".ci/run"),
    "framegru run configs/moving_mnist.yaml": Exercise(extra=CHEAP_MOVING_MNIST, expect="ConvGRU"),
    "python -m pytest -q": Exercise(by=".ci/run"),
    "framegru run configs/moving_mnist.yaml train.time_budget_minutes=5 run.dir=runs/quick":  # a 3-second budget
        Exercise(replace={"time_budget_minutes=5": "time_budget_minutes=0.05"},
                 extra=("train.eval_batches=1", "run.pictures=1"), expect="train.time_budget_minutes=0.05:"),
    'python -m pytest -m "not integration" -q': Exercise(extra=("--collect-only",), expect="tests collected",
                                                          in_checkout=True),
    "framegru predict samples/moving_digits.mp4 --out prediction.mp4 --json": Exercise(expect='"frames"'),
    "framegru classify-still samples/cifar.png": Exercise(expect="%"),
    "framegru webcam --source samples/moving_digits.mp4 --no-window --out annotated.mp4 --max-frames 60":
        Exercise(),
    "framegru run configs/cifar10_rows.yaml data.reader.name=image_folder data.reader.path=DIR run.dir=runs/mine":
        Exercise(replace={"DIR": "photos"}, extra=CHEAP_STILLS),
    "framegru eval runs/mine/config.yaml --checkpoint runs/mine/best.safetensors --json":
        Exercise(expect='"accuracy"', after="framegru run configs/cifar10_rows.yaml data.reader.name=image_folder "
                                            "data.reader.path=DIR run.dir=runs/mine"),
    "framegru plugins --plugin docs/examples/my_task.py": Exercise(expect="square_speed"),
    "framegru run docs/examples/my_task.yaml": Exercise(extra=("train.max_steps=10", "train.eval_every=5")),
    "framegru export samples/checkpoints/moving_mnist.safetensors --out moving_mnist.onnx": Exercise(),
    "python -m mkdocs build --strict": Exercise(by="test_the_site_builds_strictly"),
}
# The README's prose names `framegru webcam` (camera 0); a test runs it from a file as its code block does.


def shell_commands(markdown: str) -> list[str]:
    """Each shell command in ``markdown``'s bash code blocks: continuations joined, comments dropped, and
    ``a && b`` split into its commands."""
    commands = []
    for block in re.findall(r"```(\w+)\n(.*?)```", markdown, flags=re.S):
        language, body = block
        if language not in SHELL_LANGUAGES:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands += [" ".join(part.split()) for part in line.split("&&")]
    return commands


def test_readme_is_a_front_page_of_at_most_200_lines():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "download.pytorch.org/whl/cpu" in text  # a machine without a GPU gets PyTorch's CPU-only wheels


def test_the_readmes_links_lead_to_files_of_the_repository():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert "docs/plugins.md" in local and "BENCHMARKS.md" in local
    assert [link for link in local if not (ROOT / link).is_file()] == []


def test_shell_commands_are_split_and_stripped_of_comments():
    text = "```bash\npip install x && framegru run a.yaml   # the job\n# a note\nframegru b \\\n  --c d\n```\n"
    assert shell_commands(text) == ["pip install x", "framegru run a.yaml", "framegru b --c d"]
    assert shell_commands("```python\nimport torch\n```\n") == []


def test_every_readme_command_is_registered():
    found = shell_commands(README.read_text())
    missing = [c for c in found if c not in README_COMMANDS]
    assert not missing, f"README commands no test runs (add them to README_COMMANDS): {missing}"
    stale = [c for c in README_COMMANDS if c not in found]
    assert not stale, f"README_COMMANDS entries the README no longer has: {stale}"


def test_the_ci_runs_the_readmes_install_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [" ".join(line.split()).replace("pip install -q ", "pip install ") for line in ci.splitlines()]
    assert "pip install -e '.[dev]' && python -m pytest -q" in lines


def test_only_the_pytorch_download_is_not_run():
    assert [c for c, e in README_COMMANDS.items() if e.not_run] == [
        "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"]


def _photos(folder: Path) -> None:
    """Three classes of 40 small photos each: flat colours with noise, one colour per class."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for label, colour in enumerate([(220, 40, 40), (40, 200, 60), (50, 60, 230)]):
        (folder / f"class_{label}").mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(np.array(colour) + generator.normal(0, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class_{label}" / f"{i}.png")


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory, data_root) -> Path:
    """A folder where the README's commands run as a user types them: the repository's configs, samples
    and docs beside them, the data root set."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("configs", "samples", "docs"):
        (folder / name).symlink_to(ROOT / name)
    _photos(folder / "photos")
    return folder


def _argv(command: str, exercise: Exercise) -> list[str]:
    command = exercise.instead or command
    for placeholder, value in exercise.replace.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command) + list(exercise.extra)
    if argv[0] == "framegru":
        return [sys.executable, "-m", "framegru", *argv[1:]]
    assert argv[0] == "python", command
    return [sys.executable, *argv[1:]]


RUN_HERE = [c for c, e in README_COMMANDS.items() if not (e.by or e.not_run)]


def _run(command: str, folder: Path, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FRAMEGRU_DATA": str(data), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    exercise = README_COMMANDS[command]
    return subprocess.run(_argv(command, exercise), cwd=ROOT if exercise.in_checkout else folder,
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.integration
@pytest.mark.parametrize("command", RUN_HERE, ids=RUN_HERE)
def test_readme_command_runs(command, user_folder, data_root):
    """Each README command, run as written (with its cheap overrides) from a user's folder, exits 0."""
    exercise = README_COMMANDS[command]
    argv = shlex.split(command)
    needs = user_folder / argv[argv.index("--checkpoint") + 1] if "--checkpoint" in argv else None
    if exercise.after and not needs.exists():
        assert _run(exercise.after, user_folder, data_root).returncode == 0
    result = _run(command, user_folder, data_root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command}\n{output[-3000:]}"
    assert exercise.expect is None or exercise.expect in output, output[-3000:]


# -- the site --------------------------------------------------------------------------------------
@pytest.mark.integration
def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict`` (the README's command) into a temporary folder, with no warning at all."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
    config_page = (tmp_path / "site" / "config" / "index.html").read_text()
    assert "train.larger_batch.min_steps" in config_page and "<!-- config-reference -->" not in config_page
    assert "val_fraction" in config_page and "<!-- component-options -->" not in config_page  # readers' options
    plugin_page = (tmp_path / "site" / "plugins" / "index.html").read_text()
    assert "SquareSpeed" in plugin_page and "--8&lt;--" not in plugin_page  # the example file, not the marker
    import framegru.hookspecs

    hooks = [name for name in vars(framegru.hookspecs) if name.startswith("framegru_")]
    assert len(hooks) >= 12
    assert [hook for hook in hooks if f'id="framegru.hookspecs.{hook}"' not in plugin_page] == []  # every hook


def _reference_module():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema_keys(schema: dict, node: dict, prefix: str = "") -> dict[str, str | None]:
    """Every dotted key of a pydantic JSON schema with its description, sections followed through ``$ref``."""
    keys = {}
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        keys[key] = prop.get("description")
        refs = [prop] + prop.get("anyOf", [])
        for ref in (r["$ref"] for r in refs if "$ref" in r):
            section = schema["$defs"][ref.split("/")[-1]]
            if section.get("additionalProperties") is False:  # a section of fixed keys, not a component
                keys.update(_schema_keys(schema, section, f"{key}."))
    return keys


def test_the_config_reference_has_every_key_with_type_default_and_description():
    from framegru.config.config import Config

    schema = Config.model_json_schema()
    keys = _schema_keys(schema, schema)
    rows = {row[0]: row[1:] for row in _reference_module().rows(Config)}
    assert set(rows) == set(keys)
    assert {"train.larger_batch.min_steps", "model.engine.input_kernel", "run.tensorboard"} <= set(rows)
    undescribed = [key for key, description in keys.items() if not description]
    assert not undescribed, f"config keys without Field(description=...): {undescribed}"
    for key, (kind, default, description) in rows.items():
        assert kind and default and description, key
    assert rows["train.max_steps"][:2] == ("int", "`1000`")
    assert rows["train.optimizer"][:2] == ("`adamw` \\| `muon`", "`adamw`")
    assert rows["model.head"][1] == "*required*"
    page = _reference_module().reference()
    assert "| `train.time_budget_minutes` | float \\| null | `null` |" in page


# -- the plugin guide's examples -----------------------------------------------------------------------
@pytest.mark.integration
def test_the_checkpoint_command_example_describes_the_shipped_model():
    """The guide's command that loads a checkpoint: the shipped Moving MNIST model, as its page shows."""
    example = EXAMPLES / "my_checkpoint_command.py"
    checkpoint = "samples/checkpoints/moving_mnist.safetensors"
    result = subprocess.run([sys.executable, "-m", "framegru", "describe", checkpoint, "--plugin", str(example)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{checkpoint}: task predict, 688,064 parameters"
    missing = subprocess.run([sys.executable, "-m", "framegru", "describe", "nope.safetensors", "--plugin", str(example)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (missing.returncode, missing.stderr.strip()) == (1, "framegru: error: checkpoint not found: nope.safetensors")



EXAMPLE_COMPONENTS = {
    "my_plugin.py": ("readers", "noise"),
    "my_task.py": ("tasks", "regress"),
    "my_listener.py": ("listeners", "json_log"),
    "my_command.py": ("commands", "count"),
    "my_checkpoint_command.py": ("commands", "describe"),
}


def test_every_example_file_is_on_the_plugin_page():
    page = (ROOT / "docs" / "plugins.md").read_text()
    shown = set(re.findall(r'--8<-- "docs/examples/([\w.]+)"', page))
    assert shown == {p.name for p in EXAMPLES.iterdir()} == set(EXAMPLE_COMPONENTS) | {"my_task.yaml"}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(EXAMPLE_COMPONENTS))
def test_example_plugin_loads_with_framegru_plugin_file_plugins(name):
    """``framegru --plugin FILE plugins --json`` lists what the example registers, from the example's file.
    (tests/cli/test_app.py and tests/model/test_tasks.py train and evaluate with them.)"""
    kind, component = EXAMPLE_COMPONENTS[name]
    result = subprocess.run([sys.executable, "-m", "framegru", "--plugin", str(EXAMPLES / name), "plugins", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    entry = {e["name"]: e for e in listing[kind]}[component]
    assert entry["plugin"] == str(EXAMPLES / name)
