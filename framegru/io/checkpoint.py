"""Checkpoints: safetensors only, written atomically, with the resolved config in the metadata.

Nothing from a user's disk is ever unpickled. A checkpoint holds the model's weights under their
``state_dict`` names; a training checkpoint (``last``) adds the optimizer state under the
``train_state/`` prefix, so ``--resume`` needs no pickle either.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

from ..errors import DataError, unreadable
from . import files, shipped

FORMAT = "framegru-1"
TRAIN_PREFIX = "train_state/"
MAX_HEADER_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 1024 * 1024  # what is read of a file to tell safetensors, pickle and garbage apart


@dataclass
class Checkpoint:
    """What a checkpoint file holds."""

    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: dict[str, Any]
    step: int
    train_state: dict[str, torch.Tensor]
    extra: dict[str, Any]


def write_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file through :func:`framegru.io.files.atomic_output`.

    Serialized in memory, then written by framegru into its own temporary file: safetensors' ``save_file``
    makes a ``.tmpXXXXXX`` of its own, which a kill in mid-write left behind under a name no clean-up knew.
    """
    data = serialize({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    with files.atomic_output(path) as tmp:
        write_bytes(tmp, data)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` (a full disk raises OSError, ENOSPC)."""
    with open(path, "wb") as f:
        f.write(data)


def unfinished_writes(folder: Path) -> list[Path]:
    """The temporary files :func:`write_atomic` left in ``folder`` when killed before its rename."""
    return files.unfinished_writes(folder, "*.safetensors")


def save(
    path: str | Path,
    weights: dict[str, torch.Tensor],
    *,
    config: dict[str, Any],
    info: dict[str, Any],
    step: int,
    train_state: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save weights (and optionally training state) with the config that rebuilds the model."""
    tensors = dict(weights)
    tensors.update({TRAIN_PREFIX + k: v for k, v in (train_state or {}).items()})
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config),
        "info": json.dumps(info),
        "step": str(step),
        "extra": json.dumps(extra or {}),
    }
    write_atomic(Path(path), tensors, metadata)


def _is_safetensors_header(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` opens like safetensors: a little-endian
    header length that fits the file and the size cap, then a JSON object."""
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return header_len <= MAX_HEADER_BYTES and 8 + header_len <= size and head[8:9] == b"{"


def _is_pickle(head: bytes, size: int) -> bool:
    """Whether a file starting with ``head`` is a pickle or a ``torch.save`` zip, judged without unpickling.

    ``pickletools.genops`` only names the opcodes, it runs none. A pickle reaches STOP, or runs out of
    sample only because the file goes on beyond it; random bytes meet an unknown opcode within a few bytes.
    """
    if head.startswith(b"PK\x03\x04"):
        return True
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(io.BytesIO(head)))
    except ValueError as exc:
        return len(head) < size and "unknown" not in str(exc)


def _check_header(path: Path) -> None:
    """Refuse anything that is not a sane safetensors file before the parser sees it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise unreadable(exc, "checkpoint", path) from None
    # Sniff safetensors first: a valid header length may well begin with a pickle's 0x80 or a zip's "PK".
    if _is_safetensors_header(head, size):
        return
    if _is_pickle(head, size):
        raise DataError(
            f"{path} is a pickle / torch.save file; framegru never unpickles files (they can run code): "
            "use a safetensors checkpoint written by framegru"
        )
    if size < 9:
        raise DataError(f"{path} is not a checkpoint ({size} bytes): use a safetensors checkpoint written by framegru")
    raise DataError(f"{path} is not a valid safetensors checkpoint (corrupt or truncated header): "
                    "use an intact checkpoint written by framegru")


def _json_object(metadata: dict[str, str], key: str, default: str | None = None) -> dict[str, Any]:
    value = json.loads(metadata[key] if default is None else metadata.get(key, default))
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' is {type(value).__name__}, not an object")
    return value


def _check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A NaN or infinity in a checkpoint (a damaged file, an edited one) would only give garbage out."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DataError(f"{path} holds NaN or infinite values in tensor '{name}' (a damaged or edited "
                            "checkpoint): use an intact checkpoint written by framegru")


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a framegru checkpoint; any problem with the file is a :class:`DataError`.

    A relative ``samples/checkpoints/...`` path that the current folder lacks is the shipped checkpoint
    (:func:`framegru.io.shipped.resolve`), so configs and commands that name one work from any folder.
    """
    path = shipped.resolve(path)
    _check_header(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path} is not a valid safetensors checkpoint ({reason}): "
                        "use an intact checkpoint written by framegru") from None
    _check_finite(path, tensors)
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path} is a safetensors file but not a framegru checkpoint (no framegru config inside): "
                        "use a checkpoint written by framegru run")
    try:
        config = _json_object(metadata, "config")
        info = _json_object(metadata, "info")
        extra = _json_object(metadata, "extra", "{}")
        step = int(metadata.get("step", 0))
    except (KeyError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: damaged framegru metadata ({exc}): use an intact checkpoint written by framegru") from None
    weights = {k: v for k, v in tensors.items() if not k.startswith(TRAIN_PREFIX)}
    train_state = {k[len(TRAIN_PREFIX):]: v for k, v in tensors.items() if k.startswith(TRAIN_PREFIX)}
    return Checkpoint(weights, config, info, step, train_state, extra)
