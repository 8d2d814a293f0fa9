"""``tinyzoo weights fetch``, ``weights list`` and ``push``: the weight caches and the Hub.

torch and huggingface_hub are imported inside the command bodies, never at module level.
"""

from __future__ import annotations

import click

from tinyzoo.console import print_json, print_table
from tinyzoo.errors import TinyzooError


def format_size(n: int | None) -> str:
    """46807448 -> '46.8 MB'."""
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def resolve_fetch_target(name: str):
    """(label, WeightsSource) for an architecture name or a raw ``hf-hub:`` / ``torchvision:`` source."""
    from tinyzoo.registry import get_registry
    from tinyzoo.weights import HF_HUB_PREFIXES, TORCHVISION_PREFIX, WeightsSource

    if name.lower().startswith((*HF_HUB_PREFIXES, TORCHVISION_PREFIX)):
        return name, WeightsSource.parse(name)
    spec = get_registry().architecture(name)
    return spec.name, WeightsSource.resolve(None, spec)


@click.group("weights")
def weights_group() -> None:
    """Pretrained weights: download them into the cache, list what is cached.

    Weights live in the Hugging Face cache (HF_HOME, HF_HUB_CACHE) and torch.hub's
    (TORCH_HOME); with both filled, `--offline` / TINYZOO_OFFLINE=1 works without a network.
    """


@weights_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even when the cache has the file.")
def fetch_command(names: tuple[str, ...], force: bool) -> None:
    """Download the default weights of architectures NAMES (or raw hf-hub:ORG/REPO[@REV] /
    torchvision:WEIGHTS_NAME sources) into the cache, so a machine can work offline later.

    `tinyzoo weights fetch resnet18 alexnet`; `tinyzoo weights fetch hf-hub:timm/resnet50.a1_in1k`.
    """
    from tinyzoo import hub
    from tinyzoo.weights import torchvision_url, verify_safetensors

    targets = [resolve_fetch_target(name) for name in dict.fromkeys(names)]  # unknown names fail before any download
    for label, src in targets:
        if src.kind == "none":
            click.echo(f"{label}: no pretrained weights (trained from scratch); nothing to fetch")
            continue
        if src.kind == "file":
            raise TinyzooError(f"{label}: {src} is a local file; `weights fetch` downloads hf-hub: and torchvision: sources")
        if src.kind == "hf-hub":
            found = hub.download(src.repo_id, hub.WEIGHTS_FILE, revision=src.revision, force=force, fetch_name=label)
            try:
                verify_safetensors(found.path)
            except TinyzooError as exc:
                hub.evict(found.path)
                raise TinyzooError(f"{src.repo_id}/{hub.WEIGHTS_FILE}: {exc}; it was removed from the cache, try again") from None
            path, detail, downloaded = found.path, f"commit {found.revision[:12]}", found.downloaded
        else:
            url = torchvision_url(src.name)
            if force:
                (hub.torch_checkpoints_dir() / url.rsplit("/", 1)[-1]).unlink(missing_ok=True)
            found = hub.download_checkpoint(url, fetch_name=label)
            path, detail, downloaded = found.path, f"sha256 {found.sha256[:12]}", found.downloaded
        state = "downloaded" if downloaded else "cached"
        named = label if label == str(src) else f"{label}: {src}"
        click.echo(f"{named} ({detail}, {format_size(path.stat().st_size)}) {state}: {path}")


@weights_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_command(as_json: bool) -> None:
    """Show the cached weights: Hub repos per revision, and torch.hub checkpoints."""
    from tinyzoo import hub

    entries = hub.list_cached()
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo(f"no cached weights in {hub.hub_cache_dir()} or {hub.torch_checkpoints_dir()}")
        return
    rows = [
        [e.cache, e.repo, (e.revision or "-")[:12], ",".join(e.refs) or "-", format_size(e.size), e.path]
        for e in entries
    ]
    print_table(rows, ["cache", "repo", "revision", "refs", "size", "path"])


@click.command("push")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.argument("repo_id")
@click.option("--revision", default=None, help="Branch to commit to (created if missing; default main).")
@click.option("--private", is_flag=True, default=None, help="Create the repo as private.")
@click.option("--message", "-m", default=None, help="Commit message.")
@click.option("--dry-run", is_flag=True, help="Check DIRECTORY and print what would be uploaded; upload nothing.")
def push_command(directory: str, repo_id: str, revision: str | None, private: bool | None, message: str | None, dry_run: bool) -> None:
    """Upload a `tinyzoo adapt --out` DIRECTORY (weights, config.json, model card) to Hub repo REPO_ID.

    DIRECTORY needs model.safetensors, config.json and a README.md whose front matter has
    library_name: tinyzoo, tags, datasets (tiny-imagenet) and base_model. Log in first
    (`hf auth login`) or set HF_TOKEN.
    """
    from tinyzoo import hub
    from tinyzoo.weights import REPO_ID_RE

    if not REPO_ID_RE.fullmatch(repo_id):
        raise TinyzooError(f"repo id {repo_id!r}: expected ORG/NAME, e.g. me/resnet18-tiny-imagenet")
    model_dir = hub.check_model_dir(directory)
    target = f"{hub.hub_endpoint()}/{repo_id} (revision {revision or hub.DEFAULT_REVISION}{', private' if private else ''})"
    if dry_run:
        click.echo(f"would upload {len(model_dir.files)} files to {target}:")
        print_table([[name, format_size(size)] for name, size in model_dir.files], ["file", "size"])
        card = model_dir.card
        click.echo("model card: " + "; ".join(f"{k}: {card.get(k)}" for k in ("library_name", "tags", "datasets", "base_model")))
        return
    url = hub.upload_model_dir(model_dir, repo_id, revision=revision, private=private, commit_message=message)
    click.echo(f"uploaded {len(model_dir.files)} files to {target}: {url}")


COMMANDS = [weights_group, push_command]
