"""Files written whole or not at all, and the cache folder (framegru/io/files.py, public as
``framegru.atomic_output`` and ``framegru.cache_folder``)."""

from __future__ import annotations

import pytest

import framegru
from framegru.io import files


def test_the_cache_folder_is_framegru_cache_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRAMEGRU_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert framegru.cache_folder() == tmp_path / "home" / ".cache" / "framegru"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert framegru.cache_folder() == tmp_path / "xdg" / "framegru"
    monkeypatch.setenv("FRAMEGRU_CACHE", str(tmp_path / "mine"))
    assert framegru.cache_folder() == tmp_path / "mine"


def test_an_atomic_output_replaces_the_file_whole_with_the_umasks_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_UMASK", 0o027)
    target = tmp_path / "deep" / "out.txt"
    with framegru.atomic_output(target) as temporary:
        assert temporary.parent == target.parent and not target.exists()
        temporary.write_text("new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_atomic_output_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), framegru.atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target] and files.unfinished_writes(tmp_path) == []


def test_unfinished_writes_are_the_temporaries_a_kill_left(tmp_path):
    left = tmp_path / f".best.safetensors.abc123{files.TEMP_SUFFIX}"
    left.write_bytes(b"")
    (tmp_path / "best.safetensors").write_bytes(b"")
    assert files.unfinished_writes(tmp_path) == [left]
    assert files.unfinished_writes(tmp_path, "*.safetensors") == [left]
    assert files.unfinished_writes(tmp_path, "*.png") == []
