"""Run events: the runner reports progress here; the terminal UI is one listener among others."""

from __future__ import annotations

from typing import Any


class RunEvents:
    """Receives what happens during a run. The base class ignores everything (tests, non-zero ranks)."""

    def start(self, runner: Any, start_step: int) -> None: ...

    def step(self, step: int, loss: float, lr: float, batch_size: int) -> None: ...

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self) -> None: ...
