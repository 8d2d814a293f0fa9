"""Builders the registry's ``"module:function"`` strings point at for timm and torchvision.

Each returns a randomly initialised ``nn.Module``; pretrained weights are loaded later
by :mod:`tinyzoo.weights`, never by the builder. :func:`build` calls the spec's builder;
:func:`placeholder_model` builds a network whose values are about to be overwritten.
"""

from __future__ import annotations

from tinyzoo.errors import one_line


def timm_model(model_name: str, num_classes: int = 1000, **kwargs):
    """timm's ``model_name`` with random weights."""
    import timm

    return timm.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)


def torchvision_model(model_name: str, num_classes: int = 1000, **kwargs):
    """torchvision's ``model_name`` with random weights."""
    import torchvision

    return torchvision.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)


def build(spec, num_classes: int | None = None, **options):
    """Build ``spec``'s network with random weights (options are the spec's ``options``).

    A builder that cannot be imported, raises, or returns something other than an
    ``nn.Module`` is a one-line :class:`~tinyzoo.errors.TinyzooError` naming the plugin, the
    architecture and the cause.
    """
    from tinyzoo.errors import TinyzooError

    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(sorted(spec.options)) or "none"
        raise TinyzooError(f"architecture {spec.name!r} has no option {unknown[0]!r}; its options: {allowed}")
    builder = builder_function(spec)
    arguments = {"num_classes": spec.num_classes if num_classes is None else num_classes, **dict(spec.builder_args), **options}
    try:
        model = builder(**arguments)
    except TinyzooError:
        raise
    except Exception as exc:
        raise TinyzooError(f"{builder_origin(spec)}: builder {spec.builder} raised {one_line(exc, 200, typed=True)}") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TinyzooError(f"{builder_origin(spec)}: builder {spec.builder} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def builder_origin(spec) -> str:
    """``plugin 'acme': architecture 'acme-net'`` (the plugin, when the spec records one)."""
    plugin = getattr(spec, "plugin", None)
    return (f"plugin {plugin!r}: " if plugin else "") + f"architecture {spec.name!r}"


def builder_function(spec):
    """The function ``spec.builder`` names; a one-line error naming the plugin when it cannot be imported."""
    from tinyzoo.errors import TinyzooError
    from tinyzoo.specs import resolve_object

    try:
        return resolve_object(spec.builder)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or one_line(exc, 120)
        raise TinyzooError(f"{builder_origin(spec)}: builder {spec.builder} cannot be imported (no module {missing!r})") from None
    except AttributeError:
        raise TinyzooError(f"{builder_origin(spec)}: builder {spec.builder}: its module has no {spec.builder.partition(':')[2]!r}") from None
    except Exception as exc:
        raise TinyzooError(f"{builder_origin(spec)}: builder {spec.builder} cannot be imported ({one_line(exc, 160, typed=True)})") from None


def has_non_persistent_buffers(model) -> bool:
    """Whether ``model`` has buffers a state dict does not carry (they must be computed by building it)."""
    return any(m._non_persistent_buffers_set for m in model.modules())


def placeholder_model(spec, builder_options: dict | None = None):
    """``spec``'s network with cheap placeholder values (small uniform weights, unit buffers),
    for code that overwrites them: built on the meta device and materialised without the
    architecture's own (slow) initialisation; built normally when it has buffers that a
    state dict does not carry."""
    import torch

    builder_options = dict(builder_options or {})
    with torch.device("meta"):
        model = build(spec, **builder_options)
    if has_non_persistent_buffers(model):
        return build(spec, **builder_options)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.uniform_(-0.05, 0.05)
        for tensor in model.buffers():
            tensor.fill_(1 if tensor.is_floating_point() else 0)  # positive running variances
    return model
