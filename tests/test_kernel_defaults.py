"""The per-family kernel resampling defaults (docs/fidelity.md), their one home, and the ``pinv`` spelling."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import tinyzoo
from tinyzoo.cli import cli as cli_group
from tinyzoo.errors import TinyzooError
from tinyzoo.recipe import load_recipe
from tinyzoo.surgery.kernels import (
    DEFAULT_KERNEL_RESIZE,
    FALLBACK_KERNEL_RESIZE,
    canonical_method,
    default_kernel_resize,
    resample_kernel,
)


def test_every_family_that_resamples_a_kernel_defaults_to_pi():
    assert DEFAULT_KERNEL_RESIZE == {"resnet": "pi", "densenet": "pi", "googlenet": "pi", "alexnet": "pi", "vit": "pi"}
    assert default_kernel_resize("resnet") == "pi"
    assert default_kernel_resize("a-family-nobody-registered") == FALLBACK_KERNEL_RESIZE == "pi"


def test_pinv_is_pi():
    assert canonical_method("pinv") == "pi" and canonical_method("bicubic") == "bicubic"
    w = torch.randn(4, 3, 7, 7)
    assert torch.equal(resample_kernel(w, 3, "pinv")[0], resample_kernel(w, 3, "pi")[0])
    assert resample_kernel(w, 3, "pinv")[1].method == "pi"
    with pytest.raises(TinyzooError, match=r"^unknown kernel resize method 'lanczos'; choose one of: bicubic, pi, pinv$"):
        canonical_method("lanczos")


def test_create_records_the_resolved_method():
    default = tinyzoo.create("alexnet", stem="small", weights="none")
    assert default.tinyzoo_config["kernel_resize"] == "pi"
    assert default.tinyzoo_config["adapters"][0]["params"] == {"kernel_resize": "pi"}
    spelled = tinyzoo.create("alexnet", stem="small", weights="none", kernel_resize="pinv")
    assert spelled.tinyzoo_config["kernel_resize"] == "pi"
    kim = tinyzoo.create("alexnet", stem="small", weights="none", kernel_resize="bicubic")
    records = {t.key: t for t in kim.tinyzoo_report.tensors}
    assert kim.tinyzoo_config["kernel_resize"] == "bicubic" and "bicubic (rescaled)" in records["features.0.weight"].detail
    with pytest.raises(TinyzooError, match=r"^kernel_resize 'nearest' is not one of: bicubic, pi, pinv$"):
        tinyzoo.create("alexnet", stem="small", weights="none", kernel_resize="nearest")


def test_adapt_accepts_pinv_and_defaults_to_the_family(tmp_path):
    result = CliRunner().invoke(cli_group, ["adapt", "alexnet", "--stem", "small", "--weights", "none",
                                            "--kernel-resize", "pinv", "--out", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"kernel_resize": "pi"' in result.output


def test_kims_recipe_keeps_bicubic_and_recipes_may_leave_it_unset():
    assert load_recipe("kim2016-resnet18").model.kernel_resize == "bicubic"
    assert load_recipe("kim2016-resnet18", ["model.kernel_resize=pinv"]).model.kernel_resize == "pinv"
    recipe = load_recipe("quickstart")
    assert recipe.model.kernel_resize is None and recipe.model.recalibrate_bn is None and recipe.model.calibration_images == 256
    assert load_recipe("quickstart", ["model.recalibrate_bn=relative"]).model.recalibrate_bn == "relative"


def test_every_choice_list_has_one_definition_in_specs():
    from tinyzoo import adapt, specs
    from tinyzoo.commands import adapt_commands, fidelity_commands
    from tinyzoo.surgery import batchnorm, kernels

    assert adapt_commands.KERNEL_RESIZES is adapt.KERNEL_RESIZES is specs.KERNEL_RESIZES
    assert set(kernels.METHODS) | set(kernels.ALIASES) == set(specs.KERNEL_RESIZES) and "pinv" in kernels.ALIASES
    assert adapt_commands.BN_RECALIBRATIONS is batchnorm.METHODS is specs.BN_RECALIBRATIONS
    assert ("none", *specs.BN_RECALIBRATIONS) == fidelity_commands.FIDELITY_BN_CHOICES
