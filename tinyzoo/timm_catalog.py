"""Any timm model as a tinyzoo architecture (``timm:<name>``); importing this imports timm."""

from __future__ import annotations

from tinyzoo.errors import UnknownNameError
from tinyzoo.specs import ArchitectureSpec

# timm module name -> tinyzoo family, where the adapters treat them alike.
FAMILY_OF_MODULE = {
    "resnet": "resnet",
    "vgg": "vgg",
    "densenet": "densenet",
    "inception_v3": "inception",
    "vision_transformer": "vit",
    "deit": "vit",
}
SMALL_STEM_FAMILIES = {"resnet", "vgg", "densenet", "inception", "vit"}


def timm_spec(model_name: str) -> ArchitectureSpec:
    """A spec for timm's ``model_name`` (optionally ``arch.tag``) built from its pretrained config."""
    import timm
    from timm.models import get_pretrained_cfg, model_entrypoint, split_model_name_tag

    arch, tag = split_model_name_tag(model_name)
    if not timm.is_model(arch):
        raise UnknownNameError("timm model", model_name, timm.list_models(), prefix="timm:",
                               listing="`tinyzoo list 'timm:PATTERN'` lists timm's models")
    cfg = get_pretrained_cfg(model_name if tag else arch, allow_unregistered=False)
    cfg = cfg.to_dict() if cfg is not None else {}
    module = model_entrypoint(arch).__module__.rpartition(".")[2]  # timm.models.resnet -> resnet
    family = FAMILY_OF_MODULE.get(module, module)
    hub_id = cfg.get("hf_hub_id")
    # timm builds inception_v3 without its auxiliary head, but the tv_in1k checkpoint carries it.
    aux = arch == "inception_v3" and (hub_id or "").endswith(".tv_in1k")
    return ArchitectureSpec(
        name=f"timm:{model_name}",
        family=family,
        source="timm",
        builder="tinyzoo.builders:timm_model",
        builder_args={"model_name": arch, **({"aux_logits": True} if aux else {})},
        weights=f"hf-hub:{hub_id}" if hub_id else None,
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        num_classes=int(cfg.get("num_classes", 1000)),
        stems=("keep", "small", "resize") if family in SMALL_STEM_FAMILIES else ("keep", "resize"),
        first_conv=cfg.get("first_conv"),
        classifier=cfg.get("classifier"),
        aux_classifiers=("AuxLogits.fc",) if aux else (),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        interpolation=cfg.get("interpolation", "bilinear"),
        description=f"timm model {arch}",
        plugin="timm",
    )


def list_timm(pattern: str = "*") -> list[ArchitectureSpec]:
    """Specs for timm's models whose names match ``pattern`` (shell-style)."""
    import timm

    return [timm_spec(name) for name in timm.list_models(pattern)]
