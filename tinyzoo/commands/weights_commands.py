"""``tinyzoo weights fetch``, ``weights list`` and ``push``: the weight caches and the Hub.

torch and huggingface_hub are imported inside the command bodies, never at module level.
"""

from __future__ import annotations

import click

from tinyzoo.console import format_size, print_json, print_table


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
    from tinyzoo.weights import fetch_weights, named_source

    targets = [named_source(name) for name in dict.fromkeys(names)]  # unknown names fail before any download
    for label, src in targets:
        fetched = fetch_weights(src, force=force, fetch_name=label)
        if fetched is None:
            click.echo(f"{label}: no pretrained weights (trained from scratch); nothing to fetch")
            continue
        state = "downloaded" if fetched.downloaded else "cached"
        named = label if label == str(src) else f"{label}: {src}"
        click.echo(f"{named} ({fetched.detail}, {format_size(fetched.path.stat().st_size)}) {state}: {fetched.path}")


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

    hub.check_repo_id(repo_id)
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
