"""A small synthetic dataset in the exact Tiny ImageNet layout, learnable in minutes on a CPU.

Each class is a coloured patch of oriented stripes: its own hue, stripe angle and frequency.
Every image varies the patch's box, the stripe phase, brightness, background and adds noise,
and about 1 in 20 files is saved grayscale, as ~2% of the real dataset is. Class ids are real
ImageNet wnids with their names (read from timm's class lists, without importing timm).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyzoo.errors import TinyzooError
from tinyzoo.specs import IMAGE_SIZE

GRAYSCALE_EVERY = 20  # files i with i % 20 == 7 are grayscale: a few per split, like the real ~1.8%


@dataclass
class SampleInfo:
    """What :func:`write_sample` wrote: the directory, class ids and image counts per split."""

    root: Path
    wnids: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    grayscale: int = 0


def imagenet_classes() -> list[tuple[str, str]]:
    """The 1000 ImageNet-1k ``(wnid, names)`` pairs in class-index order, from timm's data files."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        # timm is a dependency; without it, made-up ids keep the sample usable
        return [(f"n{90000000 + i:08d}", f"class {i}") for i in range(1000)]
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    wnids = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        wnid, _, words = line.partition("\t")
        lemmas[wnid] = words.strip()
    return [(w, lemmas.get(w, w)) for w in wnids]


def class_style(k: int) -> dict:
    """Class ``k``'s pattern: hue, stripe angle and stripes per image (distinct for k < 1000).

    Angles stay within [0, 90) degrees, so a mirrored image (180 - angle) never looks like
    another class: flips in training keep the classes apart.
    """
    return {
        "hue": (k * 0.618033988749895) % 1.0,
        "angle": (k % 6) * math.pi / 12 + (k // 6 % 2) * math.pi / 24,
        "freq": (2.5, 4.0, 6.0)[k // 12 % 3],
    }


def hsv_to_rgb(h: np.ndarray, s: float, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, shapes broadcast; returns (..., 3) on 0..1."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0)
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


def render_class(k: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images of class ``k``: uint8 (count, 64, 64, 3) and their boxes (count, 4) x0 y0 x1 y1."""
    style = class_style(k)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    angle = style["angle"] + rng.normal(0, 0.08, count)
    phase = rng.uniform(0, 2 * math.pi, count)
    proj = xx[None] * np.cos(angle)[:, None, None] + yy[None] * np.sin(angle)[:, None, None]
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * style["freq"] * proj / IMAGE_SIZE + phase[:, None, None])
    hue = (style["hue"] + rng.normal(0, 0.02, count)) % 1.0
    colour = hsv_to_rgb(hue, 0.75, rng.uniform(0.7, 1.0, count))  # (count, 3)
    patch = colour[:, None, None, :] * (0.35 + 0.65 * stripes[..., None])
    background = rng.uniform(0.2, 0.6, (count, 1, 1, 3)) + rng.normal(0, 0.1, (count, 8, 8, 3)).repeat(8, 1).repeat(8, 2)
    w = rng.integers(36, IMAGE_SIZE + 1, count)
    h = rng.integers(36, IMAGE_SIZE + 1, count)
    x0 = rng.integers(0, IMAGE_SIZE - w + 1)
    y0 = rng.integers(0, IMAGE_SIZE - h + 1)
    inside = (xx[None] >= x0[:, None, None]) & (xx[None] < (x0 + w)[:, None, None]) & (yy[None] >= y0[:, None, None]) & (yy[None] < (y0 + h)[:, None, None])
    images = np.where(inside[..., None], patch, background) + rng.normal(0, 0.06, (count, IMAGE_SIZE, IMAGE_SIZE, 3))
    boxes = np.stack([x0, y0, x0 + w - 1, y0 + h - 1], 1)
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8), boxes


def save_jpeg(pixels: np.ndarray, path: Path, grayscale: bool) -> None:
    from PIL import Image

    image = Image.fromarray(pixels, "RGB")
    if grayscale:
        image = image.convert("L")
    image.save(path, format="JPEG", quality=90)


def write_sample(
    dir: str | os.PathLike,
    classes: int = 10,
    per_class: int = 100,
    val_per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
) -> SampleInfo:
    """Write a learnable dataset in the Tiny ImageNet layout to ``dir`` (new or empty).

    ``classes`` ImageNet wnids (chosen by ``seed``), ``per_class`` training images each,
    ``val_per_class`` / ``test_per_class`` (default ``max(1, per_class // 10)``, the real
    500:50 ratio) validation and test images; returns what was written.
    """
    root = Path(dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise TinyzooError(f"{root}: exists and is not an empty directory; the sample is written into a new or empty one")
    catalogue = imagenet_classes()
    if not 1 <= classes <= len(catalogue):
        raise TinyzooError(f"classes must be between 1 and {len(catalogue)} (ImageNet-1k has {len(catalogue)}), got {classes}")
    if per_class < 1:
        raise TinyzooError(f"per_class must be >= 1, got {per_class}")
    val_per_class = max(1, per_class // 10) if val_per_class is None else val_per_class
    test_per_class = max(1, per_class // 10) if test_per_class is None else test_per_class
    if val_per_class < 0 or test_per_class < 0:
        raise TinyzooError("val_per_class and test_per_class must be >= 0")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(catalogue), classes, replace=False).tolist())
    wnids = [catalogue[i][0] for i in chosen]
    info = SampleInfo(root=root, wnids=wnids)

    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (root / "words.txt").write_text("".join(f"{catalogue[i][0]}\t{catalogue[i][1]}\n" for i in chosen))

    write_train(root, wnids, per_class, rng, info)
    for split, per in (("val", val_per_class), ("test", test_per_class)):
        write_held_out(root, split, wnids, per, rng, info)
    return info


def write_train(root: Path, wnids: list[str], per_class: int, rng, info: SampleInfo) -> None:
    """``train/<wnid>/images/`` and each class's ``<wnid>_boxes.txt``."""
    count = 0
    for k, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        images, boxes = render_class(k, per_class, rng)
        lines = []
        for i, (pixels, box) in enumerate(zip(images, boxes)):
            name = f"{wnid}_{i}.JPEG"
            gray = count % GRAYSCALE_EVERY == 7
            save_jpeg(pixels, folder / name, gray)
            info.grayscale += gray
            count += 1
            lines.append(f"{name}\t" + "\t".join(str(int(v)) for v in box) + "\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(lines))
    info.counts["train"] = count


def write_held_out(root: Path, split: str, wnids: list[str], per: int, rng, info: SampleInfo) -> None:
    """``val/images/`` (with ``val_annotations.txt``) or ``test/images/``: classes interleaved, as in the real splits."""
    folder = root / split / "images"
    folder.mkdir(parents=True)
    classes = len(wnids)
    rendered = [render_class(k, per, rng) for k in range(classes)]
    order = rng.permutation(classes * per)
    lines = []
    for i, j in enumerate(order):
        k, r = divmod(int(j), per)
        pixels, box = rendered[k][0][r], rendered[k][1][r]
        name = f"{split}_{i}.JPEG"
        gray = i % GRAYSCALE_EVERY == 7
        save_jpeg(pixels, folder / name, gray)
        info.grayscale += gray
        lines.append(f"{name}\t{wnids[k]}\t" + "\t".join(str(int(v)) for v in box) + "\n")
    if split == "val":
        (root / "val" / "val_annotations.txt").write_text("".join(lines))
    info.counts[split] = len(order)


def default_sample_dir() -> Path:
    """Where the default sample dataset lives: ``$TINYZOO_CACHE_DIR/sample`` or ``~/.cache/tinyzoo/sample``."""
    base = os.environ.get("TINYZOO_CACHE_DIR")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "tinyzoo")
    return Path(base) / "sample"


def ensure_default_sample() -> Path:
    """The default sample dataset (10 classes x 100 images), written on first use; returns its folder.

    It is written under a temporary name and renamed, so a crash never leaves half a dataset there.
    """
    import shutil

    from tinyzoo.atomic_files import temp_dir_beside

    target = default_sample_dir()
    if (target / "wnids.txt").is_file():
        return target
    tmp = temp_dir_beside(target)
    try:
        write_sample(tmp / "data")
        try:
            os.replace(tmp / "data", target)
        except OSError:  # another process won the race, or an old non-empty folder is in the way
            if not (target / "wnids.txt").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
