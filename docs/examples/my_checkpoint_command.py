# my_checkpoint_command.py
from framegru import hookimpl
from framegru.cli.app import components_for
from framegru.model.frame_model import load_model


def describe(args):
    # The config and data info travel in the checkpoint; a missing file or component is one line, exit 1.
    model = load_model(args.checkpoint, components_for(args), device="cpu")
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{args.checkpoint}: task {model.task.name}, {parameters:,} parameters")
    return 0


@hookimpl
def framegru_register_commands(subparsers, common):
    p = subparsers.add_parser("describe", parents=[common], help="a checkpoint's task and size")
    p.add_argument("checkpoint")
    p.set_defaults(handler=describe)
