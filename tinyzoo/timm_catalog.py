"""Any timm model as a tinyzoo architecture (``timm:<name>``); importing this imports timm.

A spec comes from timm's public metadata: the pretrained config (input size, normalisation,
first conv, classifier, Hub weights) and the module that defines the model
(``model_entrypoint(name).__module__``), which names the family. The stems listed for a model
are the ones the coverage sweep (``docs/make_timm_coverage.py``) found working at 56 and 64 px,
read from ``tinyzoo/timm_coverage.json`` (torch-free data); a model the sweep has not seen gets
its module's stems.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from tinyzoo.errors import UnknownNameError
from tinyzoo.specs import ArchitectureSpec

COVERAGE_FILE = Path(__file__).with_name("timm_coverage.json")
# timm module name -> tinyzoo family, where a dedicated adapter handles them; every other
# module is its own family and gets the generic feature_info rule (tinyzoo.surgery.timm_geometry).
FAMILY_OF_MODULE = {
    "inception_v3": "inception",
    "vision_transformer": "vit",
    "deit": "vit",
    "beit": "vit",
    "eva": "vit",
    "cait": "vit",
    "swin_transformer": "swin",
    "swin_transformer_v2": "swin",
    "swin_transformer_v2_cr": "swin",
}
# Builder arguments that give a family timm's dynamic image size (64 px input after stem small).
DYNAMIC_ARGS = {
    "vision_transformer": {"dynamic_img_size": True},
    "deit": {"dynamic_img_size": True},
    "eva": {"dynamic_img_size": True},
    "swin_transformer": {"strict_img_size": False},
    "swin_transformer_v2": {"strict_img_size": False},
}
BASE_STEMS = ("keep", "resize")


@lru_cache(maxsize=1)
def coverage() -> dict:
    """The coverage sweep's results: ``{"modules": {module: {...}}, "models": {name: [stems]}}``."""
    try:
        return json.loads(COVERAGE_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"modules": {}, "models": {}}


def timm_module(arch: str) -> str:
    """The timm module that defines ``arch`` (``resnet``, ``efficientnet``, ``vision_transformer``)."""
    from timm.models import model_entrypoint

    return model_entrypoint(arch).__module__.rpartition(".")[2]


def stems_for(arch: str, module: str) -> tuple[str, ...]:
    """The stems listed for ``arch``: the sweep's for this model, else its module's, else keep and resize."""
    data = coverage()
    found = data.get("models", {}).get(arch) or data.get("modules", {}).get(module, {}).get("stems")
    return tuple(found) if found else BASE_STEMS


def _layers(value) -> tuple[str | None, tuple[str, ...]]:
    """timm names one layer or a tuple (a distilled model's two heads): the first, and the rest."""
    if isinstance(value, (tuple, list)):
        return (value[0] if value else None), tuple(value[1:])
    return value, ()


def timm_spec(model_name: str) -> ArchitectureSpec:
    """A spec for timm's ``model_name`` (optionally ``arch.tag``) built from its pretrained config."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(model_name)
    if not timm.is_model(arch):
        raise UnknownNameError("timm model", model_name, timm.list_models(), prefix="timm:",
                               listing="`tinyzoo list 'timm:PATTERN'` lists timm's models")
    pretrained = get_pretrained_cfg(model_name if tag else arch, allow_unregistered=False)
    cfg: dict[str, Any] = pretrained.to_dict() if pretrained is not None else {}
    module = timm_module(arch)
    family = FAMILY_OF_MODULE.get(module, module)
    hub_id = cfg.get("hf_hub_id")
    # timm builds inception_v3 without its auxiliary head, but the tv_in1k checkpoint carries it.
    aux = arch == "inception_v3" and (hub_id or "").endswith(".tv_in1k")
    first_conv, _ = _layers(cfg.get("first_conv"))
    classifier, extra_heads = _layers(cfg.get("classifier"))
    return ArchitectureSpec(
        name=f"timm:{model_name}",
        family=family,
        source="timm",
        builder="tinyzoo.builders:timm_model",
        builder_args={"model_name": arch, **DYNAMIC_ARGS.get(module, {}), **({"aux_logits": True} if aux else {})},
        weights=f"hf-hub:{hub_id}" if hub_id else None,
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        num_classes=int(cfg.get("num_classes", 1000)),
        stems=stems_for(arch, module),
        first_conv=first_conv,
        classifier=classifier,
        # A distilled model's second head is adapted like the first (timm averages the two).
        aux_classifiers=("AuxLogits.fc",) if aux else extra_heads,
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        interpolation=cfg.get("interpolation", "bilinear"),
        description=f"timm model {arch} (module {module})",
        plugin="timm",
    )


def list_timm(pattern: str = "*") -> list[ArchitectureSpec]:
    """Specs for timm's models whose names match ``pattern`` (shell-style)."""
    import timm

    return [timm_spec(name) for name in timm.list_models(pattern)]
