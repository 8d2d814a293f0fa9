"""Typed training recipes: TOML in, validated dataclasses out, and back to TOML.

A recipe names its architecture and adapters (:class:`ModelConfig`), its data pipeline
(:class:`DataConfig`), its stages (:class:`Stage`), its evaluation (:class:`EvalConfig`)
and how the run is carried out (:class:`RunConfig`). :func:`parse_recipe` checks every
field against these dataclasses and fails with one line naming the field's dotted path
(``stages[1].optimizer.lr``), the file, and what would be right. Torch-free.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from tinyzoo.errors import TinyzooError
from tinyzoo.specs import (
    CALIBRATION_IMAGES,
    CROP_SIZE,
    KERNEL_RESIZES,
    STAGE_CHANGES,
    STEM_MODES,
    BnRecalibration,
    HeadInit,
    KernelResize,
    StemMode,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

# The allowed values of each enumerated field; the dataclasses below use these aliases.
OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["constant", "step", "plateau", "cyclic_cosine", "exponential", "cosine"]
ViewSet = Literal["center", "full", "10crop", "12crop", "dense"]  # tinyzoo.evaluate.views.VIEW_SETS
Combine = Literal["softmax", "expsum", "logits", "vote"]  # tinyzoo.evaluate.combine.COMBINATIONS
AmpMode = Literal["auto", "bf16", "fp16", "off"]
SnapshotMetric = Literal["val_top1", "val_top5"]
OPTIMIZERS, SCHEDULES = get_args(OptimizerName), get_args(ScheduleName)
EVAL_VIEWS, EVAL_COMBINES = get_args(ViewSet), get_args(Combine)
TRAIN_PARTS = ("head", "stem", "all")
RESULT_KEY = re.compile(r"(ensemble_)?(val|test)_top[15]")
RESULT_KEYS = "val_top1, val_top5, test_top1, test_top5, or one of those prefixed ensemble_"


class RecipeError(TinyzooError):
    """A recipe field that is unknown, missing, ill-typed or out of range; ``path`` is its dotted path."""

    def __init__(self, source: str, path: str, problem: str):
        self.source, self.path, self.problem = source, path, problem
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")


# -- the schema -------------------------------------------------------------------------
# Field metadata: "doc" (one line, for docs and errors), "min" (inclusive lower bound),
# "above" (exclusive lower bound).


def _f(default: Any = dataclasses.MISSING, doc: str = "", **meta: Any) -> Any:
    if isinstance(default, type):  # a section: its own defaults
        return field(default_factory=default, metadata={"doc": doc, **meta})
    if isinstance(default, (dict, list)):
        value = default
        return field(default_factory=lambda: copy.deepcopy(value), metadata={"doc": doc, **meta})
    return field(default=default, metadata={"doc": doc, **meta})


@dataclass(kw_only=True)
class ModelConfig:
    """The network and how it is adapted (the arguments of ``tinyzoo.create``)."""

    arch: str = _f(doc="registered architecture name, or timm:<model>")
    stem: StemMode = _f("keep", "stem adapter: keep the native stem, small (native interior sizes at 56x56), small-up2 (the stem's strides only, input upsampled 2x), or resize (upsample the input)")
    classes: int = _f(200, "number of output classes", min=1)
    head_init: HeadInit | None = _f(None, "new head: wnid (the pretrained head's rows for the classes) or random (Kaiming); unset = wnid where possible")
    kernel_resize: KernelResize | None = _f(None, "how the first conv's kernels are resampled for stem small: bicubic (Kim) or pi/pinv (pseudo-inverse, FlexiViT); unset = the family's measured default (docs/fidelity.md)")
    convolutionize: bool = _f(False, "turn Linear layers into convolutions")
    weights: str | None = _f(None, "weights source (hf-hub:..., torchvision:..., a path, or none); unset = the architecture's default")
    options: dict[str, Any] = _f({}, "architecture options (e.g. width) and adapter options (resize_mode, aux), as tinyzoo.create takes them")
    head_dropout: float = _f(0.0, "dropout probability before the new head", min=0.0)
    recalibrate_bn: BnRecalibration | None = _f(None, "BatchNorm recalibration after the surgery, on training images: relative (moment matching to the original at native size) or plain (re-estimation); unset = off")
    calibration_images: int = _f(CALIBRATION_IMAGES, "training images recalibrate_bn uses", min=1)


@dataclass(kw_only=True)
class DataConfig:
    """Augmentation configs for ``tinyzoo.data.augment.Pipeline.from_config``: ``train``, and ``eval``
    (whose crop is ``evaluation.crop``; see :meth:`Recipe.eval_augment_config`). Keys: that module's ``CONFIG_KEYS``."""

    train: dict[str, Any] = _f({}, "training augmentation config")
    eval: dict[str, Any] = _f({}, "evaluation preprocessing config")
    fixed_views: bool = _f(False, "the training inputs are a fixed, finite set of views, so frozen features may be cached")


@dataclass(kw_only=True)
class OptimizerConfig:
    """An optimizer and its hyper-parameters."""

    name: OptimizerName = _f(doc="optimizer")
    lr: float = _f(doc="initial learning rate", above=0.0)
    momentum: float = _f(0.9, "SGD momentum", min=0.0)
    nesterov: bool = _f(False, "SGD Nesterov momentum")
    weight_decay: float = _f(0.0, "L2 weight decay (decoupled for adamw)", min=0.0)
    betas: tuple[float, float] = _f((0.9, 0.999), "Adam betas")
    eps: float = _f(1e-8, "Adam epsilon", above=0.0)


@dataclass(kw_only=True)
class ScheduleConfig:
    """A learning-rate schedule. ``step_size`` counts the stage's unit (epochs, or iterations when the stage gives iterations); ``warmup_epochs`` and ``patience`` count epochs."""

    name: ScheduleName = _f("constant", "schedule")
    step_size: float | None = _f(None, "step: epochs (iterations, in a stage measured in iterations) between decays", above=0.0)
    gamma: float = _f(0.1, "step: factor per step; exponential: factor per epoch", above=0.0)
    patience: int = _f(2, "plateau: epochs without validation improvement before a decay", min=0)
    factor: float = _f(0.1, "plateau: factor per decay", above=0.0)
    cycles: int | None = _f(None, "cyclic_cosine: number of cosine cycles in the stage", min=1)
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 before the schedule starts", min=0.0)
    min_lr: float = _f(0.0, "cosine / cyclic_cosine: the floor; plateau: lowest lr", min=0.0)


@dataclass(kw_only=True)
class Stage:
    """One stage of training: which parts train, for how long, and how."""

    name: str = _f(doc="stage name (shown in logs and metrics)")
    train: str | list[str] = _f("all", "parts that train: head, stem, all, or module-name glob patterns")
    epochs: float | None = _f(None, "length in epochs (give epochs or iterations)", above=0.0)
    iterations: int | None = _f(None, "length in optimizer steps (give epochs or iterations)", min=1)
    optimizer: OptimizerConfig = _f(doc="the optimizer")
    schedule: ScheduleConfig = _f(ScheduleConfig, "the learning-rate schedule")
    batch_size: int = _f(128, "images per forward pass", min=1)
    effective_batch: int | None = _f(None, "images per optimizer step (gradient accumulation); unset = batch_size", min=1)
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy", min=0.0)
    clip_grad_norm: float | None = _f(None, "clip the gradient's global norm to this", above=0.0)
    adapt: dict[str, Any] | None = _f(None, "adapter change applied before the stage starts (e.g. {stem = \"small\"})")
    aux_loss_weight: float = _f(0.3, "weight of auxiliary classifiers' losses", min=0.0)
    freeze_bn: bool = _f(True, "frozen parts keep their BatchNorm statistics fixed")

    @property
    def accumulation(self) -> int:
        """Forward passes per optimizer step."""
        return (self.effective_batch or self.batch_size) // self.batch_size

    @property
    def train_patterns(self) -> list[str]:
        """``train`` as a list."""
        return [self.train] if isinstance(self.train, str) else list(self.train)


@dataclass(kw_only=True)
class EvalConfig:
    """How validation is measured during and after training."""

    views: ViewSet = _f("center", "test-time views (tinyzoo.evaluate.views); dense = the whole image at once")
    combine: Combine = _f("softmax", "how views' scores are combined (tinyzoo.evaluate.combine): mean softmax, Kim's sum of exp(score), mean logits, majority vote")
    crop: int = _f(CROP_SIZE, "crop size of the views", min=1)
    every_epochs: float = _f(1.0, "validate every this many epochs", above=0.0)


@dataclass(kw_only=True)
class RunConfig:
    """How the run is carried out (none of this changes the procedure being reproduced)."""

    seed: int = _f(0, "random seed")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    channels_last: bool = _f(True, "channels_last memory format where it helps")
    amp: AmpMode = _f("auto", "mixed precision (auto = bf16 on CUDA, off on CPU)")
    compile: bool = _f(False, "torch.compile the model")
    keep_snapshots: int = _f(1, "best snapshots kept by snapshot_metric", min=0)
    snapshot_metric: SnapshotMetric = _f("val_top1", "metric that ranks snapshots")
    checkpoint_every_epochs: float = _f(1.0, "write a resumable checkpoint every this many epochs", above=0.0)


@dataclass(kw_only=True)
class Recipe:
    """A whole training run, as validated by :func:`parse_recipe`."""

    name: str = _f(doc="the recipe's name")
    description: str = _f("", "one line: what this recipe does")
    report: str = _f("", "the report it reproduces (kim2016, zhai2016, yu2017, milani2017, tinyzoo)")
    result: dict[str, float] = _f({}, "the result to match, in percent: val_top1, val_top5, test_top1, test_top5; ensemble_* for a snapshot ensemble")
    model: ModelConfig = _f(doc="network and adapters")
    data: DataConfig = _f(DataConfig, "augmentation")
    stages: list[Stage] = _f(doc="training stages, run in order")
    evaluation: EvalConfig = _f(EvalConfig, "validation views")
    run: RunConfig = _f(RunConfig, "execution settings")

    def train_augment_config(self) -> dict[str, Any]:
        """The config for ``Pipeline.from_config`` in training: ``data.train`` as written."""
        return copy.deepcopy(self.data.train)

    def eval_augment_config(self) -> dict[str, Any]:
        """The config for the evaluation pipeline: ``data.eval`` with ``crop`` set to ``evaluation.crop``."""
        return {**copy.deepcopy(self.data.eval), "crop": self.evaluation.crop}


SECTIONS = (Recipe, ModelConfig, DataConfig, Stage, OptimizerConfig, ScheduleConfig, EvalConfig, RunConfig)


# -- parsing ----------------------------------------------------------------------------
def parse_recipe(data: Mapping[str, Any], *, source: str) -> Recipe:
    """A validated :class:`Recipe` from raw TOML data; raises :class:`RecipeError` naming ``source``."""
    if not isinstance(data, Mapping):
        raise RecipeError(source, "", f"a recipe must be a table, not {_kind(data)}")
    recipe = _parse_dataclass(Recipe, data, "", source)
    if not recipe.stages:
        raise RecipeError(source, "stages", "give at least one stage ([[stages]])")
    for i, stage in enumerate(recipe.stages):
        _check_stage(stage, f"stages[{i}]", source)
    if "crop" in recipe.data.eval:
        raise RecipeError(source, "data.eval.crop", "set evaluation.crop instead (the size of every evaluation view)")
    for key in recipe.result:
        if not RESULT_KEY.fullmatch(key):
            raise RecipeError(source, f"result.{key}", f"unknown result; allowed: {RESULT_KEYS}")
    return recipe


def _check_stage(stage: Stage, path: str, source: str) -> None:
    if (stage.epochs is None) == (stage.iterations is None):
        raise RecipeError(source, path, "give exactly one of epochs or iterations")
    eff = stage.effective_batch
    if eff is not None and eff % stage.batch_size:
        raise RecipeError(source, f"{path}.effective_batch", f"must be a multiple of batch_size ({stage.batch_size}), not {eff}")
    for i, part in enumerate(stage.train_patterns):
        if not part:
            raise RecipeError(source, f"{path}.train[{i}]", f"must be {', '.join(TRAIN_PARTS)} or a module-name pattern, not an empty string")
    sched = stage.schedule
    if sched.name == "step" and sched.step_size is None:
        raise RecipeError(source, f"{path}.schedule.step_size", "the step schedule needs step_size (epochs, or iterations, between decays)")
    if sched.name == "cyclic_cosine" and sched.cycles is None:
        raise RecipeError(source, f"{path}.schedule.cycles", "the cyclic_cosine schedule needs cycles")
    if stage.label_smoothing >= 1:
        raise RecipeError(source, f"{path}.label_smoothing", f"must be below 1, not {stage.label_smoothing}")
    if stage.adapt is not None:
        _check_stage_change(stage.adapt, f"{path}.adapt", source)


def _check_stage_change(change: dict[str, Any], path: str, source: str) -> None:
    """A stage's ``adapt`` table: the changes a stage can make (:data:`STAGE_CHANGES`), with allowed values."""
    for key in change:
        if key not in STAGE_CHANGES:
            raise RecipeError(source, f"{path}.{key}", f"unknown change{_did_you_mean(key, STAGE_CHANGES)}; allowed: {', '.join(STAGE_CHANGES)}")
    if "stem" not in change:
        raise RecipeError(source, f"{path}.stem", "missing; a stage's adapt table changes the stem (stem = \"small\")")
    for key, allowed in (("stem", STEM_MODES), ("kernel_resize", KERNEL_RESIZES)):
        if key in change and change[key] not in allowed:
            raise RecipeError(source, f"{path}.{key}", f"must be one of {', '.join(allowed)}; got {_shown(change[key])}")


def _did_you_mean(key: str, allowed) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _parse_dataclass(cls: type, data: Any, path: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecipeError(source, path, f"expected a table, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise RecipeError(source, _join(path, key), f"unknown field{_did_you_mean(key, fields)}; allowed: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in data:
            if f.default is not dataclasses.MISSING:
                values[name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[name] = f.default_factory()
            else:
                raise RecipeError(source, sub, f"missing; expected {_describe(hints[name])}")
            continue
        value = _convert(data[name], hints[name], sub, source)
        _check_bounds(value, f, sub, source)
        values[name] = value
    return cls(**values)


def _check_bounds(value: Any, f: dataclasses.Field, path: str, source: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "min" in f.metadata and value < f.metadata["min"]:
        raise RecipeError(source, path, f"must be at least {f.metadata['min']}, not {value}")
    if "above" in f.metadata and not value > f.metadata["above"]:
        raise RecipeError(source, path, f"must be greater than {f.metadata['above']}, not {value}")


def _convert(value: Any, tp: Any, path: str, source: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        for arg in args:
            try:
                return _convert(value, arg, path, source)
            except RecipeError:
                continue
        raise RecipeError(source, path, f"expected {_describe(tp)}, got {_shown(value)}")
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise RecipeError(source, path, f"must be one of {', '.join(map(str, get_args(tp)))}; got {_shown(value)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, path, source)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(source, path, f"expected {_describe(tp)}, got {_shown(value)}")
        (item,) = get_args(tp)
        return [_convert(v, item, f"{path}[{i}]", source) for i, v in enumerate(value)]
    if origin is tuple:
        items = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise RecipeError(source, path, f"expected {_describe(tp)}, got {_shown(value)}")
        return tuple(_convert(v, t, f"{path}[{i}]", source) for i, (v, t) in enumerate(zip(value, items)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(source, path, f"expected {_describe(tp)}, got {_shown(value)}")
        _, item = get_args(tp)
        return {str(k): _convert(v, item, f"{path}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(source, path, f"expected true or false, got {_shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(source, path, f"expected an integer, got {_shown(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(source, path, f"expected a number, got {_shown(value)}")
        if not math.isfinite(value):
            raise RecipeError(source, path, f"expected a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(source, path, f"expected a string, got {_shown(value)}")
        return value
    raise TypeError(f"recipe schema: unsupported type {tp!r} at {path}")


def _describe(tp: Any) -> str:
    """``float | None`` -> 'a number (or leave it out)'; used in errors and docs."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        named = " or ".join(_describe(a) for a in args if a is not type(None))
        return f"{named} (or leave it out)" if type(None) in args else named
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if origin is list:
        return f"a list of {_plural(_describe(get_args(tp)[0]))}"
    if origin is tuple:
        return f"a list of {len(get_args(tp))} {_plural(_describe(get_args(tp)[0]))}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _plural(desc: str) -> str:
    return {"a table": "tables", "an integer": "integers", "a number": "numbers", "a string": "strings"}.get(desc, desc)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} ({_kind(value)})"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# -- overrides --------------------------------------------------------------------------
def apply_overrides(data: Mapping[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.path=value`` set; values are TOML literals, else strings.

    Paths address tables by key and lists by index: ``stages.1.optimizer.lr=0.01`` or
    ``stages[1].optimizer.lr=0.01``. Missing tables are created; list indices must exist.
    """
    result = copy.deepcopy(dict(data))
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise TinyzooError(f"--set {item!r}: expected key.path=value")
        parts = _split_path(key.strip(), item)
        node: Any = result
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(map(str, parts[: depth + 1]))
            if isinstance(node, list):
                if not isinstance(part, int):
                    raise TinyzooError(f"--set {item!r}: {where} indexes a list; use a number, e.g. stages.0")
                if not -len(node) <= part < len(node):
                    raise TinyzooError(f"--set {item!r}: {where}: index out of range (the list has {len(node)} items)")
            elif isinstance(node, dict):
                part = str(part)
            else:
                raise TinyzooError(f"--set {item!r}: {'.'.join(map(str, parts[:depth]))} is {_kind(node)}, not a table or list")
            if last:
                node[part] = _parse_literal(text.strip())
            else:
                if isinstance(node, dict) and (part not in node or node[part] is None):
                    node[part] = {}
                node = node[part]
    return result


def _split_path(key: str, item: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.split(r"\.|(?=\[)", key):
        if not token:
            raise TinyzooError(f"--set {item!r}: empty part in key {key!r}")
        m = re.fullmatch(r"\[(-?\d+)\]", token)
        if m:
            parts.append(int(m.group(1)))
        elif token.lstrip("-").isdigit():
            parts.append(int(token))
        elif "[" in token or "]" in token:
            raise TinyzooError(f"--set {item!r}: bad key {key!r}; write stages[1].optimizer.lr or stages.1.optimizer.lr")
        else:
            parts.append(token)
    return parts


def _parse_literal(text: str) -> Any:
    """A TOML literal (number, bool, string, list, inline table), or the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# -- writing TOML -----------------------------------------------------------------------
def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data with every default filled (``None`` for unset fields)."""
    return _plain(dataclasses.asdict(recipe))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def recipe_to_toml(recipe: Recipe) -> str:
    """The fully resolved recipe as TOML; unset fields appear as comments. Round-trips through :func:`parse_recipe`."""
    data = recipe_to_dict(recipe)
    out: list[str] = []
    _emit_table(out, data, [], array_item=False, header=False)
    return "\n".join(out).strip() + "\n"


def _emit_table(out: list[str], table: dict[str, Any], path: list[str], *, array_item: bool, header: bool = True) -> None:
    scalars = {k: v for k, v in table.items() if not _is_section(v)}
    sections = {k: v for k, v in table.items() if _is_section(v)}
    if header:
        name = ".".join(_key(p) for p in path)
        out.append("")
        out.append(f"[[{name}]]" if array_item else f"[{name}]")
    for key, value in scalars.items():
        if value is None:
            out.append(f"# {_key(key)} is not set")
        else:
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in sections.items():
        if isinstance(value, list):
            for item in value:
                _emit_table(out, item, path + [key], array_item=True)
        else:
            _emit_table(out, value, path + [key], array_item=False)


def _is_section(value: Any) -> bool:
    """Dicts become [tables] and lists of dicts [[arrays of tables]]; empty ones stay inline."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}
    body = "".join(
        escapes.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in text
    )
    return f'"{body}"'


# -- loading ----------------------------------------------------------------------------
def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's content; a missing or malformed file raises a one-line TinyzooError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise TinyzooError(f"{path}: no such recipe file") from None
    except tomllib.TOMLDecodeError as exc:
        raise TinyzooError(f"{path}: not valid TOML: {exc}") from None


def load_raw(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The raw content of a registered recipe or a ``.toml`` file, and its source (for errors)."""
    text = str(name_or_path)
    if text.endswith(".toml") or Path(text).is_file():
        data = read_toml(text)
        data.setdefault("name", Path(text).stem)
        return data, text
    from tinyzoo.registry import get_registry

    spec = get_registry().recipe(text)
    if spec.path is not None:
        data, source = read_toml(spec.path), spec.path
    else:
        assert spec.data is not None  # a RecipeSpec holds exactly one of path and data
        data, source = copy.deepcopy(dict(spec.data)), f"recipe {spec.name!r} (plugin {spec.plugin})"
    data["name"] = spec.name  # the name it was asked for, and its run directory's
    return data, source


def load_recipe(name_or_path: str | Path, sets: Sequence[str] = ()) -> Recipe:
    """The validated recipe named in the registry, or read from a ``.toml`` path, with ``--set`` overrides applied."""
    data, source = load_raw(name_or_path)
    if sets:
        data = apply_overrides(data, sets)
        source = f"{source} (with --set {' '.join(sets)})"
    return parse_recipe(data, source=source)
