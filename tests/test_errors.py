"""The one-line errors a user can cause."""

from __future__ import annotations

import pytest

from framegru.errors import DataError, UsageError, unreadable


def _raised(open_it) -> OSError:
    with pytest.raises(OSError) as caught:
        open_it()
    return caught.value


def test_unreadable_says_missing_directory_or_the_reason(tmp_path):
    missing = _raised(lambda: open(tmp_path / "none.safetensors", "rb"))
    error = unreadable(missing, "checkpoint", tmp_path / "none.safetensors")
    assert isinstance(error, DataError) and str(error) == f"checkpoint not found: {tmp_path / 'none.safetensors'}"
    folder = _raised(lambda: open(tmp_path, "rb"))
    error = unreadable(folder, "config", tmp_path, UsageError, "a YAML file")
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert str(error) == f"config is a directory, not a YAML file: {tmp_path}"
    denied = PermissionError(13, "Permission denied", "x.png")
    assert str(unreadable(denied, "image", "x.png")) == "cannot read image x.png: Permission denied"
