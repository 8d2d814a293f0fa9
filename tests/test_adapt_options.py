"""Every pair of the options `tinyzoo adapt` accepts: a working model of the right shape, or one exact error line.

The network is timm's MobileNetV2-0.5 (EfficientNet module), which lists every stem (keep, small, small-up2,
resize) and converts to a convolutional classifier; its weights are placeholders with a
1000-way head, so that wnid heads can be sliced. Shapes are checked on the meta device.
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from click.testing import CliRunner

import tinyzoo
from tinyzoo.adapt import placeholder_model
from tinyzoo.cli import cli as cli_group
from tinyzoo.errors import TinyzooError
from tinyzoo.registry import get_registry
from tinyzoo.surgery.meta_trace import meta_forward
from tinyzoo.weights import LoadedWeights

NAME = "timm:mobilenetv2_050"
WNIDS = ["n01440764", "n01443537", "n02102040"]
# Each option of `tinyzoo adapt` with its values other than the default (weights: the placeholders below).
OPTIONS = {
    "stem": ["small", "small-up2", "resize"],
    "head_init": ["wnid", "random"],
    "kernel_resize": ["pi"],
    "convolutionize": [True],
    "wnids": [WNIDS],
    "classes": [10],
    "aux": ["adapt"],
    "resize_mode": ["bilinear"],
}
PAIRS = [
    {a: va, b: vb}
    for a, b in itertools.combinations(OPTIONS, 2)
    for va in OPTIONS[a] for vb in OPTIONS[b]
]


def expected_error(options: dict) -> str | None:
    """The one line `create` must answer with, in the order it checks."""
    if "aux" in options:
        return f"option aux applies to architectures with auxiliary classifiers; {NAME!r} has none"
    if "classes" in options and "wnids" in options:
        return "classes=10 but the wnids list 3 classes; give one or make them agree"
    if options.get("head_init") == "wnid" and "wnids" not in options:
        return "head_init='wnid' needs wnids (--wnids FILE): --classes N alone names no ImageNet classes"
    return None


@pytest.fixture(scope="module")
def weights():
    spec = get_registry().architecture(NAME)
    return LoadedWeights(placeholder_model(spec).state_dict(), "placeholder")


@pytest.mark.parametrize("options", PAIRS, ids=lambda o: "+".join(f"{k}={v if k != 'wnids' else 3}" for k, v in o.items()))
def test_every_pair_of_adapt_options(options, weights):
    message = expected_error(options)
    if message is not None:
        with pytest.raises(TinyzooError) as error:
            tinyzoo.create(NAME, weights=weights, **options)
        assert str(error.value) == message
        return
    model = tinyzoo.create(NAME, weights=weights, **options)
    classes = 3 if "wnids" in options else options.get("classes", 200)
    for size in (56, 64):
        assert tuple(meta_forward(model, size).shape) == (1, classes), (options, size)
    stem = options.get("stem", "keep")
    assert model.tinyzoo_config["input_size"] == (224 if stem == "keep" else 56)
    if options.get("convolutionize") and stem in ("resize", "small-up2"):
        # The input layer stays in front of the chain; the score map is never resized.
        assert "input_resize" not in model.chain


def test_resize_with_convolutionize_gives_the_plain_resize_models_logits(weights):
    plain = tinyzoo.create(NAME, stem="resize", classes=1000, weights=weights)  # the head kept: both the same
    converted = tinyzoo.create(NAME, stem="resize", classes=1000, convolutionize=True, weights=weights)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x), rtol=1e-4, atol=1e-4)
        # The per-position scores of the 7x7 map at 224 px (its global pool moved behind the 1x1 classifier),
        # not a map resized to 224x224 by the input layer.
        assert tuple(converted.score_map(converted.input_resize(x)).shape) == (2, 1000, 7, 7)


def test_the_cli_takes_the_new_stem_and_writes_the_model(tmp_path, weights):
    from safetensors.torch import save_file

    source = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in weights.state_dict.items()}, str(source))
    out = tmp_path / "m"
    result = CliRunner().invoke(cli_group, ["adapt", NAME, "--stem", "small-up2", "--kernel-resize", "pi",
                                            "--weights", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"]["stem"] == "small-up2" and [a["name"] for a in data["config"]["adapters"]] == ["stem-up2-timm", "head"]
    again = tinyzoo.load(out)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x), tinyzoo.load(out)(x))
