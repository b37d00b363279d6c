"""The wheel works anywhere: built with ``python -m build``, installed into a fresh environment, and used
from an empty folder, with the shipped configs and checkpoints it carries."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (REPO / "samples" / "checkpoints").iterdir() if p.suffix in (".safetensors", ".yaml"))
CONFIGS = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs the `build` package")]


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # No isolation: the build needs no network; this interpreter's setuptools builds it.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", str(out),
                    str(REPO)], check=True, capture_output=True, cwd=REPO)
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


@pytest.fixture(scope="module")
def venv(tmp_path_factory, dists) -> Path:
    """A fresh venv holding the wheel only; torch and the other dependencies come from this interpreter's
    site-packages (named in a .pth file), never framegru itself."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next((root / "lib").glob("python*/site-packages"))
    # Named as plain paths, their .pth files are not run: an editable framegru there stays out of reach, and
    # the venv's own site-packages (the wheel's framegru) comes first on sys.path.
    outer = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "_outer.pth").write_text("".join(f"{p}\n" for p in outer))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", str(dists["wheel"])], check=True, capture_output=True)
    return root


def run_in(venv: Path, folder: Path, *args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **({"FRAMEGRU_DATA": str(data)} if data else {}))
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_sdist_and_the_wheel_carry_the_shipped_files(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert {f"framegru/_shipped/configs/{n}" for n in CONFIGS} <= names
    assert {f"framegru/_shipped/samples/checkpoints/{n}" for n in SHIPPED} <= names
    with tarfile.open(dists["sdist"]) as sdist:
        inside = {Path(*Path(n).parts[1:]).as_posix() for n in sdist.getnames()}
    assert {f"configs/{n}" for n in CONFIGS} | {f"samples/checkpoints/{n}" for n in SHIPPED} <= inside


def test_the_installed_wheel_works_from_an_empty_folder(venv, tmp_path):
    from framegru_plugins.readers.torchvision_datasets import CIFAR10_CLASSES

    here = tmp_path / "empty"
    here.mkdir()
    where = run_in(venv, here, "python", "-c", "import framegru; print(framegru.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    still = run_in(venv, here, "framegru", "classify-still", str(REPO / "samples" / "cifar.png"), "--json")
    assert still.returncode == 0, still.stderr
    answer = json.loads(still.stdout.splitlines()[-1])
    assert answer["label"] in CIFAR10_CLASSES and 0 < answer["prob"] <= 1 and len(answer["topk"]) == 5

    clip = run_in(venv, here, "framegru", "predict", str(REPO / "samples" / "moving_digits.mp4"), "--out", "p.mp4",
                  "--max-frames", "6", "--json")
    assert clip.returncode == 0, clip.stderr
    assert json.loads(clip.stdout.splitlines()[-1])["frames"] == 6 and (here / "p.mp4").stat().st_size > 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert (here / "p.mp4").stat().st_mode & 0o777 == 0o666 & ~umask

    config = run_in(venv, here, "framegru", "config", "moving_mnist")
    assert config.returncode == 0 and "name: moving_mnist" in config.stdout, config.stderr


def test_a_two_step_run_of_a_shipped_config_by_name(venv, tmp_path, data_root):
    here = tmp_path / "empty"
    here.mkdir()
    tiny = ["train.max_steps=2", "train.batch_size=2", "train.eval_every=2", "train.eval_batches=1",
            "model.engine.hidden=[8]", "model.head.width=8", "data.num_workers=0", "run.pictures=0",
            "run.tensorboard=false", "run.dir=run", "train.device=cpu"]
    done = run_in(venv, here, "framegru", "run", "moving_mnist", *tiny, data=data_root)
    assert done.returncode == 0, done.stderr
    metrics = [json.loads(line) for line in (here / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 2 and metrics[-1]["mse"] > 0
    assert (here / "run" / "best.safetensors").is_file()
