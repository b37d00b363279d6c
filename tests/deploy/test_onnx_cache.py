"""The ONNX export cached beside its checkpoint: reused, renewed when anything it is made of changes,
and never in the way (a read-only folder, a damaged file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.video_data import tiny_checkpoint

from framegru.deploy import export, onnx_cache
from framegru.deploy.backends import OnnxModel
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.onnx"))


def assert_steps_like_torch(model, onnx_model) -> None:
    frame = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        expected, _ = model.predict_next(frame, None)
    got, _ = onnx_model.predict_next(frame, None)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def refuse_export(*args, **kwargs):
    raise AssertionError("exported again instead of reading the cache")


def test_the_export_is_cached_beside_the_checkpoint_and_reused(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", contrast=20.0)
    model = load_model(ckpt, load_components())
    OnnxModel(model, "step", threads=1)
    [cached] = cache_files(tmp_path)
    assert cached.name.startswith(".tiny.safetensors.") and cached.name.endswith(".step.onnx")
    monkeypatch.setattr(export, "onnx_bytes", refuse_export)
    assert_steps_like_torch(model, OnnxModel(model, "step", threads=1))


def test_a_changed_checkpoint_gets_a_fresh_export_and_the_old_one_goes(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", contrast=20.0)
    OnnxModel(load_model(ckpt, load_components()), "step", threads=1)
    [first] = cache_files(tmp_path)
    tiny_checkpoint(ckpt, contrast=5.0)  # retrained, say: other weights under the same name
    model = load_model(ckpt, load_components())
    assert_steps_like_torch(model, OnnxModel(model, "step", threads=1))
    [second] = cache_files(tmp_path)
    assert second != first


def test_an_edited_component_source_changes_the_key(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    model = load_model(ckpt, load_components())
    plugin = tmp_path / "plugin.py"
    plugin.write_text("# version 1\n")
    sources = onnx_cache._sources(model)
    assert any(p.name == "convgru.py" for p in sources) and any(p.name == "next_frame.py" for p in sources)
    monkeypatch.setattr(onnx_cache, "_sources", lambda m: [*sources, plugin])
    before = onnx_cache.cache_key(model, "step", ckpt)
    plugin.write_text("# version 2\n")
    assert onnx_cache.cache_key(model, "step", ckpt) != before


def test_a_folder_that_cannot_be_written_keeps_the_export_in_memory(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", contrast=20.0)
    model = load_model(ckpt, load_components())

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(onnx_cache, "atomic_output", read_only)
    assert_steps_like_torch(model, OnnxModel(model, "step", threads=1))
    assert cache_files(tmp_path) == []


def test_a_damaged_cache_file_is_replaced_by_a_fresh_export(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", contrast=20.0)
    model = load_model(ckpt, load_components())
    OnnxModel(model, "step", threads=1)
    [cached] = cache_files(tmp_path)
    cached.write_bytes(cached.read_bytes()[:100])  # truncated by something outside framegru
    assert_steps_like_torch(model, OnnxModel(model, "step", threads=1))
    assert not cached.exists()
