"""A hand-made Tiny ImageNet tree for the data tests: 3 classes, each a solid colour.

Every image of class ``k`` is filled with ``COLOURS[k]``, so a decoded pixel tells its label.
The tree holds a grayscale JPEG, a CMYK JPEG and one 48x48 image among the training files,
validation images with annotations, and unlabelled test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ["n01443537", "n01629819", "n02124075"]
NAMES = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander", "n02124075": "Egyptian cat"}
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
GRAY = 128  # the grayscale training image: class 0, value 128 on every channel
# val file -> class index, in annotation order
VAL = {"val_0.JPEG": 2, "val_1.JPEG": 0, "val_2.JPEG": 1, "val_3.JPEG": 2}
TEST = ["test_0.JPEG", "test_1.JPEG"]


def solid(colour, size=64, mode="RGB") -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(colour))
    return image if mode == "RGB" else image.convert(mode)


def make_tree(root: Path, *, sorted_val: bool = False) -> Path:
    """Write the tree to ``root`` and return it.

    Train (files sorted by name within a class): class 0: ``a.JPEG`` RGB, ``b.JPEG`` grayscale;
    class 1: ``a.JPEG`` RGB, ``c.JPEG`` CMYK; class 2: ``a.JPEG`` RGB, ``d.JPEG`` 48x48 RGB.
    ``sorted_val`` puts validation into ``val/<wnid>/images`` instead of annotations.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n00000001\tentity\n" + "".join(f"{w}\t{NAMES[w]}\n" for w in WNIDS))
    extra = {0: ("b.JPEG", solid((GRAY,) * 3, mode="L")), 1: ("c.JPEG", solid(COLOURS[1], mode="CMYK")), 2: ("d.JPEG", solid(COLOURS[2], size=48))}
    for k, wnid in enumerate(WNIDS):
        images = root / "train" / wnid / "images"
        images.mkdir(parents=True)
        names = [f"{wnid}_a.JPEG", f"{wnid}_{extra[k][0]}"]
        solid(COLOURS[k]).save(images / names[0], quality=95)
        extra[k][1].save(images / names[1], quality=95)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(f"{n}\t1\t2\t30\t40\n" for n in names))
    if sorted_val:
        for name, k in VAL.items():
            folder = root / "val" / WNIDS[k] / "images"
            folder.mkdir(parents=True, exist_ok=True)
            solid(COLOURS[k]).save(folder / name, quality=95)
    else:
        (root / "val" / "images").mkdir(parents=True)
        for name, k in VAL.items():
            solid(COLOURS[k]).save(root / "val" / "images" / name, quality=95)
        (root / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{WNIDS[k]}\t0\t0\t63\t63\n" for n, k in VAL.items()))
    (root / "test" / "images").mkdir(parents=True)
    for i, name in enumerate(TEST):
        solid(COLOURS[i]).save(root / "test" / "images" / name, quality=95)
    return root


def write_truncated_jpeg(path: Path) -> None:
    """A noisy JPEG cut to half its bytes: its headers parse, its pixel data ends early."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="JPEG", quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def mean_colour(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 3).mean(axis=0)


# --- other ways to hold the same data: class folders, Parquet (as the Hub keeps it), a zip ----------


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=95) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()


def parquet_split(images: list[bytes], labels: list[int] | None, names: list[str] | None, *, row_group_size: int = 2,
                  metadata: bool = True) -> bytes:
    """A Parquet file as the ``datasets`` library writes one: an ``image`` struct column (bytes, path)
    and an int ``label`` column, with the features (Image, ClassLabel names) in the schema metadata."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {"image": pa.array([{"bytes": b, "path": None} for b in images], type=image_type)}
    features: dict = {"image": {"_type": "Image"}}
    if labels is not None:
        columns["label"] = pa.array(labels, type=pa.int64())
        features["label"] = {"names": names, "_type": "ClassLabel"} if names else {"dtype": "int64", "_type": "Value"}
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def dataset_card(names: list[str]) -> str:
    """A README.md whose YAML describes the features as the Hub's dataset cards do."""
    lines = ["---", "dataset_info:", "  features:", "  - name: image", "    dtype: image", "  - name: label", "    dtype:",
             "      class_label:", "        names:"]
    lines += [f"          '{i}': {name}" for i, name in enumerate(names)]
    return "\n".join(lines + ["---", "", "# a test dataset", ""])


def colour_parquet_files(valid_names: list[str] | None = None) -> dict[str, bytes]:
    """``data/train-...parquet`` (each class twice, in class order) and ``data/valid-...parquet`` (``VAL``'s
    classes), solid colours as in :func:`make_tree`, plus README.md. ``valid_names`` lists the valid
    file's ClassLabel names in another order (its labels then index that order)."""
    valid_names = valid_names or WNIDS
    train = parquet_split([encoded(solid(COLOURS[k])) for k in (0, 0, 1, 1, 2, 2)], [0, 0, 1, 1, 2, 2], WNIDS)
    ks = list(VAL.values())
    valid = parquet_split([encoded(solid(COLOURS[k])) for k in ks], [valid_names.index(WNIDS[k]) for k in ks], valid_names)
    return {
        "README.md": dataset_card(WNIDS).encode(),
        "data/train-00000-of-00001-0a1b2c3d.parquet": train,
        "data/valid-00000-of-00001-4e5f6a7b.parquet": valid,
    }


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def zip_tree(tree: Path, top: str = "tiny-imagenet-200") -> bytes:
    """``tree`` zipped under the folder name ``top``, as the official zip holds the dataset."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(tree.rglob("*")):
            name = f"{top}/{path.relative_to(tree).as_posix()}"
            archive.write(path, name + ("/" if path.is_dir() else ""))
    return buffer.getvalue()
