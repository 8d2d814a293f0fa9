"""Native interior geometry for timm's networks: the feature_info rule, small-up2, transformer stems.

Shapes come from the meta device (no arithmetic); values only where an equality is claimed.
The coverage sweep re-measures one model per timm module against tinyzoo/timm_coverage.json,
the data behind `tinyzoo list 'timm:*'` and the table in docs/adapters.md.
"""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import REPO
from torch import nn

import tinyzoo
from tinyzoo.adapt import placeholder_model
from tinyzoo.errors import TinyzooError
from tinyzoo.registry import get_registry
from tinyzoo.surgery.meta_trace import meta_forward
from tinyzoo.surgery.resize import InputResize, InputUpsample
from tinyzoo.timm_catalog import coverage, timm_spec
from tinyzoo.timm_sweep import adapt_meta, build_meta, stage_sides, target_stages, try_stem
from tinyzoo.weights import LoadedWeights

logging.getLogger("timm").setLevel(logging.ERROR)  # timm's notes on resampled embeddings

MODULES = coverage()["modules"]


def check_module(module: str) -> None:
    """The module's model lists the stems the sweep found, and each listed one gives 200-way logits at
    56 and 64 px and the recorded stage sizes. (An unlisted stem never reaches an adapter: `create`
    refuses it first; the refusals the adapters give are tested one by one below.)"""
    entry = MODULES[module]
    spec = timm_spec(entry["model"])
    assert list(spec.stems) == entry["stems"]
    stages = target_stages(build_meta(spec))
    for stem, key in (("small", "small_sizes"), ("small-up2", "small_up2_sizes")):
        assert (stem in spec.stems) == (entry[key] is not None), (module, stem)
        if stem in spec.stems:
            result = try_stem(spec, stem, stages)
            assert result.ok, (module, stem, result.reason)
            assert result.sizes == entry[key], (module, stem)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_sweep(module):
    check_module(module)


def test_at_least_40_modules_keep_their_geometry_at_56_px():
    exact = [m for m, e in MODULES.items() if e["small_sizes"] is not None and e["small_sizes"] == e["native_sizes"]]
    assert len([m for m, e in MODULES.items() if e["small_sizes"] is not None]) >= 40
    assert len(exact) >= 40


def test_no_listed_stem_changes_a_stage_size_more_than_the_nearest_whole_strides_can():
    # 299 px networks at 56 px land within a factor 0.6 to 1.4 of their native sizes; a stem that
    # kept a hybrid ViT's 7x7 grid as 1x1 was listed before the grid was measured.
    for module, entry in MODULES.items():
        for key in ("small_sizes", "small_up2_sizes"):
            for native, small in zip(entry["native_sizes"], entry[key] or ()):
                if native is None and small is None:  # coat's stages give no map the sweep can read
                    continue
                assert 0.5 <= small / native <= 2, (module, key, native, small)


def test_catalog_lists_the_sweeps_stems_and_falls_back_to_keep_and_resize():
    assert timm_spec("tf_efficientnet_lite0").stems == ("keep", "small", "small-up2", "resize")
    assert timm_spec("resnet18").stems == ("keep", "small", "resize")
    assert timm_spec("tresnet_m").stems == ("keep", "resize")
    from tinyzoo.timm_catalog import stems_for

    assert stems_for("no_such_model", "no_such_module") == ("keep", "resize")


def placeholder(name: str) -> LoadedWeights:
    spec = get_registry().architecture(name)
    return LoadedWeights(placeholder_model(spec).state_dict(), f"placeholder:{name}")


def test_resnetrs_and_resnetblur_get_the_rule_with_the_nearest_sizes_reported():
    model, notes = adapt_meta(timm_spec("resnetrs50"), "small")
    assert notes[:2] == [
        "stem small (timm feature_info rule, up to layer1): conv1.0 3x3/2 -> 3x3/1; maxpool.0 3x3/2 -> 3x3/1",
        "stage sizes 56/28/14/7 at 56 px, the nearest whole strides give (native 40/20/10/5 at 160 px)",
    ]
    docs = (REPO / "docs" / "adapters.md").read_text()
    assert "\n".join(notes[:2]) in docs  # the example docs/adapters.md shows
    model, notes = adapt_meta(timm_spec("resnetblur18"), "small")
    assert notes[:2] == [
        "stem small (timm feature_info rule, up to layer1): conv1 7x7/2 -> 3x3/1; maxpool.1 BlurPool2d /2 -> dropped",
        "stage sizes 56/28/14/7 at 56 px, as at 224 px",
    ]
    assert isinstance(model.maxpool[1], nn.Identity) and model.conv1.kernel_size == (3, 3)


@pytest.mark.parametrize("method", ["bicubic", "pi"])
def test_patchify_stems_become_one_by_one_holding_the_patch_sum(method):
    """ConvNeXt's 4x4/4 stem -> 1x1/1: for both methods the new tap is the sum over the patch, so a
    constant patch gives exactly the old response."""
    loaded = placeholder("timm:convnext_atto")
    model = tinyzoo.create("timm:convnext_atto", stem="small", kernel_resize=method, weights=loaded)
    conv = model.stem[0]
    assert conv.kernel_size == (1, 1) and conv.stride == (1, 1)
    old = loaded.state_dict["stem.0.weight"]
    torch.testing.assert_close(conv.weight, old.sum(dim=(2, 3), keepdim=True), rtol=1e-5, atol=1e-6)
    record = model.tinyzoo_report.by_status("resampled")[0]
    assert (record.key, record.detail) == ("stem.0.weight", f"4x4/4 -> 1x1/1, {method}" + (" (rescaled)" if method == "bicubic" else ""))
    with torch.no_grad():
        patch = torch.full((1, 3, 4, 4), 0.7)
        assert torch.allclose(conv(patch[..., :1, :1]), nn.functional.conv2d(patch, old, conv.bias, stride=4), atol=1e-5)


@pytest.mark.parametrize("method", ["bicubic", "pi"])
def test_every_kernel_resize_applies_to_a_shrunk_kernel(method):
    from tinyzoo.surgery.kernels import resample_kernel

    loaded = placeholder("timm:dla34")  # base_layer: a 7x7/1 conv reading 56 instead of 224 -> 3x3
    model = tinyzoo.create("timm:dla34", stem="small", kernel_resize=method, weights=loaded)
    expected, _ = resample_kernel(loaded.state_dict["base_layer.0.weight"], 3, method)
    assert torch.equal(model.base_layer[0].weight, expected) and model.base_layer[0].padding == (1, 1)


def test_small_up2_keeps_every_block_stride_and_equals_a_stride_one_stem_on_2x_input():
    loaded = placeholder("timm:tf_efficientnet_lite0")
    model = tinyzoo.create("timm:tf_efficientnet_lite0", stem="small-up2", classes=1000, weights=loaded)
    assert isinstance(model.input_resize, InputUpsample) and model.input_resize.scale == 2
    assert model.conv_stem.stride == (1, 1) and model.blocks[1][0].conv_dw.stride == (2, 2)
    assert model.tinyzoo_config["input_size"] == 56
    assert model.tinyzoo_report.notes[-1] == "stage sizes 56/28/14/7 at 56 px, as at 224 px"
    reference = placeholder_model(timm_spec("tf_efficientnet_lite0")).eval()
    reference.load_state_dict(loaded.state_dict)
    reference.conv_stem.stride = (1, 1)
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def test_small_takes_both_strides_of_efficientnet_lite0():
    model, notes = adapt_meta(timm_spec("tf_efficientnet_lite0"), "small")
    assert model.conv_stem.stride == (1, 1) and model.blocks[1][0].conv_dw.stride == (1, 1)
    assert notes[:2] == [
        "stem small (timm feature_info rule, up to blocks.1): conv_stem 3x3/2 -> 3x3/1; blocks.1.0.conv_dw 3x3/2 -> 3x3/1",
        "stage sizes 56/28/14/7 at 56 px, as at 224 px",
    ]


def test_up2_is_refused_where_the_stem_holds_all_4x():
    with pytest.raises(TinyzooError) as error:
        adapt_meta(timm_spec("convnext_atto"), "small-up2")
    assert str(error.value) == (
        "stem small-up2 is for networks whose stem reduces 2x before the first stride-4 stage; "
        "timm:convnext_atto reduces 4x before 'stages.0': use stem small"
    )
    with pytest.raises(TinyzooError, match=r"supports stems keep, small, resize; not 'small-up2'"):
        tinyzoo.create("timm:convnext_atto", stem="small-up2", weights="none")


def test_fixed_size_networks_resize_other_inputs_to_56():
    model, notes = adapt_meta(timm_spec("levit_128s"), "small")
    assert isinstance(model.input_resize, InputResize) and model.input_resize.size == 56
    assert "timm:levit_128s has layers fixed to one input size: other input sizes (64 px) are resized to 56 px first" in notes
    assert stage_sides(model, 64, target_stages(build_meta(timm_spec("levit_128s")))) == [14, 7, 4]


def test_refusals_are_one_line_and_name_the_reason():
    with pytest.raises(TinyzooError) as error:
        adapt_meta(timm_spec("convmixer_768_32"), "small")
    assert str(error.value) == (
        "stem small cannot adapt 'timm:convmixer_768_32': the layers with a stride before 'blocks.0' make less than 4x "
        "(stem.0 (/7)); the rest of its downsampling is not a layer tinyzoo can change"
    )
    with pytest.raises(TinyzooError) as error:
        adapt_meta(timm_spec("hrnet_w18_small"), "small")
    assert str(error.value) == (
        "stem small cannot adapt 'timm:hrnet_w18_small': its timm feature_info names 'stem', which is not a module "
        "of the network, so its stages cannot be found"
    )


# -- transformers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,patch,grid", [
    ("timm:vit_tiny_patch16_224", 4, 14),          # 16 -> 4: the native 14x14 grid
    ("timm:swin_tiny_patch4_window7_224", 1, 56),  # 4 -> 1: the native 56x56 grid, windows of 7 tile 56/28/14/7
    ("timm:eva02_tiny_patch14_224", 4, 14),        # 16x16 at 224 -> 14x14, the nearest whole patches give
])
def test_transformer_patches_keep_or_nearest_the_token_grid(name, patch, grid):
    from tinyzoo.surgery.kernels import resample_kernel

    loaded = placeholder(name)
    model = tinyzoo.create(name, stem="small", kernel_resize="pi", weights=loaded)
    embed = model.patch_embed
    assert embed.proj.kernel_size == (patch, patch) and tuple(embed.grid_size) == (grid, grid)
    expected, _ = resample_kernel(loaded.state_dict["patch_embed.proj.weight"], patch, "pi")
    assert torch.equal(embed.proj.weight, expected)
    for size in (56, 64):
        assert meta_forward(model, size).shape == (1, 200)


def test_vit_position_embeddings_are_kept_when_the_grid_is():
    loaded = placeholder("timm:vit_tiny_patch16_224")
    model = tinyzoo.create("timm:vit_tiny_patch16_224", stem="small", weights=loaded)
    assert torch.equal(model.pos_embed, loaded.state_dict["pos_embed"])
    assert model.tinyzoo_report.notes[-1] == "patches 4x4: 14x14 tokens at 56 px (kept); position embeddings unchanged"


def test_a_grid_that_changes_resamples_the_position_embeddings_and_says_so():
    model, notes = adapt_meta(timm_spec("vit_small_patch14_dinov2"), "small")
    assert tuple(model.pos_embed.shape) == (1, 1 + 28 * 28, 384)
    assert notes[-1] == "patches 2x2: 28x28 tokens at 56 px (nearest to the native 37x37); resampled by timm set_input_size: pos_embed"


@pytest.mark.parametrize("name", ["cait_xxs24_224", "beit_base_patch16_224", "mixer_b16_224"])
def test_fixed_size_transformers_resize_64_px_to_56(name):
    model, notes = adapt_meta(timm_spec(name), "small")
    assert isinstance(model.input_resize, InputResize) and model.input_resize.size == 56
    assert f"timm:{name} has layers fixed to one input size: other input sizes (64 px) are resized to 56 px first" in notes


def test_swin_windows_that_do_not_tile_the_grid_are_refused():
    from dataclasses import replace

    from tinyzoo.surgery.patch_stem import small_stem_patch

    spec = replace(timm_spec("swin_tiny_patch4_window7_224"), builder_args={
        "model_name": "swin_tiny_patch4_window7_224", "strict_img_size": False, "window_size": 5})
    with pytest.raises(TinyzooError) as error:
        small_stem_patch(build_meta(spec), spec)
    assert str(error.value) == (
        "stem small cannot adapt 'timm:swin_tiny_patch4_window7_224': its 5x5 windows do not tile stage 0's 56x56 grid at 56 px"
    )


@pytest.mark.parametrize("name,found,planned,native", [
    ("vit_tiny_r_s16_p8_224", 1, 7, 7),      # a 4x backbone, then 8x8 patches
    ("vit_small_r26_s32_224", 2, 56, 7),     # a 32x ResNet-26, then 1x1 patches
])
def test_hybrid_vits_are_refused_with_both_grids(name, found, planned, native):
    with pytest.raises(TinyzooError) as error:
        adapt_meta(timm_spec(name), "small")
    assert str(error.value) == (
        f"stem small cannot adapt 'timm:{name}': its HybridEmbed gives {found}x{found} tokens at 56 px, not the "
        f"{planned}x{planned} its patches would (layers before the patch conv reduce the image too; the native grid "
        f"is {native}x{native}); use --stem keep or resize"
    )
    assert timm_spec(name).stems == ("keep", "resize")


WNIDS = ["n01440764", "n01443537", "n02102040"]  # tench, goldfish, English springer


def test_distilled_deit_adapts_both_heads_and_keeps_the_logits():
    from tinyzoo.wordnet import imagenet_indices

    name = "timm:deit_tiny_distilled_patch16_224"
    loaded = placeholder(name)
    model = tinyzoo.create(name, wnids=WNIDS, weights=loaded)
    rows = imagenet_indices(WNIDS)
    for head in ("head", "head_dist"):
        assert torch.equal(getattr(model, head).weight, loaded.state_dict[f"{head}.weight"][rows])
    original = placeholder_model(timm_spec("deit_tiny_distilled_patch16_224")).eval()
    original.load_state_dict(loaded.state_dict)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x)[:, rows], rtol=1e-5, atol=1e-5)
    with pytest.raises(TinyzooError) as error:
        tinyzoo.create(name, stem="small", aux="drop", weights=loaded)
    assert str(error.value) == (
        f"option aux=drop: '{name}' uses head_dist in every prediction (a distillation head, not an auxiliary "
        "classifier); keep it with aux=adapt"
    )


def test_headless_weights_get_a_new_head():
    name = "vit_small_patch14_dinov2"
    loaded = placeholder(name)
    model = tinyzoo.create(name, stem="small", wnids=WNIDS, weights=loaded)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 3
    assert {r.key: r.status for r in model.tinyzoo_report.tensors}["head.weight"] == "new"
    assert "head: random (Kaiming normal): headless weights" in model.tinyzoo_report.notes
    with pytest.raises(TinyzooError) as error:
        tinyzoo.create(name, head_init="wnid", wnids=WNIDS, weights=loaded)
    assert str(error.value) == f"head_init='wnid' needs an ImageNet-1k (1000-way) head; '{name}' has no head (its weights are headless)"


def test_restem_goes_from_resize_to_small_up2():
    from tinyzoo.adapt import restem

    model = tinyzoo.create("timm:tf_efficientnet_lite0", stem="resize", weights=placeholder("timm:tf_efficientnet_lite0"))
    restem(model, "small-up2")
    assert isinstance(model.input_resize, InputUpsample) and model.conv_stem.stride == (1, 1)
    assert [a["name"] for a in model.tinyzoo_config["adapters"]] == ["stem-up2-timm", "head"]
    assert model.tinyzoo_config["stem"] == "small-up2" and model.tinyzoo_config["input_size"] == 56
    assert tuple(meta_forward(model, 64).shape) == (1, 200)


def test_the_docs_table_is_the_one_the_script_writes_from_the_data():
    import sys

    sys.path.insert(0, str(REPO / "docs"))
    try:
        from make_timm_coverage import END, START, table
    finally:
        sys.path.remove(str(REPO / "docs"))
    data = coverage()
    doc = (REPO / "docs" / "adapters.md").read_text()
    shown = doc[doc.index(START) + len(START):doc.index(END)].strip()
    assert shown == table(data["modules"], data["models"], data["timm_version"]).strip()
