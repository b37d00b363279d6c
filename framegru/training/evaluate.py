"""``framegru eval``: score a checkpoint file on the config's test split or on a user's file or folder.

(A run scores its model as it trains with :func:`framegru.model.tasks.score_batches` too.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from ..config.config import Config
from ..errors import DataError, UsageError
from ..io.files import atomic_output
from ..model.frame_model import load_model
from ..model.tasks import score_batches
from ..plugin_manager.host import Components
from ..reporting import reporter
from ..runtime.device import autocast_for, pick_device
from .batches import build_reader, eval_batches


def held_out_split(config: Config, components: Components) -> str:
    """The split ``eval`` scores without ``--data``: ``test``, unless the reader trained on a tree of the
    user's (its ``path``), whose ``test`` split is every file, training files included: then ``val``,
    the part training held out."""
    reader = components.readers.get(config.data.reader.name)
    takes_val = "val_fraction" in reader.options(("root", "split"))
    return "val" if config.data.reader.options.get("path") and takes_val else "test"


def describe_split(config: Config, split: str, dataset, data: str | Path | None) -> str:
    """Which items ``eval`` scored, in words: a user must know whether training images were among them."""
    items = f"{len(dataset):,} {'images' if getattr(dataset.info, 'still', False) else 'items'}"
    if data is not None:
        return f"scored every item of {data} ({items})"
    where = config.data.reader.options.get("path")
    if split == "val":
        return (f"scored the held-out 'val' split of {where} ({items}; not used for training, "
                f"val_fraction {config.data.reader.options.get('val_fraction', 'default')}); --data DIR scores another folder")
    return f"scored the '{split}' split of reader '{config.data.reader.name}' ({items})"


def own_config_hint(checkpoint: str | Path, trained: Config | None) -> str:
    """How to evaluate ``checkpoint`` with the config it was trained with: its run's ``config.yaml`` (beside
    it, or at its ``run.dir``) where that is still there, and always the checkpoint alone."""
    beside = [Path(checkpoint).parent / "config.yaml"] + ([Path(trained.run.dir) / "config.yaml"] if trained else [])
    found = next((path for path in beside if path.is_file()), None)
    run = f"framegru eval {found} --checkpoint {checkpoint}, or " if found else ""
    return f"evaluate it with the config it was trained with: {run}framegru eval {checkpoint} (the config inside it)"


def config_of_checkpoint(checkpoint: str | Path, overrides: list[str] | None = None) -> Config:
    """The config ``checkpoint`` was trained with (kept in its metadata), with ``overrides`` applied.

    Its ``plugins`` are not kept: importing runs code, and a checkpoint is only a file someone handed
    over; pass them with ``--plugin`` where its components need them.
    """
    import copy

    from ..io import checkpoint as checkpoints
    from ..config.config import apply_values, parse_overrides, validate

    raw = copy.deepcopy(checkpoints.load(checkpoint).config)
    raw["plugins"] = []
    return validate(apply_values(raw, parse_overrides(list(overrides or []))), f"{checkpoint} (the config inside it)")


def evaluate_checkpoint(config: Config, components: Components, checkpoint: str | Path, data: str | Path | None,
                        save_predictions: str | Path | None = None) -> dict:
    """Metrics of ``checkpoint`` on ``data`` (read by the config's reader through its ``path`` option),
    or, when ``data`` is None, on the split :func:`held_out_split` picks (which items were scored is
    reported, :func:`describe_split`).

    ``save_predictions``: also write the model's outputs, in the order of the data, to this ``.npy``
    file: the predicted future frames ``float32 [N, T_future, C, H, W]`` in ``[0, 1]``, or the logits
    ``[N, K]`` of a classifier.

    ``config`` is ready for ``components`` (:func:`~framegru.config.config.drop_inherited_options` applied, as
    ``framegru eval`` does).
    """
    device = pick_device(config.train.device)
    model = load_model(checkpoint, components, device)
    reader = components.readers.get(config.data.reader.name)
    split = "test"
    if data is not None:
        if "path" not in reader.options(("root", "split")):
            raise UsageError(f"reader '{reader.name}' cannot read --data: it has no 'path' option")
        if not Path(data).exists():
            raise DataError(f"--data: no such file or folder: {data}")
        dataset = build_reader(config, components, "test", path=str(Path(data).resolve()))
    else:
        split = held_out_split(config, components)
        dataset = build_reader(config, components, split)
    info, expected = dataset.info, model.info
    if (info.channels, info.height, info.width) != (expected.channels, expected.height, expected.width):
        raise DataError(f"the data is {info.channels}x{info.height}x{info.width} (CxHxW) but the checkpoint "
                        f"expects {expected.channels}x{expected.height}x{expected.width}")
    if expected.classes and info.classes and len(info.classes) != len(expected.classes):
        raise DataError(f"the data has {len(info.classes)} classes, the checkpoint {len(expected.classes or [])}: "
                        f"{own_config_hint(checkpoint, model.config)}")
    if len(dataset) == 0:
        raise DataError("nothing to evaluate: the data set is empty")
    reporter.info(describe_split(config, split, dataset, data))

    def score(on_output=None) -> dict:
        return score_batches(model, eval_batches(dataset, config), device, autocast_for(device, config.train.amp),
                             on_output)

    if save_predictions is None:
        return score()
    path = Path(save_predictions)
    if path.suffix != ".npy":
        raise UsageError(f"--save-predictions: {path} must end in .npy")
    if path.is_dir():
        raise UsageError(f"--save-predictions: {path} is a folder; give a file name ending in .npy")
    with atomic_output(path) as tmp:
        writer = _OutputWriter(tmp, len(dataset))
        metrics = score(writer.append)
        writer.close()
    return metrics


class _OutputWriter:
    """Appends batches of outputs to a ``.npy`` file of ``total`` rows, made when the first one shows
    its shape, without holding them all in memory."""

    def __init__(self, path: Path, total: int):
        self.path, self.total, self.rows, self.array = path, total, 0, None

    def append(self, output: Tensor) -> None:
        values = output.detach().float().cpu().numpy()
        if values.ndim == 5:  # frames: what the metrics scored, in [0, 1]
            values = values.clip(0.0, 1.0)
        if self.array is None:
            self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32,
                                                   shape=(self.total, *values.shape[1:]))
        self.array[self.rows : self.rows + len(values)] = values
        self.rows += len(values)

    def close(self) -> None:
        if self.array is None or self.rows != self.total:
            raise DataError(f"--save-predictions: the evaluation gave {self.rows} outputs for {self.total} items")
        self.array.flush()
        del self.array
