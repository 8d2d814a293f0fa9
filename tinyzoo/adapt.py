"""Building adapted networks: ``create``, ``save`` and ``load``.

``create`` runs the pipeline: look the architecture up, build it, load and check its weights
(before any surgery), apply the adapters the registry holds for its family, in the order of
their roles (stem-small, head, convolutionize, resize, and any step a plugin adds), and
account for every tensor in an :class:`~tinyzoo.adapt_report.AdaptationReport`. ``save``
writes an adapted-model directory (``model.safetensors``, ``config.json``, ``README.md``)
atomically; ``load`` rebuilds one from ``config.json`` without any network access.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tinyzoo import preprocess as preprocessing
from tinyzoo.adapt_report import (
    AdaptationReport,
    Changes,
    ProvenanceTracker,
    TensorRecord,
)
from tinyzoo.atomic_files import (
    follow_umask,
    fsync_dir,
    fsync_file,
    replace_dir,
    sweep_temporaries,
    temp_dir_beside,
)
from tinyzoo.builders import build, placeholder_model
from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.model_card import model_card
from tinyzoo.model_files import (
    CARD_FILE,
    CONFIG_FILE,
    CONFIG_FORMAT,
    CONFIG_VERSION,
    WEIGHTS_FILE,
    read_config,
)
from tinyzoo.specs import (
    ADAPTER_OPTIONS,
    HEAD_INITS,
    IMAGENET_CLASSES,
    KERNEL_RESIZES,
    ROLE_ORDERS,
    STEM_MODES,
    TINY_IMAGENET_CLASSES,
    AdapterSpec,
    resolve_object,
)

__all__ = ["create", "load", "restem", "save"]


# -- finding and running adapters -------------------------------------------------------------
def find_adapter(role: str, family: str) -> AdapterSpec:
    """The registered adapter with ``role`` that handles ``family``; one naming the family beats ``*``."""
    from tinyzoo.registry import get_registry

    adapters = get_registry().adapters
    candidates = [a for a in adapters.values() if a.role == role and a.handles(family)]
    if not candidates:
        known = ", ".join(sorted(a.name for a in adapters.values() if a.role == role)) or "none"
        raise TinyzooError(f"no {role!r} adapter handles architecture family {family!r} (registered {role} adapters: {known})")
    candidates.sort(key=lambda a: ("*" in a.families, a.name))
    return candidates[0]


def adapter_plan(family: str, steps: dict[str, dict[str, Any]]) -> list[tuple[AdapterSpec, dict[str, Any]]]:
    """The adapters ``create`` runs on a network of ``family``, with their parameters, in order.

    One per role in ``steps`` (tinyzoo's own roles that create's arguments asked for), and one
    per other role that a registered adapter for ``family`` fills (a step a plugin adds, run
    with no parameters); sorted by the chosen adapter's ``order``, then by role.
    """
    from tinyzoo.registry import get_registry

    extra = sorted({a.role for a in get_registry().adapters.values() if a.role not in ROLE_ORDERS and a.handles(family)})
    plan = [(find_adapter(role, family), params) for role, params in steps.items()]
    plan += [(find_adapter(role, family), {}) for role in extra]
    return sorted(plan, key=lambda step: (step[0].order, step[0].role))


def run_adapter(adapter: AdapterSpec, model, spec, params: dict[str, Any]):
    """``adapter.apply(model, spec, **params)``: the (model, :class:`Changes`) it returns, checked.

    An adapter that cannot be imported or fails with anything but a :class:`TinyzooError` is
    a one-line error naming its plugin, the adapter, the architecture and the cause."""
    origin = (f"plugin {adapter.plugin!r}: " if adapter.plugin else "") + f"adapter {adapter.name!r} on {spec.name!r}"
    try:
        function = resolve_object(adapter.apply)
    except Exception as exc:
        raise TinyzooError(f"{origin}: {adapter.apply} cannot be imported ({one_line(exc, 160, typed=True)})") from None
    try:
        result = function(model, spec, **params)
    except TinyzooError:
        raise
    except Exception as exc:
        raise TinyzooError(f"{origin}: {adapter.apply} raised {one_line(exc, 200, typed=True)}") from None
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Changes)):
        raise TinyzooError(f"{origin}: {adapter.apply} must return (model, Changes), not {type(result).__name__}")
    return result


def apply_plan(model, spec, plan, tracker: ProvenanceTracker):
    """Run ``plan`` (from :func:`adapter_plan`) on ``model``, each step accounted for by ``tracker``.

    Returns ``(model, applied, notes, input_size)``: ``applied`` is what config.json records
    (``{"name", "params"}`` per step) and ``input_size`` the size the result expects. The
    ``convolutionize`` step is given the size the steps before it left.
    """
    input_size, applied, notes = spec.input_size, [], []
    for adapter, params in plan:
        if adapter.role == "convolutionize":
            params = {**params, "input_size": input_size}
        model, changes = run_adapter(adapter, model, spec, params)
        tracker.apply(adapter.name, changes, model.state_dict())
        input_size = changes.input_size or input_size
        notes.extend(changes.notes)
        applied.append({"name": adapter.name, "params": params})
    return model, applied, notes, input_size


# -- create -----------------------------------------------------------------------------------------
def stem_step(stem: str, kernel_resize: str, adapter_options: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The (role, params) of the stem adapter ``stem`` needs: ``small`` and ``small-up2`` (the stem's
    strides only, input upsampled 2x); ``keep`` and ``resize`` change no stem."""
    if stem == "small":
        return "stem-small", {"kernel_resize": kernel_resize}
    if stem == "small-up2":
        return "stem-up2", {"kernel_resize": kernel_resize, "mode": adapter_options.get("resize_mode", "bicubic")}
    return None


def _wnid_list(wnids) -> list[str] | None:
    from tinyzoo.wordnet import read_wnids, validate_classes

    if wnids is None:
        return None
    if isinstance(wnids, (str, os.PathLike)):
        return read_wnids(wnids)
    return validate_classes(wnids)


def _split_options(spec, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    builder, adapter = {}, {}
    for key, value in options.items():
        if key in spec.options:
            builder[key] = value
        elif key in ADAPTER_OPTIONS:
            if value not in ADAPTER_OPTIONS[key]:
                raise TinyzooError(f"option {key}={value!r} is not one of: {', '.join(ADAPTER_OPTIONS[key])}")
            adapter[key] = value
        else:
            allowed = sorted(spec.options) + sorted(ADAPTER_OPTIONS)
            raise TinyzooError(f"architecture {spec.name!r} has no option {key!r}; its options: {', '.join(allowed)}")
    if "aux" in adapter and not spec.aux_classifiers:
        raise TinyzooError(f"option aux applies to architectures with auxiliary classifiers; {spec.name!r} has none")
    return builder, adapter


def _check_arguments(spec, stem, classes, wnids, convolutionize, options):
    """``(builder_options, adapter_options, wnid_list, classes)``, or a one-line error naming the argument."""
    if stem not in STEM_MODES:
        raise TinyzooError(f"stem {stem!r} is not one of: {', '.join(STEM_MODES)}")
    if stem not in spec.stems:
        raise TinyzooError(f"architecture {spec.name!r} supports stems {', '.join(spec.stems)}; not {stem!r}")
    builder_options, adapter_options = _split_options(spec, options)
    wnid_list = _wnid_list(wnids)
    if classes is None:
        classes = len(wnid_list) if wnid_list else TINY_IMAGENET_CLASSES
    if not isinstance(classes, int) or classes < 1:
        raise TinyzooError(f"classes must be a positive integer, not {classes!r}")
    if wnid_list and len(wnid_list) != classes:
        raise TinyzooError(f"classes={classes} but the wnids list {len(wnid_list)} classes; give one or make them agree")
    if convolutionize and not spec.classifier:
        raise TinyzooError(f"architecture {spec.name!r} names no classifier to convolutionize")
    return builder_options, adapter_options, wnid_list, classes


def _build(spec, builder_options: dict[str, Any], weights, offline):
    """``(loaded, model)``: the weights read (or given) and the network holding them, in eval mode."""
    from tinyzoo.weights import LoadedWeights, build_with_weights, load_weights

    given = isinstance(weights, LoadedWeights)
    loaded = weights if given else load_weights(weights, spec, offline=offline)
    if loaded.state_dict is None:
        model = build(spec, **builder_options)
    else:
        # Weights the caller holds are copied: two models made from them must not share tensors.
        model = build_with_weights(spec, builder_options, loaded, share=not given)
    return loaded, model.eval()


def _resolve_head(spec, classes, wnids, head_init, loaded, classifier_size):
    """(init, rows, note): how the head adapter initialises the new head, by the documented rule."""
    from tinyzoo.wordnet import imagenet_indices, missing_from_imagenet

    pretrained_imagenet_head = loaded.state_dict is not None and classifier_size == IMAGENET_CLASSES
    if head_init is None:
        if wnids and pretrained_imagenet_head and not missing_from_imagenet(wnids):
            return "wnid", imagenet_indices(wnids), "head: wnid (pretrained ImageNet-1k rows for the given wnids)"
        if wnids is None and classes == classifier_size:
            return "keep", None, f"head: kept ({classes} classes, as the weights have)"
        if wnids and not pretrained_imagenet_head:
            why = "weights 'none'" if loaded.state_dict is None else (
                "headless weights" if classifier_size == 0 else f"a {classifier_size}-way head, not ImageNet-1k")
            return "random", None, f"head: random (Kaiming normal): {why}"
        if wnids:
            missing = missing_from_imagenet(wnids)
            return "random", None, f"head: random (Kaiming normal): {len(missing)} wnids not in ImageNet-1k, e.g. {missing[0]}"
        return "random", None, "head: random (Kaiming normal): no wnids given (--classes alone names no ImageNet classes)"
    if head_init == "random":
        return "random", None, "head: random (Kaiming normal), as asked"
    if head_init != "wnid":
        raise TinyzooError(f"head_init {head_init!r} is not one of: {', '.join(HEAD_INITS)}")
    if not wnids:
        raise TinyzooError("head_init='wnid' needs wnids (--wnids FILE): --classes N alone names no ImageNet classes")
    if loaded.state_dict is None:
        raise TinyzooError("head_init='wnid' needs pretrained weights with an ImageNet-1k head; weights are 'none' (use head_init='random')")
    if classifier_size != IMAGENET_CLASSES:
        has = "no head (its weights are headless)" if classifier_size == 0 else f"a {classifier_size}-way head"
        raise TinyzooError(f"head_init='wnid' needs an ImageNet-1k (1000-way) head; {spec.name!r} has {has}")
    return "wnid", imagenet_indices(wnids), "head: wnid (pretrained ImageNet-1k rows for the given wnids)"


def _role_steps(spec, stem: str, kernel_resize: str, convolutionize: bool, head: dict[str, Any],
                adapter_options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """tinyzoo's adapter roles that create's arguments ask for, with their parameters."""
    step = stem_step(stem, kernel_resize, adapter_options)  # small and small-up2 have one
    steps: dict[str, dict[str, Any]] = dict([step] if step is not None else [])
    if spec.classifier and (head["init"] != "keep" or spec.aux_classifiers):
        steps["head"] = head
    if convolutionize:
        steps["convolutionize"] = {"pool": "avg"}
    if stem == "resize":
        steps["resize"] = {"size": spec.input_size, "mode": adapter_options.get("resize_mode", "bicubic")}
    return steps


def create(
    name: str,
    *,
    stem: str = "keep",
    classes: int | None = None,
    wnids=None,
    head_init: str | None = None,
    kernel_resize: str | None = None,
    convolutionize: bool = False,
    weights: Any = None,
    offline: bool | None = None,
    recalibrate_bn: str | None = None,
    calibration: Any = None,
    **options: Any,
):
    """The architecture ``name`` adapted to Tiny ImageNet, as an ``nn.Module`` in eval mode.

    - ``stem``: ``keep``, ``small`` (the interior geometry kept for 56x56 input), ``small-up2``
      (only the stem's strides removed, the input upsampled 2x) or ``resize`` (input upsampled
      to the native size); each architecture lists the stems it supports.
    - ``classes``: the head's size (default ``len(wnids)``, else 200); ``wnids``: a
      ``wnids.txt`` path or a list of WordNet ids, in output order (a list may instead name a
      dataset's own classes, e.g. class folders that are not WordNet ids: the head is then random).
    - ``head_init``: ``wnid`` (the pretrained head's ImageNet-1k rows), ``random`` (Kaiming
      normal), or ``None`` for the rule of docs/adapters.md ("The default rule").
    - ``kernel_resize``: ``bicubic`` or ``pi`` (``pinv``), for kernels that ``stem small``
      resamples; ``None``: the family's measured default.
    - ``convolutionize``: the classifier's Linear layers become convolutions.
    - ``weights``: a weights source (``None``: the architecture's default; ``"none"``: random),
      or a :class:`tinyzoo.weights.LoadedWeights` already read (to adapt one download several ways).
    - ``recalibrate_bn``: ``plain`` or ``relative`` BatchNorm recalibration after the surgery on
      ``calibration``, a :class:`tinyzoo.data.photos.ImageViews`.
    - ``options``: architecture options and adapter options ``aux=adapt|drop``, ``resize_mode=bicubic|bilinear``.

    The model carries ``model.tinyzoo_report`` (an :class:`AdaptationReport`) and
    ``model.tinyzoo_config`` (the dict :func:`save` writes as config.json).
    """
    from tinyzoo.registry import get_registry

    spec = get_registry().architecture(name)
    builder_options, adapter_options, wnid_list, classes = _check_arguments(spec, stem, classes, wnids, convolutionize, options)
    kernel_resize = resolve_kernel_resize(kernel_resize, spec)
    check_recalibration(recalibrate_bn, calibration, spec)
    loaded, model = _build(spec, builder_options, weights, offline)
    tracker = ProvenanceTracker(model.state_dict())
    reference = _bn_reference(model, spec, loaded, recalibrate_bn, calibration)
    head, head_note = _head_step(model, spec, classes, wnid_list, head_init, loaded, adapter_options.get("aux", "adapt"))
    steps = _role_steps(spec, stem, kernel_resize, convolutionize, head, adapter_options)
    model, applied, notes, input_size = _apply(model, spec, steps, tracker, recalibrate_bn, calibration, reference, stem)

    report = AdaptationReport(
        architecture=spec.name, weights=loaded.describe(), adapters=applied, tensors=list(tracker.records.values()),
        dropped=tracker.dropped, input_size=input_size, notes=([head_note] if head_note else []) + notes,
    )
    model.tinyzoo_report = report
    model.tinyzoo_config = adapted_config(
        spec, loaded, report, options=builder_options, stem=stem, head_init=head["init"], kernel_resize=kernel_resize,
        convolutionize=convolutionize, classes=classes, wnids=wnid_list, recalibration=calibration_record(recalibrate_bn, calibration),
    )
    return model


def _head_step(model, spec, classes: int, wnids, head_init, loaded, aux: str) -> tuple[dict[str, Any], str]:
    """The head adapter's parameters (``classes``, ``init``, ``rows``, ``aux``) and the report's note
    on the choice (:func:`_resolve_head`); ``keep`` and no note for a network without a classifier."""
    from tinyzoo.surgery.head import get_module, out_size

    if not spec.classifier:
        return {"classes": classes, "init": "keep", "rows": None, "aux": aux}, ""
    classifier_size = out_size(get_module(model, spec.classifier, "classifier"))
    init, rows, note = _resolve_head(spec, classes, wnids, head_init, loaded, classifier_size)
    return {"classes": classes, "init": init, "rows": rows, "aux": aux}, note


def _apply(model, spec, steps: dict[str, dict[str, Any]], tracker: ProvenanceTracker, recalibrate_bn, calibration, reference,
           stem: str):
    """Run the adapters for ``steps`` and then the BatchNorm recalibration, without gradients, and check that
    every tensor reported as copied still holds its loaded values; ``(model, applied, notes, input_size)``,
    the model in eval mode."""
    import torch

    with torch.no_grad():
        model, applied, notes, input_size = apply_plan(model, spec, adapter_plan(spec.family, steps), tracker)
        if recalibrate_bn:
            notes += _recalibrate(model, spec, tracker, recalibrate_bn, calibration, reference, stem)
        tracker.check_copied(model.state_dict())
    return model.eval(), applied, notes, input_size


def _recalibrate(model, spec, tracker: ProvenanceTracker, method: str, calibration, reference, stem: str) -> list[str]:
    """BatchNorm recalibration after the surgery (:mod:`tinyzoo.surgery.batchnorm`); its notes.
    Calibration images the network cannot take are a one-line error before any forward."""
    from tinyzoo.input_size import check_input_size
    from tinyzoo.surgery.batchnorm import recalibrate_views

    check_input_size(model, int(calibration.small.shape[1]), what="calibration images (--recalibrate-bn)",
                     arch=spec.name, stem=stem, native=spec.input_size)

    changes = recalibrate_views(model, calibration, method, spec.mean, spec.std, reference)
    tracker.apply("recalibrate-bn", changes, model.state_dict())
    return changes.notes


def adapted_config(spec, loaded, report: AdaptationReport, *, options, stem, head_init, kernel_resize, convolutionize,
                   classes, wnids, recalibration=None) -> dict[str, Any]:
    """The config.json of an adapted model: how it was made, what it expects, and its report."""
    from tinyzoo.registry import get_registry
    from tinyzoo.wordnet import wnid_names

    applied, input_size = report.adapters, report.input_size
    names = wnid_names(wnids) if wnids else {}
    adapters = get_registry().adapters
    dropped_aux = any(adapters[a["name"]].role == "head" and a["params"].get("aux") == "drop" for a in applied if a["name"] in adapters)
    config = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_VERSION,
        "tinyzoo_version": _version(),
        "architecture": spec.name,
        "family": spec.family,
        "options": options,
        "adapters": applied,
        "stem": stem,
        "head_init": head_init,
        "kernel_resize": kernel_resize,
        "recalibrate_bn": recalibration,
        "convolutionize": bool(convolutionize),
        "classes": classes,
        "wnids": wnids,
        "names": [names.get(w, w) for w in wnids] if wnids else None,
        "input_size": input_size,
        "native_input_size": spec.input_size,
        "preprocess": preprocessing.for_architecture(spec, input_size).to_config(),
        "first_conv": spec.first_conv,
        "classifier": spec.classifier,
        "aux_classifiers": [] if dropped_aux else list(spec.aux_classifiers),
        "weights": loaded.to_config(),
        "report": report.to_dict(),
    }
    return config


def resolve_kernel_resize(kernel_resize: str | None, spec) -> str:
    """``kernel_resize`` in its canonical spelling; ``None`` is the family's measured default."""
    from tinyzoo.surgery.kernels import canonical_method, default_kernel_resize

    if kernel_resize is None:
        return default_kernel_resize(spec.family)
    try:
        return canonical_method(kernel_resize)
    except TinyzooError:
        raise TinyzooError(f"kernel_resize {kernel_resize!r} is not one of: {', '.join(KERNEL_RESIZES)}") from None


def check_recalibration(method: str | None, calibration, spec) -> None:
    """A one-line error unless ``method`` is off, or known and given calibration images that fit ``spec``."""
    if not method:
        if calibration is not None:
            raise TinyzooError("calibration images were given but recalibrate_bn is not set (plain or relative)")
        return
    from tinyzoo.surgery.batchnorm import check_method

    check_method(method)
    if calibration is None:
        raise TinyzooError(f"recalibrate_bn={method!r} needs calibration images (--calibration-data DIR)")
    native = getattr(calibration, "native", None)
    if method == "relative" and (native is None or native.shape[1] != spec.input_size):
        raise TinyzooError(f"recalibrate_bn='relative' needs the calibration images at {spec.name}'s native size, {spec.input_size} px")


def _bn_reference(model, spec, loaded, method, calibration):
    """The original network's BatchNorm statistics at native size, for ``relative`` recalibration."""
    if method != "relative":
        return None
    from tinyzoo.surgery.batchnorm import reference_moments

    key = (spec.name, loaded.source, loaded.sha256, calibration.view)
    return reference_moments(model, calibration, spec.mean, spec.std, key=key)


def calibration_record(method: str | None, calibration) -> dict[str, Any] | None:
    """What config.json records about BatchNorm recalibration (``None`` when off)."""
    if not method:
        return None
    return {"method": method, "images": len(calibration), "size": int(calibration.small.shape[1]),
            "view": calibration.view, "source": calibration.source}


def _version() -> str:
    from tinyzoo import __version__

    return __version__


# -- save -----------------------------------------------------------------------------------------------
def _tensors_for_file(model) -> dict[str, Any]:
    tensors, seen = {}, set()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        # safetensors refuses tensors sharing memory; give a second view its own copy.
        pointer = (value.untyped_storage().data_ptr(), value.storage_offset()) if value.numel() else None
        if pointer in seen:
            value = value.clone()
        if pointer is not None:
            seen.add(pointer)
        tensors[key] = value
    return tensors


def _write_model_files(model, config: dict[str, Any], folder: Path) -> None:
    """Write the three files of an adapted-model directory into the new folder ``folder``."""
    from safetensors.torch import save_file

    save_file(_tensors_for_file(model), str(folder / WEIGHTS_FILE), metadata={"format": "pt", "tinyzoo_architecture": config["architecture"]})
    preprocessing.save_tensors(model, folder)
    (folder / CARD_FILE).write_text(model_card(config), encoding="utf-8")
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for path in folder.iterdir():
        follow_umask(path)  # safetensors writes 0600; every file of the folder gets the mode open() gives
        fsync_file(path)


def check_replaceable(target: Path, config: dict[str, Any]) -> None:
    """Refuse to write into an existing folder whose files of the same names tinyzoo did not
    write (it is not an adapted-model folder): a user's README.md is never overwritten."""
    if not target.is_dir() or _written_by_tinyzoo(target / CONFIG_FILE):
        return
    from tinyzoo.preprocess import PIXEL_MEAN_FILE

    taken = [name for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, PIXEL_MEAN_FILE) if (target / name).exists()]
    if taken:
        raise TinyzooError(f"{target} is not an adapted-model folder but holds {taken[0]}, which saving would overwrite; "
                           "give a new or empty folder")


def _written_by_tinyzoo(config_path: Path) -> bool:
    """Whether ``config_path`` is an adapted model's config.json."""
    try:
        return json.loads(config_path.read_text(encoding="utf-8")).get("format") == CONFIG_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save(model, directory: str | os.PathLike) -> Path:
    """Write ``model`` (from :func:`create` or :func:`load`) to ``directory``; returns its path.

    Writes ``model.safetensors``, ``README.md`` and ``config.json`` (and, for a model
    normalised by a per-pixel mean, ``preprocess.safetensors``), all into a temporary
    sibling folder first: a new directory appears whole by one rename; in an existing
    directory each file is replaced by a rename (config.json last) and nothing else in it
    is touched. No file is ever seen half-written, and a failure while writing leaves
    the old files as they were.
    """
    config = getattr(model, "tinyzoo_config", None)
    if not isinstance(config, dict) or "architecture" not in config:
        raise TinyzooError("this model has no tinyzoo_config: save models made by tinyzoo.create or tinyzoo.load")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise TinyzooError(f"{target} exists and is not a directory; give a folder for the adapted model")
    check_replaceable(target, config)
    sweep_temporaries(target.parent, target=target.name)
    staging = temp_dir_beside(target)
    try:
        _write_model_files(model, config, staging)
        if not target.exists():
            replace_dir(staging, target)
            return target
        for path in sorted(staging.iterdir(), key=lambda p: p.name == CONFIG_FILE):  # config.json last
            os.replace(path, target / path.name)
        fsync_dir(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- load -------------------------------------------------------------------------------------------------
def model_dir(model: str | os.PathLike, *, offline: bool | None = None) -> Path:
    """The adapted-model directory ``model`` names (see :mod:`tinyzoo.locate`): the folder
    itself, a run directory's ``best/``, or a Hub repo's cached snapshot."""
    from tinyzoo.locate import is_run_dir, resolve

    path = Path(model).expanduser()
    if path.is_dir() and not is_run_dir(path):
        return path  # read_config names what such a folder lacks
    return resolve(model, offline=offline).path


def load(model: str | os.PathLike, *, device: Any = None, offline: bool | None = None):
    """The adapted model ``model`` names, rebuilt, in eval mode.

    ``model`` is what ``tinyzoo eval`` accepts: an adapted-model directory, a run directory
    (its ``best/``), or a Hub id ``ORG/NAME[@REV]`` / ``hf-hub:ORG/NAME[@REV]`` (downloaded
    once, then read from the cache; ``offline`` or ``TINYZOO_OFFLINE=1`` reads only the
    cache). The architecture is built from config.json with no weights, the recorded
    adapters are re-applied structurally, and ``model.safetensors`` is loaded strictly:
    outputs are the saved model's, bit for bit. ``model.tinyzoo_config`` /
    ``model.tinyzoo_report`` are restored.
    """
    import torch
    from safetensors.torch import load_file

    from tinyzoo.registry import get_registry
    from tinyzoo.weights import check_finite

    root = model_dir(model, offline=offline)
    config = read_config(root)
    weights_path = root / WEIGHTS_FILE
    if not weights_path.is_file():
        raise TinyzooError(f"{weights_path} not found: the folder has config.json but no weights")
    spec = get_registry().architecture(config["architecture"])
    net = placeholder_model(spec, config.get("options"))
    with torch.no_grad():
        for entry in config["adapters"]:
            adapter = get_registry().adapter(entry["name"])
            net, _ = run_adapter(adapter, net, spec, dict(entry.get("params") or {}))
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as exc:
        raise TinyzooError(f"{weights_path} is not a valid safetensors file ({one_line(exc, 120)})") from None
    check_finite(state, weights_path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TinyzooError(f"{weights_path} does not fit the model config.json describes: {one_line(exc, 200)}") from None
    net.eval()
    if device is not None:
        net.to(device)
    net.tinyzoo_config = config
    net.tinyzoo_report = AdaptationReport.from_dict(config["report"]) if "report" in config else None
    preprocessing.load_tensors(net, root)
    return net


def _recorded(entry: dict[str, Any]) -> AdapterSpec | None:
    """The adapter an entry of config.json's ``adapters`` names, None when no plugin registers it."""
    from tinyzoo.registry import get_registry

    return get_registry().adapters.get(entry["name"])


def restem(model, stem: str, *, kernel_resize: str | None = None):
    """Switch an adapted model's stem (``resize`` -> ``small`` for Kim's staged run, or to ``keep``
    from ``resize``), keeping every other tensor; config and report are updated. Returns the model."""
    import torch

    from tinyzoo.registry import get_registry
    from tinyzoo.surgery.resize import remove_resize

    config = getattr(model, "tinyzoo_config", None)
    if not isinstance(config, dict):
        raise TinyzooError("restem works on models made by tinyzoo.create or tinyzoo.load")
    spec = get_registry().architecture(config["architecture"])
    if stem not in spec.stems:
        raise TinyzooError(f"architecture {spec.name!r} supports stems {', '.join(spec.stems)}; not {stem!r}")
    kernel_resize = resolve_kernel_resize(kernel_resize, spec)
    current = config.get("stem", "keep")
    if current == stem:
        return model
    if current.startswith("small") or stem == "resize":
        raise TinyzooError(f"restem goes from resize or keep to small, or from resize to keep; not {current!r} -> {stem!r}")
    if config.get("convolutionize"):
        raise TinyzooError("restem cannot change the stem of a convolutionized model: its first FC kernel is sized for the old geometry")
    report = getattr(model, "tinyzoo_report", None)
    tracker = ProvenanceTracker(model.state_dict())
    if report is not None:
        tracker.records = {t.key: TensorRecord(**t.__dict__) for t in report.tensors}
        tracker.dropped = dict(report.dropped)
    adapters = [a for a in config["adapters"] if getattr(_recorded(a), "role", None) != "resize"]
    remove_resize(model)
    input_size, notes = spec.input_size, []
    step = stem_step(stem, kernel_resize, {})
    if step:
        adapter, params = find_adapter(step[0], spec.family), step[1]
        with torch.no_grad():
            model, changes = run_adapter(adapter, model, spec, params)
        tracker.apply(adapter.name, changes, model.state_dict())
        assert adapter.order is not None  # AdapterSpec.__post_init__ always sets it
        position = next((i for i, a in enumerate(adapters) if getattr(_recorded(a), "order", 0) > adapter.order), len(adapters))
        adapters.insert(position, {"name": adapter.name, "params": params})
        input_size, notes = changes.input_size or input_size, changes.notes
    config.update(adapters=adapters, stem=stem, input_size=input_size, kernel_resize=kernel_resize)
    preprocessing.record(model, preprocessing.of(model).with_crop(input_size))
    if report is not None:
        report.tensors = list(tracker.records.values())
        report.adapters, report.input_size = adapters, input_size
        report.notes = report.notes + notes
        config["report"] = report.to_dict()
    return model
