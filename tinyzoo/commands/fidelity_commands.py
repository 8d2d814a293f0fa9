"""``tinyzoo fidelity``: which adapter keeps most of what a network predicts, measured on photographs, no labels."""

from __future__ import annotations

import click

from tinyzoo.console import print_json, print_table
from tinyzoo.specs import FIDELITY_BN_CHOICES, PHOTO_VIEWS


@click.command("fidelity")
@click.argument("arch")
@click.option("--photos", "photos_dir", required=True, type=click.Path(),
              help="A folder of photographs (JPEG/PNG, 64 px or more on the short side; larger is better).")
@click.option("--weights", default=None, metavar="SRC", help="Weights source, as for `tinyzoo adapt`. Default: the architecture's.")
@click.option("--offline", is_flag=True, default=None, help="Use only cached weights; never the network.")
@click.option("--crops", "crops_per_photo", type=click.IntRange(min=1), default=8, show_default=True,
              help="Random square crops measured per photo.")
@click.option("--calibration-crops", type=click.IntRange(min=1), default=4, show_default=True,
              help="Other random crops per photo that BatchNorm recalibration uses.")
@click.option("--view", type=click.Choice(PHOTO_VIEWS), default="full", show_default=True,
              help="What the adapted networks see: the crop at 64 px (full) or its central 56 px (center).")
@click.option("--bn", "bn", multiple=True, type=click.Choice(FIDELITY_BN_CHOICES),
              help="BatchNorm choices to measure each adapter with (repeatable). Default: none, relative and plain.")
@click.option("--variant", "patterns", multiple=True, metavar="PATTERN",
              help="Only the variants matching this shell pattern, e.g. 'resize/*' or 'small/pi*' (repeatable).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="A Tiny ImageNet folder: also report each variant's zero-shot val top-1 through the wnid head.")
@click.option("--val-images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="With --data: how many validation images (a random subset, chosen by --seed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the crops, the bootstrap resamples and the val subset.")
@click.option("--bootstrap", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples over photos.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cpu].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also draw the results as a PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
def fidelity_command(arch, photos_dir, weights, offline, crops_per_photo, calibration_crops, view, bn, patterns, data_dir,
                     val_images, seed, bootstrap, device, plot_path, as_json) -> None:
    """How much of ARCH's own predictions each adapter keeps at 64 px, before any training.

    Random square crops of the photographs are shown to the original network at its native
    size (the teacher) and, downsampled to 64 px, to each adapted network (keep, resize with
    each mode, small with each kernel resampling; with and without BatchNorm recalibration).
    Reports top-1 and top-5 agreement with the teacher and KL(teacher || student), with 95%
    bootstrap intervals over photos. No labels are needed. See docs/fidelity.md.

    \b
    tinyzoo fidelity resnet18 --photos my-photos/
    tinyzoo fidelity timm:tf_efficientnet_lite0 --weights lite0.safetensors --photos photos/ --plot fidelity.png
    """
    from tinyzoo.data.photos import read_photos
    from tinyzoo.evaluate import fidelity

    photos = read_photos(photos_dir)
    result = fidelity.measure(
        arch, photos, weights=weights, offline=offline, bn=bn or FIDELITY_BN_CHOICES, patterns=patterns,
        crops_per_photo=crops_per_photo, calibration_per_photo=calibration_crops, view=view, seed=seed,
        bootstrap=bootstrap, data=data_dir, val_images=val_images, device=device,
    )
    if plot_path:
        from tinyzoo.evaluate.fidelity_figure import draw

        draw(result, plot_path)
    if as_json:
        print_json(result.to_dict())
        return
    settings = result.settings
    click.echo(f"{result.architecture} ({result.weights['source']}): teacher at {settings['native_size']} px, "
               f"students at {settings['input_size']} px ({view}); {len(photos)} photos x {crops_per_photo} crops, "
               f"{int(100 * settings['confidence'])}% intervals from {bootstrap} bootstrap resamples over photos\n")
    print_table(result.rows(), fidelity.ROW_HEADERS)
    if result.teacher_val_top1 is not None:
        click.echo(f"\nteacher, val images upsampled to {settings['native_size']} px: zero-shot top-1 {100 * result.teacher_val_top1:.2f}% "
                   f"({settings['val_images']} images)")
    for skipped in result.skipped:
        click.echo(f"- {skipped['name']}: not measured, {skipped['why']}")
    if plot_path:
        click.echo(f"\nwrote {plot_path}")


COMMANDS = [fidelity_command]
