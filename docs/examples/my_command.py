# my_command.py
from framegru import hookimpl
from framegru.cli.app import components_for


def count(args):
    components = components_for(args)  # what the plugins registered, --plugin ones included
    print(f"{len(components.readers.names())} readers, {len(components.backbones.names())} backbones")
    return 0


@hookimpl
def framegru_register_commands(subparsers, common):
    p = subparsers.add_parser("count", parents=[common], help="count the registered components")
    p.set_defaults(handler=count)
