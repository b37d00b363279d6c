"""Checkpoints: safetensors round trip, atomic writes, refusal of pickles and damaged files."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from framegru.errors import DataError
from framegru.io import checkpoint


def save_small(path, **kw):
    weights = {"a.weight": torch.arange(6.0).view(2, 3), "b": torch.ones(4)}
    checkpoint.save(path, weights, config={"seed": 1}, info={"channels": 1}, step=7, **kw)
    return weights


def test_round_trip_with_train_state(tmp_path):
    path = tmp_path / "c.safetensors"
    weights = save_small(path, train_state={"optim/0/exp_avg": torch.full((2,), 3.0)}, extra={"best": 1.5})
    ckpt = checkpoint.load(path)
    assert ckpt.config == {"seed": 1} and ckpt.info == {"channels": 1} and ckpt.step == 7
    assert ckpt.extra == {"best": 1.5}
    assert set(ckpt.weights) == set(weights)
    torch.testing.assert_close(ckpt.weights["a.weight"], weights["a.weight"])
    torch.testing.assert_close(ckpt.train_state["optim/0/exp_avg"], torch.full((2,), 3.0))
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_small(path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_bytes", disk_full)
    with pytest.raises(OSError):
        save_small(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".ckpt"])
def test_pickles_are_refused_not_loaded(tmp_path, suffix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(DataError, match="never unpickles"):
        checkpoint.load(path)
    torch.save({"x": Payload()}, tmp_path / f"zip{suffix}")
    with pytest.raises(DataError, match="never unpickles"):
        checkpoint.load(tmp_path / f"zip{suffix}")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "huge_header", "garbage", "not_framegru"])
def test_damaged_files_are_data_errors(tmp_path, damage):
    path = tmp_path / "c.safetensors"
    save_small(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "huge_header":
        path.write_bytes((2**62).to_bytes(8, "little") + data[8:])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"{not json at all" + b"\x00" * 8)
    else:
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(DataError):
        checkpoint.load(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        checkpoint.load(tmp_path / "nope.safetensors")
    with pytest.raises(DataError, match="directory"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("header_len", [0x180, 0x4B50])
def test_valid_file_whose_header_length_looks_like_a_pickle_loads(tmp_path, header_len):
    # The 8-byte little-endian header length comes first: 0x180 starts the file with 0x80 (a pickle's
    # first byte), 0x4B50 with "PK" (a zip's). Such files are valid safetensors and must load.
    path = tmp_path / "c.safetensors"

    def save_padded(pad: int) -> int:
        checkpoint.save(path, {"w": torch.ones(2)}, config={"pad": "x" * pad}, info={}, step=3)
        return int.from_bytes(path.read_bytes()[:8], "little")

    base = save_padded(0)  # the header grows a byte per padding character, then rounds up to 8
    assert any(save_padded(pad) == header_len for pad in range(header_len - base - 8, header_len - base + 1))
    assert checkpoint.load(path).step == 3


def test_checkpoints_follow_the_umask(tmp_path, monkeypatch):
    from framegru.io import files

    monkeypatch.setattr(files, "_UMASK", 0o027)  # read once at import
    checkpoint.save(tmp_path / "a.safetensors", {"w": torch.ones(2)}, config={}, info={}, step=0)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o640
