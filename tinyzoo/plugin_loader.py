"""Finding and loading plugins from the ``tinyzoo`` entry-point group.

Entry points are loaded one at a time (pluggy's ``load_setuptools_entrypoints`` stops at
the first plugin that raises): a plugin that fails to import, or whose hook
implementations are misspelled, is skipped with a one-line warning (the ``tinyzoo``
logger) and kept in :attr:`PluginHost.records` with its error, for ``tinyzoo plugins``.
:meth:`PluginHost.call` calls one plugin's hook through pluggy, so that a failing plugin
can be told apart from the others. What the plugins register is built into a registry by
:mod:`tinyzoo.registry`, which keeps it in :attr:`PluginHost.cache`.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from tinyzoo import hookspecs
from tinyzoo.errors import one_line
from tinyzoo.logs import logger

GROUP = "tinyzoo"
LOAD_ENV = "TINYZOO_LOAD_PLUGINS"
OWN_DIST = "tinyzoo"
# Packages that take a second or more to import: a plugin must not import them when it loads,
# since every command loads every plugin (`tinyzoo list` takes 0.2 s; importing torch, 2 to 4).
HEAVY_MODULES = ("torch", "torchvision", "timm", "tensorflow", "jax", "pandas", "scipy", "sklearn", "matplotlib", "cv2")


@dataclass
class PluginRecord:
    """One plugin as ``tinyzoo plugins`` shows it."""

    name: str
    module: str
    package: str | None = None
    version: str | None = None
    builtin: bool = False
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    heavy_imports: list[str] = field(default_factory=list)  # HEAVY_MODULES its import brought in
    import_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def warn(message: str) -> None:
    logger.warning(message)


def allowed_plugins() -> set[str] | None:
    """Entry-point names listed in TINYZOO_LOAD_PLUGINS, or None when it is unset."""
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def heavy_imports(new_modules: set[str], plugin: Any) -> list[str]:
    """The :data:`HEAVY_MODULES` among ``new_modules`` (imported by the plugin) or bound in its namespace
    (imported earlier by another plugin: ``import torch``, ``from torch import nn``)."""
    found = {name.partition(".")[0] for name in new_modules}
    for value in vars(plugin).values() if hasattr(plugin, "__dict__") else ():
        owner = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(owner, str):
            found.add(owner.partition(".")[0])
    return sorted(found & set(HEAVY_MODULES))


class PluginHost:
    """A pluggy manager with tinyzoo's hook specifications and a record per plugin."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        # What is built from the loaded plugins (the registry), forgotten when one is added or removed.
        self.cache: dict[str, Any] = {}
        if load_entry_points:
            self.load_entry_points()

    # -- loading -------------------------------------------------------------------
    def load_entry_points(self) -> None:
        allowed = allowed_plugins()
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in self.records:
                continue
            dist = getattr(ep, "dist", None)
            record = PluginRecord(
                name=ep.name,
                module=ep.value,
                package=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
                builtin=dist is not None and dist.metadata["Name"] == OWN_DIST,
            )
            self.records[ep.name] = record
            if allowed is not None and ep.name not in allowed:
                record.status = "disabled"
                continue
            self.load(ep, record)

    def load(self, ep: metadata.EntryPoint, record: PluginRecord) -> None:
        """Import entry point ``ep`` (noting the heavy packages it imports and the time it takes), then register it."""
        before = set(sys.modules)
        start = time.perf_counter()
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break tinyzoo
            self._fail(record, f"failed to import: {one_line(exc, typed=True)}")
            return
        record.import_seconds = round(time.perf_counter() - start, 3)
        record.heavy_imports = heavy_imports(set(sys.modules) - before, plugin)
        self._register(record, plugin)

    def register(self, plugin: Any, name: str, *, builtin: bool = False) -> PluginRecord:
        """Register a plugin object directly (tests, notebooks); returns its record."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        record = PluginRecord(name=name, module=module, builtin=builtin)
        self.records[name] = record
        self._register(record, plugin)
        return record

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` and forget what it registered."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.records.pop(name, None)
        self.cache.clear()

    def _register(self, record: PluginRecord, plugin: Any) -> None:
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:
            self._fail(record, f"rejected: {one_line(exc, typed=True)}")
            return
        try:
            self.pm.check_pending()  # hook implementations that match no hook name
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=record.name)
            self._fail(record, f"rejected: {one_line(exc, typed=True)}")
            return
        record.hooks = sorted(
            {impl.function.__name__ for caller in self.pm.get_hookcallers(plugin) or [] for impl in caller.get_hookimpls() if impl.plugin is plugin}
        )
        self.cache.clear()

    def _fail(self, record: PluginRecord, error: str) -> None:
        record.status = "failed"
        record.error = error
        warn(f"plugin {record.name!r} skipped: {error}")

    def mark_failed(self, name: str, error: str) -> None:
        """Disable a plugin whose hook raised or conflicted while the registry was built."""
        record = self.records.get(name)
        if record is None:
            record = self.records[name] = PluginRecord(name=name, module=name)
        self._fail(record, error)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.cache.clear()

    # -- calling hooks -------------------------------------------------------------
    def implementers(self, hook_name: str) -> list[str]:
        """The plugins with an implementation of ``hook_name`` (wrappers aside), in registration order."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        return list(dict.fromkeys(i.plugin_name for i in impls if not (i.wrapper or i.hookwrapper)))

    def call(self, hook_name: str, plugin: str, **kwargs: Any) -> list[Any]:
        """Call plugin ``plugin``'s ``hook_name`` alone, through pluggy.

        A subset hook caller leaves out the other plugins' implementations but keeps every
        hook wrapper, and runs through the manager's hook execution, so wrappers and
        ``pm.trace`` / ``add_hookcall_monitoring`` see each call as they would a plain one.
        """
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        others = {i.plugin for i in impls if i.plugin_name != plugin and not (i.wrapper or i.hookwrapper)}
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host() -> None:
    """Forget the loaded plugins (the next :func:`get_host` loads them again)."""
    global _host
    _host = None
