"""tinyzoo: ImageNet networks adapted to Tiny ImageNet (200 classes, 64x64 images).

Importing this package is cheap (no torch). ``hookimpl`` marks plugin hook
implementations; ``list_models`` lists the registered architectures (specs, torch-free);
``create``, ``save`` and ``load`` build, write and read adapted networks and import torch
only when called. ``__version__`` is the one place the version is written (pyproject.toml
reads it from here).
"""

from __future__ import annotations

from tinyzoo.hookspecs import hookimpl
from tinyzoo.specs import AdapterSpec, ArchitectureSpec, RecipeSpec, Result

__version__ = "0.1.0"
__all__ = [
    "AdapterSpec",
    "ArchitectureSpec",
    "RecipeSpec",
    "Result",
    "__version__",
    "create",
    "hookimpl",
    "list_models",
    "load",
    "save",
]

# Resolved on first use so that `import tinyzoo` stays cheap (no torch, no plugin loading).
_LAZY = {"create": "tinyzoo.adapt", "load": "tinyzoo.adapt", "save": "tinyzoo.adapt", "list_models": "tinyzoo.registry"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tinyzoo' has no attribute {name!r}")
