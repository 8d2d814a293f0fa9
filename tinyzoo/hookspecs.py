"""The hooks a tinyzoo plugin can implement.

This module is the plugin author's reference: every hook below is documented in
docs/plugins.md (a test checks that). A plugin is a module (or object) with functions
marked ``@tinyzoo.hookimpl`` whose names are hook names below; it is found through the
``tinyzoo`` entry-point group, exactly like the built-in plugins.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tinyzoo")
hookimpl = pluggy.HookimplMarker("tinyzoo")


@hookspec
def register_architectures(register):
    """Register network architectures.

    Call ``register(spec)`` once per architecture, with a
    :class:`tinyzoo.specs.ArchitectureSpec`. The spec is plain metadata; its ``builder``
    is a ``"module:function"`` string imported only when the network is built, so that
    listing never imports torch. The builder is called as
    ``function(num_classes=..., **spec.builder_args, **options)`` and returns an
    ``nn.Module``. Registering a name another plugin already registered is an error.
    """


@hookspec
def register_adapters(register):
    """Register adapters: surgery that turns a network into a Tiny ImageNet network.

    Call ``register(spec)`` with a :class:`tinyzoo.specs.AdapterSpec`. ``spec.families``
    says which architecture families it handles (``"*"`` for all); ``spec.apply`` is a
    ``"module:function"`` string resolved when the adapter runs. ``spec.role`` is the step it
    fills (tinyzoo's ``stem-small``, ``head``, ``convolutionize``, ``resize``, or one of the
    plugin's own) and ``spec.order`` when that step runs; ``tinyzoo.create`` runs one adapter
    per role, in order.
    """


@hookspec
def register_recipes(register):
    """Register named training recipes.

    Call ``register(spec)`` with a :class:`tinyzoo.specs.RecipeSpec` pointing at a TOML
    file (``path=``) or carrying the recipe as a mapping (``data=``).
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``tinyzoo`` command line.

    ``cli`` is the top-level :class:`click.Group`; decorate new commands with
    ``@cli.command()``. Import heavy modules (torch) inside the command body, not at
    module level, so that ``tinyzoo --help`` stays fast. A command named like an existing
    one (tinyzoo's or another plugin's) gets the plugin refused.
    """
