"""Tiny ImageNet data: the on-disk layout, the decoded uint8 cache, batched augmentation, loaders.

Importing this package is cheap: names below load their module (and torch) on first use.

- :class:`TinyImageNet` (``tinyzoo.data.layout``): reads the ``tiny-imagenet-200`` layout;
- :func:`open_split` (``tinyzoo.data.cache``): a split decoded to a memory-mapped uint8 array;
- :class:`Pipeline` (``tinyzoo.data.augment``): batched augmentation from a config dict;
- :class:`BatchLoader` (``tinyzoo.data.loader``): shuffled, sharded, augmented batches;
- :func:`write_sample` (``tinyzoo.data.sample``): a small learnable dataset in the same layout.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TinyImageNet": "tinyzoo.data.layout",
    "read_image": "tinyzoo.data.layout",
    "ResizedImagesWarning": "tinyzoo.data.layout",
    "open_split": "tinyzoo.data.cache",
    "DecodedSplit": "tinyzoo.data.cache",
    "SplitStats": "tinyzoo.data.cache",
    "resolve_cache_dir": "tinyzoo.data.cache",
    "Pipeline": "tinyzoo.data.augment",
    "CONFIG_KEYS": "tinyzoo.data.augment",
    "BatchLoader": "tinyzoo.data.loader",
    "write_sample": "tinyzoo.data.sample",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tinyzoo.data' has no attribute {name!r}")
