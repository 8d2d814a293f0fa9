"""Weight sources: what ``--weights`` accepts, reading the tensors safely, and checking they fit.

A source is one string:

- ``hf-hub:ORG/REPO[@REVISION]``: ``model.safetensors`` of a Hugging Face Hub repo (through
  :mod:`tinyzoo.hub`, its cache and offline rules); the default of timm-backed architectures;
- ``torchvision:WEIGHTS_NAME``: torchvision's checkpoint (``AlexNet_Weights.IMAGENET1K_V1``),
  checked against the hash in its file name and read with ``torch.load(weights_only=True)``;
- a path: a ``.safetensors`` file, a directory holding ``model.safetensors`` (what
  ``tinyzoo adapt --out`` writes), or a ``.pth``/``.pt``/``.bin`` file read with
  ``torch.load(weights_only=True)``;
- ``none``: random initialisation.

Nothing ever unpickles arbitrary objects: pickle files go through ``weights_only=True``,
which refuses anything but tensors and plain containers, and from the Hub only
safetensors are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.digests import file_sha256, verify_safetensors
from tinyzoo.hub.hf import HF_HUB_PREFIXES, REPO_ID_RE, download, evict
from tinyzoo.hub.torch_hub import checkpoint_path, download_checkpoint
from tinyzoo.model_files import WEIGHTS_FILE

TORCHVISION_PREFIX = "torchvision:"
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
TORCHVISION_NAME_RE = re.compile(r"\w+_Weights\.\w+")
FORMS = "hf-hub:ORG/REPO[@REVISION], torchvision:WEIGHTS_NAME, a .safetensors file, an adapted-model directory, or none"
SHOWN = 3


@dataclass(frozen=True)
class WeightsSource:
    """A parsed weights-source string; ``str()`` gives it back in canonical form.

    ``kind`` is ``"hf-hub"`` (``repo_id``, ``revision``), ``"torchvision"`` (``name``),
    ``"file"`` (``path``) or ``"none"``.
    """

    kind: str
    repo_id: str | None = None
    revision: str | None = None
    name: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> WeightsSource:
        """Parse ``text`` or raise a one-line :class:`TinyzooError` listing the accepted forms."""
        text = (text or "").strip()
        if not text:
            raise TinyzooError(f"empty weights source; expected {FORMS}")
        if text.lower() == "none":
            return cls("none")
        lowered = text.lower()
        for prefix in HF_HUB_PREFIXES:
            if lowered.startswith(prefix):
                repo_id, at, revision = text[len(prefix):].partition("@")
                if not REPO_ID_RE.fullmatch(repo_id) or (at and not revision.strip()):
                    raise TinyzooError(f"weights {text!r}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION, e.g. hf-hub:timm/resnet18.tv_in1k")
                return cls("hf-hub", repo_id=repo_id, revision=revision.strip() or None)
        if lowered.startswith(TORCHVISION_PREFIX):
            name = text[len(TORCHVISION_PREFIX):]
            if not TORCHVISION_NAME_RE.fullmatch(name):
                raise TinyzooError(f"weights {text!r}: expected torchvision:WEIGHTS_NAME, e.g. torchvision:AlexNet_Weights.IMAGENET1K_V1")
            return cls("torchvision", name=name)
        path = Path(text).expanduser()
        if path.is_dir() or path.suffix in (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES):
            return cls("file", path=path.absolute())
        if path.exists():
            raise TinyzooError(f"weights file {text!r}: unknown type {path.suffix or '(no suffix)'}; expected a .safetensors file (or .pth/.pt read with weights_only=True)")
        raise TinyzooError(f"weights {text!r}: no such file or directory; expected {FORMS}")

    @classmethod
    def resolve(cls, source: str | WeightsSource | None, spec=None) -> WeightsSource:
        """``source`` parsed; ``None`` means ``spec``'s default weights (``none`` when it has none)."""
        if isinstance(source, WeightsSource):
            return source
        if source is None:
            return cls.parse(getattr(spec, "weights", None) or "none")
        return cls.parse(source)

    def __str__(self) -> str:
        if self.kind == "hf-hub":
            return f"hf-hub:{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "torchvision":
            return f"{TORCHVISION_PREFIX}{self.name}"
        if self.kind == "file":
            return str(self.path)
        return "none"


@dataclass
class LoadedWeights:
    """Tensors read from a source, with where they came from.

    ``state_dict`` is a dict of CPU tensors (``None`` for ``none``); ``source`` the canonical
    source string; ``revision`` the Hub commit it resolved to; ``sha256`` the checksum of the
    file read; ``path`` that file.
    """

    state_dict: dict[str, Any] | None
    source: str
    revision: str | None = None
    sha256: str | None = None
    path: Path | None = None

    def to_config(self) -> dict[str, Any]:
        """What an adapted model's config.json records about its weights."""
        return {"source": self.source, "revision": self.revision, "sha256": self.sha256}

    def describe(self) -> str:
        """One line for reports: the source, its commit and checksum, or random initialisation."""
        if self.state_dict is None:
            return "none (random initialisation)"
        parts = [self.source]
        if self.revision:
            parts.append(f"commit {self.revision[:12]}")
        if self.sha256:
            parts.append(f"sha256 {self.sha256[:12]}")
        return ", ".join(parts)


# -- reading files ---------------------------------------------------------------------------
def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file, on the CPU (a damaged or truncated file raises)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise TinyzooError(f"weights file {path} does not exist") from None
    except Exception as exc:
        raise TinyzooError(f"{path} is not a valid safetensors file ({one_line(exc, 120)}): it may be truncated or damaged") from None


def refusal_reason(exc: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused, from its long message: ``Unsupported global:
    GLOBAL io.open`` (the callable a pickle would have called), or its first words."""
    text = one_line(exc)
    found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed| Check the documentation|$)", text)
    return found.group(1).strip() if found else one_line(exc, 80)


def read_pickle(path: Path) -> dict[str, Any]:
    """The tensors of a PyTorch checkpoint, read with ``weights_only=True`` (nothing else is unpickled)."""
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TinyzooError(f"weights file {path} does not exist") from None
    except pickle.UnpicklingError as exc:
        raise TinyzooError(
            f"refused {path}: it holds more than tensors, and loading it could run code ({refusal_reason(exc)}); "
            "convert it to .safetensors from a source you trust"
        ) from None
    except Exception as exc:
        raise TinyzooError(f"{path} is not a readable PyTorch checkpoint ({one_line(exc, 120)}): it may be truncated or damaged") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TinyzooError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)


def first_non_finite(state_dict: dict[str, Any]) -> str | None:
    """``"KEY (N of M values)"`` for the first floating-point tensor holding NaN or infinity, else None."""
    import torch

    for key, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                return f"{key} ({int((~finite).sum())} of {tensor.numel()} values)"
    return None


def check_finite(state_dict: dict[str, Any], where: Any) -> None:
    """Refuse tensors holding NaN or infinity (a network computing with them scores as chance, silently)."""
    bad = first_non_finite(state_dict)
    if bad is not None:
        raise TinyzooError(f"{where}: tensor {bad} is NaN or infinite; refusing weights that are not finite (a damaged or diverged checkpoint)")


def apply_timm_filter(state_dict: dict[str, Any], spec) -> dict[str, Any]:
    """``state_dict`` in the layout of ``spec``'s timm model, converted the way timm converts it.

    A timm model module hands a checkpoint filter (torchvision's or an older layout to timm's)
    to ``build_model_with_cfg`` inside its private ``_create_*`` function; timm keeps no
    public reference to it (not on the model, its ``pretrained_cfg`` or the registry). The
    public path that applies it is ``create_model(pretrained=True,
    pretrained_cfg_overlay={"state_dict": ...})``: build the network, filter, load strictly.
    That costs a full build (seconds for VGG), so it runs only when the tensors do not fit
    the network as they are; timm's own Hub checkpoints do and come back unchanged. Tensors
    timm cannot load either come back unchanged too, for :func:`check_state_dict` to name
    the keys at fault.
    """
    args = dict(spec.builder_args)
    model_name = args.pop("model_name", None)
    if not model_name:
        return state_dict
    import timm
    import torch

    from tinyzoo.builders import build

    with torch.device("meta"):
        skeleton = build(spec)
    if not any(mismatches(skeleton, state_dict)):
        return state_dict
    try:
        model = timm.create_model(
            model_name, pretrained=True, num_classes=spec.num_classes,
            pretrained_cfg_overlay={"state_dict": dict(state_dict)}, **args,  # a copy: some filters edit it in place
        )
    except Exception:
        return state_dict
    return dict(model.state_dict())


def torchvision_url(name: str) -> str:
    """The download address of torchvision weights ``name`` (``AlexNet_Weights.IMAGENET1K_V1``)."""
    import torchvision

    try:
        return torchvision.models.get_weight(name).url
    except (ValueError, KeyError, AttributeError):
        raise TinyzooError(f"torchvision has no weights {name!r}; e.g. AlexNet_Weights.IMAGENET1K_V1, GoogLeNet_Weights.IMAGENET1K_V1") from None


# -- the entry point ----------------------------------------------------------------------------
def load_weights(source: str | WeightsSource | None, spec=None, *, offline: bool | None = None) -> LoadedWeights:
    """The tensors named by ``source`` (``None``: ``spec``'s default weights), with their provenance.

    Hub and torchvision weights come from the cache when present; ``offline`` (or
    ``TINYZOO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``) forbids the network. Every failure is a
    one-line :class:`TinyzooError`; a damaged file downloaded into a cache is removed.
    """
    src = WeightsSource.resolve(source, spec)
    fetch_name = spec.name if source is None and spec is not None else str(src)
    if src.kind == "none":
        return LoadedWeights(None, "none")
    if src.kind == "hf-hub":
        assert src.repo_id is not None  # parse() sets it for hf-hub
        found = download(src.repo_id, WEIGHTS_FILE, revision=src.revision, offline=offline, fetch_name=fetch_name)
        try:
            state_dict = read_safetensors(found.path)
        except TinyzooError as exc:
            evict(found.path)
            raise TinyzooError(f"{src.repo_id}/{WEIGHTS_FILE}@{found.revision[:12]}: {exc}; it was removed from the cache, download it again") from None
        check_finite(state_dict, f"weights {src}")
        if spec is not None and spec.source == "timm":
            state_dict = apply_timm_filter(state_dict, spec)
        return LoadedWeights(state_dict, str(src), found.revision, found.sha256, found.path)
    if src.kind == "torchvision":
        assert src.name is not None  # parse() sets it for torchvision
        checkpoint = download_checkpoint(torchvision_url(src.name), offline=offline, fetch_name=fetch_name)
        state_dict = read_pickle(checkpoint.path)
        check_finite(state_dict, f"weights {src}")
        return LoadedWeights(state_dict, str(src), None, checkpoint.sha256, checkpoint.path)

    path = src.path
    assert path is not None  # parse() sets it for file, the one kind left
    if path.is_dir():
        path = path / WEIGHTS_FILE
        if not path.is_file():
            raise TinyzooError(f"weights directory {src.path} has no {WEIGHTS_FILE}: give a `tinyzoo adapt --out` folder or a .safetensors file")
    if not path.is_file():
        raise TinyzooError(f"weights file {path} does not exist")
    state_dict = read_safetensors(path) if path.suffix == SAFETENSORS_SUFFIX else read_pickle(path)
    check_finite(state_dict, path)
    return LoadedWeights(state_dict, str(src), None, file_sha256(path), path)


def named_source(name: str) -> tuple[str, WeightsSource]:
    """``(label, source)`` for an architecture name (its default weights) or a raw
    ``hf-hub:`` / ``torchvision:`` source, as ``tinyzoo weights fetch`` takes them."""
    from tinyzoo.registry import get_registry

    if name.lower().startswith((*HF_HUB_PREFIXES, TORCHVISION_PREFIX)):
        return name, WeightsSource.parse(name)
    spec = get_registry().architecture(name)
    return spec.name, WeightsSource.resolve(None, spec)


@dataclass(frozen=True)
class FetchedWeights:
    """A source's file in its cache: ``detail`` names the Hub commit or the file's SHA-256."""

    source: WeightsSource
    path: Path
    detail: str
    downloaded: bool


def fetch_weights(src: WeightsSource, *, force: bool = False, fetch_name: str | None = None) -> FetchedWeights | None:
    """Bring the file of a Hub or torchvision source into its cache (``force``: again) without
    reading its tensors; None for ``none``. A damaged Hub file is removed from the cache."""
    label = fetch_name or str(src)
    if src.kind == "none":
        return None
    if src.kind == "file":
        raise TinyzooError(f"{label}: {src} is a local file; `weights fetch` downloads hf-hub: and torchvision: sources")
    if src.kind == "hf-hub":
        assert src.repo_id is not None  # parse() sets it for hf-hub
        found = download(src.repo_id, WEIGHTS_FILE, revision=src.revision, force=force, fetch_name=label)
        try:
            verify_safetensors(found.path)
        except TinyzooError as exc:
            evict(found.path)
            raise TinyzooError(f"{src.repo_id}/{WEIGHTS_FILE}: {exc}; it was removed from the cache, try again") from None
        return FetchedWeights(src, found.path, f"commit {found.revision[:12]}", found.downloaded)
    assert src.name is not None  # parse() sets it for torchvision, the one kind left
    url = torchvision_url(src.name)
    if force:
        checkpoint_path(url).unlink(missing_ok=True)
    checkpoint = download_checkpoint(url, fetch_name=label)
    return FetchedWeights(src, checkpoint.path, f"sha256 {checkpoint.sha256[:12]}", checkpoint.downloaded)


# -- fitting a model --------------------------------------------------------------------------
def mismatches(model, state_dict: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, shapes)``: keys of ``model`` that ``state_dict`` lacks (but
    ``num_batches_tracked``), keys it has that ``model`` does not, and "key [weights] vs [model]"."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {list(state_dict[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    return missing, unexpected, shapes


def check_state_dict(model, state_dict: dict[str, Any], source: Any) -> None:
    """Raise a one-line :class:`TinyzooError` listing the first missing, unexpected and
    wrongly shaped keys when ``state_dict`` does not fit ``model`` exactly; return None when it does.

    BatchNorm's ``num_batches_tracked`` may be missing (torch fills it in when loading).
    """
    missing, unexpected, shapes = mismatches(model, state_dict)
    if not (missing or unexpected or shapes):
        return

    def first(items: list[str]) -> str:
        more = f", ... {len(items) - SHOWN} more" if len(items) > SHOWN else ""
        return ", ".join(items[:SHOWN]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({first(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} with other shapes, weights vs model ({first(shapes)})")
    raise TinyzooError(
        f"weights {source} do not fit {type(model).__name__}: " + "; ".join(parts)
        + "; use weights made for this architecture, or --weights none"
    )


def build_with_weights(spec, builder_options: dict[str, Any], loaded: LoadedWeights, *, share: bool = True) -> Any:
    """``spec``'s network holding ``loaded``'s tensors (checked to fit first).

    Built on the meta device and given the loaded tensors directly, which skips a random
    initialisation that would be overwritten (seconds for VGG); networks with buffers that
    are not in a state dict are built normally instead. ``share=False`` gives the network
    copies, so that training it leaves ``loaded`` as it was.
    """
    import torch

    from tinyzoo.builders import build, has_non_persistent_buffers

    loaded_state = loaded.state_dict
    if loaded_state is None:
        raise TinyzooError(f"weights {loaded.source} hold no tensors; build {spec.name} without weights instead")
    with torch.device("meta"):
        skeleton = build(spec, **builder_options)
    check_state_dict(skeleton, loaded_state, loaded.source)
    state = dict(loaded_state) if share else {k: v.clone() for k, v in loaded_state.items()}
    for key, ref in skeleton.state_dict().items():
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
        elif state[key].dtype != ref.dtype:
            state[key] = state[key].to(ref.dtype)
    if has_non_persistent_buffers(skeleton):
        model = build(spec, **builder_options)
        model.load_state_dict(state, strict=True)
        return model
    skeleton.load_state_dict(state, strict=True, assign=True)
    return skeleton
