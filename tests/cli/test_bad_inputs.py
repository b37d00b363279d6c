"""Bad input at the command line: a corpus of broken configs, plugins, checkpoints, videos and images,
made here. Every case must end in one line on stderr starting with ``framegru: error:``, the right
exit status (2 usage, 1 data), no traceback, no hang; and no pickle's payload may ever run.

Each case is a process of its own running ``python -m framegru``'s code (see forked_cli.py: one
import of torch for the whole corpus, a fork per case); a few run as real ``python -m framegru``
processes to show the entry point behaves the same.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from tests.drift_plugin import drift_config
from tests.forked_cli import run_many, run_real, without_start_line
from tests.hermetic import builtins_only_env
from tests.still_data import write_image_tree
from tests.video_data import DIRECTIONS, ramp_video, tiny_checkpoint

from framegru.io import checkpoint
from framegru.io.video import VideoWriter

REPO = Path(__file__).resolve().parents[2]
NON_UTF8_NAME = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name: not UTF-8
MARKER = "PAYLOAD_RAN"  # what a pickle's payload creates, should anything ever unpickle it


class Payload:
    """Unpickling this calls ``open(MARKER, "w")``: the file appears if framegru ever unpickles."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plugin_config(folder: Path, name: str, source: str) -> Path:
    """``folder/<name>.py`` holding ``source``, and ``folder/<name>.yaml`` that loads it."""
    (folder / f"{name}.py").write_text(source)
    config = drift_config(folder / "runs" / name)
    config["plugins"].append(f"{name}.py")
    return write_yaml(folder / f"{name}.yaml", config)


REGISTER = "from framegru import hookimpl\n\n@hookimpl\ndef framegru_register_readers(register):\n    {body}\n"
# Nine lines of YAML whose last alias stands for 10**9 items: printing it in a message would never end.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))


def zero_frame_mp4(path: Path) -> Path:
    """An MP4 whose header holds a video stream but no frame at all (fragments cut off)."""
    with VideoWriter(path, fps=10, pixel_format="gray8", fragmented=True) as writer:
        for level in range(0, 200, 20):
            writer.write(np.full((16, 16, 1), level, np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"moof") - 4])
    return path


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width x height`` black pixels: tens of KB that decode to hundreds of MB."""
    import struct
    import zlib

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def make_corpus(root: Path) -> None:
    """Every file the cases below name, in ``root`` (their working folder)."""
    rng = random.Random(0)
    good = drift_config(root / "runs" / "good")
    write_yaml(root / "good.yaml", good)
    write_image_tree(root / "tree", per_class=2)
    # -- configs
    (root / "folder.yaml").mkdir()
    (root / "bad.yaml").write_text("data: {reader: drift\nmodel: [\n")
    (root / "latin1.yaml").write_bytes("model: café\n".encode("latin-1"))
    (root / "list.yaml").write_text("- data\n- model\n")
    write_yaml(root / "unknown_key.yaml", {**good, "colour": "red"})
    write_yaml(root / "wrong_type.yaml", {**good, "train": {**good["train"], "max_steps": "lots"}})
    write_yaml(root / "unknown_component.yaml", {**good, "model": {**good["model"], "backbone": "resnt"}})
    (root / "bomb.yaml").write_text(ALIAS_BOMB + yaml.safe_dump(good) + "seed: *a8\n")
    (root / "deep.yaml").write_text("seed: " + "[" * 3000 + "]" * 3000 + "\n")
    (root / "deep_block.yaml").write_text("task:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)))
    (root / "huge.yaml").write_text(yaml.safe_dump(good) + "".join(f"# {i:07d} padding\n" for i in range(20_000)))
    still = {"data": {"reader": {"name": "image_folder", "path": "tree"}, "root": str(root)},
             "model": {"backbone": "identity", "head": "classify"}, "train": {"device": "cpu"},
             "run": {"dir": str(root / "runs" / "still")}}
    write_yaml(root / "still.yaml", still)
    broken = write_image_tree(root / "broken_tree", per_class=2)
    (broken / "horizontal" / "000.png").write_bytes(b"not a png")
    write_yaml(root / "broken.yaml", {**still, "data": {"reader": {"name": "image_folder", "path": str(broken)},
                                                         "num_workers": 1},
                                      "train": {"device": "cpu", "max_steps": 2, "batch_size": 4}})
    (root / "a_file").write_text("not a folder\n")
    (root / "a_folder").mkdir()
    (root / "notes.npy").write_text("my notes, not an array\n")
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    # -- plugins
    plugin_config(root, "import_fails", "import framegru_no_such_module_xyz\n")
    plugin_config(root, "duplicate", REGISTER.format(body='register("moving_mnist", lambda *, root, split: None)'))
    plugin_config(root, "register_raises", REGISTER.format(body='raise RuntimeError("boom")'))
    plugin_config(root, "exits", "import sys\nsys.exit(3)\n")
    plugin_config(root, "builtin_factory", REGISTER.format(body='register("rawdict", dict)'))
    plugin_config(root, "factory_raises", "def boom(*, root, split):\n    return {}['missing']\n\n"
                  + REGISTER.format(body='register("boom", boom)'))
    # -- checkpoints
    tiny_checkpoint(root / "predict.safetensors", size=(16, 16))
    (root / "runs" / "done").mkdir(parents=True)
    tiny_checkpoint(root / "runs" / "done" / "last.safetensors", size=(16, 16))  # a finished run's folder
    tiny_checkpoint(root / "still.safetensors", task="classify", still=True, size=(16, 16), channels=3)
    # A classifier whose config names plugins that would create the marker if imported.
    (root / "payload_plugin.py").write_text(f"open({str(root / MARKER)!r}, 'w').close()\n")
    named = checkpoint.load(root / "still.safetensors")
    named.config["plugins"] = ["payload_plugin", str(root / "payload_plugin.py")]
    checkpoint.save(root / "names_plugins.safetensors", named.weights, config=named.config, info=named.info, step=0)
    # A video classifier whose config (it travels in the file) has a clip length that is not a number.
    clips = checkpoint.load(tiny_checkpoint(root / "video_classifier.safetensors", task="classify", size=(16, 16)))
    clips.config["data"]["reader"]["frames"] = "many"
    checkpoint.save(root / "odd_frames.safetensors", clips.weights, config=clips.config, info=clips.info, step=0)
    # A checkpoint edited to hold one NaN: refused at load, never run into garbage or printed as JSON.
    poisoned = checkpoint.load(root / "predict.safetensors")
    poisoned.weights["head.decode.2.weight"].view(-1)[0] = float("nan")
    checkpoint.save(root / "nan.safetensors", poisoned.weights, config=poisoned.config, info=poisoned.info, step=0)
    del poisoned.weights["head.decode.2.weight"]  # and one with a tensor missing
    checkpoint.save(root / "missing_tensor.safetensors", poisoned.weights, config=poisoned.config, info=poisoned.info,
                    step=0)
    real = (root / "predict.safetensors").read_bytes()
    marker = root / MARKER
    (root / "pickle.safetensors").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    (root / "pickle0.ckpt").write_bytes(pickle.dumps(Payload(marker), protocol=0))
    torch.save({"state_dict": Payload(marker)}, root / "torch_save.pt")
    (root / "truncated.safetensors").write_bytes(real[: len(real) // 2])
    (root / "empty.safetensors").write_bytes(b"")
    (root / "random.safetensors").write_bytes(rng.randbytes(4096))
    # -- videos
    clip = ramp_video(root / "clip.mp4", frames=12, size=16)
    (root / "random.mp4").write_bytes(rng.randbytes(5000))
    (root / "empty.mp4").write_bytes(b"")
    (root / "head_only.mp4").write_bytes(clip.read_bytes()[:100])
    zero_frame_mp4(root / "zero_frames.mp4")
    # -- images
    picture = (np.arange(32 * 32 * 3).reshape(32, 32, 3) % 251).astype(np.uint8)
    png = cv2.imencode(".png", picture)[1].tobytes()
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    (root / "good.png").write_bytes(png)
    (root / NON_UTF8_NAME).write_bytes(png)  # a name that only Python's surrogates can hold
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "truncated.jpg").write_bytes(jpeg[:120])
    (root / "random.png").write_bytes(rng.randbytes(3000))
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not an image\n")
    (root / "bomb.png").write_bytes(png_bomb(14000, 14000))


PICKLE = "is a pickle / torch.save file; framegru never unpickles files"
BAD_CHECKPOINTS = {
    "pickle": ("pickle.safetensors", PICKLE),
    "pickle-protocol-0": ("pickle0.ckpt", PICKLE),
    "torch-save": ("torch_save.pt", PICKLE),
    "truncated": ("truncated.safetensors", "is not a valid safetensors checkpoint"),
    "empty": ("empty.safetensors", "is not a checkpoint (0 bytes)"),
    "random": ("random.safetensors", "is not a valid safetensors checkpoint (corrupt or truncated header)"),
    "non-finite": ("nan.safetensors", "holds NaN or infinite values in tensor 'head.decode.2.weight'"),
}
CHECKPOINT_COMMANDS = {
    "eval": (["eval", "good.yaml"], ["pickle", "torch-save", "truncated", "empty", "random", "non-finite"]),
    "predict": (["predict", "clip.mp4", "--out", "out.mp4"],
                ["pickle", "pickle-protocol-0", "truncated", "empty", "random", "non-finite"]),
    "classify-still": (["classify-still", "good.png", "--json"], ["pickle", "truncated", "empty", "random", "non-finite"]),
    "webcam": (["webcam", "--source", "clip.mp4", "--no-window", "--out", "cam.mp4"],
               ["pickle", "truncated", "empty", "random", "non-finite"]),
}

# id -> (argv, exit status, a piece of the message)
CASES: dict[str, tuple[list[str], int, str]] = {
    "run/missing-config": (["run", "nope.yaml"], 2, "config not found: nope.yaml"),
    "run/config-is-a-folder": (["run", "folder.yaml"], 2, "config is a directory"),
    "run/bad-yaml": (["run", "bad.yaml"], 2, "bad.yaml: line 2 invalid YAML"),
    "run/not-utf8": (["run", "latin1.yaml"], 2, "cannot read config latin1.yaml"),
    "run/not-a-mapping": (["run", "list.yaml"], 2, "a config must be a YAML mapping, got list"),
    "run/unknown-key": (["run", "unknown_key.yaml"], 2, "unknown key 'colour'"),
    "run/wrong-type": (["run", "wrong_type.yaml"], 2, "bad value for 'train.max_steps'"),
    "run/wrong-type-override": (["run", "good.yaml", "train.lr=fast"], 2, "bad value for 'train.lr'"),
    "run/bad-override": (["run", "good.yaml", "train.max_steps"], 2, "bad override 'train.max_steps'"),
    "run/larger-batch-not-a-mapping": (["run", "good.yaml", "train.larger_batch=64"], 2,
                                       "bad value for 'train.larger_batch'"),
    "run/larger-batch-without-its-rate": (["run", "good.yaml", "train.larger_batch={batch_size: 64, min_steps: 10}"], 2,
                                          "missing key 'train.larger_batch.lr'"),
    "run/larger-batch-misspelt": (["run", "good.yaml", "train.larger_batch={batch_size: 64, lr: 0.01, min_step: 10}"], 2,
                                  "unknown key 'train.larger_batch.min_step' — did you mean 'train.larger_batch.min_steps'?"),
    "run/unknown-component": (["run", "unknown_component.yaml"], 2, "unknown backbone 'resnt' — did you mean 'resnet'?"),
    "run/not-one-of-the-types": (["run", "good.yaml", "model.engine.hidden=abc"], 2,
                                 "bad value for 'model.engine.hidden': expected int or list[int] (got 'abc')"),
    "run/unknown-reader": (["run", "good.yaml", "data.reader=nosuch"], 2, "unknown reader 'nosuch' (available: cifar10, drift, "),
    "run/yaml-alias-bomb": (["run", "bomb.yaml"], 2, "bad value for 'seed'"),
    "run/yaml-too-deep": (["run", "deep.yaml"], 2, "nested too deeply"),
    "run/option-of-wrong-type": (["run", "good.yaml", "model.backbone.patch=abc"], 2,
                                 "bad value for 'model.backbone.patch' of backbone 'identity'"),
    "run/option-that-does-not-fit": (["run", "good.yaml", "model.backbone.patch=3"], 2,
                                     "cannot run on 1x8x8 (CxHxW) frames: frame size (8, 8) is not a multiple of patch 3"),
    "run/degenerate-option": (["run", "good.yaml", "model.head.width=0"], 2, "head 'next_frame' (model.head): width must be >= 1"),
    "run/plugin-fails-to-import": (["run", "import_fails.yaml"], 2, "import_fails.py' failed to import: ModuleNotFoundError"),
    "run/duplicate-plugin-name": (["run", "duplicate.yaml"], 2, "reader 'moving_mnist' is registered twice"),
    "run/plugin-raises-in-register": (["run", "register_raises.yaml"], 2, "failed while registering readers: RuntimeError: boom"),
    "run/plugin-exits": (["run", "exits.yaml"], 2, "exits.py' failed to import: SystemExit: 3"),
    "run/plugin-registers-a-builtin": (["run", "builtin_factory.yaml"], 2,
                                       "registers reader 'rawdict' with <class 'dict'>, whose keyword arguments"),
    "run/plugin-factory-raises": (["run", "factory_raises.yaml", "data.reader=boom"], 2,
                                  "factory_raises.py' failed (data.reader): KeyError: 'missing'"),
    "run/missing-plugin-option": (["run", "good.yaml", "--plugin", "framegru_no_such_plugin"], 2,
                                  "plugin 'framegru_no_such_plugin' not found"),
    "run/absurd-frame-size": (["run", "still.yaml", "data.reader.size=[100000,100000]"], 2,
                               "3x100000x100000 (CxHxW) frames are larger than framegru takes"),
    # 7 PB of weights: more than any address space, so refused at once even where memory is overcommitted.
    "run/model-too-big-for-memory": (["run", "good.yaml", "model.engine.hidden=10000000"], 1, "out of memory ("),
    # A batch of 3e9 sequences (30 TB): refused before the first step, where it was collated until the machine ran out.
    "run/batch-that-cannot-fit": (["run", "good.yaml", "train.batch_size=3000000000"], 2,
                                  "train.batch_size=3,000,000,000 cannot fit in memory: a training step needs at least "),
    "run/run-dir-is-a-file": (["run", "good.yaml", "run.dir=a_file"], 2, "run.dir a_file is a file, not a folder"),
    "run/data-folder-missing": (["run", "still.yaml", "data.reader.path=no_such_tree"], 1,
                                "no_such_tree"),
    "run/corrupt-image-in-a-loader-worker": (["run", "broken.yaml"], 1, "cannot decode image "),
    "run/run-dir-holds-a-run": (["run", "good.yaml", "run.dir=runs/done"], 2,
                                "run.dir runs/done already holds a run (last.safetensors): add --resume"),
    "run/resume-without-checkpoint": (["run", "good.yaml", "--resume", "run.dir=runs/never"], 2, "no checkpoint to resume"),
    "predict/checkpoint-missing-a-tensor": (["predict", "clip.mp4", "--checkpoint", "missing_tensor.safetensors",
                                             "--out", "o.mp4"], 1, "the model its config describes (missing 1 tensor, "
                                            "e.g. head.decode.2.weight)"),
    "predict/classifier-checkpoint": (["predict", "clip.mp4", "--checkpoint", "still.safetensors", "--out", "o.mp4"], 2,
                                      "is a 'classify' model"),
    "webcam/missing-camera": (["webcam", "--source", "9", "--no-window", "--out", "x.mp4"], 2, "camera 9 cannot be opened"),
    "webcam/zero-frame-video": (["webcam", "--source", "zero_frames.mp4", "--no-window", "--out", "w.mp4",
                                 "--checkpoint", "predict.safetensors"], 1, "zero_frames.mp4 has no video frames"),
    "webcam/snapshot-type": (["webcam", "--source", "clip.mp4", "--no-window", "--out", "w.mp4", "--snapshot", "s.xyz",
                              "--checkpoint", "predict.safetensors"], 2, "--snapshot s.xyz: not an image type"),
    "webcam/missing-file": (["webcam", "--source", "nope.mp4", "--no-window", "--out", "w.mp4"], 2,
                            "--source nope.mp4: no such file"),
    "bench/undecodable-video": (["bench", "decode", "--video", "random.mp4"], 1, "cannot decode video random.mp4"),
    "bench/no-repeats": (["bench", "engine", "--repeats", "0"], 2, "argument --repeats: must be an integer from 1 to "
                         "10,000, got 0"),
    "bench/zero-hidden": (["bench", "engine", "--hidden", "8", "0"], 2, "argument --hidden: must be an integer from 1"),
    "bench/huge-batch": (["bench", "engine", "--batch", "3000000"], 2, "argument --batch: must be an integer from 1 to "
                         "65,536, got 3000000"),
    "bench/threads-not-a-number": (["bench", "engine", "--threads", "many"], 2,
                                   "argument --threads: must be an integer from 1 to 1,024, got 'many'"),
    "predict/huge-scale": (["predict", "clip.mp4", "--checkpoint", "predict.safetensors", "--out", "o.mp4",
                            "--scale", "100000"], 2, "argument --scale: must be an integer from 1 to 64, got 100000"),
    "predict/zero-scale": (["predict", "clip.mp4", "--checkpoint", "predict.safetensors", "--out", "o.mp4",
                            "--scale", "0"], 2, "argument --scale: must be an integer from 1 to 64, got 0"),
    "predict/zero-threads": (["predict", "clip.mp4", "--checkpoint", "predict.safetensors", "--out", "o.mp4",
                              "--threads", "0"], 2, "argument --threads: must be an integer from 1 to 1,024, got 0"),
    "webcam/negative-max-frames": (["webcam", "--source", "clip.mp4", "--no-window", "--out", "w.mp4",
                                    "--max-frames", "-5"], 2, "argument --max-frames: must be an integer from 1"),
    "classify-still/zero-topk": (["classify-still", "good.png", "--checkpoint", "still.safetensors", "--topk", "0"], 2,
                                 "argument --topk: must be an integer from 1 to 100,000, got 0"),
    "run/infinite-lr": (["run", "good.yaml", "train.lr=.inf"], 2,
                        "bad value for 'train.lr': Input should be a finite number (got inf)"),
    "run/minus-infinite-lr": (["run", "good.yaml", "train.lr=-.inf"], 2,
                              "bad value for 'train.lr': Input should be a finite number (got -inf)"),
    "run/nan-lr": (["run", "good.yaml", "train.lr=.nan"], 2,
                   "bad value for 'train.lr': Input should be a finite number (got nan)"),
    "run/infinite-dropout": (["run", "good.yaml", "model.engine.dropout=-.inf"], 2,
                             "bad value for 'model.engine.dropout': Input should be a finite number"),
    "run/infinite-time-budget": (["run", "good.yaml", "train.time_budget_minutes=.inf"], 2,
                                 "bad value for 'train.time_budget_minutes': Input should be a finite number"),
    "run/config-too-large": (["run", "huge.yaml"], 2, "config huge.yaml is 351 KB; a config may be at most 256 KB"),
    "run/config-too-deep-block-style": (["run", "deep_block.yaml"], 2,
                                        "deep_block.yaml: line 32 nested too deeply: a config nests at most 32 levels"),
    "run/plugin-is-a-folder": (["run", "good.yaml", "--plugin", "a_folder"], 2,
                               "plugin 'a_folder' is a folder; --plugin takes a .py file (--plugin a_folder/my_plugin.py)"
                               " or an importable module name"),
    "run/plugin-path-is-a-folder": (["run", "good.yaml", "--plugin", "a_folder/"], 2,
                                    "plugin 'a_folder/' is a folder; --plugin takes a .py file"),
    "eval/data-not-an-array": (["eval", str(REPO / "configs" / "moving_mnist.yaml"), "--checkpoint",
                                str(REPO / "samples" / "checkpoints" / "moving_mnist.safetensors"), "--data", "notes.npy"],
                               1, "notes.npy is not a .npy array (no .npy header); expected a .npy array of uint8 "
                                  "[T, N, H, W] (mnist_test_seq.npy's layout: uint8 [20, N, 64, 64])"),
    "eval/data-holds-objects": (["eval", str(REPO / "configs" / "moving_mnist.yaml"), "--checkpoint",
                                 str(REPO / "samples" / "checkpoints" / "moving_mnist.safetensors"), "--data",
                                 "objects.npy"], 1, "objects.npy holds Python objects (pickled), which framegru never "
                                                    "loads; expected a .npy array of uint8 [T, N, H, W]"),
    "eval/missing-checkpoint": (["eval", "good.yaml", "--checkpoint", "nope.safetensors"], 1, "checkpoint not found"),
    "eval/checkpoint-is-a-folder": (["eval", "good.yaml", "--checkpoint", "tree"], 1, "checkpoint is a directory"),
}
for command, (argv, kinds) in CHECKPOINT_COMMANDS.items():
    for kind in kinds:
        name, needle = BAD_CHECKPOINTS[kind]
        CASES[f"{command}/{kind}-checkpoint"] = ([*argv, "--checkpoint", name], 1, f"{name} {needle}")
for case, video, needle in [("random-bytes", "random.mp4", "cannot decode video random.mp4"),
                           ("empty", "empty.mp4", "cannot decode video empty.mp4"),
                           ("truncated", "head_only.mp4", "cannot decode video head_only.mp4"),
                           ("zero-frame", "zero_frames.mp4", "zero_frames.mp4 has no video frames"),
                           ("missing", "nope.mp4", "video not found: nope.mp4")]:
    CASES[f"predict/{case}-video"] = (["predict", video, "--checkpoint", "predict.safetensors", "--out", "o.mp4"], 1, needle)
for name, needle in [("truncated.png", "cannot decode image"), ("truncated.jpg", "cannot decode image"),
                     ("random.png", "cannot decode image"), ("empty.jpg", "cannot decode image"),
                     ("text.png", "cannot decode image"), ("nope.png", "image not found"),
                     ("bomb.png", "more than 178,956,970 pixels")]:
    CASES[f"classify-still/{name}"] = (["classify-still", name, "--checkpoint", "still.safetensors"], 1, f"{needle}")

if not torch.cuda.is_available():  # where there is CUDA these would run
    CASES["run/cuda-where-there-is-none"] = (["run", "good.yaml", "train.device=cuda"], 2,
                                             "train.device=cuda but CUDA is not available here; use train.device=auto")
    CASES["predict/cuda-where-there-is-none"] = (["predict", "clip.mp4", "--checkpoint", "predict.safetensors",
                                                  "--out", "o.mp4", "--device", "cuda"], 2,
                                                 "--device cuda but CUDA is not available here; use --device auto or "
                                                 "--device cpu")

# Cases that must succeed without running anything the input names.
WORKS = {"classify-still/checkpoint-naming-plugins": ["classify-still", "good.png", "--json", "--checkpoint",
                                                      "names_plugins.safetensors"],
         "classify-still/utf8-name-as-json": ["classify-still", "good.png", "--json", "--checkpoint", "still.safetensors"],
         "classify-still/non-utf8-name-as-json": ["classify-still", NON_UTF8_NAME, "--json", "--checkpoint",
                                                  "still.safetensors"],
         "webcam/checkpoint-with-odd-clip-length": ["webcam", "--source", "clip.mp4", "--no-window", "--out", "odd.mp4",
                                                    "--checkpoint", "odd_frames.safetensors", "--max-frames", "3"]}

# The same code through the real entry point: every command that takes --checkpoint, and the camera.
REAL = ["eval/pickle-checkpoint", "predict/pickle-checkpoint", "classify-still/pickle-checkpoint",
        "webcam/pickle-checkpoint", "webcam/missing-camera"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    make_corpus(root)
    return root


@pytest.fixture(scope="module")
def outcomes(corpus):
    """Every case run once, a few at a time; a case that runs past 60 s counts as a hang."""
    argvs = {**{case: argv for case, (argv, _, _) in CASES.items()}, **WORKS}
    argvs = {case: own_run_dir(i, argv) for i, (case, argv) in enumerate(argvs.items())}
    return dict(zip(argvs, run_many(list(argvs.values()), cwd=corpus, timeout=60, env=builtins_only_env())))


def own_run_dir(index: int, argv: list[str]) -> list[str]:
    """``argv`` with a ``run.dir`` of its own for a ``run`` that names none. The cases run as many at a time
    as the machine has cores, and two runs of one config meet at its run.dir's lock: with 16 at a time
    (an H200 machine's cores) two cases failed on 'run.dir ... is in use' instead of their own error."""
    if argv[0] != "run" or any(arg.startswith("run.dir=") for arg in argv):
        return argv
    return [*argv, f"run.dir=runs/case{index}"]


# Cases that fail once training has started: the run's banner and progress come before the error.
TRAINING = {"run/corrupt-image-in-a-loader-worker"}


def assert_one_line_error(outcome, code: int, needle: str, after_progress: bool = False) -> None:
    assert not outcome.timed_out, f"hung: {outcome.argv}"
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.returncode == code, outcome.stderr
    lines = without_start_line(outcome.stderr).strip().splitlines()  # a real process says what it loads first
    if after_progress:
        assert not any(line.startswith("framegru: ") for line in lines[:-1]), outcome.stderr
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("framegru: error: "), outcome.stderr
    assert needle in lines[0], lines[0]
    assert "allow_pickle" not in lines[0], "never suggest unpickling"


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_an_exit_status(outcomes, case):
    _, code, needle = CASES[case]
    assert_one_line_error(outcomes[case], code, needle, after_progress=case in TRAINING)


@pytest.mark.integration
def test_the_real_entry_point_says_the_same(corpus, outcomes):
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(REAL, pool.map(lambda case: run_real(CASES[case][0], cwd=corpus, timeout=120, env=builtins_only_env()), REAL)))
    for case, outcome in results.items():
        assert_one_line_error(outcome, *CASES[case][1:])
        assert without_start_line(outcome.stderr) == outcomes[case].stderr
    assert not (corpus / MARKER).exists(), "a pickle was unpickled"


@pytest.mark.integration
@pytest.mark.parametrize("case", list(WORKS))
def test_odd_but_harmless_checkpoints_work(outcomes, case):
    outcome = outcomes[case]
    assert outcome.returncode == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    assert "error" not in outcome.stderr


@pytest.mark.integration
def test_plugins_named_in_a_checkpoint_are_not_imported(outcomes):
    # The config inside a checkpoint is data: importing the plugins it names would run their code.
    outcome = outcomes["classify-still/checkpoint-naming-plugins"]
    assert outcome.stderr == "" and json.loads(outcome.stdout)["label"] in DIRECTIONS


@pytest.mark.integration
def test_json_output_is_utf8_for_a_name_that_is_not(outcomes):
    # Python holds the name's byte 0xE9 as a lone surrogate, which most JSON readers refuse; it is written
    # as the text \xe9 (json_output.py) and the record says so.
    outcome = outcomes["classify-still/non-utf8-name-as-json"]
    assert outcome.returncode == 0, outcome.stderr
    record = json.loads(outcome.stdout)
    assert record["image"] == "caf\\xe9.png" and record["image_escaped"] is True
    assert outcome.stdout.encode("utf-8").decode("utf-8") == outcome.stdout
    assert all(value.encode("utf-8") for value in (record["image"], record["label"]))
    good = json.loads(outcomes["classify-still/utf8-name-as-json"].stdout)
    assert "image_escaped" not in good and good["image"] == "good.png"


@pytest.mark.integration
def test_no_payload_ever_ran(corpus, outcomes):
    assert len(outcomes) == len(CASES) + len(WORKS)
    assert not (corpus / MARKER).exists(), "a pickle was unpickled"
    # The payload is live: unpickling the corpus file does create the marker (here, on purpose).
    with open(corpus / "pickle.safetensors", "rb") as f:
        pickle.load(f).close()  # noqa: S301
    assert (corpus / MARKER).exists()
    os.remove(corpus / MARKER)


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: nothing to refuse")
@pytest.mark.parametrize("args", [["run", "{f}"], ["eval", "good.yaml", "--checkpoint", "{f}"],
                                  ["classify-still", "{f}", "--checkpoint", "still.safetensors"]])
def test_unreadable_files(corpus, tmp_path, capfd, monkeypatch, args):
    from framegru.cli.app import main

    locked = tmp_path / "locked"
    locked.write_bytes((corpus / "good.yaml").read_bytes())
    locked.chmod(0)
    monkeypatch.chdir(corpus)
    code = main([a.format(f=locked) for a in args])
    lines = capfd.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("framegru: error: ") and "ermission" in lines[0]


def test_resuming_with_another_optimizer_says_which_and_what_to_do(tmp_path, capfd, monkeypatch):
    from framegru.cli.app import main

    monkeypatch.chdir(tmp_path)
    config = write_yaml(tmp_path / "muon.yaml", drift_config(tmp_path / "run", optimizer="muon"))
    assert main(["run", str(config)]) == 0
    capfd.readouterr()
    assert main(["run", str(config), "train.optimizer=adamw", "train.max_steps=4", "--resume"]) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[-1] == (f"framegru: error: --resume: the optimizer changed from muon ({tmp_path / 'run' / 'last.safetensors'})"
                         " to adamw; resume with train.optimizer=muon, or start over with train.optimizer=adamw "
                         "--overwrite (or another run.dir)")
    assert not any(line.startswith("framegru: ") for line in lines[:-1])
    assert main(["run", str(config), "train.max_steps=4", "--resume"]) == 0  # the old optimizer resumes
