"""Frozen-feature caching: a head trained on cached features gets the updates full forwards give."""

from __future__ import annotations

import pytest
import torch
from training_sample import CLASSES, stage, tiny_recipe, write_training_sample

import tinyzoo.adapt as adapt
from tinyzoo.data.augment import Pipeline
from tinyzoo.train import Trainer, TrainSettings
from tinyzoo.train.features import cacheable, extract, fixed_views, render_view
from tinyzoo.train.parts import set_train_mode

FIXED = {"crop": 64, "flip": False}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("feature-sample") / "sample")


def small_model():
    return adapt.create("resnet20_zhai", classes=CLASSES, weights="none", width=0.25)


def head_only(model):
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("fc."))
    set_train_mode(model)
    return model


def run(sample, out, model, feature_cache, recipe):
    logs: list[str] = []
    trainer = Trainer(recipe, TrainSettings(data=sample, out=out, progress=False, threads=1, log=logs.append, feature_cache=feature_cache), model=model)
    trainer.run()
    return trainer.model.state_dict(), logs


@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 0.01}])
def test_cached_features_give_the_head_updates_of_full_forwards(sample, tmp_path, optimizer):
    base = small_model()
    recipe = tiny_recipe(stage("head", "head", epochs=3, batch_size=16, optimizer=optimizer, label_smoothing=0.1), train=FIXED)
    results = {}
    for mode in ("auto", "off"):
        model = small_model()
        model.load_state_dict(base.state_dict())
        results[mode], logs = run(sample, tmp_path / mode, model, mode, recipe)
        assert any("on cached features" in line for line in logs) == (mode == "auto")
    assert not torch.equal(results["auto"]["fc.weight"], base.state_dict()["fc.weight"])
    for key in results["auto"]:
        torch.testing.assert_close(results["auto"][key], results["off"][key], rtol=1e-4, atol=1e-5)


def test_random_augmentation_is_not_cached(sample, tmp_path):
    recipe = tiny_recipe(stage("head", "head", iterations=2, batch_size=16), train={"crop": 56, "flip": True})
    _, logs = run(sample, tmp_path / "run", small_model(), "auto", recipe)
    assert not any("cached" in line for line in logs)


def test_fixed_views_are_cached_when_the_recipe_says_so(sample, tmp_path):
    # Yu's five crops with mirroring: ten fixed views per image.
    recipe = tiny_recipe(stage("head", "head", iterations=3, batch_size=16), train={"crop": 56, "crop_mode": "ten", "flip": True},
                         data={"fixed_views": True})
    _, logs = run(sample, tmp_path / "run", small_model(), "auto", recipe)
    assert any("cached 10 view(s) of 80 images" in line for line in logs)


def test_fixed_views_enumerates_finite_pipelines():
    assert len(fixed_views(Pipeline.from_config({"crop": 56, "crop_mode": "ten", "flip": True}))) == 10
    assert fixed_views(Pipeline.from_config({"crop": 64, "flip": False})) == [(0, 0, False)]
    assert fixed_views(Pipeline.from_config({"crop": 56})) is None  # 81 random offsets
    assert fixed_views(Pipeline.from_config({"crop": 64, "flip": False, "jitter": 0.2})) is None


def test_rendered_views_equal_the_pipeline():
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    pipeline = Pipeline.from_config({"crop": 56, "crop_mode": "center", "flip": False})
    torch.testing.assert_close(render_view(pipeline, images, fixed_views(pipeline)[0]), pipeline(images, torch.Generator()))
    mirrored = render_view(Pipeline.from_config({"crop": 56, "crop_mode": "ten"}), images, (0, 8, True))
    torch.testing.assert_close(mirrored, pipeline.eval()(images[:, :56, 8:].flip(2).contiguous()))


def test_cacheable_detects_randomness_before_the_head():
    model = head_only(small_model())
    x = torch.randn(4, 3, 56, 56)
    assert cacheable(model, ["fc"], model, x)
    model.stage3.train()  # BatchNorm using batch statistics: features depend on the batch
    model.stem.register_forward_hook(lambda m, a, out: torch.nn.functional.dropout(out, 0.5, True))
    assert not cacheable(model, ["fc"], model, x)


def test_extract_keeps_head_inputs_per_view():
    model = head_only(small_model())
    images = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8).numpy()
    labels = [0, 1, 2, 3, 0]
    pipeline = Pipeline.from_config({"crop": 56, "crop_mode": "ten", "flip": False})
    views = fixed_views(pipeline)
    cache = extract(model, ["fc"], images, labels, pipeline, views, forward=model, device=torch.device("cpu"), batch_size=2)
    assert cache.features["fc"].shape == (5, 5, model.fc.in_features) and len(cache) == 5
    with torch.no_grad():
        seen = []
        handle = model.fc.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        model(render_view(pipeline, torch.from_numpy(images), views[3]))
        handle.remove()
    torch.testing.assert_close(cache.features["fc"][3], seen[0])
