"""``tinyzoo adapt``: an ImageNet network adapted to Tiny ImageNet, written to a folder."""

from __future__ import annotations

import json

import click

from tinyzoo.console import print_json, print_table
from tinyzoo.specs import BN_RECALIBRATIONS, CALIBRATION_IMAGES, HEAD_INITS, KERNEL_RESIZES, STEM_MODES


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value); numbers, true/false and null are read as JSON, the rest as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.UsageError(f"--option {text!r}: expected key=value, e.g. --option aux=drop")
    try:
        parsed = json.loads(value)
        if isinstance(parsed, (list, dict)):
            parsed = value
    except ValueError:
        parsed = value
    return key.strip(), parsed


@click.command("adapt")
@click.argument("arch")
@click.option("--stem", type=click.Choice(STEM_MODES), default="keep", show_default=True,
              help="keep the stem, shrink it for 56x56 input (small), remove only the stem's strides and "
                   "upsample 2x (small-up2), or upsample the input (resize). `tinyzoo info ARCH` lists ARCH's.")
@click.option("--classes", type=click.IntRange(min=1), default=None,
              help="Head size (default: the number of wnids, else 200).")
@click.option("--wnids", "wnids", type=click.Path(dir_okay=False), default=None,
              help="A wnids.txt: the classes, in output order (Tiny ImageNet's gives the ImageNet rows).")
@click.option("--head-init", type=click.Choice(HEAD_INITS), default=None,
              help="wnid: the pretrained ImageNet rows; random: Kaiming normal. Default: wnid when possible.")
@click.option("--kernel-resize", type=click.Choice(KERNEL_RESIZES), default=None,
              help="How --stem small resamples kernels: bicubic (Kim, rescaled) or pi/pinv (pseudo-inverse). "
                   "Default: the family's measured default (docs/fidelity.md).")
@click.option("--convolutionize", is_flag=True, help="Turn the classifier's Linear layers into convolutions.")
@click.option("--weights", default=None, metavar="SRC|none",
              help="hf-hub:ORG/REPO[@REV], torchvision:NAME, a .safetensors file, or none. Default: the architecture's.")
@click.option("--offline", is_flag=True, default=None, help="Use only cached weights; never the network.")
@click.option("--option", "option_texts", multiple=True, metavar="KEY=VALUE",
              help="An architecture option, or aux=adapt|drop, resize_mode=bicubic|bilinear. Repeatable.")
@click.option("--recalibrate-bn", type=click.Choice(BN_RECALIBRATIONS), default=None,
              help="Recalibrate BatchNorm statistics after the surgery on --calibration-data: relative (moment "
                   "matching to the original at native size) or plain (re-estimation). Default: off.")
@click.option("--calibration-data", type=click.Path(file_okay=False), default=None,
              help="Images for --recalibrate-bn: a Tiny ImageNet folder (its train images) or a folder of photographs.")
@click.option("--calibration-images", type=click.IntRange(min=1), default=CALIBRATION_IMAGES, show_default=True,
              help="How many calibration images (or photo crops) to use.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the adapted model to.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def adapt_command(arch, stem, classes, wnids, head_init, kernel_resize, convolutionize, weights, offline,
                  option_texts, recalibrate_bn, calibration_data, calibration_images, out, as_json) -> None:
    """Adapt architecture ARCH to Tiny ImageNet and write it to --out.

    Writes model.safetensors, config.json and README.md (a model card), then prints the
    adaptation report: every tensor copied, resampled, sliced or new.

    \b
    tinyzoo adapt resnet18 --stem small --wnids tiny-imagenet-200/wnids.txt --out resnet18-small
    tinyzoo adapt vgg16 --stem small --convolutionize --weights none --out vgg16-conv
    tinyzoo adapt resnet18 --stem small --recalibrate-bn relative --calibration-data tiny-imagenet-200 --out r18
    """
    import tinyzoo

    options = dict(parse_option(text) for text in option_texts)
    calibration = calibration_for(arch, recalibrate_bn, calibration_data, calibration_images)
    model = tinyzoo.create(
        arch, stem=stem, classes=classes, wnids=wnids, head_init=head_init, kernel_resize=kernel_resize,
        convolutionize=convolutionize, weights=weights, offline=offline, recalibrate_bn=recalibrate_bn,
        calibration=calibration, **options,
    )
    path = tinyzoo.save(model, out)
    report = model.tinyzoo_report
    if as_json:
        print_json({"out": str(path), "config": {k: v for k, v in model.tinyzoo_config.items() if k != "report"},
                    "report": report.to_dict()})
        return
    config = model.tinyzoo_config
    click.echo(f"{report.architecture}: stem {config['stem']}, {config['classes']} classes, head {config['head_init']}, "
               f"input {config['input_size']}x{config['input_size']}")
    click.echo(f"weights: {report.weights}")
    click.echo(f"adapters: {', '.join(a['name'] for a in report.adapters) or 'none'}\n")
    print_table(report.rows(), ["tensor", "shape", "status", "from", "detail"])
    click.echo(f"\n{report.summary()}")
    for note in report.notes:
        click.echo(f"- {note}")
    click.echo(f"\nwrote {path}/ (model.safetensors, config.json, README.md)")


def calibration_for(arch: str, method: str | None, folder: str | None, count: int):
    """The calibration views ``--calibration-data`` names (``None`` without --recalibrate-bn)."""
    if method is None:
        if folder is not None:
            raise click.UsageError("--calibration-data is used by --recalibrate-bn; give --recalibrate-bn plain or relative")
        return None
    if folder is None:
        raise click.UsageError("--recalibrate-bn needs --calibration-data DIR (a Tiny ImageNet folder or a folder of photographs)")
    from tinyzoo.data.photos import calibration_views
    from tinyzoo.registry import get_registry

    spec = get_registry().architecture(arch)
    return calibration_views(folder, count=count, view="center", native=spec.input_size)


COMMANDS = [adapt_command]
