"""Head surgery: a ``classes``-way classifier in place of the 1000-way one.

``new_head_layer`` is the pure part (a layer in, a new layer out); ``adapt_head`` is the
``head`` adapter: it swaps the layer at ``spec.classifier`` and the auxiliary classifiers
at ``spec.aux_classifiers`` (or drops the auxiliary branches) and declares every tensor it
made in a :class:`~tinyzoo.adapt_report.Changes`.

Initialisations:

- ``wnid``: the new layer's rows are the old layer's rows for the given ImageNet-1k class
  indices, in that order, so its logits equal the old logits at those indices;
- ``random``: Kaiming/MSRA normal weights (fan-in, ReLU gain: std ``sqrt(2 / fan_in)``), zero bias;
- ``keep``: the layer stays as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import HEAD_INITS

ADAPTER_HEAD_INITS = (*HEAD_INITS, "keep")  # "keep": the aux heads change, the main head stays
AUX_MODES = ("adapt", "drop")


def get_module(model: nn.Module, path: str, field: str = "layer") -> nn.Module:
    """The submodule at dotted ``path``; a :class:`TinyzooError` naming ``field`` when absent."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise TinyzooError(f"{field} {path!r} is not a module of {type(model).__name__}; fix the architecture spec's {field}") from None


def set_module(model: nn.Module, path: str, module: nn.Module | None) -> None:
    """Put ``module`` at dotted ``path`` (``None`` removes a registered submodule)."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def out_size(layer: nn.Module) -> int:
    """The number of classes a Linear or Conv2d head produces."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, nn.Identity):
        return 0  # a headless model (timm num_classes=0, e.g. DINOv2)
    raise TinyzooError(f"a classifier must be nn.Linear or nn.Conv2d (a 1x1 conv head), not {type(layer).__name__}")


def _two(size: tuple[int, ...]) -> tuple[int, int]:
    # A Conv2d keeps its sizes as pairs; torch types them tuple[int, ...].
    return size[0], size[1]


def new_head_layer(old: nn.Module, classes: int, rows: Sequence[int] | None = None) -> nn.Linear | nn.Conv2d:
    """A new ``classes``-way layer shaped like ``old`` (``nn.Linear`` or ``nn.Conv2d``).

    With ``rows`` (one old class index per new class) its weights and bias are copies of
    those rows of ``old``; without, Kaiming normal weights (fan-in, ReLU gain) and zero bias.
    Same device and dtype as ``old``; ``old`` is not modified.
    """
    old_size = out_size(old)
    if not isinstance(old, (nn.Linear, nn.Conv2d)):  # a headless Identity: nothing to shape the new layer on
        raise TinyzooError(f"a classifier must be nn.Linear or nn.Conv2d (a 1x1 conv head), not {type(old).__name__}")
    if rows is not None and len(rows) != classes:
        raise TinyzooError(f"head rows: {len(rows)} class indices for {classes} classes")
    weight, bias = old.weight, old.bias is not None
    new: nn.Linear | nn.Conv2d
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, classes, bias=bias, device=weight.device, dtype=weight.dtype)
    else:
        kernel, stride, dilation = (_two(size) for size in (old.kernel_size, old.stride, old.dilation))
        padding = old.padding if isinstance(old.padding, str) else _two(old.padding)
        new = nn.Conv2d(old.in_channels, classes, kernel, stride, padding, dilation, old.groups,
                        bias=bias, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        if rows is not None:
            index = torch.as_tensor(list(rows), dtype=torch.long, device=weight.device)
            bad = [r for r in rows if not 0 <= r < old_size]
            if bad:
                raise TinyzooError(f"head row {bad[0]} is outside the old head's {old_size} classes")
            new.weight.copy_(weight.index_select(0, index))
            if old.bias is not None and new.bias is not None:  # both or neither: bias= above
                new.bias.copy_(old.bias.index_select(0, index))
        elif not weight.is_meta:
            nn.init.kaiming_normal_(new.weight, mode="fan_in", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    new.train(old.training)
    return new


def _replace(model: nn.Module, path: str, classes: int, init: str, rows, changes: Changes, what: str) -> None:
    old = get_module(model, path, what)
    if init == "keep":
        return
    if isinstance(old, nn.Identity):
        new = _headless(model, path, classes)
    else:
        new = new_head_layer(old, classes, rows if init == "wnid" else None)
        set_module(model, path, new)
    for name, _ in new.named_parameters():
        key = f"{path}.{name}"
        if init == "wnid":
            changes.slice(key, key, f"rows of the {out_size(old)}-way head for {classes} wnids, in file order")
        else:
            how = "Kaiming normal (fan-in)" if name == "weight" else "zeros"
            changes.init(key, f"{classes}-way head, {how}")


def _headless(model: nn.Module, path: str, classes: int) -> nn.Module:
    """A headless timm model (``num_classes=0``) given a ``classes``-way head by its own
    ``reset_classifier``, Kaiming normal, zero bias; returns the new layer."""
    reset = getattr(model, "reset_classifier", None)
    if reset is None:
        raise TinyzooError(f"classifier {path!r} is an Identity and {type(model).__name__} has no reset_classifier to make a head")
    reset(classes)
    new = get_module(model, path, "classifier")
    if not isinstance(new, nn.Linear):
        raise TinyzooError(f"{type(model).__name__}.reset_classifier made a {type(new).__name__} at {path!r}, not a Linear head")
    if not new.weight.is_meta:
        with torch.no_grad():
            nn.init.kaiming_normal_(new.weight, mode="fan_in", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    return new


def _drop_branch(model: nn.Module, path: str, changes: Changes) -> str:
    """Remove the top-level branch holding auxiliary classifier ``path``; returns its name."""
    branch = path.split(".")[0]
    module = get_module(model, branch, "aux_classifiers")
    for key in module.state_dict():
        changes.remove(f"{branch}.{key}", "auxiliary classifier dropped (aux=drop)")
    setattr(model, branch, None)
    return branch


def _check_runs_without(model: nn.Module, spec, dropped: list[str]) -> None:
    """Refuse ``aux=drop`` when the forward needs the dropped branches (a distilled DeiT averages
    its two heads: ``head_dist`` is part of every prediction, not an auxiliary output)."""
    from tinyzoo.surgery.meta_trace import meta_forward

    try:
        meta_forward(model, spec.input_size)
    except Exception:
        raise TinyzooError(
            f"option aux=drop: {spec.name!r} uses {', '.join(dropped)} in every prediction (a distillation head, "
            "not an auxiliary classifier); keep it with aux=adapt"
        ) from None


def adapt_head(
    model: nn.Module,
    spec,
    *,
    classes: int,
    init: str,
    rows: Sequence[int] | None = None,
    aux: str = "adapt",
) -> tuple[nn.Module, Changes]:
    """The ``head`` adapter: ``spec.classifier`` (and the auxiliary classifiers) made ``classes``-way.

    ``init`` is ``wnid`` (needs ``rows``, the ImageNet-1k index of each class), ``random`` or
    ``keep``. ``aux`` is ``adapt`` (auxiliary classifiers get the same treatment; for
    torchvision GoogLeNet and timm Inception-v3 the forward then returns the main logits and,
    in training mode, leaves the auxiliary logits on ``model.aux_logits``) or ``drop`` (the
    auxiliary branches are removed). Returns the model (changed in place) and its changes.
    """
    if init not in ADAPTER_HEAD_INITS:
        raise TinyzooError(f"head init {init!r} is not one of: {', '.join(ADAPTER_HEAD_INITS)}")
    if aux not in AUX_MODES:
        raise TinyzooError(f"option aux={aux!r} is not one of: {', '.join(AUX_MODES)}")
    if not spec.classifier:
        raise TinyzooError(f"architecture {spec.name!r} names no classifier layer; its spec needs classifier=")
    if init == "wnid" and rows is None:
        raise TinyzooError("head init 'wnid' needs the ImageNet-1k index of each class (wnids)")
    changes = Changes()
    _replace(model, spec.classifier, classes, init, rows, changes, "classifier")
    if aux == "drop":
        dropped = [_drop_branch(model, path, changes) for path in spec.aux_classifiers]
        if dropped and hasattr(model, "aux_logits"):
            # The library's own flag: no auxiliary outputs any more.
            model.aux_logits = False  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
        if dropped:
            _check_runs_without(model, spec, dropped)
            changes.note(f"auxiliary classifiers dropped: {', '.join(dropped)}")
    else:
        for path in spec.aux_classifiers:
            _replace(model, path, classes, init, rows, changes, "aux_classifiers")
        if spec.aux_classifiers:
            install_aux_outputs(model)
    if init != "keep" and hasattr(model, "num_classes"):
        # timm's reset_classifier and feature code read it.
        model.num_classes = classes  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
    return model, changes


# -- one convention for auxiliary outputs ------------------------------------------------------
def _aux_pre_hook(module: nn.Module, args):
    # The libraries branch on this flag; ask for auxiliary outputs only while training.
    module.aux_logits = module.training  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module


def _aux_post_hook(module: nn.Module, args, output):
    if isinstance(output, tuple) and len(output) > 1:
        main, *aux = output
        if type(output).__name__ == "GoogLeNetOutputs":  # torchvision orders them (logits, aux2, aux1)
            aux = aux[::-1]
        module.aux_logits = tuple(aux)  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
        return main
    module.aux_logits = None  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
    return output


def _returns_aux_tuple(model: nn.Module) -> bool:
    names = {cls.__module__ + "." + cls.__name__ for cls in type(model).__mro__}
    return bool(names & {"torchvision.models.googlenet.GoogLeNet", "timm.models.inception_v3.InceptionV3"})


def install_aux_outputs(model: nn.Module) -> None:
    """Make torchvision GoogLeNet / timm Inception-v3 follow tinyzoo's auxiliary-output convention.

    ``model(x)`` returns the main logits in every mode; after a training-mode forward
    ``model.aux_logits`` is the tuple of auxiliary logits (``(aux1, aux2)`` for GoogLeNet,
    ``(aux,)`` for Inception-v3), after an eval-mode forward ``None``. This is what tinyzoo's
    own from-scratch GoogLeNet does. Other models are left alone. Idempotent.
    """
    if not _returns_aux_tuple(model) or getattr(model, "_tinyzoo_aux_hooks", False):
        return
    model.register_forward_pre_hook(_aux_pre_hook)
    model.register_forward_hook(_aux_post_hook)
    model._tinyzoo_aux_hooks = True  # type: ignore[assignment]  # torch's stub wrongly limits Module attributes to Tensor | Module
