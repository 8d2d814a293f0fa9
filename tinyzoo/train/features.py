"""Frozen-feature caching (Milani's transfer values): run the frozen network once per image.

When a stage trains only the head and the training inputs are fixed (a deterministic
pipeline, or a finite set of views such as Yu's five crops with mirroring), the frozen part
of the network gives the same output for an image every epoch. :func:`extract` runs it
once per image (per view) and keeps the input of every head module; the stage then trains
the heads on these features, which costs one small matrix product per batch instead of a
forward pass through the whole network.

The features are captured with forward pre-hooks on the head modules while the model is in
its training mode for the stage (frozen parts in eval mode), so they are exactly what the
full forward would feed the heads. :func:`cacheable` checks that on a real batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from tinyzoo.specs import IMAGE_SIZE

MAX_CACHE_FRACTION = 0.4  # of the machine's memory (or the GPU's): bigger caches fall back to full forwards


@dataclass
class FeatureCache:
    """Head inputs for every image of a split (this rank's shard).

    ``features[path]`` is a tensor ``(V, N, ...)``: view ``v`` of image ``n`` for the head
    module at ``path``; ``labels`` is int64 ``(N,)``.
    """

    features: dict[str, torch.Tensor]
    labels: torch.Tensor
    views: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.features.values())


def fixed_views(pipeline) -> list[tuple[int, int, bool]] | None:
    """The finite set of training views ``(y0, x0, flip)`` of ``pipeline``, or None when it is not finite.

    A view set is finite when the geometry is a center crop or Yu's five crops (optionally
    mirrored) and nothing else is random (no colour jitter, lighting or mixing).
    """
    if not getattr(pipeline, "train", False):
        return [(-1, -1, False)]
    if pipeline.brightness or pipeline.contrast or pipeline.saturation or pipeline.lighting or pipeline.mixes:
        return None
    if pipeline.padding or pipeline.normalize == "pixel":
        return None
    c, size = pipeline.crop, IMAGE_SIZE
    if pipeline.crop_mode == "center":
        boxes = [((size - c) // 2, (size - c) // 2)]
    elif pipeline.crop_mode == "ten":
        boxes = [(0, 0), (0, size - c), (size - c, 0), (size - c, size - c), ((size - c) // 2, (size - c) // 2)]
    elif pipeline.crop_mode == "random" and c == size:
        boxes = [(0, 0)]
    else:
        return None
    flips = (False, True) if pipeline.flip else (False,)
    return [(y, x, f) for y, x in boxes for f in flips]


def render_view(pipeline, images, view: tuple[int, int, bool]):
    """View ``(y0, x0, flip)`` of a uint8 NHWC batch, normalised as ``pipeline`` would."""
    y0, x0, flip = view
    if y0 < 0:  # an evaluation pipeline: its own deterministic view
        return pipeline(images)
    c = pipeline.crop
    crop = images[:, y0:y0 + c, x0:x0 + c]
    if flip:
        crop = crop.flip(2)
    return dataclasses.replace(pipeline, train=False, eval_crop="center")(crop.contiguous())


class HeadInputs:
    """Forward pre-hooks that record the input of each head module during a forward."""

    def __init__(self, model, paths) -> None:
        self.paths = list(paths)
        self.captured: dict = {}
        self.handles = [model.get_submodule(p).register_forward_pre_hook(self._hook(p)) for p in self.paths]

    def _hook(self, path):
        def hook(module, args):
            self.captured[path] = args[0].detach()

        return hook

    def take(self) -> dict:
        out, self.captured = self.captured, {}
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def cacheable(model, head_paths, forward, images) -> bool:
    """Whether two forwards of ``images`` under different random seeds give the heads equal inputs.

    ``forward(images)`` runs the model as training would (autocast, memory format). A
    frozen part with dropout left on, or BatchNorm in training mode, makes features differ.
    """
    hooks = HeadInputs(model, head_paths)
    try:
        with torch.no_grad():
            state = torch.get_rng_state()
            torch.manual_seed(12345)
            forward(images)
            first = hooks.take()
            torch.manual_seed(54321)
            forward(images)
            second = hooks.take()
            torch.set_rng_state(state)
    finally:
        hooks.close()
    if set(first) != set(head_paths) or set(second) != set(head_paths):
        return False  # a head not reached in this mode (e.g. auxiliary heads only run in training)
    return all(torch.equal(first[p], second[p]) for p in head_paths)


def extract(model, head_paths, split_images, labels, pipeline, views, *, forward, device, batch_size=256, rows=None,
            progress=None) -> FeatureCache:
    """Run ``model`` once per image and view; keep the head modules' inputs (on ``device``).

    ``split_images`` is the uint8 (N, 64, 64, 3) array, ``rows`` the ones to take (default
    all, in order), ``views`` from :func:`fixed_views`. ``forward`` runs the model as
    training would. ``progress`` (optional) is called with the number of images done.
    """
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    hooks = HeadInputs(model, head_paths)
    chunks: dict = {p: [[] for _ in views] for p in head_paths}
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                idx = rows[start:start + batch_size]
                batch = torch.from_numpy(np.ascontiguousarray(split_images[idx])).to(device)
                for v, view in enumerate(views):
                    forward(render_view(pipeline, batch, view))
                    for p, value in hooks.take().items():
                        chunks[p][v].append(value.float())
                if progress is not None:
                    progress(len(idx))
    finally:
        hooks.close()
    features = {p: torch.stack([torch.cat(per_view) for per_view in chunks[p]]) for p in head_paths}
    label_tensor = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.int64, device=device)
    return FeatureCache(features=features, labels=label_tensor, views=len(views))


def extract_everywhere(model, head_paths, split_images, labels, pipeline, views, *, forward, device, world, **kwargs) -> FeatureCache:
    """:func:`extract` over the whole split with the work shared by every process; each gets all rows.

    Rank ``r`` extracts rows ``r, r + W, ...``; the parts are gathered and put back in
    dataset order, so every process can follow the same batch order as the image loader.
    """
    from tinyzoo import distributed

    n = len(labels)
    if not world.distributed:
        return extract(model, head_paths, split_images, labels, pipeline, views, forward=forward, device=device, **kwargs)
    mine = np.arange(world.rank, n, world.world_size)
    part = extract(model, head_paths, split_images, labels, pipeline, views, forward=forward, device=device, rows=mine, **kwargs)
    per_rank = -(-n // world.world_size)
    features = {}
    for path, tensor in part.features.items():
        padded = torch.zeros((tensor.shape[0], per_rank, *tensor.shape[2:]), dtype=tensor.dtype, device=tensor.device)
        padded[:, : tensor.shape[1]] = tensor
        gathered = distributed.all_gather_rows(padded.transpose(0, 1).contiguous(), world)  # (W * per_rank, V, ...)
        order = torch.cat([torch.arange(r, n, world.world_size) for r in range(world.world_size)])
        counts = [len(range(r, n, world.world_size)) for r in range(world.world_size)]
        keep = torch.cat([torch.arange(r * per_rank, r * per_rank + c) for r, c in enumerate(counts)])
        full = torch.empty_like(gathered[:n])
        full[order] = gathered[keep]
        features[path] = full.transpose(0, 1).contiguous()
    label_tensor = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device)
    return FeatureCache(features=features, labels=label_tensor, views=part.views)


def estimated_bytes(model, head_paths, forward, sample_images, images: int, views: int) -> int:
    """Bytes a cache of ``images`` x ``views`` would take, measured on one sample batch."""
    hooks = HeadInputs(model, head_paths)
    try:
        with torch.no_grad():
            forward(sample_images)
        per_image = sum(t[0].numel() * 4 for t in hooks.take().values())
    finally:
        hooks.close()
    return per_image * images * views


def memory_budget(device) -> int:
    """Bytes a feature cache may take on ``device``."""
    import os

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MAX_CACHE_FRACTION)
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return int(pages * size * MAX_CACHE_FRACTION)
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def cache_batches(cache: FeatureCache, loader, count: int, start: int = 0, view_seed: int = 0):
    """Batches ``start .. count-1`` of ``loader``'s current epoch, made of cached features.

    The images of each batch are exactly those the loader would give (same order, same
    shard), so a head trained on the cache sees what it would on full forwards; with several
    views each image takes one at random (from ``view_seed``).
    """
    order = loader.indices()
    chunks = [order[s:s + loader.batch_size] for s in range(0, len(order), loader.batch_size)]
    device = cache.labels.device
    picks = None
    if cache.views > 1:
        generator = torch.Generator().manual_seed(view_seed)
        picks = torch.randint(0, cache.views, (len(cache),), generator=generator).to(device)
    for number in range(start, min(count, len(chunks))):
        idx = torch.from_numpy(np.sort(chunks[number])).to(device)  # sorted, as BatchLoader reads them
        view = picks[idx] if picks is not None else torch.zeros_like(idx)
        yield {p: t[view, idx] for p, t in cache.features.items()}, cache.labels[idx]
