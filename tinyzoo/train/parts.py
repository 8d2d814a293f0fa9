"""Which parameters a stage trains, and keeping the rest frozen.

A stage names its trainable parts as ``head``, ``stem``, ``all`` or module-name glob
patterns (``layer4.*``, ``fc``). Frozen parameters get ``requires_grad=False``; every
module whose parameters are all frozen is kept in eval mode, so its BatchNorm running
statistics stay fixed and its dropout is off.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tinyzoo.errors import TinyzooError

NORM_TYPES = ("BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm", "FrozenBatchNorm")


@dataclass(frozen=True)
class ModelParts:
    """Dotted module paths of a model's named parts: its head(s) and its stem."""

    head: tuple[str, ...]
    stem: tuple[str, ...]


def model_parts(model) -> ModelParts:
    """The head and stem module paths of an adapted model, from its config or its architecture spec.

    The head is the classifier plus any auxiliary classifiers' final layers; the stem is
    the first convolution and the normalisation layer registered right after it.
    """
    config = dict(getattr(model, "tinyzoo_config", None) or {})
    classifier, aux, first_conv = config.get("classifier"), config.get("aux_classifiers"), config.get("first_conv")
    if classifier is None or first_conv is None:
        spec = _spec_for(config)
        if spec is not None:
            classifier = classifier or spec.classifier
            aux = aux if aux is not None else spec.aux_classifiers
            first_conv = first_conv or spec.first_conv
    modules = dict(model.named_modules())
    head = tuple(p for p in (classifier, *(aux or ())) if p and p in modules)
    stem: tuple[str, ...] = ()
    if first_conv and first_conv in modules:
        stem = (first_conv,)
        norm = _norm_after(model, first_conv)
        if norm:
            stem += (norm,)
    return ModelParts(head=head, stem=stem)


def _spec_for(config: dict):
    arch = config.get("arch") or config.get("architecture")
    if not arch:
        return None
    from tinyzoo.registry import get_registry

    try:
        return get_registry().architecture(arch)
    except TinyzooError:
        return None


def _norm_after(model, path: str) -> str | None:
    """The sibling registered right after ``path`` when it is a normalisation layer (conv1 -> bn1)."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    names = [n for n, _ in parent.named_children()]
    if name not in names or names.index(name) + 1 >= len(names):
        return None
    follower = names[names.index(name) + 1]
    if any(t in type(getattr(parent, follower)).__name__ for t in NORM_TYPES):
        return f"{parent_path}.{follower}" if parent_path else follower
    return None


def trainable_names(model, patterns, parts: ModelParts | None = None) -> list[str]:
    """Names of the parameters that ``patterns`` (``head``, ``stem``, ``all`` or globs) select."""
    parts = parts or model_parts(model)
    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for pattern in patterns:
        if pattern == "all":
            chosen.update(names)
            continue
        if pattern in ("head", "stem"):
            prefixes = parts.head if pattern == "head" else parts.stem
            if not prefixes:
                raise TinyzooError(f"train = {pattern!r}: this model has no known {pattern} (set the architecture's "
                                   f"{'classifier' if pattern == 'head' else 'first_conv'}, or give module-name patterns)")
            hits = [n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + ".*")]
        if not hits:
            sample = ", ".join(sorted({n.rsplit(".", 1)[0] for n in names})[:6])
            raise TinyzooError(f"train pattern {pattern!r} matches no parameter; module names look like: {sample}, ...")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def freeze(model, trainable: list[str]) -> None:
    """Give exactly ``trainable`` parameters ``requires_grad=True``."""
    keep = set(trainable)
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)


def set_train_mode(model, freeze_bn: bool = True) -> None:
    """``model.train()``, then eval mode for every module whose parameters are all frozen.

    Parameter-free modules (dropout, activations) follow their nearest frozen ancestor; with
    ``freeze_bn=False`` frozen BatchNorm layers still update their running statistics.
    """
    model.train()
    if not freeze_bn:
        return
    frozen_roots: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(root + ".") for root in frozen_roots):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            frozen_roots.append(name)
            if name == "":
                break
