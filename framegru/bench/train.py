"""``framegru bench train``: Moving MNIST training sequences/s and peak memory, with and without
checkpointing over time.

Every figure is a median over interleaved repetitions (see :mod:`framegru.runtime.timing`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..runtime import timing

MiB = 2**20
TRAIN_OVERRIDES = ["model.engine.hidden=[64,64]", "train.batch_size=8", "data.num_workers=0", "train.amp=true"]


def bench_train(config_path: Path, overrides: list[str], device: torch.device, steps: int = 5, repeats: int = 3) -> dict:
    """Training sequences/s and peak memory of the model a config builds, with and without
    checkpointing over time. Batches are made before timing: this measures the model, not the reader."""
    from torch.utils.data import default_collate

    from ..config.config import load_config
    from ..model.frame_model import build_model
    from ..plugin_manager.host import load_components
    from ..training.optimization import make_optimizer
    from ..training.batches import build_reader
    from ..runtime.device import autocast_for
    from ..training.step import train_step

    # The top-level model on every machine, not the per_device one: figures stay comparable across machines.
    config = load_config(config_path, [*TRAIN_OVERRIDES, *overrides, f"train.device={device.type}"], per_device=False)
    components = load_components(config.plugins)
    dataset = build_reader(config, components, "train")
    size = config.train.batch_size
    batches = [{k: v.to(device) for k, v in default_collate([dataset[i * size + j] for j in range(size)]).items()}
               for i in range(steps)]
    autocast = autocast_for(device, config.train.amp, config.train.cpu_bf16)
    fns, models = {}, {}
    for name, checkpointed in (("engine", False), ("engine checkpoint_time", True)):
        torch.manual_seed(config.seed)
        engine = config.model.engine.model_copy(update={"checkpoint_time": checkpointed})
        spec = config.model_copy(update={"model": config.model.model_copy(update={"engine": engine})})
        model = build_model(spec, components, dataset.info).to(device).train()
        optimizer = make_optimizer(model, config)

        def run(model=model, optimizer=optimizer, count=steps):
            for batch in batches[:count]:  # the loop's own step, as the budget's probe times it
                train_step(model, model.task, optimizer, batch, step=0, autocast=autocast)

        fns[name], models[name] = run, model
    times = timing.interleaved(fns, device, repeats, warmup=1)
    result: dict = {"benchmark": "train", "machine": timing.machine(device), "config": str(config_path),
                    "overrides": [*TRAIN_OVERRIDES, *overrides], "batch": size, "steps_per_run": steps,
                    "frames": config.data.reader.options.get("frames"), "models": {}}
    for name, samples in times.items():
        entry = timing.summary(samples)
        entry["sequences_per_s"] = round(steps * size / entry["median_s"], 2)
        peak, method = timing.peak_bytes(lambda fn=fns[name]: fn(count=1), device)
        entry["peak_step_mib"] = round(peak / MiB, 1)
        result["models"][name] = entry
        result["memory_method"] = method
    result["parameters"] = sum(p.numel() for p in models["engine"].parameters())
    return result
