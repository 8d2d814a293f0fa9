"""Convolutionizing a classifier: its Linear layers become convolutions (Fleuret; OverFeat).

``convolutionize(model, classifier, input_size)`` returns a :class:`ConvolutionizedNet` that

- at the native input size gives exactly the original logits ``(B, C)`` (up to float
  summation order, well within 1e-4 in float32);
- on a larger input computes a score map ``(B, C, H, W)``, one class-score vector per
  window of the native size, and pools it into ``(B, C)`` class scores (``pool="avg"``, the
  OverFeat dense evaluation averaged; ``"max"`` takes the best window per class).
  ``net.score_map(x)`` returns the map itself;
- on an input too small for a single window raises a one-line ``TinyzooError`` naming the
  smallest input (``net.min_input_size``).

How the model is read. One forward pass at ``input_size`` (eval mode, no gradients, batch of
one random image) records every module's input and output. The model's forward must run its
top-level children once each, in order, each on the previous one's output (a flatten in
between is allowed); the same holds for every container on the way to the classifier and
inside it. That is checked from the recording, so a model whose forward does anything else
is refused rather than silently changed. Then, walking that chain:

- each ``nn.Linear`` reading a flattened ``(C, H, W)`` feature map becomes a ``Conv2d`` with
  kernel ``(H, W)`` and the Linear's weights reshaped exactly; later Linears become 1x1;
- ``nn.Flatten`` and adaptive pools that are the identity at native input (torchvision's
  ``AdaptiveAvgPool2d(6 or 7)``, timm's global pool over a 1x1 map) are replaced by
  ``nn.Identity``, so larger inputs are no longer squeezed back to the native map;
- a global average pool over a larger map (ResNet, SqueezeNet) is dropped when only affine
  layers follow it: the 1x1 score map it leaves averages back to the same logits
  (``pool="avg"`` only);
- dropout and elementwise activations after the flatten are kept: they act per position.

State-dict keys stay the original ones (``features.0.weight``, ``classifier.1.weight`` ...);
only the converted Linear weights change shape, ``(out, in)`` to ``(out, C, kh, kw)``. The
returned net reuses the model's other modules (no copy): the input model still works and is
unchanged, but shares those parameters.

timm's VGG keeps fc6/fc7 as convolutions already (``pre_logits``, a ``ConvMlp`` whose 7x7
``fc1`` would adaptive-pool a smaller map up to 7x7); its ``head.fc`` Linear becomes a 1x1
conv applied before the (now dropped) global pool. The size check runs before ``pre_logits``,
so a map below 7x7 is an error instead of being upsampled. With ``--stem small`` (first two
max-pools dropped) a 64x64 input gives an 8x8 map and a 2x2 score map.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor

from tinyzoo.adapt_report import Changes
from tinyzoo.errors import TinyzooError

POOLS = ("avg", "max")

# Layers that act on each feature independently: after the flatten they act per position.
ELEMENTWISE = (
    nn.Identity, nn.Dropout, nn.AlphaDropout,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.Softsign, nn.Tanhshrink, nn.LogSigmoid, nn.Threshold,
)
# Layers that stay exact when a global average pool moves behind them.
AFFINE = (nn.Identity, nn.Dropout, nn.AlphaDropout, nn.Linear, nn.Flatten)
POOL_LEAVES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class _Print:
    """A tensor's fingerprint: enough to tell that two recorded tensors hold the same values."""

    shape: tuple[int, ...]
    total: float
    square: float
    sample: tuple[float, ...]

    @classmethod
    def of(cls, value, values: bool = True) -> _Print | None:
        """The fingerprint of ``value``; with ``values=False`` only its shape (cheap, never equal)."""
        if not isinstance(value, Tensor) or not value.is_floating_point():
            return None
        if not values and value.dim() > 2:
            return cls(tuple(value.shape), float("nan"), float("nan"), ())
        flat = value.detach().reshape(-1).double()
        picks = torch.linspace(0, max(flat.numel() - 1, 0), 64).long()
        sample = tuple(flat[picks].tolist()) if flat.numel() else ()
        return cls(tuple(value.shape), float(flat.sum()), float((flat * flat).sum()), sample)

    def same_values(self, other: _Print | None) -> bool:
        # Equal up to a flatten: same batch, same element count, same values.
        return (
            other is not None
            and not math.isnan(self.total)
            and self.shape[:1] == other.shape[:1]
            and _numel(self.shape) == _numel(other.shape)
            and (self.total, self.square, self.sample) == (other.total, other.square, other.sample)
        )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@dataclass
class _Call:
    order: int
    inp: _Print | None
    single_input: bool
    out: _Print | None = None
    end: int = -1
    pool: str | None = None  # for pool-like modules: "identity", "global_avg" or "other"


@dataclass
class _Trace:
    calls: dict[str, list[_Call]] = field(default_factory=dict)

    def once(self, name: str) -> _Call | None:
        calls = self.calls.get(name, [])
        return calls[0] if len(calls) == 1 else None


def _is_pool_like(module: nn.Module) -> bool:
    # Parameter-free modules built only from adaptive pools and flattens (timm's SelectAdaptivePool2d too).
    leaves = [m for m in module.modules() if not list(m.children())]
    return (
        not any(True for _ in module.parameters())
        and all(isinstance(m, POOL_LEAVES) for m in leaves)
        and not isinstance(module, nn.Identity)
    )


def _pool_kind(inp: Tensor, out: Tensor) -> str:
    if inp.dim() != 4 or not isinstance(out, Tensor):
        return "other"
    same_size = out.shape[0] == inp.shape[0] and out.numel() == inp.numel()
    if same_size and torch.allclose(out.reshape(-1), inp.reshape(-1), rtol=1e-6, atol=0.0):
        return "identity"
    mean = inp.mean(dim=(2, 3))
    if out.numel() == mean.numel() and torch.allclose(out.reshape(mean.shape), mean, rtol=1e-5, atol=1e-6):
        return "global_avg"
    return "other"


def _record(model: nn.Module, example: Tensor, watched) -> tuple[_Trace, Tensor]:
    """Run ``model`` once on ``example``, recording every module's calls.

    Values are fingerprinted for modules named by ``watched(name)`` and for tensors of at
    most two dimensions; other modules get their shapes only (fingerprinting every
    feature map would cost more than the forward pass).
    """
    trace, counter, handles = _Trace(), [0], []

    def pre_hook(name, values):
        def hook(module, args, kwargs):
            counter[0] += 1
            single = len(args) == 1 and not kwargs and isinstance(args[0], Tensor)
            fingerprint = _Print.of(args[0], values) if args else None
            trace.calls.setdefault(name, []).append(_Call(counter[0], fingerprint, single))
        return hook

    def post_hook(name, values, pool_like):
        def hook(module, args, kwargs, output):
            counter[0] += 1
            call = trace.calls[name][-1]
            call.out, call.end = _Print.of(output, values), counter[0]
            if pool_like and args and isinstance(args[0], Tensor):
                call.pool = _pool_kind(args[0], output)
        return hook

    try:
        for name, module in model.named_modules():
            values = watched(name)
            handles.append(module.register_forward_pre_hook(pre_hook(name, values), with_kwargs=True))
            handles.append(module.register_forward_hook(post_hook(name, values, _is_pool_like(module)), with_kwargs=True))
        output = model(example)
    finally:
        for handle in handles:
            handle.remove()
    return trace, output


def _label(qname: str) -> str:
    return repr(qname) if qname else "the model"


def _check_chain(trace: _Trace, qname: str, container: nn.Module) -> list[_Call]:
    """Refuse a container whose forward is not its children run in order on each other's outputs.

    Returns each child's one call, in the children's order.
    """
    names = [name for name, _ in container.named_children()]
    refusal = TinyzooError(
        f"cannot convolutionize {_label(qname)} ({type(container).__name__}): its forward does not run "
        f"its children ({', '.join(names)}) once each, in order, each on the previous one's output"
    )
    own = trace.once(qname)
    found = [trace.once(f"{qname}.{name}" if qname else name) for name in names]
    calls = [c for c in found if c is not None and c.single_input]
    if own is None or len(calls) != len(found):
        raise refusal
    if any(b.order < a.end for a, b in zip(calls, calls[1:])):
        raise refusal
    if not own.inp or not own.inp.same_values(calls[0].inp) or not calls[-1].out or not calls[-1].out.same_values(own.out):
        raise refusal
    if any(a.out is None or not a.out.same_values(b.inp) for a, b in zip(calls, calls[1:])):
        raise refusal
    return calls


@dataclass
class _Walk:
    """The converted chain's state at native input while walking it."""

    pool: str
    map_shape: tuple[int, int, int] | None  # (C, H, W) of the last 4-D map, as the converted net sees it
    per_position: str | None = None  # name of a dropped global average pool, once there is one
    changed: bool = False


def _spatial(walk: _Walk) -> tuple[int, int] | None:
    return None if walk.map_shape is None else walk.map_shape[1:]


def _conv_from_linear(linear: nn.Linear, qname: str, walk: _Walk) -> nn.Conv2d:
    if walk.map_shape is None:
        raise TinyzooError(f"cannot convolutionize {qname!r}: no 4-D feature map precedes it at native input")
    channels, height, width = walk.map_shape
    kernel = (1, 1) if walk.per_position else (height, width)
    if linear.in_features != channels * kernel[0] * kernel[1]:
        raise TinyzooError(
            f"cannot convolutionize {qname!r}: it reads {linear.in_features} features but the map before it "
            f"is {channels}x{height}x{width}"
        )
    weight = linear.weight
    conv = nn.Conv2d(channels, linear.out_features, kernel, bias=linear.bias is not None,
                     device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        # torch.flatten of NCHW orders features as (C, H, W): the reshape is exact.
        conv.weight.copy_(weight.detach().reshape(conv.weight.shape))
        if linear.bias is not None and conv.bias is not None:  # both or neither: bias= above
            conv.bias.copy_(linear.bias.detach())
    conv.weight.requires_grad_(weight.requires_grad)
    if linear.bias is not None and conv.bias is not None:
        conv.bias.requires_grad_(linear.bias.requires_grad)
    conv.train(linear.training)
    walk.map_shape = (linear.out_features, *((height, width) if walk.per_position else (1, 1)))
    walk.changed = True
    return conv


def _require_affine(module: nn.Module, qname: str, walk: _Walk) -> None:
    if not walk.per_position:
        return
    one_by_one = (
        isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (1, 1)
        and module.padding in ((0, 0), "valid")
    )
    if not (isinstance(module, AFFINE) or one_by_one or _is_pool_like(module)):
        raise TinyzooError(
            f"cannot convolutionize exactly: {walk.per_position!r} averages the whole map and "
            f"{qname!r} ({type(module).__name__}) after it is not affine"
        )


# (child name, map size before it, map size after it) along the converted chain.
_Span = tuple[str, tuple[int, int] | None, tuple[int, int] | None]


def _convert(container: nn.Module, qname: str, trace: _Trace, path: set[str], head: str, walk: _Walk,
             spans: list[_Span] | None = None) -> OrderedDict[str, nn.Module]:
    """The converted children of ``container`` (same names), updating ``walk`` along the chain."""
    calls = _check_chain(trace, qname, container)
    converted: OrderedDict[str, nn.Module] = OrderedDict()
    for (name, module), call in zip(container.named_children(), calls):
        child = f"{qname}.{name}" if qname else name
        new: nn.Module
        before = _spatial(walk)
        flat_input = call.inp is not None and len(call.inp.shape) == 2
        inside_head = bool(head) and (child == head or child.startswith(f"{head}."))
        pool_like = _is_pool_like(module)
        recurse = not pool_like and bool(list(module.children())) and (child in path or inside_head or flat_input)
        if not recurse:
            _require_affine(module, child, walk)
        if isinstance(module, nn.Linear):
            if call.inp is None or len(call.inp.shape) != 2:
                raise TinyzooError(
                    f"cannot convolutionize {child!r}: it reads a tensor of shape "
                    f"{None if call.inp is None else call.inp.shape}, not a flattened (batch, features) map"
                )
            new = _conv_from_linear(module, child, walk)
        elif pool_like:
            if call.pool == "identity":
                new, walk.changed = nn.Identity(), True
            elif call.pool == "global_avg" and walk.pool == "avg":
                new, walk.changed, walk.per_position = nn.Identity(), True, child
            else:
                shapes = "x".join(map(str, call.inp.shape[2:])) if call.inp and len(call.inp.shape) == 4 else "?"
                why = (
                    "averages the whole map, which only pool='avg' keeps exact" if call.pool == "global_avg"
                    else f"resamples the {shapes} map to {tuple(call.out.shape[1:]) if call.out else '?'}, "
                    "so removing it would change the output"
                )
                raise TinyzooError(f"cannot convolutionize {child!r} ({type(module).__name__}): at native input it {why}")
        elif recurse:
            new = nn.Sequential(_convert(module, child, trace, path, head, walk))
            new.train(module.training)
        elif flat_input:
            if not isinstance(module, ELEMENTWISE):
                raise TinyzooError(
                    f"cannot convolutionize {child!r} ({type(module).__name__}): after the flatten only Linear, "
                    "Dropout, Flatten and elementwise activations can become per-position layers"
                )
            new = module
        else:
            new = module
            out = call.out.shape if call.out is not None else ()
            if len(out) != 4:
                walk.map_shape = None
            elif walk.per_position:
                # A 1x1 layer after a dropped global pool keeps the map's spatial size.
                assert walk.map_shape is not None  # the dropped pool read a 4-D map; only 4-D outputs followed
                walk.map_shape = (out[1], *walk.map_shape[1:])
            else:
                walk.map_shape = (out[1], out[2], out[3])
        converted[name] = new
        if spans is not None:
            spans.append((name, before, _spatial(walk)))
    return converted


class ConvolutionizedNet(nn.Module):
    """A network whose classifier is convolutional: ``forward(x)`` gives ``(B, C)`` class scores.

    Children carry the original model's top-level names, so state-dict keys are unchanged
    except for the shapes of converted Linear weights. ``score_map(x)`` returns the
    ``(B, C, H, W)`` map that ``forward`` pools (``pool``: ``"avg"`` or ``"max"``); at the
    native input it is ``(B, C, 1, 1)`` (or the per-position map of a dropped global
    average pool). ``min_input_size`` is ``(height, width)``, the smallest input giving a
    non-empty map, or ``None`` when it could not be worked out; ``head_start`` names the
    child whose input must be at least ``head_needs`` (its map size at native input).
    """

    def __init__(
        self,
        layers: OrderedDict,
        *,
        pool: str,
        input_size: int,
        head_start: str | None,
        head_needs: tuple[int, int] | None,
    ):
        super().__init__()
        if pool not in POOLS:
            raise TinyzooError(f"unknown score-map pooling {pool!r}; choose one of: {', '.join(POOLS)}")
        for name, layer in layers.items():
            self.add_module(name, layer)
        # The chain is fixed here: a module added later (``input_resize``, run by a pre-hook) is not a layer of it.
        self.chain = tuple(layers)
        self.pool = pool
        self.input_size = input_size
        self.head_start = head_start
        self.head_needs = head_needs
        self.min_input_size: tuple[int, int] | None = None

    def _too_small(self, height: int, width: int, needs: tuple[int, int], got: tuple[int, int] | None = None) -> TinyzooError:
        smallest = (
            f"the smallest input is {self.min_input_size[0]}x{self.min_input_size[1]}"
            if self.min_input_size else f"the native input is {self.input_size}x{self.input_size}"
        )
        gets = f", it gets {got[0]}x{got[1]}" if got else ""
        return TinyzooError(
            f"input {height}x{width} is too small for the convolutionized classifier: {self.head_start!r} needs a "
            f"feature map of at least {needs[0]}x{needs[1]}{gets}; {smallest}"
        )

    def score_map(self, x: Tensor) -> Tensor:
        """The ``(B, C, H, W)`` class-score map: one score vector per native-size window."""
        height, width = x.shape[-2:]
        needs = self.head_needs  # set with head_start, or neither
        if needs is not None and self.min_input_size and (height < self.min_input_size[0] or width < self.min_input_size[1]):
            raise self._too_small(height, width, needs)
        for name, layer in self.layers():
            if needs is not None and name == self.head_start and (x.shape[-2] < needs[0] or x.shape[-1] < needs[1]):
                raise self._too_small(height, width, needs, (x.shape[-2], x.shape[-1]))
            x = layer(x)
        return x

    def layers(self) -> list[tuple[str, nn.Module]]:
        """The chain's ``(name, layer)`` pairs, in order."""
        return [(name, getattr(self, name)) for name in self.chain]

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``(B, C)``: the score map averaged (or maxed) over its positions."""
        scores = self.score_map(x)
        return scores.mean(dim=(2, 3)) if self.pool == "avg" else scores.amax(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, input_size={self.input_size}, head_start={self.head_start!r}"


def _trunk_map_size(net: ConvolutionizedNet, size: tuple[int, int], channels: int) -> tuple[int, int] | None:
    """The map size entering ``net.head_start`` for an input of ``size``, computed on the meta device."""
    trunk = OrderedDict()
    for name, layer in net.layers():
        if name == net.head_start:
            break
        trunk[name] = layer
    body = nn.Sequential(trunk)
    tensors = {k: torch.empty_like(v, device="meta") for k, v in body.state_dict(keep_vars=True).items()}
    try:
        out = torch.func.functional_call(body, tensors, (torch.empty(1, channels, *size, device="meta"),))
    except (RuntimeError, ValueError, TinyzooError):
        return None
    return (out.shape[-2], out.shape[-1]) if out.dim() == 4 else None


def _min_input_size(net: ConvolutionizedNet, channels: int) -> tuple[int, int] | None:
    """Smallest (height, width) giving a map of at least ``net.head_needs``; feature sizes grow with input."""
    if net.head_start is None:
        return None
    native, need = net.input_size, net.head_needs
    if need is None:
        return None

    def fits(side: int, axis: int) -> bool:
        # ``side`` along ``axis``, the native size along the other.
        got = _trunk_map_size(net, (side, native) if axis == 0 else (native, side), channels)
        return got is not None and got[axis] >= need[axis]

    smallest = []
    for axis in (0, 1):
        if not fits(native, axis):
            return None
        low, high = 1, native
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if fits(middle, axis) else (middle + 1, high)
        smallest.append(low)
    return smallest[0], smallest[1]


def _watched(name: str, path: set[str], head: str) -> bool:
    # The chain checks compare the children of the containers on the path and in the head.
    parent = name.rpartition(".")[0]
    return name in path or parent in path or (bool(head) and (name == head or name.startswith(f"{head}.")))


def _classifier_path(model: nn.Module, classifier: str) -> str:
    if not classifier:
        return ""
    try:
        module = model.get_submodule(classifier)
    except AttributeError:
        children = ", ".join(name for name, _ in model.named_children())
        raise TinyzooError(f"model has no submodule {classifier!r} (classifier); its top-level children: {children}") from None
    # Naming the last Linear (as architecture specs do) means the container holding it.
    if isinstance(module, nn.Linear):
        return classifier.rpartition(".")[0]
    return classifier


def convolutionize(model: nn.Module, classifier: str, input_size: int, *, pool: str = "avg") -> nn.Module:
    """A :class:`ConvolutionizedNet` equal to ``model`` at ``input_size`` and dense on larger input.

    ``classifier`` is the dotted path of the classifier container (``"classifier"`` for
    torchvision AlexNet/VGG, ``"head"`` for timm VGG), or of a Linear inside it (then its
    container is meant: ``"classifier.6"``, ``"head.fc"``), or ``""`` when the model itself is
    a Sequential ending in its classifier. Every Linear reading the flattened feature map
    and every Linear after it becomes a Conv2d (the first with the map's native size as
    kernel, the rest 1x1). ``input_size`` is the native square input side (the adapted size,
    e.g. 56 after ``--stem small``). ``pool`` is ``"avg"`` or ``"max"`` over the score map.
    Raises ``TinyzooError`` for models this cannot convert exactly.
    """
    if pool not in POOLS:
        raise TinyzooError(f"unknown score-map pooling {pool!r}; choose one of: {', '.join(POOLS)}")
    head = _classifier_path(model, classifier)
    # The model, the classifier and every container between them are walked child by child.
    path = {""} | ({head.rsplit(".", i)[0] for i in range(head.count(".") + 1)} if head else set())
    first = next(model.parameters(), None)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    channels = convs[0].in_channels if convs else 3
    example = torch.randn(
        1, channels, input_size, input_size, generator=torch.Generator().manual_seed(0),
        dtype=first.dtype if first is not None else torch.float32,
    ).to(first.device if first is not None else "cpu")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            trace, output = _record(model, example, lambda name: _watched(name, path, head))
    finally:
        for module, mode in modes.items():
            module.training = mode
    if not isinstance(output, Tensor) or output.dim() != 2:
        raise TinyzooError(
            f"cannot convolutionize {type(model).__name__}: at native input it must return (batch, classes) logits, "
            f"not {type(output).__name__} {tuple(output.shape) if isinstance(output, Tensor) else ''}".rstrip()
        )
    walk = _Walk(pool=pool, map_shape=(channels, input_size, input_size))  # the example's (C, H, W)
    spans: list[_Span] = []
    layers = _convert(model, "", trace, path, head, walk, spans)
    if not walk.changed:
        raise TinyzooError(f"nothing to convolutionize in {_label(head)}: no Linear, flatten or pool to replace")
    head_start = next(
        ((name, before) for name, before, after in spans
         if before is not None and after == (1, 1) and before != (1, 1)),
        (None, None),
    )
    net = ConvolutionizedNet(layers, pool=pool, input_size=input_size, head_start=head_start[0], head_needs=head_start[1])
    net.training = model.training
    net.min_input_size = _min_input_size(net, channels)
    return net


def adapt_convolutionize(model: nn.Module, spec, *, input_size: int, pool: str = "avg") -> tuple[nn.Module, Changes]:
    """The ``convolutionize`` adapter: the classifier's Linear layers become convolutions.

    ``input_size`` is the size at which the result equals the original exactly (the adapted
    size: 56 after ``stem small``). Linear weights keep their keys and values, reshaped.
    """
    from tinyzoo.surgery.resize import attach_input_resize, detach_input_resize

    before = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # An input layer (stem small-up2) stays in front: the classifier is taken at the size behind it.
    resize = detach_input_resize(model)
    inner = resize.output_size(input_size) if resize is not None else input_size
    net = convolutionize(model, spec.classifier or "", inner, pool=pool)
    if resize is not None:
        attach_input_resize(net, resize)
    changes = Changes()
    for key, value in net.state_dict().items():
        if key in before and tuple(value.shape) != before[key]:
            changes.copy(key, key)
    changes.note(f"classifier convolutionized: exact at {input_size}x{input_size}, score map averaged ({pool}) on larger input")
    return net, changes
