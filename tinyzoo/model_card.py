"""The README.md of an adapted-model directory: a Hugging Face model card.

Its YAML front matter (``library_name: tinyzoo``, tags, datasets, ``base_model``) is what
``tinyzoo push`` checks (:func:`tinyzoo.hub.push.card_problems`); its body shows how the
model was adapted, tensor by tensor.
"""

from __future__ import annotations

import json
from typing import Any

from tinyzoo import preprocess as preprocessing
from tinyzoo.adapt_report import AdaptationReport


def front_matter(config: dict[str, Any]) -> list[str]:
    """The card's YAML front matter, as lines: library, tags, datasets and the Hub base model."""
    source = str((config.get("weights") or {}).get("source") or "none")
    tags = ["tinyzoo", "image-classification", "tiny-imagenet", config.get("family") or "", f"stem-{config.get('stem')}"]
    datasets = ["zh-plus/tiny-imagenet"]
    base_model = source[len("hf-hub:"):].partition("@")[0] if source.startswith("hf-hub:") else None
    if base_model or source.startswith("torchvision:"):
        datasets.append("ILSVRC/imagenet-1k")  # where the adapted weights were trained
    front = ["---", "library_name: tinyzoo", "pipeline_tag: image-classification", "tags:"]
    front += [f"- {json.dumps(t)}" for t in tags if t]
    front += ["datasets:"] + [f"- {json.dumps(d)}" for d in datasets]
    if base_model:
        front.append(f"base_model: {json.dumps(base_model)}")
    return front + ["---"]


def model_card(config: dict[str, Any]) -> str:
    """The README.md of an adapted-model directory: Hugging Face model card with YAML front matter."""
    report = AdaptationReport.from_dict(config["report"])
    weights = config.get("weights") or {}
    source = str(weights.get("source") or "none")
    arch = config["architecture"]
    adapters = ", ".join(a["name"] for a in config.get("adapters", [])) or "none"
    lines = [
        *front_matter(config),
        "",
        f"# {arch} adapted to Tiny ImageNet with tinyzoo",
        "",
        f"`{arch}` with the stem `{config.get('stem')}` and a {config.get('classes')}-way head "
        f"(`{config.get('head_init')}` initialisation), adapted from `{source}`"
        + (f" (revision `{weights['revision']}`)" if weights.get("revision") else "")
        + (f" (sha256 `{weights['sha256'][:16]}...`)" if weights.get("sha256") else "")
        + f". It expects {preprocessing.describe(config)} (config.json's `preprocess`).",
        "",
        "It has been adapted, not trained: see the report below for what was copied, resampled,",
        "sliced or newly initialised.",
        "",
        "```python",
        "import tinyzoo",
        "",
        "model = tinyzoo.load(\"path/to/this/folder\")  # no network access",
        "```",
        "",
        "## Adaptation report",
        "",
        f"Adapters, in order: {adapters}. {report.summary()}.",
        "",
        "| tensor | shape | status | from | detail |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in report.rows()]
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    lines += ["", f"Written by tinyzoo {config.get('tinyzoo_version')}.", ""]
    return "\n".join(lines)
