"""The ``tinyzoo`` command line.

Core commands live in :mod:`tinyzoo.commands`; plugins add theirs through the
``register_commands`` hook. Nothing here imports torch: commands that need it import it
inside their body.
"""

from __future__ import annotations

import click

from tinyzoo import __version__
from tinyzoo.commands import adapt_commands, data_commands, eval_commands, recipe_commands, registry_commands, train_commands, weights_commands
from tinyzoo.console import TinyzooGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=TinyzooGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="tinyzoo")
def cli() -> None:
    """tinyzoo: ImageNet networks adapted to Tiny ImageNet (200 classes, 64x64).

    Start with `tinyzoo list`, then `tinyzoo info NAME`.
    """


# Each module in tinyzoo/commands/ exposes COMMANDS; add a module here to add its commands.
COMMAND_MODULES = (registry_commands, adapt_commands, weights_commands, eval_commands, recipe_commands, data_commands, train_commands)
for module in COMMAND_MODULES:
    for command in module.COMMANDS:
        cli.add_command(command)


def add_plugin_commands(group: click.Group) -> None:
    """Let every loaded plugin add its commands (a plugin that raises is disabled)."""
    from tinyzoo.plugin_loader import get_host, one_line

    host = get_host()
    for impl in host.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=group)
        except Exception as exc:
            host.mark_failed(impl.plugin_name, f"register_commands raised {one_line(exc)}")


def main() -> None:
    from tinyzoo.cpu_threads import passive_wait

    passive_wait()  # before any command imports torch: idle OpenMP threads sleep rather than spin (docs/training.md)
    add_plugin_commands(cli)
    cli.main(prog_name="tinyzoo")
