"""A catalogue of bad inputs, run through the real command line (in this process, with click's runner).

Each case sets up one bad input (data, weights, recipes, command-line arguments, plugins, run
directories), runs one command and checks what docs/reliability.md promises:

- the exit status;
- the error is the exact line below: the last line of the output, the only ``Error:`` line, and
  no traceback anywhere;
- nothing in the case's folder changed: no run directory half-made, no temporary left, no file
  of the user's touched (every entry's kind, mode and bytes compared before and after).

In a message, ``{tmp}`` is the case's folder and ``{sample}`` the training sample dataset.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from training_sample import CLASSES, write_training_sample

import tinyzoo
from tinyzoo.cli import cli
from tinyzoo.plugin_loader import get_host
from tinyzoo.specs import ArchitectureSpec

QUICK = ["--threads", "1", "--set", f"model.classes={CLASSES}", "--set", "stages[0].epochs=1", "--set", "stages[0].batch_size=16"]
PAYLOAD = "payload-ran"  # the file a malicious pickle would create, were it ever unpickled
RECIPE = """\
name = "mine"
[model]
arch = "resnet20_zhai"
classes = 4
options = { width = 0.25 }
[data.train]
crop = 56
[[stages]]
name = "one"
epochs = 1
batch_size = 16
[stages.optimizer]
name = "sgd"
lr = 0.1
"""
STAGE = '\n[[stages]]\nname = "{name}"\nepochs = 1\nbatch_size = 16\nadapt = {adapt}\n[stages.optimizer]\nname = "sgd"\nlr = 0.1\n'
CONFIG_KEYS = ("crop, crop_mode, padding, padding_mode, scale, ratio, flip, jitter, lighting, lighting_pca, normalize, mean, std, "
               "mixup, cutmix, mix_prob, eval_crop, channels_last")


@dataclass
class Ctx:
    """What a case's set-up gets: its folder, the sample dataset, and a finished run to copy."""

    tmp: Path
    sample: Path
    finished_run: Path
    fields: dict = field(default_factory=dict)  # more names a case's message uses

    @property
    def wnids(self) -> list[str]:
        """The sample's classes."""
        return (self.sample / "wnids.txt").read_text().split()

    @property
    def wnid(self) -> str:
        return self.wnids[0]

    def run(self) -> Path:
        """A copy of the finished run in the case's folder."""
        target = self.tmp / "run"
        shutil.copytree(self.finished_run, target, symlinks=True)
        return target

    def dataset(self) -> Path:
        """A copy of the sample dataset in the case's folder, to spoil."""
        target = self.tmp / "data"
        shutil.copytree(self.sample, target, symlinks=True)
        return target


@dataclass
class Case:
    name: str
    setup: Callable[[Ctx], list[str]]  # prepares the folder, returns the command's arguments
    code: int
    line: str  # the exact last line of the output


CASES: list[Case] = []


def case(name: str, code: int, line: str):
    def register(setup):
        CASES.append(Case(name, setup, code, line))
        return setup
    return register


# -- helpers --------------------------------------------------------------------------------------------
def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too): kind, mode and, for files, a digest of the bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel, st = str(path.relative_to(root)), path.lstat()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", st.st_mode)
        else:
            found[rel] = ("file", st.st_mode, hashlib.sha1(path.read_bytes()).hexdigest())
    return found


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def recipe(ctx: Ctx, text: str) -> str:
    return str(write(ctx.tmp / "mine.toml", text))


def tensors(path: Path, **overrides) -> Path:
    """A quarter-width resnet20_zhai's raw (unadapted) tensors as a safetensors file, with ``overrides``."""
    from safetensors.torch import save_file

    from tinyzoo.builders import build
    from tinyzoo.registry import get_registry

    state = {k: v.contiguous() for k, v in build(get_registry().architecture("resnet20_zhai"), width=0.25).state_dict().items()}
    state.update(overrides)
    save_file(state, str(path))
    return path


class Evil:
    """Unpickling this runs ``open(path, "w")``: a real payload, made harmless by what it does."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class AcmePlugin:
    """A third-party plugin whose one architecture is built by ``builder``."""

    def __init__(self, builder: str):
        self.builder = builder

    @tinyzoo.hookimpl
    def register_architectures(self, register):
        register(ArchitectureSpec(name="acme-net", family="acme", source="tinyzoo", builder=self.builder,
                                  input_size=64, num_classes=10, stems=("keep",)))


def acme_raises(num_classes=10):
    raise ValueError("the acme kernels are not installed")


def acme_not_a_module(num_classes=10):
    return {"weights": num_classes}


def acme(builder: str) -> None:
    get_host().register(AcmePlugin(builder), "acme")


# -- data -------------------------------------------------------------------------------------------------
@case("data: no such folder", 1,
      "Error: {tmp}/nowhere: no such directory; --data takes a dataset folder (Tiny ImageNet, class folders or Parquet files) or hf:ORG/NAME")
def _(ctx):
    return ["data", "info", str(ctx.tmp / "nowhere")]


@case("data: a symbolic link loop among the images", 1,
      "Error: {tmp}/data/train/{wnid}/images/loop.JPEG: symbolic link loop (Too many levels of symbolic links); "
      "remove it or link it to an image")
def _(ctx):
    images = ctx.dataset() / "train" / ctx.wnid / "images"
    (images / "loop.JPEG").symlink_to("loop.JPEG")
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: a link loop named like a folder is no class and no traceback", 1,
      "Error: {tmp}/data/train/{wnid}/images/zz.JPEG: broken symbolic link to gone.JPEG, which does not exist; "
      "remove it or link it to an image")
def _(ctx):
    images = ctx.dataset() / "train" / ctx.wnid / "images"
    (images / "loopA").symlink_to("loopB")
    (images / "loopB").symlink_to("loopA")
    (ctx.tmp / "data" / "train" / "spin").symlink_to("spin")
    (images / "zz.JPEG").symlink_to("gone.JPEG")
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: a dangling .JPEG link", 1,
      "Error: {tmp}/data/val/images/val_9999.JPEG: broken symbolic link to /nonexistent/val_9999.JPEG, which does not exist; "
      "remove it or link it to an image")
def _(ctx):
    (ctx.dataset() / "val" / "images" / "val_9999.JPEG").symlink_to("/nonexistent/val_9999.JPEG")
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: an empty class folder in the Tiny ImageNet layout", 1,
      "Error: {tmp}/data/train/{wnid}: no images in it (.jpeg, .jpg, .png); wnids.txt lists class {wnid}, "
      "so train/ needs its images")
def _(ctx):
    images = ctx.dataset() / "train" / ctx.wnid / "images"
    for path in images.iterdir():
        path.unlink()
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: class folders, one of them empty: a warning with the count", 0,
      "tinyzoo: warning: 2 folder(s) in {tmp}/folders/train hold no images and are not classes: empty1, empty2")
def _(ctx):
    from PIL import Image

    for name in ("cat", "dog"):
        Image.new("RGB", (64, 64)).save(write(ctx.tmp / "folders" / "train" / name / "a.jpg", "").with_name("a.jpg"))
    (ctx.tmp / "folders" / "train" / "empty1").mkdir()
    (ctx.tmp / "folders" / "train" / "empty2").mkdir()
    return ["data", "info", str(ctx.tmp / "folders")]


@case("data: wnids.txt lists a class twice", 1,
      "Error: {tmp}/data/wnids.txt:5: {wnid} is listed twice; each class id must appear once")
def _(ctx):
    wnids = ctx.dataset() / "wnids.txt"
    wnids.write_text(wnids.read_text() + ctx.wnid + "\n")
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: a validation annotation names an unknown class", 1,
      "Error: {tmp}/data/val/val_annotations.txt:1: unknown wnid 'n99999999' for {image}; it is not in wnids.txt")
def _(ctx):
    annotations = ctx.dataset() / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines()
    name = ctx.fields["image"] = lines[0].split("\t")[0]
    annotations.write_text("\n".join([f"{name}\tn99999999\t0\t0\t63\t63", *lines[1:]]) + "\n")
    return ["data", "info", str(ctx.tmp / "data")]


@case("data: a truncated JPEG stops training before a run directory exists", 1,
      "Error: {tmp}/data/train/{wnid}/images/{image}: cannot decode image: Truncated File Read")
def _(ctx):
    image = min((ctx.dataset() / "train" / ctx.wnid / "images").iterdir())
    ctx.fields["image"] = image.name
    image.write_bytes(image.read_bytes()[:600])
    return ["train", "quickstart", *QUICK, "--data", str(ctx.tmp / "data"), "--out", str(ctx.tmp / "out")]


@case("data: eval of a run whose dataset moved names the path it looked for", 1,
      "Error: the run {tmp}/run was trained on {tmp}/moved, which is no longer there; give --data DIR (where the dataset is now)")
def _(ctx):
    import json

    run = ctx.run()
    settings = json.loads((run / "run.json").read_text())
    settings["data"] = str(ctx.tmp / "moved")
    (run / "run.json").write_text(json.dumps(settings))
    return ["eval", str(run), "--limit", "4"]


# -- weights ----------------------------------------------------------------------------------------------
ADAPT = ["adapt", "resnet20_zhai", "--option", "width=0.25", "--classes", "4"]


@case("weights: no such file", 1, "Error: weights file {tmp}/missing.safetensors does not exist")
def _(ctx):
    return [*ADAPT, "--weights", str(ctx.tmp / "missing.safetensors"), "--out", str(ctx.tmp / "out")]


@case("weights: a file of unknown type", 1,
      "Error: weights file '{tmp}/weights.npz': unknown type .npz; expected a .safetensors file (or .pth/.pt read with weights_only=True)")
def _(ctx):
    write(ctx.tmp / "weights.npz", "x")
    return [*ADAPT, "--weights", str(ctx.tmp / "weights.npz"), "--out", str(ctx.tmp / "out")]


@case("weights: a pickle that would run code is refused and never run", 1,
      "Error: refused {tmp}/evil.pt: it holds more than tensors, and loading it could run code (Unsupported global: GLOBAL io.open); "
      "convert it to .safetensors from a source you trust")
def _(ctx):
    torch.save({"conv.weight": torch.zeros(1), "x": Evil(ctx.tmp / PAYLOAD)}, ctx.tmp / "evil.pt")
    return [*ADAPT, "--weights", str(ctx.tmp / "evil.pt"), "--out", str(ctx.tmp / "out")]


@case("weights: a truncated safetensors file", 1,
      "Error: {tmp}/cut.safetensors is not a valid safetensors file (Error while deserializing header: invalid header length): "
      "it may be truncated or damaged")
def _(ctx):
    path = tensors(ctx.tmp / "cut.safetensors")
    path.write_bytes(path.read_bytes()[:68])
    return [*ADAPT, "--weights", str(path), "--out", str(ctx.tmp / "out")]


@case("weights: a tensor holding NaN is refused, named", 1,
      "Error: {tmp}/nan.safetensors: tensor stem.conv.weight (1 of 432 values) is NaN or infinite; refusing weights that "
      "are not finite (a damaged or diverged checkpoint)")
def _(ctx):
    weight = torch.zeros(16, 3, 3, 3)
    weight[0, 0, 0, 0] = float("nan")
    return [*ADAPT, "--weights", str(tensors(ctx.tmp / "nan.safetensors", **{"stem.conv.weight": weight})), "--out", str(ctx.tmp / "out")]


@case("weights: tensors of another network", 1,
      "Error: weights {tmp}/other.safetensors do not fit ZhaiResNet: 1 missing (fc.bias); 1 unexpected (head.bias); "
      "use weights made for this architecture, or --weights none")
def _(ctx):
    path = tensors(ctx.tmp / "other.safetensors")
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["head.bias"] = state.pop("fc.bias")
    save_file(state, str(path))
    return [*ADAPT, "--weights", str(path), "--out", str(ctx.tmp / "out")]


@case("weights: a folder without model.safetensors", 1,
      "Error: weights directory {tmp}/folder has no model.safetensors: give a `tinyzoo adapt --out` folder or a .safetensors file")
def _(ctx):
    (ctx.tmp / "folder").mkdir()
    return [*ADAPT, "--weights", str(ctx.tmp / "folder"), "--out", str(ctx.tmp / "out")]


@case("weights: a malformed Hub source", 1,
      "Error: weights 'hf-hub:timm': expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION, e.g. hf-hub:timm/resnet18.tv_in1k")
def _(ctx):
    return [*ADAPT, "--weights", "hf-hub:timm", "--out", str(ctx.tmp / "out")]


@case("weights: an adapted model whose weights hold infinity is refused by eval", 1,
      "Error: {tmp}/model/model.safetensors: tensor fc.bias (1 of 4 values) is NaN or infinite; refusing weights that are "
      "not finite (a damaged or diverged checkpoint)")
def _(ctx):
    from safetensors.torch import load_file, save_file

    model = tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25)
    tinyzoo.save(model, ctx.tmp / "model")
    path = ctx.tmp / "model" / "model.safetensors"
    state = load_file(str(path))
    state["fc.bias"][2] = float("inf")
    save_file(state, str(path))
    return ["eval", str(ctx.tmp / "model"), "--data", str(ctx.sample), "--limit", "4"]


# -- models, eval and adapt ---------------------------------------------------------------------------------
@case("eval: a folder that is no model", 1,
      "Error: {tmp}/stuff is neither an adapted-model directory (config.json + model.safetensors) nor a run directory (best/)")
def _(ctx):
    write(ctx.tmp / "stuff" / "notes.txt", "mine")
    return ["eval", str(ctx.tmp / "stuff"), "--data", str(ctx.sample)]


@case("eval: crops smaller than the network takes", 1,
      "Error: alexnet with stem keep cannot take evaluation crops (--crop) of 56x56 px (its feature maps would shrink below "
      "one pixel); it takes 63 px and more; or adapt it with stem small or resize, made for 56-64 px images")
def _(ctx):
    tinyzoo.save(tinyzoo.create("alexnet", classes=4, weights="none"), ctx.tmp / "alexnet")
    return ["eval", str(ctx.tmp / "alexnet"), "--data", str(ctx.sample), "--crop", "56", "--limit", "4"]


@case("adapt: calibration images smaller than the network takes", 1,
      "Error: inception_v3 with stem keep cannot take calibration images (--recalibrate-bn) of 56x56 px (its feature maps "
      "would shrink below one pixel); it takes 75 px and more; or adapt it with stem small or resize, made for 56-64 px images")
def _(ctx):
    return ["adapt", "inception_v3", "--weights", "none", "--recalibrate-bn", "plain", "--calibration-data", str(ctx.sample),
            "--calibration-images", "4", "--out", str(ctx.tmp / "out")]


@case("adapt: --out is a folder holding the user's README.md", 1,
      "Error: {tmp}/project is not an adapted-model folder but holds README.md, which saving would overwrite; give a new or empty folder")
def _(ctx):
    write(ctx.tmp / "project" / "README.md", "# my project\n")
    return ["adapt", "resnet20_zhai", "--weights", "none", "--option", "width=0.25", "--out", str(ctx.tmp / "project")]


@case("predict: crops smaller than the network takes", 1,
      "Error: alexnet with stem keep cannot take crops (--crop) of 32x32 px (its feature maps would shrink below one pixel); "
      "it takes 63 px and more; or adapt it with stem small or resize, made for 56-64 px images")
def _(ctx):
    tinyzoo.save(tinyzoo.create("alexnet", wnids=ctx.wnids, weights="none"), ctx.tmp / "alexnet")
    image = next((ctx.sample / "test" / "images").iterdir())
    return ["predict", str(ctx.tmp / "alexnet"), str(image), "--crop", "32"]


# -- recipes (tinyzoo recipes check) ------------------------------------------------------------------------
@case("recipe: an unknown architecture", 1,
      "Error: {tmp}/mine.toml: model.arch: unknown architecture 'no-such-net'; `tinyzoo list` shows the registered ones; any timm model is timm:NAME")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace('"resnet20_zhai"', '"no-such-net"'))]


@case("recipe: a typo among data.train's keys", 1,
      f"Error: {{tmp}}/mine.toml: data.train.fliip: unknown augmentation key (did you mean flip?); allowed: {CONFIG_KEYS}")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("crop = 56\n", "crop = 56\nfliip = true\n"))]


@case("recipe: a typo among data.eval's keys", 1,
      f"Error: {{tmp}}/mine.toml: data.eval.normalise: unknown augmentation key (did you mean normalize?); allowed: {CONFIG_KEYS}")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE + '[data.eval]\nnormalise = "imagenet"\n')]


@case("recipe: a bad value in data.train", 1,
      "Error: {tmp}/mine.toml: data.train: crop_mode must be one of random, ten, resized, center; got 'corner'")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("crop = 56\n", 'crop = 56\ncrop_mode = "corner"\n'))]


@case("recipe: a typo in the third stage's adapt table", 1,
      "Error: {tmp}/mine.toml: stages[2].adapt.stme: unknown change (did you mean stem?); allowed: stem, kernel_resize")
def _(ctx):
    text = RECIPE.replace('arch = "resnet20_zhai"', 'arch = "resnet18"\nstem = "resize"\nweights = "none"').replace("options = { width = 0.25 }\n", "")
    text += STAGE.format(name="two", adapt='{ kernel_resize = "pi", stem = "small" }') + STAGE.format(name="three", adapt='{ stme = "small" }')
    return ["recipes", "check", recipe(ctx, text)]


@case("recipe: a stage's adapt names a stem the architecture lacks", 1,
      "Error: {tmp}/mine.toml: stages[1].adapt.stem: architecture 'squeezenet1_1' supports stems keep, small, resize; not 'small-up2'")
def _(ctx):
    text = RECIPE.replace('arch = "resnet20_zhai"', 'arch = "squeezenet1_1"\nweights = "none"').replace("options = { width = 0.25 }\n", "")
    return ["recipes", "check", recipe(ctx, text + STAGE.format(name="two", adapt='{ stem = "small-up2" }'))]


@case("recipe: a stage's adapt.kernel_resize value", 1,
      "Error: {tmp}/mine.toml: stages[1].adapt.kernel_resize: must be one of bicubic, pi, pinv; got 'nearest' (a string)")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE + STAGE.format(name="two", adapt='{ stem = "keep", kernel_resize = "nearest" }'))]


@case("recipe: a typo in model.options", 1,
      "Error: {tmp}/mine.toml: model.options.widht: architecture 'resnet20_zhai' has no option 'widht' (did you mean width?); "
      "its options: width, aux, resize_mode")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("{ width = 0.25 }", "{ widht = 0.25 }"))]


@case("recipe: model.options.aux for an architecture without auxiliary classifiers", 1,
      "Error: {tmp}/mine.toml: model.options.aux: applies to architectures with auxiliary classifiers; 'resnet20_zhai' has none")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("{ width = 0.25 }", '{ width = 0.25, aux = "drop" }'))]


@case("recipe: model.stem the architecture does not support", 1,
      "Error: {tmp}/mine.toml: model.stem: architecture 'resnet20_zhai' supports stems keep; not 'small'")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("classes = 4\n", 'classes = 4\nstem = "small"\n'))]


@case("recipe: a stage with neither epochs nor iterations", 1,
      "Error: {tmp}/mine.toml: stages[0]: give exactly one of epochs or iterations")
def _(ctx):
    return ["recipes", "check", recipe(ctx, RECIPE.replace("epochs = 1\n", ""))]


@case("recipe: not TOML", 1, "Error: {tmp}/mine.toml: not valid TOML: Invalid value (at line 2, column 8)")
def _(ctx):
    return ["recipes", "check", recipe(ctx, 'name = "x"\narch = \n')]


@case("recipe: train checks every field before training", 1,
      "Error: {tmp}/mine.toml: stages[1].adapt.stme: unknown change (did you mean stem?); allowed: stem, kernel_resize")
def _(ctx):
    path = recipe(ctx, RECIPE + STAGE.format(name="two", adapt='{ stme = "small" }'))
    return ["train", path, "--threads", "1", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


# -- command-line arguments -----------------------------------------------------------------------------------
@case("cli: --set with a path into nothing", 1,
      "Error: --set 'stages[5].lr=1': stages.5: index out of range (the list has 1 items)")
def _(ctx):
    return ["train", "quickstart", "--set", "stages[5].lr=1", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("cli: --epochs-scale 0", 1, "Error: --epochs-scale must be positive, not 0.0")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--epochs-scale", "0", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("cli: --resume with a recipe name", 2,
      "Error: --resume continues a run exactly as it started: give no NAME, --set or --epochs-scale")
def _(ctx):
    return ["train", "quickstart", "--resume", str(ctx.tmp)]


@case("cli: --option without a value", 2, "Error: --option 'width': expected key=value, e.g. --option aux=drop")
def _(ctx):
    return ["adapt", "resnet20_zhai", "--option", "width", "--out", str(ctx.tmp / "out")]


@case("cli: --device that does not exist", 1, "Error: --device cuda: CUDA is not available on this machine; use --device cpu")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--device", "cuda", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("cli: eval of a lone model without --data", 2,
      "Error: give --data DIR: {tmp}/model is not part of a training run, so it names no dataset")
def _(ctx):
    tinyzoo.save(tinyzoo.create("resnet20_zhai", classes=4, weights="none", width=0.25), ctx.tmp / "model")
    return ["eval", str(ctx.tmp / "model")]


# -- plugins ------------------------------------------------------------------------------------------------------
@case("plugin: a builder that raises (adapt)", 1,
      "Error: plugin 'acme': architecture 'acme-net': builder test_bad_inputs:acme_raises raised ValueError: the acme kernels are not installed")
def _(ctx):
    acme("test_bad_inputs:acme_raises")
    return ["adapt", "acme-net", "--weights", "none", "--out", str(ctx.tmp / "out")]


@case("plugin: a builder that returns something else (adapt)", 1,
      "Error: plugin 'acme': architecture 'acme-net': builder test_bad_inputs:acme_not_a_module returned dict, not a torch.nn.Module")
def _(ctx):
    acme("test_bad_inputs:acme_not_a_module")
    return ["adapt", "acme-net", "--weights", "none", "--out", str(ctx.tmp / "out")]


@case("plugin: a builder in a module that does not exist (adapt)", 1,
      "Error: plugin 'acme': architecture 'acme-net': builder acme_models.nets:build cannot be imported (no module 'acme_models')")
def _(ctx):
    acme("acme_models.nets:build")
    return ["adapt", "acme-net", "--weights", "none", "--out", str(ctx.tmp / "out")]


@case("plugin: a builder that raises (train: no run directory)", 1,
      "Error: plugin 'acme': architecture 'acme-net': builder test_bad_inputs:acme_raises raised ValueError: the acme kernels are not installed")
def _(ctx):
    acme("test_bad_inputs:acme_raises")
    text = RECIPE.replace('"resnet20_zhai"', '"acme-net"\nweights = "none"').replace("options = { width = 0.25 }\n", "")
    return ["train", recipe(ctx, text), "--threads", "1", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("plugin: a builder in a module that does not exist (train)", 1,
      "Error: plugin 'acme': architecture 'acme-net': builder acme_models.nets:build cannot be imported (no module 'acme_models')")
def _(ctx):
    acme("acme_models.nets:build")
    text = RECIPE.replace('"resnet20_zhai"', '"acme-net"\nweights = "none"').replace("options = { width = 0.25 }\n", "")
    return ["train", recipe(ctx, text), "--threads", "1", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


# -- run directories -------------------------------------------------------------------------------------------------
@case("run: --out a folder of the user's files", 1,
      "Error: --out {tmp}/mine holds files that are not a tinyzoo run (best, checkpoints, notes.txt); tinyzoo writes runs "
      "into a new or empty folder only: give another --out")
def _(ctx):
    write(ctx.tmp / "mine" / "notes.txt", "keep me")
    write(ctx.tmp / "mine" / "best" / "model.safetensors", "mine too")
    write(ctx.tmp / "mine" / "checkpoints" / "s00-e0001" / "trainer.pt", "and this")
    return ["train", "quickstart", *QUICK, "--data", str(ctx.sample), "--out", str(ctx.tmp / "mine")]


@case("run: --out a file", 1, "Error: --out {tmp}/file.txt is a file, not a folder; give a new folder for the run")
def _(ctx):
    write(ctx.tmp / "file.txt", "keep me")
    return ["train", "quickstart", *QUICK, "--data", str(ctx.sample), "--out", str(ctx.tmp / "file.txt")]


@case("run: --out a run that exists", 1,
      "Error: {tmp}/run already holds a run; use --resume {tmp}/run to continue it, or another --out")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--data", str(ctx.sample), "--out", str(ctx.run())]


@case("run: --resume a folder that is no run", 1,
      "Error: {tmp}: not a run directory (no run.json); give the directory a `tinyzoo train --out` wrote")
def _(ctx):
    return ["train", "--resume", str(ctx.tmp)]


@case("run: --resume with a malicious trainer.pt", 1,
      "Error: refused {tmp}/run/checkpoints/s00-e0001/trainer.pt: it holds more than tensors and plain data, and loading it "
      "could run code (Unsupported global: GLOBAL io.open); tinyzoo's checkpoints never do (one written before checkpoint "
      "format 2 cannot be resumed: start the run again)")
def _(ctx):
    run = ctx.run()
    torch.save({"version": 2, "state": Evil(ctx.tmp / PAYLOAD)}, run / "checkpoints" / "s00-e0001" / "trainer.pt")
    return ["train", "--resume", str(run)]


@case("run: --resume with a raw pickle for trainer.pt", 1,
      "Error: refused {tmp}/run/checkpoints/s00-e0001/trainer.pt: it holds more than tensors and plain data, and loading it "
      "could run code (Unsupported operand 149); tinyzoo's checkpoints never do (one written before checkpoint format 2 cannot "
      "be resumed: start the run again)")
def _(ctx):
    run = ctx.run()
    with open(run / "checkpoints" / "s00-e0001" / "trainer.pt", "wb") as f:
        pickle.dump({"version": 2, "state": Evil(ctx.tmp / PAYLOAD)}, f)
    return ["train", "--resume", str(run)]


@case("run: --resume with a damaged run.json", 1,
      "Error: {tmp}/run/run.json cannot be read (Expecting value: line 1 column 1 (char 0)); it is written whole by "
      "`tinyzoo train`, so this copy is damaged")
def _(ctx):
    run = ctx.run()
    (run / "run.json").write_text("")
    return ["train", "--resume", str(run)]


@case("run: an unknown architecture in the recipe leaves no run directory", 1,
      "Error: recipe 'quickstart': model.arch: unknown architecture 'no-such-net'; `tinyzoo list` shows the registered ones; any timm model is timm:NAME")
def _(ctx):
    return ["train", "quickstart", "--set", "model.arch=no-such-net", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("run: a missing weights file leaves no run directory", 1,
      "Error: weights file {tmp}/gone.safetensors does not exist")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--set", f"model.weights=\"{ctx.tmp / 'gone.safetensors'}\"", "--data", str(ctx.sample),
            "--out", str(ctx.tmp / "out")]


@case("run: a batch larger than the dataset leaves no run directory", 1,
      "Error: stages[0].batch_size is 512 but the training split of {sample} has 80 images; lower batch_size")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--set", "stages[0].batch_size=512", "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


@case("run: training crops smaller than the network takes leave no run directory", 1,
      "Error: alexnet with stem keep cannot take training crops (data.train.crop) of 56x56 px (its feature maps would shrink "
      "below one pixel); it takes 63 px and more; or adapt it with stem small or resize, made for 56-64 px images")
def _(ctx):
    return ["train", "quickstart", *QUICK, "--set", "model.arch=alexnet", "--set", "model.options={}", "--set", 'model.weights="none"',
            "--data", str(ctx.sample), "--out", str(ctx.tmp / "out")]


# -- the test ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _threads():
    """`train --threads 1` sets torch's thread count for the whole process: put it back after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_training_sample(tmp_path_factory.mktemp("bad-inputs") / "sample")


@pytest.fixture(scope="module")
def finished_run(sample, tmp_path_factory):
    """A run of one epoch (two checkpoints kept: s00-e0001 is the only one), to copy and spoil."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = CliRunner().invoke(cli, ["train", "quickstart", *QUICK, "--data", str(sample), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_catalogue_is_large_enough():
    kinds = {c.name.split(":")[0] for c in CASES}
    assert len(CASES) >= 40 and kinds == {"data", "weights", "eval", "adapt", "predict", "recipe", "cli", "plugin", "run"}


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
def test_bad_input(bad: Case, sample, finished_run, tmp_path):
    ctx = Ctx(tmp_path / "case", sample, finished_run)
    ctx.tmp.mkdir()
    args = bad.setup(ctx)
    before = tree(ctx.tmp)
    result = CliRunner().invoke(cli, args)
    assert not (ctx.tmp / PAYLOAD).exists()  # no pickle payload ever ran
    output = result.output
    assert "Traceback" not in output and (result.exception is None or isinstance(result.exception, SystemExit)), output
    assert result.exit_code == bad.code, output
    lines = output.rstrip("\n").splitlines()
    expected = bad.line.format(tmp=ctx.tmp, sample=sample, wnid=ctx.wnid, **ctx.fields)
    if bad.code:
        assert lines[-1] == expected, output
    else:
        assert expected in lines, output
    assert sum(line.startswith("Error:") for line in lines) == (1 if bad.code else 0), output
    if bad.code:
        assert tree(ctx.tmp) == before  # nothing made, nothing of the user's touched
