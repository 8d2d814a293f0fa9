"""The registry: every architecture, adapter and recipe that the loaded plugins registered.

Built from a :class:`tinyzoo.plugin_loader.PluginHost` (:func:`registry_of`) and kept in
its cache until a plugin is added or removed. Each plugin's hooks are called through
pluggy (:meth:`PluginHost.call`) with a ``register`` callback; a plugin whose hook raises,
registers the wrong type, or registers a name another plugin already owns is refused
whole (nothing it registered is kept), with a one-line warning that names both plugins.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

from tinyzoo.errors import DuplicateNameError, UnknownNameError, one_line
from tinyzoo.plugin_loader import PluginHost, get_host
from tinyzoo.specs import AdapterSpec, ArchitectureSpec, RecipeSpec

Spec = ArchitectureSpec | AdapterSpec | RecipeSpec
KINDS: dict[str, tuple[str, type[Spec]]] = {
    "architecture": ("register_architectures", ArchitectureSpec),
    "adapter": ("register_adapters", AdapterSpec),
    "recipe": ("register_recipes", RecipeSpec),
}
TIMM_PREFIX = "timm:"


class Registry:
    """Name -> spec tables for architectures, adapters and recipes."""

    def __init__(self) -> None:
        self.architectures: dict[str, ArchitectureSpec] = {}
        self.adapters: dict[str, AdapterSpec] = {}
        self.recipes: dict[str, RecipeSpec] = {}

    def table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {"architecture": self.architectures, "adapter": self.adapters, "recipe": self.recipes}
        return tables[kind]

    # -- building ------------------------------------------------------------------
    @classmethod
    def collect(cls, host: PluginHost) -> Registry:
        """Call every plugin's registration hooks and merge what each registered (built-ins first)."""
        contributions: dict[str, list[tuple[str, Any]] | None] = {}
        for kind, (hook_name, spec_type) in KINDS.items():
            for plugin in host.implementers(hook_name):
                items = contributions.setdefault(plugin, [])
                if items is None:
                    continue
                found: list[tuple[str, Any]] = []
                try:
                    host.call(hook_name, plugin, register=_register_into(found, kind, spec_type, plugin))
                except Exception as exc:
                    host.mark_failed(plugin, f"{hook_name} raised {one_line(exc, typed=True)}")
                    contributions[plugin] = None
                    continue
                items.extend(found)

        # Built-in plugins first, so that a third party that reuses a name is the one refused.
        def rank(plugin: str) -> tuple[bool, str]:
            record = host.records.get(plugin)
            return (not (record and record.builtin), plugin)

        registry = cls()
        kept = {p: items for p, items in contributions.items() if items is not None}
        for plugin in sorted(kept, key=rank):
            try:
                registry._merge(plugin, kept[plugin])
            except DuplicateNameError as exc:
                host.mark_failed(plugin, str(exc))
        return registry

    def _merge(self, plugin: str, items: list[tuple[str, Any]]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for kind, spec in items:
            owner = self.table(kind).get(spec.name)
            if owner is not None:
                raise DuplicateNameError(kind, spec.name, owner.plugin, plugin)
            if (kind, spec.name) in seen:
                raise DuplicateNameError(kind, spec.name, plugin, plugin)
            seen[(kind, spec.name)] = plugin
        for kind, spec in items:  # all or nothing
            self.table(kind)[spec.name] = spec

    # -- lookups -------------------------------------------------------------------
    def architecture(self, name: str) -> ArchitectureSpec:
        """The spec registered as ``name``; ``timm:<model>`` names any timm model."""
        if name in self.architectures:
            return self.architectures[name]
        if name.startswith(TIMM_PREFIX):
            from tinyzoo.timm_catalog import timm_spec

            return timm_spec(name[len(TIMM_PREFIX):])
        raise UnknownNameError("architecture", name, self.architectures,
                               listing="`tinyzoo list` shows the registered ones; any timm model is timm:NAME")

    def adapter(self, name: str) -> AdapterSpec:
        if name not in self.adapters:
            raise UnknownNameError("adapter", name, self.adapters)
        return self.adapters[name]

    def recipe(self, name: str) -> RecipeSpec:
        if name not in self.recipes:
            raise UnknownNameError("recipe", name, self.recipes)
        return self.recipes[name]

    def list_architectures(self, pattern: str | None = None) -> list[ArchitectureSpec]:
        """Registered architectures matching a shell-style pattern, sorted by name.

        A pattern starting with ``timm:`` lists timm's models instead (imports timm).
        """
        if pattern and pattern.startswith(TIMM_PREFIX):
            from tinyzoo.timm_catalog import list_timm

            return list_timm(pattern[len(TIMM_PREFIX):] or "*")
        names = sorted(self.architectures)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return [self.architectures[n] for n in names]


def _register_into(found: list, kind: str, spec_type: type[Spec], plugin: str):
    """The ``register`` callback a plugin's hook gets: checks the type, records the plugin."""

    def register(spec) -> None:
        if not isinstance(spec, spec_type):
            raise TypeError(f"register() in {plugin!r} got {type(spec).__name__}, expected {spec_type.__name__}")
        found.append((kind, replace(spec, plugin=plugin)))

    return register


def registry_of(host: PluginHost) -> Registry:
    """The registry built from ``host``'s plugins (built on first use, rebuilt after a plugin is added or removed)."""
    registry = host.cache.get("registry")
    if registry is None:
        registry = host.cache["registry"] = Registry.collect(host)
    return registry


def get_registry() -> Registry:
    """The registry of the process-wide plugin host."""
    return registry_of(get_host())


def list_models(pattern: str | None = None) -> list[ArchitectureSpec]:
    """The registered architectures whose names match the shell-style ``pattern``, sorted by name.

    Returns specs (plain data, no torch): ``[s.name for s in tinyzoo.list_models("resnet*")]``
    gives names. A pattern starting with ``timm:`` lists timm's models instead (imports timm).
    """
    return get_registry().list_architectures(pattern)
