"""Building adapted networks: ``create``, ``save`` and ``load``.

``create`` runs the pipeline: look the architecture up, build it, load and check its weights
(before any surgery), apply the adapters the registry holds for its family, in order
(stem, head, convolutionize, resize), and account for every tensor in an
:class:`~tinyzoo.adapt_report.AdaptationReport`. ``save`` writes an adapted-model directory
(``model.safetensors``, ``config.json``, ``README.md``) atomically; ``load`` rebuilds one from
``config.json`` without any network access.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tinyzoo.adapt_report import AdaptationReport, Changes, ProvenanceTracker, TensorRecord
from tinyzoo.errors import TinyzooError
from tinyzoo.specs import STEM_MODES, resolve_object

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
CONFIG_FORMAT = "tinyzoo-adapted-model"
CONFIG_VERSION = 1
HEAD_INITS = ("wnid", "random")
KERNEL_RESIZES = ("bicubic", "pi")
RESIZE_MODES = ("bicubic", "bilinear")
# Options the adapters read (``--option aux=drop``); every other option goes to the builder.
ADAPTER_OPTIONS = {"aux": ("adapt", "drop"), "resize_mode": RESIZE_MODES}
IMAGENET_CLASSES = 1000
TINY_IMAGENET_CLASSES = 200


# -- finding adapters ---------------------------------------------------------------------------
def find_adapter(role: str, family: str):
    """The registered adapter for ``role`` (``head``, ``stem-small``, ``resize``, ``convolutionize``)
    that handles ``family``: named ``role`` or ``role-<anything>``; one naming the family beats ``*``."""
    from tinyzoo.registry import get_registry

    adapters = get_registry().adapters
    candidates = [a for a in adapters.values() if (a.name == role or a.name.startswith(role + "-")) and a.handles(family)]
    if not candidates:
        known = ", ".join(sorted(n for n in adapters if n == role or n.startswith(role + "-"))) or "none"
        raise TinyzooError(f"no {role!r} adapter handles architecture family {family!r} (registered {role} adapters: {known})")
    candidates.sort(key=lambda a: ("*" in a.families, a.name))
    return candidates[0]


def run_adapter(adapter, model, spec, params: dict[str, Any]):
    """``adapter.apply(model, spec, **params)``: the (model, :class:`Changes`) it returns, checked."""
    function = resolve_object(adapter.apply)
    result = function(model, spec, **params)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Changes)):
        raise TinyzooError(f"adapter {adapter.name!r} ({adapter.apply}) must return (model, Changes), not {type(result).__name__}")
    return result


# -- the resize and convolutionize adapters --------------------------------------------------------
def adapt_resize(model, spec, *, size: int, mode: str = "bicubic"):
    """The ``resize`` adapter: the network unchanged, its input upsampled to ``size`` first.

    The :class:`InputResize` layer is registered as ``model.input_resize`` (no tensors) and run
    by a forward pre-hook, so state-dict keys and layer names stay the architecture's.
    """
    from tinyzoo.surgery.resize import InputResize, attach_input_resize

    if mode not in RESIZE_MODES:
        raise TinyzooError(f"option resize_mode={mode!r} is not one of: {', '.join(RESIZE_MODES)}")
    if hasattr(model, "input_resize"):
        raise TinyzooError(f"{spec.name!r} already has an input_resize layer; apply the resize adapter once")
    attach_input_resize(model, InputResize(size, mode))
    changes = Changes(input_size=56)
    changes.note(f"input upsampled ({mode}) to {size}x{size} before the network")
    return model, changes


def remove_resize(model) -> bool:
    """Undo :func:`adapt_resize` on ``model``; returns whether it had one."""
    from tinyzoo.surgery.resize import detach_input_resize

    return detach_input_resize(model) is not None


def adapt_convolutionize(model, spec, *, input_size: int, pool: str = "avg"):
    """The ``convolutionize`` adapter: the classifier's Linear layers become convolutions.

    ``input_size`` is the size at which the result equals the original exactly (the adapted
    size: 56 after ``stem small``). Linear weights keep their keys and values, reshaped.
    """
    from tinyzoo.surgery.convolutionize import convolutionize
    from tinyzoo.surgery.resize import attach_input_resize, detach_input_resize

    before = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # An input layer (stem small-up2) stays in front: the classifier is taken at the size behind it.
    resize = detach_input_resize(model)
    inner = resize.output_size(input_size) if resize is not None else input_size
    net = convolutionize(model, spec.classifier or "", inner, pool=pool)
    if resize is not None:
        attach_input_resize(net, resize)
    changes = Changes()
    after = net.state_dict()
    for key, value in after.items():
        if key in before and tuple(value.shape) != before[key]:
            changes.copy(key, key)
    changes.note(f"classifier convolutionized: exact at {input_size}x{input_size}, score map averaged ({pool}) on larger input")
    return net, changes


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
    from tinyzoo.wordnet import read_wnids, validate_wnids

    if wnids is None:
        return None
    if isinstance(wnids, (str, os.PathLike)):
        return read_wnids(wnids)
    return validate_wnids(wnids)


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


def _non_persistent_buffers(model) -> bool:
    return any(m._non_persistent_buffers_set for m in model.modules())


def build_with_weights(spec, builder_options: dict[str, Any], loaded, *, share: bool = True) -> Any:
    """``spec``'s network holding ``loaded``'s tensors (checked to fit first).

    Built on the meta device and given the loaded tensors directly, which skips a random
    initialisation that would be overwritten (seconds for VGG); networks with buffers that
    are not in a state dict are built normally instead. ``share=False`` gives the network
    copies, so that training it leaves ``loaded`` as it was.
    """
    import torch

    from tinyzoo.builders import build
    from tinyzoo.weights import check_state_dict

    with torch.device("meta"):
        skeleton = build(spec, **builder_options)
    check_state_dict(skeleton, loaded.state_dict, loaded.source)
    state = dict(loaded.state_dict) if share else {k: v.clone() for k, v in loaded.state_dict.items()}
    expected = skeleton.state_dict()
    for key, ref in expected.items():
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
        elif state[key].dtype != ref.dtype:
            state[key] = state[key].to(ref.dtype)
    if _non_persistent_buffers(skeleton):
        model = build(spec, **builder_options)
        model.load_state_dict(state, strict=True)
        return model
    skeleton.load_state_dict(state, strict=True, assign=True)
    return skeleton


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


def create(
    name: str,
    *,
    stem: str = "keep",
    classes: int | None = None,
    wnids=None,
    head_init: str | None = None,
    kernel_resize: str = "bicubic",
    convolutionize: bool = False,
    weights: Any = None,
    offline: bool | None = None,
    **options: Any,
):
    """The architecture ``name`` adapted to Tiny ImageNet, as an ``nn.Module`` in eval mode.

    - ``stem``: ``keep``, ``small`` (the interior geometry kept for 56x56 input), ``small-up2``
      (only the stem's strides removed, the input upsampled 2x) or ``resize`` (input upsampled
      to the native size); each architecture lists the stems it supports.
    - ``classes``: the head's size (default ``len(wnids)``, else 200); ``wnids``: a
      ``wnids.txt`` path or a list of WordNet ids, in output order.
    - ``head_init``: ``wnid`` (the pretrained head's ImageNet-1k rows), ``random`` (Kaiming
      normal), or ``None`` for the rule of docs/adapters.md (wnid when the weights carry an
      ImageNet-1k head and every wnid is in it; the head kept when ``classes`` equals the
      weights' head and no wnids are given; otherwise random).
    - ``kernel_resize``: ``bicubic`` or ``pi``, for kernels that ``stem small`` resamples.
    - ``convolutionize``: the classifier's Linear layers become convolutions.
    - ``weights``: a weights source (``None``: the architecture's default; ``"none"``: random),
      or a :class:`tinyzoo.weights.LoadedWeights` already read (to adapt one download several ways).
    - ``options``: architecture options (the spec's ``options``) and adapter options
      ``aux=adapt|drop``, ``resize_mode=bicubic|bilinear``.

    The model carries ``model.tinyzoo_report`` (an :class:`AdaptationReport`) and
    ``model.tinyzoo_config`` (the dict :func:`save` writes as config.json).
    """
    import torch

    from tinyzoo.builders import build
    from tinyzoo.registry import get_registry
    from tinyzoo.surgery.head import get_module, out_size
    from tinyzoo.weights import LoadedWeights, load_weights
    from tinyzoo.wordnet import wnid_names

    spec = get_registry().architecture(name)
    if stem not in STEM_MODES:
        raise TinyzooError(f"stem {stem!r} is not one of: {', '.join(STEM_MODES)}")
    if stem not in spec.stems:
        raise TinyzooError(f"architecture {spec.name!r} supports stems {', '.join(spec.stems)}; not {stem!r}")
    if kernel_resize not in KERNEL_RESIZES:
        raise TinyzooError(f"kernel_resize {kernel_resize!r} is not one of: {', '.join(KERNEL_RESIZES)}")
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

    given = isinstance(weights, LoadedWeights)
    loaded = weights if given else load_weights(weights, spec, offline=offline)
    if loaded.state_dict is None:
        model = build(spec, **builder_options)
    else:
        # Weights the caller holds are copied: two models made from them must not share tensors.
        model = build_with_weights(spec, builder_options, loaded, share=not given)
    model.eval()
    classifier_size = out_size(get_module(model, spec.classifier, "classifier")) if spec.classifier else None
    tracker = ProvenanceTracker(model.state_dict())

    init, rows, head_note = _resolve_head(spec, classes, wnid_list, head_init, loaded, classifier_size) if spec.classifier else ("keep", None, "")
    plan: list[tuple[str, dict[str, Any]]] = []
    step = stem_step(stem, kernel_resize, adapter_options)
    if step:
        plan.append(step)
    aux = adapter_options.get("aux", "adapt")
    if spec.classifier and (init != "keep" or spec.aux_classifiers):
        plan.append(("head", {"classes": classes, "init": init, "rows": rows, "aux": aux}))
    if convolutionize:
        plan.append(("convolutionize", {"pool": "avg"}))
    if stem == "resize":
        plan.append(("resize", {"size": spec.input_size, "mode": adapter_options.get("resize_mode", "bicubic")}))

    input_size = spec.input_size
    applied, notes = [], [head_note] if head_note else []
    with torch.no_grad():
        for role, params in plan:
            adapter = find_adapter(role, spec.family)
            if role == "convolutionize":
                params = {**params, "input_size": input_size}
            model, changes = run_adapter(adapter, model, spec, params)
            tracker.apply(adapter.name, changes, model.state_dict())
            input_size = changes.input_size or input_size
            notes.extend(changes.notes)
            applied.append({"name": adapter.name, "params": params})
        tracker.check_copied(model.state_dict())
    model.eval()

    report = AdaptationReport(
        architecture=spec.name,
        weights=loaded.describe(),
        adapters=applied,
        tensors=list(tracker.records.values()),
        dropped=tracker.dropped,
        input_size=input_size,
        notes=notes,
    )
    names = wnid_names(wnid_list) if wnid_list else {}
    dropped_aux = any(a["name"].startswith("head") and a["params"].get("aux") == "drop" for a in applied)
    config = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_VERSION,
        "tinyzoo_version": _version(),
        "architecture": spec.name,
        "family": spec.family,
        "options": builder_options,
        "adapters": applied,
        "stem": stem,
        "head_init": init,
        "kernel_resize": kernel_resize,
        "convolutionize": bool(convolutionize),
        "classes": classes,
        "wnids": wnid_list,
        "names": [names.get(w, w) for w in wnid_list] if wnid_list else None,
        "input_size": input_size,
        "native_input_size": spec.input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "interpolation": spec.interpolation,
        "first_conv": spec.first_conv,
        "classifier": spec.classifier,
        "aux_classifiers": [] if dropped_aux else list(spec.aux_classifiers),
        "weights": loaded.to_config(),
        "report": report.to_dict(),
    }
    model.tinyzoo_report = report
    model.tinyzoo_config = config
    return model


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


def model_card(config: dict[str, Any]) -> str:
    """The README.md of an adapted-model directory: Hugging Face model card with YAML front matter."""
    report = AdaptationReport.from_dict(config["report"])
    weights = config.get("weights") or {}
    source = str(weights.get("source") or "none")
    tags = ["tinyzoo", "image-classification", "tiny-imagenet", config.get("family") or "", f"stem-{config.get('stem')}"]
    datasets = ["zh-plus/tiny-imagenet"]
    base_model = None
    if source.startswith("hf-hub:"):
        base_model = source[len("hf-hub:"):].partition("@")[0]
    if base_model or source.startswith("torchvision:"):
        datasets.append("ILSVRC/imagenet-1k")  # where the adapted weights were trained
    front = ["---", "library_name: tinyzoo", "pipeline_tag: image-classification", "tags:"]
    front += [f"- {json.dumps(t)}" for t in tags if t]
    front += ["datasets:"] + [f"- {json.dumps(d)}" for d in datasets]
    if base_model:
        front.append(f"base_model: {json.dumps(base_model)}")
    front.append("---")

    arch = config["architecture"]
    adapters = ", ".join(a["name"] for a in config.get("adapters", [])) or "none"
    lines = [
        *front,
        "",
        f"# {arch} adapted to Tiny ImageNet with tinyzoo",
        "",
        f"`{arch}` with the stem `{config.get('stem')}` and a {config.get('classes')}-way head "
        f"(`{config.get('head_init')}` initialisation), adapted from `{source}`"
        + (f" (revision `{weights['revision']}`)" if weights.get("revision") else "")
        + (f" (sha256 `{weights['sha256'][:16]}...`)" if weights.get("sha256") else "")
        + ". It expects "
        f"{config.get('input_size')}x{config.get('input_size')} RGB input normalised with mean "
        f"{config.get('mean')} and std {config.get('std')}.",
        "",
        "It has been adapted, not trained: see the report below for what was copied, resampled,",
        "sliced or newly initialised.",
        "",
        "```python",
        "import tinyzoo",
        "",
        "model = tinyzoo.load(\"path/to/this/folder\")  # no network access",
        "```",
        "",
        "## Adaptation report",
        "",
        f"Adapters, in order: {adapters}. {report.summary()}.",
        "",
        "| tensor | shape | status | from | detail |",
        "|---|---|---|---|---|",
    ]
    for row in report.rows():
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    lines += ["", f"Written by tinyzoo {config.get('tinyzoo_version')}.", ""]
    return "\n".join(lines)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save(model, directory: str | os.PathLike) -> Path:
    """Write ``model`` (from :func:`create` or :func:`load`) to ``directory``; returns its path.

    Writes ``model.safetensors``, ``config.json`` and ``README.md``. All three are written
    into a temporary sibling folder first: a new directory appears whole by one rename; in an
    existing directory each file is replaced by a rename (config.json last), so no file is
    ever seen half-written and a failure leaves the old files in place.
    """
    from safetensors.torch import save_file

    config = getattr(model, "tinyzoo_config", None)
    if not isinstance(config, dict) or "architecture" not in config:
        raise TinyzooError("this model has no tinyzoo_config: save models made by tinyzoo.create or tinyzoo.load")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise TinyzooError(f"{target} exists and is not a directory; give a folder for the adapted model")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700; the renamed folder should look like any mkdir
    try:
        save_file(_tensors_for_file(model), str(staging / WEIGHTS_FILE), metadata={"format": "pt", "tinyzoo_architecture": config["architecture"]})
        with open(staging / WEIGHTS_FILE, "rb") as f:
            os.fsync(f.fileno())
        _write(staging / CARD_FILE, model_card(config).encode("utf-8"))
        _write(staging / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
        try:
            os.rename(staging, target)  # atomic when target is absent (or an empty folder)
            return target
        except OSError:
            pass
        for name in (WEIGHTS_FILE, CARD_FILE, CONFIG_FILE):
            os.replace(staging / name, target / name)
        staging.rmdir()
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# -- load -------------------------------------------------------------------------------------------------
def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of an adapted-model directory."""
    root = Path(directory)
    if not root.is_dir():
        raise TinyzooError(f"{root} is not a directory: give a folder written by `tinyzoo adapt --out` or tinyzoo.save")
    path = root / CONFIG_FILE
    if not path.is_file():
        raise TinyzooError(f"{path} not found: {root} is not an adapted-model folder (written by `tinyzoo adapt --out` or tinyzoo.save)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TinyzooError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise TinyzooError(f"{path} is not a tinyzoo adapted-model config (expected \"format\": \"{CONFIG_FORMAT}\")")
    if int(config.get("format_version", 0)) > CONFIG_VERSION:
        raise TinyzooError(f"{path} has format_version {config['format_version']}; this tinyzoo reads up to {CONFIG_VERSION}, upgrade tinyzoo")
    for key in ("architecture", "adapters"):
        if key not in config:
            raise TinyzooError(f"{path} has no {key!r} field")
    return config


def placeholder_model(spec, builder_options: dict[str, Any] | None = None):
    """``spec``'s network with cheap placeholder values (small uniform weights, unit buffers),
    for code that overwrites them: built on the meta device and materialised without the
    architecture's own (slow) initialisation; built normally when it has buffers that a
    state dict does not carry."""
    import torch

    from tinyzoo.builders import build

    builder_options = dict(builder_options or {})
    with torch.device("meta"):
        model = build(spec, **builder_options)
    if _non_persistent_buffers(model):
        return build(spec, **builder_options)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.uniform_(-0.05, 0.05)
        for tensor in model.buffers():
            tensor.fill_(1 if tensor.is_floating_point() else 0)  # positive running variances
    return model


def load(directory: str | os.PathLike, *, device: Any = None):
    """The adapted model saved in ``directory``, rebuilt offline, in eval mode.

    The architecture is built from config.json with no weights, the recorded adapters are
    re-applied structurally, and ``model.safetensors`` is loaded strictly: outputs are the
    saved model's, bit for bit. ``model.tinyzoo_config`` / ``model.tinyzoo_report`` are restored.
    """
    import torch
    from safetensors.torch import load_file

    from tinyzoo.registry import get_registry

    root = Path(directory)
    config = read_config(root)
    weights_path = root / WEIGHTS_FILE
    if not weights_path.is_file():
        raise TinyzooError(f"{weights_path} not found: the folder has config.json but no weights")
    spec = get_registry().architecture(config["architecture"])
    model = placeholder_model(spec, config.get("options"))
    with torch.no_grad():
        for entry in config["adapters"]:
            adapter = get_registry().adapter(entry["name"])
            model, _ = run_adapter(adapter, model, spec, dict(entry.get("params") or {}))
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as exc:
        raise TinyzooError(f"{weights_path} is not a valid safetensors file ({' '.join(str(exc).split())[:120]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise TinyzooError(f"{weights_path} does not fit the model config.json describes: {first}") from None
    model.eval()
    if device is not None:
        model.to(device)
    model.tinyzoo_config = config
    model.tinyzoo_report = AdaptationReport.from_dict(config["report"]) if "report" in config else None
    return model


def restem(model, stem: str, *, kernel_resize: str = "bicubic"):
    """Switch an adapted model's stem (``resize`` -> ``small`` for Kim's staged run, or to ``keep``
    from ``resize``), keeping every other tensor; config and report are updated. Returns the model."""
    import torch

    from tinyzoo.registry import get_registry

    config = getattr(model, "tinyzoo_config", None)
    if not isinstance(config, dict):
        raise TinyzooError("restem works on models made by tinyzoo.create or tinyzoo.load")
    spec = get_registry().architecture(config["architecture"])
    if stem not in spec.stems:
        raise TinyzooError(f"architecture {spec.name!r} supports stems {', '.join(spec.stems)}; not {stem!r}")
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
        tracker.records = {t.key: TensorRecord(**{**t.__dict__}) for t in report.tensors}
        tracker.dropped = dict(report.dropped)
    adapters = [a for a in config["adapters"] if not a["name"].startswith("resize")]
    remove_resize(model)
    input_size = spec.input_size
    notes = []
    step = stem_step(stem, kernel_resize, {})
    if step:
        adapter, params = find_adapter(step[0], spec.family), step[1]
        with torch.no_grad():
            model, changes = run_adapter(adapter, model, spec, params)
        tracker.apply(adapter.name, changes, model.state_dict())
        adapters.insert(0, {"name": adapter.name, "params": params})
        input_size = changes.input_size or input_size
        notes = changes.notes
    config.update(adapters=adapters, stem=stem, input_size=input_size, kernel_resize=kernel_resize)
    if report is not None:
        report.tensors = list(tracker.records.values())
        report.adapters, report.input_size = adapters, input_size
        report.notes = report.notes + notes
        config["report"] = report.to_dict()
    return model
