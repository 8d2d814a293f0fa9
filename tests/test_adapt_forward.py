"""Every built-in architecture x every stem it supports: (batch, classes) at 56 and 64, and the geometry kept.

Speed: each network's weights are made once per architecture with cheap placeholder values
and handed to ``tinyzoo.create`` already loaded (no random initialisation, no file to hash);
shapes are checked on the meta device (no arithmetic). Real-valued forwards are kept to the
small networks.
"""

from __future__ import annotations

import pytest
import torch

import tinyzoo
from tinyzoo.adapt import placeholder_model
from tinyzoo.registry import get_registry
from tinyzoo.surgery.stem import stage_sizes
from tinyzoo.weights import LoadedWeights

BUILTIN_PLUGINS = ("tinyzoo-architectures",)
# Stem keep means native input; these two cannot take 56 px at all, so they are checked at theirs.
KEEP_NEEDS_NATIVE = {
    "alexnet": "its 11x11/4 conv and three 3x3/2 pools empty a 56 px map", "inception_v3": "needs 75 px or more",
    **dict.fromkeys(("deit_small_patch16_224", "deit_base_patch16_224", "vit_base_patch16_224", "eva02_tiny_patch14_224", "vit_small_patch14_dinov2"), "56 or 64 px is not a whole number of its patches"),
}
# --stem small keeps the native sizes exactly, except Inception-v3 (whole strides only; docs/adapters.md)
# and SqueezeNet's stem output (54, native 55; its later stages are exact).
SMALL_SIZES = {
    "inception_v3": {"Pool2": 46, "Mixed_5d": 46, "Mixed_6e": 22, "Mixed_7c": 10},
    "squeezenet1_1": {"features.2": 54, "features.5": 27, "features.8": 13, "features.12": 13},
}
# Transformers whose native grid 56 px cannot give with whole patches: the nearest grid (14 for 16, 28 for 37).
SMALL_SHAPES = {
    "eva02_tiny_patch14_224": {"patch_embed": (14, 14, 192), "blocks.0": (1 + 14 * 14, 192)},
    "vit_small_patch14_dinov2": {"patch_embed": (28, 28, 384), "blocks.0": (1 + 28 * 28, 384)},
}


def builtin_specs():
    return [s for s in get_registry().architectures.values() if s.plugin in BUILTIN_PLUGINS]


CASES = [(s.name, stem) for s in builtin_specs() for stem in s.stems]


@pytest.fixture(scope="module")
def weights():
    """``name -> (LoadedWeights, native stage shapes)``; only the latest network is kept in memory."""
    cache: dict[str, tuple[LoadedWeights, dict]] = {}

    def get(name: str):
        if name not in cache:
            cache.clear()
            spec = get_registry().architecture(name)
            model = placeholder_model(spec).eval()
            native = stage_sizes(model, spec.stages, spec.input_size) if spec.stages else {}
            cache[name] = (LoadedWeights(model.state_dict(), f"placeholder:{name}"), native)
        return cache[name]

    return get


def meta_forward(model, size: int):
    from tinyzoo.surgery.meta_trace import meta_forward as forward

    return forward(model, size)


@pytest.mark.parametrize("name,stem", CASES)
def test_every_stem_gives_batch_by_classes_and_small_keeps_the_geometry(name, stem, weights):
    spec = get_registry().architecture(name)
    loaded, native = weights(name)
    classes = 200 if spec.num_classes != 200 else 10  # a from-scratch net's 200-way head must change too
    model = tinyzoo.create(name, stem=stem, classes=classes, weights=loaded)

    sizes = (spec.input_size,) if stem == "keep" and name in KEEP_NEEDS_NATIVE else (56, 64)
    for size in sizes:
        out = meta_forward(model, size)
        assert isinstance(out, torch.Tensor) and tuple(out.shape) == (1, classes), (name, stem, size)
    assert model.tinyzoo_config["input_size"] == (56 if stem in ("small", "small-up2", "resize") else spec.input_size)

    if stem.startswith("small"):
        assert spec.stages, f"{name} needs stages= in its spec"
        small = stage_sizes(model, spec.stages, 56)
        if name in SMALL_SHAPES:
            assert small == SMALL_SHAPES[name]
            return
        if name in SMALL_SIZES:
            assert {k: v[-2:] for k, v in small.items()} == {k: (n, n) for k, n in SMALL_SIZES[name].items()}
        else:
            assert {k: v[-2:] for k, v in small.items()} == {k: v[-2:] for k, v in native.items()}, "interior sizes changed"
        assert [v[0] for v in small.values()] == [v[0] for v in native.values()], "channels changed"
    if stem == "resize" and spec.stages:
        last = spec.stages[-1]
        assert stage_sizes(model, spec.stages, 64)[last] == native[last], "resize must feed the native size"


@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_convolutionized_small_stem_gives_scores_at_56_and_64(name, weights):
    model = tinyzoo.create(name, stem="small", convolutionize=True, weights=weights(name)[0])
    for size in (56, 64):
        assert tuple(meta_forward(model, size).shape) == (1, 200)


@pytest.mark.parametrize("name,stem", [("resnet18", "small"), ("alexnet", "small"), ("squeezenet1_1", "keep"), ("googlenet", "small")])
def test_real_forward_is_finite(name, stem, weights):
    model = tinyzoo.create(name, stem=stem, weights=weights(name)[0])
    with torch.no_grad():
        for size in (56, 64):
            out = model(torch.randn(2, 3, size, size))
            assert out.shape == (2, 200) and torch.isfinite(out).all()


def test_vit_small_stem_keeps_the_token_grid():
    model = tinyzoo.create("timm:vit_tiny_patch16_224", stem="small", kernel_resize="pi", weights="none")
    embed = model.patch_embed
    assert embed.proj.kernel_size == (4, 4) and embed.proj.stride == (4, 4)
    assert model.pos_embed.shape[1] == 1 + 14 * 14  # position embeddings unchanged
    assert embed(torch.randn(1, 3, 56, 56)).shape[1:3] == (14, 14)
    with torch.no_grad():
        for size in (56, 64):
            assert model(torch.randn(1, 3, size, size)).shape == (1, 200)


def test_unsupported_stem_is_a_clear_error():
    from tinyzoo.errors import TinyzooError

    with pytest.raises(TinyzooError, match="supports stems keep; not 'small'"):
        tinyzoo.create("lenet5", stem="small", weights="none")
