"""Task ``classify``: one label per video, or per still image read down its rows."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from framegru import ClassifyMetrics, Task, hookimpl


class Classification(Task):
    """Classification of videos or stills: cross-entropy (with ``train.label_smoothing``) on ``label``;
    evaluation reports accuracy and loss, and ``best`` has the highest accuracy."""

    needs_info = ("classes",)
    item_keys = ("label",)
    best_metric = "accuracy"
    higher_is_better = True
    count_metric = "images"
    output_name = "logits"
    class_scores = True

    def loss(self, output: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(output.float(), batch["label"], label_smoothing=self.config.train.label_smoothing)

    def metrics(self) -> _Labels:
        return _Labels()

    def check_output(self, output: Tensor, batch: dict[str, Tensor]) -> str | None:
        want = (len(batch["label"]), len(self.info.classes or []))
        if tuple(output.shape) != want:
            return f"it returned {list(output.shape)} where the logits of {want[1]} classes are {list(want)} ([B, K])"
        return None


class _Labels:
    """:class:`ClassifyMetrics` against each item's ``label``."""

    def __init__(self):
        self.scores = ClassifyMetrics()

    def update(self, output: Tensor, batch: dict[str, Tensor]) -> None:
        self.scores.update(output, batch["label"])

    def result(self) -> dict[str, float]:
        return self.scores.result()


@hookimpl
def framegru_register_tasks(register):
    register("classify", Classification)
