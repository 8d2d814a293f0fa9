"""Whether a network takes square inputs of a given size, found before any real work runs.

A network's pooling and strided layers shrink its feature maps; fed an image smaller than it
was built for (AlexNet or Inception v3 with their ImageNet stem at 56 px), a map shrinks below
one pixel and torch stops with an error about kernel and output sizes. :func:`check_input_size`
runs the network once on one blank image in evaluation mode, which changes no state and draws
no random numbers; a network with auxiliary classifiers (which run in training only) is run in
training mode on the meta device instead (shapes only: no memory, no arithmetic; its first use
imports torch's symbolic-shape machinery, about a second). When the size does not fit, it
raises a one-line :class:`InputTooSmall` naming the smallest size that does, found on the meta
device, and the stems that adapt the network to small images. A network that fails for another
reason is passed: its real forward will tell.
"""

from __future__ import annotations

import contextlib

from tinyzoo.errors import TinyzooError

PROBE_BATCH = 2  # BatchNorm in training mode needs more than one value per channel


class InputTooSmall(TinyzooError):
    """Images smaller than the network takes."""


@contextlib.contextmanager
def _mode(model, training: bool):
    """``model`` in training (or evaluation) mode for the block, each module's own mode restored after."""
    before = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, was in before:
            module.training = was


def fits(model, size: int, *, training: bool = False, meta: bool = False) -> bool:
    """Whether ``model`` runs on a batch of ``size`` x ``size`` images: one blank image on its
    own device in evaluation mode, or (``training`` or ``meta``) two on the meta device."""
    import torch

    if training or meta:
        return _fits_on_meta(model, size, training)
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    try:
        with torch.no_grad(), _mode(model, False):
            model(torch.zeros(1, 3, size, size, device=device, dtype=dtype))
    except Exception:
        return False
    return True


def _fits_on_meta(model, size: int, training: bool) -> bool:
    import torch
    from torch.func import functional_call

    tensors = {name: torch.empty_like(t, device="meta") for name, t in [*model.named_parameters(), *model.named_buffers()]}
    images = torch.empty(PROBE_BATCH, 3, size, size, device="meta")
    try:
        with torch.no_grad(), _mode(model, training):
            functional_call(model, tensors, (images,))
    except Exception:
        return False
    return True


def smallest_size(model, size: int, largest: int, *, training: bool = False) -> int | None:
    """The smallest side above ``size`` (which does not fit) that ``model`` takes, up to ``largest``;
    None when ``largest`` does not fit either (then the probe cannot tell what is wrong)."""
    if not fits(model, largest, training=training, meta=True):
        return None
    low, high = size, largest  # low does not fit, high does
    while high - low > 1:
        middle = (low + high) // 2
        if fits(model, middle, training=training, meta=True):
            high = middle
        else:
            low = middle
    return high


def check_input_size(model, size: int, *, what: str, training: bool = False, arch: str | None = None,
                     stem: str | None = None, native: int | None = None) -> None:
    """Raise :class:`InputTooSmall` when ``model`` cannot take ``what`` (e.g. ``"evaluation crops"``)
    of ``size`` x ``size`` pixels. ``arch``, ``stem`` and the ``native`` input size, for the message,
    default to the model's config (an adapted model's). ``training``: as training runs it (which
    matters only for a network with auxiliary classifiers)."""
    config = getattr(model, "tinyzoo_config", None) or {}
    training = training and bool(config.get("aux_classifiers"))
    if fits(model, size, training=training):
        return
    native = native or int(config.get("native_input_size") or config.get("input_size") or 224)
    smallest = smallest_size(model, size, max(2 * native, 2 * size), training=training)
    if smallest is None:
        return
    arch = arch or config.get("architecture", type(model).__name__)
    stem = stem or config.get("stem", "keep")
    raise InputTooSmall(
        f"{arch} with stem {stem} cannot take {what} of {size}x{size} px (its feature maps would shrink below one pixel); "
        f"it takes {smallest} px and more{stem_hint(arch, stem)}"
    )


def stem_hint(arch: str, stem: str) -> str:
    """``"; or use stem small (56 px) or resize"``: the other stems that make ``arch`` take small images."""
    from tinyzoo.registry import get_registry

    try:
        stems = get_registry().architecture(arch).stems
    except TinyzooError:
        return ""
    others = [s for s in ("small", "resize") if s in stems and s != stem]
    return f"; or adapt it with stem {' or '.join(others)}, made for 56-64 px images" if others else ""
