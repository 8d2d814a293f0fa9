"""The ``tinyzoo`` command line.

Core commands live in :mod:`tinyzoo.commands`; plugins add theirs through the
``register_commands`` hook. Nothing here imports torch: commands that need it import it
inside their body.
"""

from __future__ import annotations

import click

from tinyzoo import __version__, logs
from tinyzoo.commands import (
    adapt_commands,
    data_commands,
    eval_commands,
    fidelity_commands,
    recipe_commands,
    registry_commands,
    train_commands,
    weights_commands,
)
from tinyzoo.console import TinyzooGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=TinyzooGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="tinyzoo")
def cli() -> None:
    """tinyzoo: ImageNet networks adapted to Tiny ImageNet (200 classes, 64x64).

    Start with `tinyzoo list`, then `tinyzoo info NAME`.
    """


# Each module in tinyzoo/commands/ exposes COMMANDS; add a module here to add its commands.
COMMAND_MODULES = (registry_commands, adapt_commands, weights_commands, eval_commands, recipe_commands, data_commands, train_commands,
                   fidelity_commands)
for module in COMMAND_MODULES:
    for command in module.COMMANDS:
        cli.add_command(command)


def add_plugin_commands(group: click.Group) -> None:
    """Let every loaded plugin add its commands, through pluggy, one plugin at a time.

    A plugin whose ``register_commands`` raises, or adds a command under a name that is
    taken (a core command, or another plugin's), is refused whole: the commands it added
    are taken out again, and it shows as failed in ``tinyzoo plugins`` with a one-line warning.
    """
    from tinyzoo.errors import one_line
    from tinyzoo.plugin_loader import get_host

    host = get_host()
    owners = dict.fromkeys(group.commands, None)  # command name -> the plugin that added it (None: tinyzoo)
    for plugin in host.implementers("register_commands"):
        before = dict(group.commands)
        try:
            host.call("register_commands", plugin, cli=group)
        except Exception as exc:
            group.commands = before
            host.mark_failed(plugin, f"register_commands raised {one_line(exc, typed=True)}")
            continue
        taken = [name for name, command in group.commands.items() if name in before and before[name] is not command]
        if taken:
            group.commands = before
            owner = owners[taken[0]]
            whose = "tinyzoo's own command" if owner is None else f"the command of plugin {owner!r}"
            host.mark_failed(plugin, f"register_commands would replace {whose} {taken[0]!r}")
            continue
        owners.update(dict.fromkeys(set(group.commands) - set(before), plugin))


def main() -> None:
    logs.configure()
    from tinyzoo.cpu_threads import passive_wait

    passive_wait()  # before any command imports torch: idle OpenMP threads sleep rather than spin (docs/training.md)
    add_plugin_commands(cli)
    cli.main(prog_name="tinyzoo")
