"""JSON that every parser reads: a NaN or an infinity (a diverged metric, the PSNR of a perfect frame)
becomes ``null``, never Python's ``NaN``/``Infinity``, which are not JSON."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float, however deeply nested, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """One line of strict JSON (``allow_nan=False`` guards what :func:`finite` would miss)."""
    return json.dumps(finite(value), allow_nan=False)
