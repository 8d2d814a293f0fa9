"""One source of preprocessing: config.json's ``preprocess``, written by create and the trainer, read by everyone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyzoo
from tinyzoo import preprocess as preprocessing
from tinyzoo.data.augment import Pipeline
from tinyzoo.data.cache import SplitStats
from tinyzoo.errors import TinyzooError
from tinyzoo.preprocess import Preprocess, resize_for
from tinyzoo.registry import get_registry

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def small_model():
    return tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)


def fake_stats(seed: int = 0) -> SplitStats:
    rng = np.random.default_rng(seed)
    pixel_mean = rng.uniform(0.2, 0.7, (64, 64, 3)).astype(np.float32)
    eigvec = np.linalg.qr(rng.normal(size=(3, 3)))[0].astype(np.float32)
    return SplitStats(pixel_mean=pixel_mean, channel_mean=pixel_mean.reshape(-1, 3).mean(0), channel_std=np.array([0.21, 0.23, 0.25], np.float32),
                      eigval=np.array([0.2, 0.02, 0.005], np.float32), eigvec=eigvec)


def test_create_writes_the_architectures_preprocessing_once():
    config = small_model().tinyzoo_config
    assert config["preprocess"] == {"crop": 64, "resize": 64, "interpolation": "bilinear", "normalize": "imagenet", **IMAGENET}
    assert not {"mean", "std", "interpolation"} & set(config)  # nowhere else in config.json


def test_big_inputs_are_cropped_from_an_upscaled_image_with_the_weights_statistics():
    inception = preprocessing.for_architecture(get_registry().architecture("inception_v3"), 299)
    assert inception.to_config() == {"crop": 299, "resize": 342, "interpolation": "bicubic", "normalize": "custom",
                                     "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    assert [resize_for(c) for c in (None, 56, 64, 65, 224)] == [64, 64, 64, 75, 256]


def test_restem_follows_the_input_size():
    model = tinyzoo.create("squeezenet1_1", stem="resize", classes=4, weights="none")
    assert (preprocessing.of(model).crop, preprocessing.of(model).resize) == (56, 64)
    tinyzoo.adapt.restem(model, "keep")
    assert (preprocessing.of(model).crop, preprocessing.of(model).resize) == (224, 256)


@pytest.mark.parametrize("normalize", ["imagenet", "dataset", "custom", "none", "pixel"])
def test_the_recorded_preprocessing_is_the_evaluation_pipeline_bit_for_bit(normalize):
    """What the trainer records normalises exactly as its evaluation pipeline did: one normaliser."""
    config = {"crop": 56, "normalize": normalize, **({"mean": [0.3, 0.4, 0.5], "std": [0.2, 0.3, 0.4]} if normalize == "custom" else {})}
    pipeline = Pipeline.from_config(config, stats=fake_stats(), train=False)
    recorded = pipeline.preprocess()
    assert (recorded.crop, recorded.resize, recorded.normalize) == (56, 64, normalize)
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8))
    # through config.json and back, as every reader gets it
    again = Preprocess.from_config(json.loads(json.dumps({"preprocess": recorded.to_config()})), pixel_mean=recorded.pixel_mean)
    assert torch.equal(again(images)[:, :, 4:60, 4:60], pipeline(images))


def test_resize_eval_crop_becomes_a_resize_to_the_crop():
    recorded = Pipeline.from_config({"crop": 48, "eval_crop": "resize"}, train=False).preprocess()
    assert (recorded.crop, recorded.resize) == (48, 48)


def test_the_per_pixel_mean_is_saved_beside_the_weights_and_copies_with_the_directory(tmp_path):
    model = small_model()
    stats = fake_stats()
    recorded = Pipeline.from_config({"crop": 56, "normalize": "pixel"}, stats=stats, train=False).preprocess()
    preprocessing.record(model, recorded)
    tinyzoo.save(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors", "preprocess.safetensors"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["preprocess"]["pixel_mean"] == "preprocess.safetensors"
    assert "per-pixel mean" in (tmp_path / "m" / "README.md").read_text()
    shutil.copytree(tmp_path / "m", tmp_path / "copy")
    loaded = preprocessing.of(tinyzoo.load(tmp_path / "copy"))
    assert loaded == recorded and torch.equal(loaded.pixel_mean, torch.from_numpy(stats.pixel_mean))
    (tmp_path / "copy" / "preprocess.safetensors").unlink()
    with pytest.raises(TinyzooError, match=r"config.json: preprocess.pixel_mean names 'preprocess.safetensors', which is not a file beside it"):
        tinyzoo.load(tmp_path / "copy")


def test_configs_written_before_preprocess_still_read():
    old_adapt = {"input_size": 224, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bicubic"}
    assert Preprocess.from_config(old_adapt) == Preprocess(224, 256, "bicubic", "custom", (0.5,) * 3, (0.25,) * 3)
    old_trainer = {"input_size": 64, "preprocess": {"crop": 56, "normalize": "none"}}
    assert Preprocess.from_config(old_trainer) == Preprocess(56, 64, "bilinear", "none", (0.0,) * 3, (1.0,) * 3)
    in_255_units = Preprocess.from_config({"input_size": 56, "mean": [127.5] * 3, "std": [51.0] * 3})
    assert (in_255_units.mean, in_255_units.std) == ((0.5,) * 3, (0.2,) * 3)
    assert Preprocess.from_config({}) == Preprocess(None)


def test_bad_entries_are_one_line_errors_naming_the_field():
    with pytest.raises(TinyzooError, match=r"^config.json: preprocess.interpolation must be one of bilinear, bicubic, nearest, not 'lanczos'$"):
        Preprocess.from_config({"preprocess": {"crop": 56, "interpolation": "lanczos"}})
    with pytest.raises(TinyzooError, match=r"^config.json: preprocess.mean and .std must be 3 numbers"):
        Preprocess.from_config({"preprocess": {"crop": 56, "mean": [0.5, 0.5]}})
    with pytest.raises(TinyzooError, match=r"^config.json: preprocess.normalize is 'pixel' but the model carries no per-pixel mean image"):
        Preprocess.from_config({"preprocess": {"crop": 56, "normalize": "pixel", "mean": [0.5] * 3, "std": [0.2] * 3}})


def test_the_documented_entry_is_what_adapt_writes_for_a_small_stem():
    text = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    documented = json.loads("{" + block + "}")["preprocess"]
    assert documented == preprocessing.for_architecture(get_registry().architecture("resnet18"), 56).to_config()
