"""Measure which stems work for timm's models and write the coverage table and data.

For one model of every timm module (``MODELS`` below), ``tinyzoo.timm_sweep.measure`` adapts the
network on the meta device with each stem, checks 200-way logits at 56 and 64 px, and records
the stage sizes, parameters and multiply-accumulates. The results go to

- ``tinyzoo/timm_coverage.json`` (``modules``): what the ``timm:`` catalog lists for a module;
- the table between the ``timm-coverage`` markers in ``docs/adapters.md``.

``--all`` also tries every model timm lists (about 1,400) with the stems its module's model
supports, and records each one's working stems in the JSON (``models``), so that
``tinyzoo list 'timm:*'`` shows no stem that fails. Nothing is downloaded; nothing runs on real
tensors.

    .venv/bin/python docs/make_timm_coverage.py               # the table and the modules' entries
    .venv/bin/python docs/make_timm_coverage.py --all         # and every model's stems (about an hour)
    .venv/bin/python docs/make_timm_coverage.py --table-only  # the table again from the JSON
    .venv/bin/python docs/make_timm_coverage.py --module vision_transformer_hybrid  # one module again
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import timm

from tinyzoo.surgery.timm_geometry import sizes_text
from tinyzoo.timm_catalog import COVERAGE_FILE
from tinyzoo.timm_sweep import measure

DOC = Path(__file__).resolve().parent / "adapters.md"
START, END = "<!-- timm-coverage:start -->", "<!-- timm-coverage:end -->"
# One model per timm module, the smallest standard member with ImageNet weights where there is a choice.
MODELS = {
    "beit": "beit_base_patch16_224", "byoanet": "eca_botnext26ts_256", "byobnet": "repvgg_a0",
    "cait": "cait_xxs24_224", "coat": "coat_lite_tiny", "convit": "convit_tiny", "convmixer": "convmixer_768_32",
    "convnext": "convnext_atto", "cpubone": "cpubone_nano", "crossvit": "crossvit_tiny_240", "cspnet": "cspresnet50",
    "cspnext": "cspnext_tiny", "davit": "davit_tiny", "deit": "deit_tiny_distilled_patch16_224",
    "densenet": "densenet121", "dla": "dla34", "dpn": "dpn68", "edgenext": "edgenext_xx_small",
    "efficientformer": "efficientformer_l1", "efficientformer_v2": "efficientformerv2_s0",
    "efficientnet": "tf_efficientnet_lite0", "efficientvim": "efficientvim_m1", "efficientvit_mit": "efficientvit_b0", "efficientvit_msra": "efficientvit_m0",
    "eva": "eva02_tiny_patch14_224", "fasternet": "fasternet_t0", "fastvit": "fastvit_t8", "focalnet": "focalnet_tiny_srf",
    "gcvit": "gcvit_xxtiny", "ghostnet": "ghostnet_100", "hardcorenas": "hardcorenas_a", "hgnet": "hgnetv2_b0",
    "hiera": "hiera_tiny_224", "hrnet": "hrnet_w18_small", "inception_next": "inception_next_atto",
    "iformer": "iformer_t", "inception_resnet_v2": "inception_resnet_v2", "inception_v3": "inception_v3", "inception_v4": "inception_v4",
    "lcnetv2": "lcnetv2_small", "levit": "levit_128s", "lowformer": "lowformer_b0", "mambaout": "mambaout_femto", "maxxvit": "coatnet_nano_rw_224",
    "metaformer": "poolformerv2_s12", "mlp_mixer": "mixer_b16_224", "mobilenetv3": "mobilenetv3_small_100",
    "mobilevit": "mobilevit_xxs", "mvitv2": "mvitv2_tiny", "nest": "nest_tiny_jx", "nextvit": "nextvit_small",
    "nfnet": "nf_resnet50", "pit": "pit_ti_224", "pvt_v2": "pvt_v2_b0", "rdnet": "rdnet_tiny",
    "regnet": "regnetx_002", "repghost": "repghostnet_050", "repvit": "repvit_m0_9", "res2net": "res2net50_26w_4s",
    "resnest": "resnest14d", "resnet": "resnet18", "resnetv2": "resnetv2_50", "rexnet": "rexnet_100",
    "selecsls": "selecsls42b", "senet": "legacy_seresnet18", "sequencer": "sequencer2d_s", "shvit": "shvit_s1",
    "sknet": "skresnet18",
    "starnet": "starnet_s1", "swiftformer": "swiftformer_xs", "swin_transformer": "swin_tiny_patch4_window7_224",
    "swin_transformer_v2": "swinv2_tiny_window8_256", "swin_transformer_v2_cr": "swinv2_cr_tiny_ns_224",
    "tiny_vit": "tiny_vit_5m_224", "tnt": "tnt_s_patch16_224", "tresnet": "tresnet_m", "twins": "twins_pcpvt_small",
    "vgg": "vgg11", "visformer": "visformer_tiny", "vision_transformer": "vit_tiny_patch16_224",
    "vision_transformer_hybrid": "vit_tiny_r_s16_p8_224", "vision_transformer_relpos": "vit_relpos_small_patch16_224",
    "vitamin": "vitamin_small_224", "volo": "volo_d1_224", "vovnet": "ese_vovnet19b_dw", "xception": "legacy_xception",
    "xception_aligned": "xception41", "xcit": "xcit_nano_12_p16_224",
}


def giga(value) -> str:
    """Multiply-accumulates in billions, or ``-``."""
    return "-" if value is None else f"{value / 1e9:.2f}"


def module_entry(cov) -> dict:
    """One module's row of the table and entry of the JSON."""
    small, up2 = cov.stems["small"], cov.stems["small-up2"]
    return {
        "model": cov.model, "stems": cov.working(), "params": cov.params, "input_size": cov.input_size,
        "native_sizes": cov.native_sizes, "native_macs": cov.native_macs,
        "small_sizes": small.sizes if small.ok else None, "small_macs": small.macs,
        "small_up2_sizes": up2.sizes if up2.ok else None, "small_up2_macs": up2.macs,
        "why_not_small": "" if small.ok else small.reason,
    }


def table(entries: dict, models: dict, version: str) -> str:
    """The Markdown table for docs/adapters.md, and the count over every model (``--all``), as
    measured with timm ``version``."""
    lines = [
        f"Measured with timm {version} by `docs/make_timm_coverage.py` (meta device, no weights). "
        "Stage sizes run from the first stage whose reduction is 4 (at 224 px: the 56x56 stage); "
        "for plain transformers they are the token grid. MACs: multiply-accumulates of one image.",
        "",
        "| timm module | model | stems | native px | stage sizes, native | `small` at 56 px | `small-up2` at 56 px | params (M) | GMACs native | GMACs `small` | GMACs `small-up2` |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for module, e in sorted(entries.items()):
        small = sizes_text(e["small_sizes"]) if e["small_sizes"] is not None else "refused"
        up2 = sizes_text(e["small_up2_sizes"]) if e["small_up2_sizes"] is not None else "-"
        lines.append(
            f"| {module} | `{e['model']}` | {', '.join(e['stems'])} | {e['input_size']} | {sizes_text(e['native_sizes'])} "
            f"| {small} | {up2} | {e['params'] / 1e6:.1f} | {giga(e['native_macs'])} | {giga(e['small_macs'])} "
            f"| {giga(e['small_up2_macs'])} |"
        )
    refused = {m: e["why_not_small"] for m, e in sorted(entries.items()) if e["small_sizes"] is None}
    if refused:
        lines += ["", "Why `small` is not offered:", ""]
        lines += [f"- {module} (`{entries[module]['model']}`): {why}" for module, why in refused.items()]
    works = sum(1 for e in entries.values() if e["small_sizes"] is not None)
    lines += ["", f"`small` works for {works} of these {len(entries)} modules."]
    if models:
        small = sum(1 for stems in models.values() if "small" in stems)
        up2 = sum(1 for stems in models.values() if "small-up2" in stems)
        lines[-1] += (f" Over all {len(models)} models timm {version} lists, `tinyzoo list` shows `small` "
                      f"for {small} and `small-up2` for {up2}.")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    start, end = doc.index(START) + len(START), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def model_stems(name: str, module_stems: list[str]) -> list[str]:
    """``name``'s working stems, trying only those its module's model has (the others stay unlisted)."""
    from tinyzoo.timm_catalog import timm_spec
    from tinyzoo.timm_sweep import try_stem

    spec = timm_spec(name)
    tried = [s for s in ("small", "small-up2") if s in module_stems]
    return ["keep", *[s for s in tried if try_stem(spec, s, []).ok], "resize"]


def sweep_all(entries: dict, only: set[str] | None = None) -> dict:
    """Every timm model's working stems (``--all``), trying the stems its module's model has; or
    those of the modules in ``only``, trying every stem (a module's models can differ from it)."""
    from tinyzoo.timm_catalog import timm_module

    found = {}
    names = [n for n in timm.list_models() if only is None or timm_module(n) in only]
    started = time.time()
    for index, name in enumerate(names, 1):
        module = timm_module(name)
        module_stems = ["small", "small-up2"] if only else entries.get(module, {}).get("stems", ["keep", "resize"])
        try:
            found[name] = model_stems(name, module_stems) if name != entries.get(module, {}).get("model") else entries[module]["stems"]
        except Exception as exc:  # a model timm cannot build on the meta device keeps keep/resize only
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            found[name] = ["keep", "resize"]
        if index % 50 == 0:
            print(f"{index}/{len(names)} models, {time.time() - started:.0f} s", file=sys.stderr)
    return found


def write_coverage(data: dict) -> None:
    """The JSON file, one line per model (about 1,400 of them) so that diffs stay readable."""
    head = json.dumps({k: v for k, v in data.items() if k != "models"}, indent=1, sort_keys=True)
    lines = [f" {json.dumps(name)}: {json.dumps(stems)}" for name, stems in sorted(data.get("models", {}).items())]
    COVERAGE_FILE.write_text(head[:-2] + ',\n "models": {\n' + ",\n".join(lines) + "\n }\n}\n")


def measure_modules(modules: list[str]) -> dict:
    """Each module's entry, measured on its model of :data:`MODELS` (and MACs)."""
    entries = {}
    for module in modules:
        entries[module] = module_entry(measure(MODELS[module], with_macs=True))
        print(f"{module}: {MODELS[module]}: {', '.join(entries[module]['stems'])}", file=sys.stderr)
    return entries


def remeasure(previous: dict, modules: list[str]) -> dict:
    """``previous`` with ``modules`` measured again: their entries and every model of theirs."""
    unknown = [m for m in modules if m not in MODELS]
    if unknown:
        raise SystemExit(f"make_timm_coverage.py: no timm module {unknown[0]!r} in MODELS; choose from {', '.join(sorted(MODELS))}")
    if previous.get("timm_version") != timm.__version__:
        raise SystemExit(f"make_timm_coverage.py: {COVERAGE_FILE} was measured with timm {previous.get('timm_version')}, "
                         f"this is timm {timm.__version__}: measure everything again (--all)")
    entries = {**previous["modules"], **measure_modules(modules)}
    models = {**previous.get("models", {}), **sweep_all(entries, set(modules))}
    return {**previous, "modules": entries, "models": models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also measure every timm model (slow)")
    parser.add_argument("--table-only", action="store_true", help="rewrite the docs table from the JSON, measuring nothing")
    parser.add_argument("--module", action="append", default=[], help="measure only this timm module again (repeatable)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # timm's resampling notices
    previous = json.loads(COVERAGE_FILE.read_text()) if COVERAGE_FILE.exists() else {}
    if args.table_only or args.module:
        data = remeasure(previous, args.module) if args.module else previous
        if args.module:
            write_coverage(data)
        write_doc(table(data["modules"], data.get("models", {}), data["timm_version"]))
        return
    entries = measure_modules(list(MODELS))
    models = sweep_all(entries) if args.all else previous.get("models", {})
    data = {
        "generated_by": "docs/make_timm_coverage.py",
        "timm_version": timm.__version__,
        "modules": entries,
        "models": models,
    }
    write_coverage(data)
    write_doc(table(entries, models, timm.__version__))
    print(f"wrote {COVERAGE_FILE} and the table in {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
