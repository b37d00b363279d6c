"""What a reader tells the rest of framegru about its data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


MAX_FRAME_PIXELS = 1 << 26  # 8192 x 8192: far beyond any model's input, far below what would exhaust memory


@dataclass(frozen=True)
class DataInfo:
    """Shape and meaning of a reader's items.

    Args:
        channels: image channels ``C`` (1 gray, 3 RGB).
        height: frame height ``H`` in pixels.
        width: frame width ``W`` in pixels.
        classes: class names for classification data, index = label.
        context: for next-frame prediction, frames the model sees before it predicts.
        future: for next-frame prediction, frames it predicts from its own outputs.
        still: items are still images (``"image"``), run as row sequences; else videos (``"video"``).
    """

    channels: int
    height: int
    width: int
    classes: list[str] | None = field(default=None)
    context: int | None = None
    future: int | None = None
    still: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataInfo":
        """The inverse of :meth:`to_dict`, checked, since it comes from a file (a checkpoint).

        Raises:
            TypeError: unknown keys.
            ValueError: a frame size that is not positive integers, or absurd.
        """
        info = cls(**data)
        sides = (info.channels, info.height, info.width)
        if not all(type(v) is int and v > 0 for v in sides) or info.height * info.width > MAX_FRAME_PIXELS:
            raise ValueError(f"implausible frame size {sides} (CxHxW)")
        return info


def missing_data(what: str, where: Path, how: str) -> str:
    """The one line said when a data set is absent and cannot be downloaded."""
    return f"{what} not found under {where} and it could not be downloaded: {how}"
