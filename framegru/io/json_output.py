"""JSON that every parser reads: a NaN or an infinity (a diverged metric, the PSNR of a perfect frame)
becomes ``null``, never Python's ``NaN``/``Infinity``, which are not JSON; and every string is valid
Unicode. A file name that is not UTF-8 reaches Python with each undecodable byte as a lone surrogate
(``os.fsdecode``), which most JSON readers reject: such a byte is written as the four characters
``\\xNN`` instead (Python's ``backslashreplace``), so ``caf\\xe9.png`` names the Latin-1 file
``café.png``. Commands say where they did it (``classify-still``: ``"image_escaped": true``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def escaped(text: str) -> str:
    """``text`` with each byte that was not UTF-8 (a lone surrogate from ``os.fsdecode``) as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte made (U+D800 to U+DC7F): its code point, \ud800
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def needs_escaping(text: str) -> bool:
    """Whether :func:`escaped` changes ``text``: it holds bytes that were not UTF-8."""
    return escaped(text) != text


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None and every string :func:`escaped`, however
    deeply nested."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, dict):
        return {escaped(key) if isinstance(key, str) else key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """One line of strict JSON (``allow_nan=False`` guards what :func:`finite` would miss)."""
    return json.dumps(finite(value), allow_nan=False)
