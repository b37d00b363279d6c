"""The ``framegru export`` subcommand: its arguments, and a checkpoint exported
(:func:`framegru.deploy.export.save`) with a one-line summary on stderr."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..deploy.export import KINDS, OPSET, check_out, default_kind, save
from ..model.frame_model import FrameModel, load_model
from .app import components_for, stderr


def _summary(model: FrameModel, kind: str) -> str:
    info = model.info
    frame = f"[B, {info.channels}, {info.height}, {info.width}]"
    if kind == "still":
        return f"still: image {frame} -> logits [B, {len(info.classes or [])}]"
    layers = len(model.engine.hidden_channels)
    output = model.task.output_name
    return f"step: frame {frame} + {layers} states -> {output} + {layers} states"


def cmd_export(args: argparse.Namespace) -> int:
    checkpoint, out = Path(args.checkpoint), Path(args.out)
    fmt = check_out(out, checkpoint)  # a bad --out fails before the model is loaded
    model = load_model(checkpoint, components_for(args), "cpu")
    kind = args.what or default_kind(model)
    save(model, kind, out)
    where = f"ONNX opset {OPSET}" if fmt == "onnx" else "torch.export ExportedProgram"
    stderr.print(f"framegru export: wrote {out} ({where}; {_summary(model, kind)}; batch dynamic; "
                 f"{out.stat().st_size / 1e6:.1f} MB)", highlight=False)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common],
                       help="export a checkpoint's streaming step or still classifier to ONNX (.onnx) or torch.export (.pt2)")
    p.add_argument("checkpoint", metavar="CKPT", help="safetensors checkpoint")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.onnx (ONNX) or FILE.pt2 (torch.export)")
    p.add_argument("--what", choices=KINDS,
                   help="step: the streaming step with explicit state (video models); still: image -> logits "
                        "(still classifiers). Default: what the checkpoint is")
    p.set_defaults(handler=cmd_export)
