"""A third-party plugin package (tests/fixtures/thirdparty_plugin/, written against ``framegru``'s public
API alone) installed beside framegru: its components are listed, its per-frame regression task trains
and evaluates, and framegru's own unit tests pass with it installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parent
FIXTURE = TESTS / "fixtures" / "thirdparty_plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder where pip installed the fixture package, as it would into a site-packages."""
    work = tmp_path_factory.mktemp("thirdparty")
    source = shutil.copytree(FIXTURE, work / "source", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(work / "site"), str(source)], check=True, timeout=300, capture_output=True)
    return work / "site"


def with_plugin(site: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p),
           "OMP_NUM_THREADS": "1"}
    env.pop("FRAMEGRU_DISABLE_PLUGINS", None)
    return env


def framegru(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framegru", *args], cwd=cwd, env=with_plugin(site),
                          capture_output=True, text=True, timeout=300)


def test_its_components_are_listed_with_its_package(site, tmp_path):
    done = framegru(site, "plugins", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout.strip().splitlines()[-1])
    assert listing["problems"] == []
    for kind, name in (("readers", "dots"), ("heads", "dot_tracker"), ("tasks", "track")):
        entry = {e["name"]: e for e in listing[kind]}[name]
        assert (entry["plugin"], entry["package"], entry["version"]) == ("frametrack", "framegru-frametrack", "0.1.0")


def test_its_per_frame_task_trains_and_evaluates(site, tmp_path):
    shutil.copy(FIXTURE / "frametrack.yaml", tmp_path)
    done = framegru(site, "run", "frametrack.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = json.loads(done.stdout.strip().splitlines()[-1])
    assert trained["step"] == 4 and 0 < trained["rmse"] < 0.5
    best = tmp_path / "runs" / "frametrack" / "best.safetensors"
    done = framegru(site, "eval", "frametrack.yaml", "--checkpoint", str(best), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(scores) == {"rmse", "videos"} and scores["videos"] == 32 and 0 < scores["rmse"] < 0.5
    from framegru.io import checkpoint

    saved = checkpoint.load(best)
    assert saved.extra["components"]["task"]["package"] == "framegru-frametrack"
    assert saved.extra["items"]["target"] == {"shape": [6, 2], "dtype": "float32"}


def test_framegru_unit_tests_pass_with_it_installed(site):
    """The tests over everything registered check its components against its own task's contract."""
    selected = ["model/test_contracts.py", "model/test_tasks.py", "plugin_manager/test_host.py", "cli/test_app.py",
                "cli/test_print_config.py", "plugin_manager/test_plugin_surface.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not integration",
                           *[str(TESTS / name) for name in selected]], cwd=TESTS.parent, env=with_plugin(site),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
