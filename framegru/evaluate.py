"""``framegru eval``: score a checkpoint on the config's test split or on a user's file or folder."""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .errors import DataError, UsageError
from .model import load_model
from .plugin_manager import Components
from .runner import autocast_for, build_reader, eval_batches, pick_device
from .tasks import evaluate


def evaluate_checkpoint(config: Config, components: Components, checkpoint: str | Path, data: str | Path | None) -> dict:
    """Metrics of ``checkpoint`` on ``data`` (read by the config's reader through its ``path`` option),
    or on the reader's ``test`` split when ``data`` is None."""
    device = pick_device(config.train.device)
    model = load_model(checkpoint, components, device)
    reader = components.readers.get(config.data.reader.name)
    if data is not None:
        if "path" not in reader.options(("root", "split")):
            raise UsageError(f"reader '{reader.name}' cannot read --data: it has no 'path' option")
        if not Path(data).exists():
            raise DataError(f"--data: no such file or folder: {data}")
        dataset = build_reader(config, components, "test", path=str(Path(data).resolve()))
    else:
        dataset = build_reader(config, components, "test")
    info, expected = dataset.info, model.info
    if (info.channels, info.height, info.width) != (expected.channels, expected.height, expected.width):
        raise DataError(f"the data is {info.channels}x{info.height}x{info.width} (CxHxW) but the checkpoint "
                        f"expects {expected.channels}x{expected.height}x{expected.width}")
    if model.task == "classify" and info.classes and len(info.classes) != len(expected.classes or []):
        raise DataError(f"the data has {len(info.classes)} classes, the checkpoint {len(expected.classes or [])}")
    if len(dataset) == 0:
        raise DataError("nothing to evaluate: the data set is empty")
    return evaluate(model, eval_batches(dataset, config), device, autocast_for(device, config.train.amp))
