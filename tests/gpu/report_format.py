"""The GPU check's report as Markdown: the check's own ``gpu-check.md`` and docs/benchmarks.md's GPU section."""

from __future__ import annotations

import json
from pathlib import Path


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def minutes(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def header(report: dict) -> str:
    env = report["sections"].get("environment", {}).get("result") or {}
    device = env.get("gpu") or env.get("device", "?")
    details = ", ".join(f"{k} {env[k]}" for k in ("capability", "memory_gib", "cuda", "cudnn") if env.get(k) is not None)
    lines = [f"Mode **{report['mode']}** on {device}" + (f" ({details})" if details else "")
             + f"; torch {env.get('torch', '?')}, Python {env.get('python', '?')}, tinyzoo {env.get('tinyzoo', '?')}"
             + (f" (commit {env['commit']})" if env.get("commit") else "") + f"; load average {fmt_load(env.get('load_average'))}.",
             f"Started {report['started']}, finished {report.get('finished') or '(still running)'}; "
             f"{report.get('elapsed_s', 0):.0f} s of a {report['budget_s']:.0f} s budget."
             + (f" **Interrupted** ({report['interrupted']})." if report.get("interrupted") else "")]
    return "\n".join(lines)


def fmt_load(load) -> str:
    return " ".join(f"{v:.2f}" for v in load) if load else "?"


def sections_table(report: dict) -> str:
    rows = ["| section | status | seconds |", "|---|---|---|"]
    for name, entry in report["sections"].items():
        status = entry.get("status", "?") + (f": {entry['reason']}" if entry.get("reason") else "") + (f": {entry['error']}" if entry.get("error") else "")
        rows.append(f"| {name} | {status[:200]} | {fmt(entry.get('seconds'), 1)} |")
    return "\n".join(rows)


def correctness_md(result: dict) -> str:
    tests = result.get("tests", [])
    rows = ["| test | outcome | seconds | measured |", "|---|---|---|---|"]
    for t in tests:
        measured = ", ".join(f"{k} = {v}" for k, v in t["properties"].items())
        outcome = t["outcome"] + (f": {t['message'][:120]}" if t["message"] and t["outcome"] != "passed" else "")
        rows.append(f"| `{t['name']}` | {outcome} | {t['seconds']:.1f} | {measured} |")
    failed = len(result.get("failures", []))
    return f"{result.get('passed', 0)} passed, {failed} failed, {result.get('skipped', 0)} skipped (pytest status {result.get('pytest_status')}).\n\n" + "\n".join(rows)


def data_md(result: dict) -> str:
    rows = ["| loader | augmentation | batch | images/s |", "|---|---|---|---|"]
    for r in result.get("resident", []) + [result["host"]] if result.get("host") else result.get("resident", []):
        rows.append(f"| {r['loader']} | {r['augmentation']} | {r['batch']} | {fmt(r['images_per_s'])} |")
    verdict = "met" if result.get("goal_met") else "not met"
    return (f"{fmt(result.get('train_images'))} generated 64x64 images (made in {result.get('generated_seconds')} s). "
            f"Goal {fmt(result.get('goal_images_per_s'))} img/s data-only: **{verdict}** (best {fmt(result.get('best_images_per_s'))}).\n\n"
            + "\n".join(rows))


def train_md(result: dict) -> str:
    rows = ["| setup | batch | img/s, loader-fed | img/s, one fixed batch | waits for data | warm-up |", "|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        rows.append(f"| {r['setup']} | {r['batch']} | {fmt(r['images_per_s'])} | {fmt(r['fixed_batch_images_per_s'])} | "
                    f"{100 * r['data_wait']:.1f}% | {r['warmup_seconds']:.1f} s |")
    return (f"{result.get('model', '')}" + (f"; torch.compile backend {result['backend']}" if result.get("backend") else "") + ".\n\n" + "\n".join(rows))


def eval_md(result: dict) -> str:
    rows = ["| views | crop | images | images/s |", "|---|---|---|---|"]
    rows += [f"| {r['views']} | {r['crop']} | {fmt(r['images'])} | {fmt(r['images_per_s'])} |" for r in result.get("rows", [])]
    return "ResNet-18 (small stem), `tinyzoo eval`'s loop (`run_model`); images/s counts images, each seen in every view.\n\n" + "\n".join(rows)


def projections_md(result: dict) -> str:
    rows = ["| recipe | projected | target | steps | frozen features | validation | checkpoints | warm-up |", "|---|---|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        if r.get("status") != "ok":
            rows.append(f"| {r['recipe']} | {r.get('status')} | | | | | | |")
            continue
        parts = {k: sum(s["seconds"][k] for s in r["stages"]) for k in ("steps", "feature_extraction", "validation", "checkpoints", "warmup")}
        target = r.get("target_seconds")
        verdict = "" if target is None else (" (met)" if r["seconds"] <= target else " (**not met**)")
        rows.append(f"| {r['recipe']} | **{minutes(r['seconds'])}** | {minutes(target) if target else '-'}{verdict} | "
                    + " | ".join(minutes(parts[k]) for k in ("steps", "feature_extraction", "validation", "checkpoints", "warmup")) + " |")
    cap = result.get("measured_batch_cap")
    note = f" Measured with batches of at most {cap} images, times scaled per image." if cap else ""
    return ("Projected wall time on the full dataset (100,000 training, 10,000 validation images) from measured step times "
            f"(tests/benchmarks/projection.py).{note}\n\n" + "\n".join(rows) + "\n\n" + stage_details(result))


def stage_details(result: dict) -> str:
    rows = ["| recipe | stage | micro-batches x batch | epochs | validations | cached features | seconds |", "|---|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        for s in r.get("stages", []):
            rows.append(f"| {r['recipe']} | {s['name']} | {fmt(s['micro_batches'])} x {s['batch']} | {s['epochs']} | {s['validations']} | "
                        f"{'yes' if s['cached_features'] else 'no'} | {fmt(s['total'], 1)} |")
    return "\n".join(rows)


RENDERERS = {"correctness": ("Correctness", correctness_md), "data": ("Data only", data_md), "train": ("Training", train_md),
             "compile": ("Training under torch.compile", train_md), "eval": ("Evaluation", eval_md),
             "targets": ("Recipes with a time target", projections_md), "projections": ("Other recipes", projections_md)}


def body(report: dict, level: str = "##") -> str:
    parts = [header(report), sections_table(report)]
    for name, (title, render) in RENDERERS.items():
        entry = report["sections"].get(name) or {}
        if entry.get("result"):
            parts.append(f"{level} {title}\n\n{render(entry['result'])}")
        if entry.get("traceback"):
            parts.append(f"{level} {title}: the failure\n\n```\n{entry['traceback'][-1500:]}\n```")
    return "\n\n".join(parts) + "\n"


def markdown(report: dict) -> str:
    """The check's own report (gpu-check.md)."""
    return "# tinyzoo GPU check\n\n" + body(report)


def render(json_path: Path, doc: Path | None) -> int:
    """Print the report as Markdown, or with ``doc`` rewrite that file's ``## GPU`` section from it."""
    report = json.loads(Path(json_path).read_text())
    if doc is None:
        print(markdown(report))
        return 0
    from doc_section import write_section

    env = report["sections"].get("environment", {}).get("result") or {}
    section = (f"## GPU\n\n`bash tests/gpu/check.sh` on {env.get('gpu', 'a GPU')}: the check's report, as written by "
               f"`python tests/gpu/check.py --render gpu-check.json --doc docs/benchmarks.md`.\n\n" + body(report, "###"))
    write_section(Path(doc), section)
    print(f"wrote the '## GPU' section of {doc}")
    return 0
