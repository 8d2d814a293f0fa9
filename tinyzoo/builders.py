"""Builders the registry's ``"module:function"`` strings point at for timm and torchvision.

Each returns a randomly initialised ``nn.Module``; pretrained weights are loaded later
by :mod:`tinyzoo.weights`, never by the builder.
"""

from __future__ import annotations


def timm_model(model_name: str, num_classes: int = 1000, **kwargs):
    """timm's ``model_name`` with random weights."""
    import timm

    return timm.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)


def torchvision_model(model_name: str, num_classes: int = 1000, **kwargs):
    """torchvision's ``model_name`` with random weights."""
    import torchvision

    return torchvision.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)


def build(spec, num_classes: int | None = None, **options):
    """Build ``spec``'s network with random weights (options are the spec's ``options``)."""
    from tinyzoo.errors import TinyzooError
    from tinyzoo.specs import resolve_object

    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(sorted(spec.options)) or "none"
        raise TinyzooError(f"architecture {spec.name!r} has no option {unknown[0]!r}; its options: {allowed}")
    builder = resolve_object(spec.builder)
    return builder(num_classes=spec.num_classes if num_classes is None else num_classes, **dict(spec.builder_args), **options)
