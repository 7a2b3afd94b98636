"""`personas report`: one self-contained HTML page with plots of the last build (matplotlib, PNGs inlined)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import orjson

from pipeline.datasets.build import STATS_FILE, BuildReport
from pipeline.datasets.card import format_number
from pipeline.store.atomic import atomic_write_bytes

SIGNAL_TITLES = {
    "quality": "composite quality",
    "p_likes": "likes percentile",
    "p_retweets": "retweets percentile",
    "p_engagement": "reach-normalized likes percentile",
    "p_followers": "author followers percentile",
    "p_length": "length percentile",
}


def load_report(datasets_dir: Path) -> BuildReport:
    path = datasets_dir / STATS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {STATS_FILE} in {datasets_dir}: run `personas build` first")
    return BuildReport.model_validate(orjson.loads(path.read_bytes()))


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _figures(report: BuildReport) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: list[tuple[str, str]] = []

    present = [k for k in SIGNAL_TITLES if k in report.histograms]
    if present:
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
        for ax, key in zip(axes.flat, present, strict=False):
            hist = report.histograms[key]
            edges = hist["edges"]
            ax.bar(edges[:-1], hist["counts"], width=edges[1] - edges[0], align="edge", color="#4c72b0")
            ax.set_title(SIGNAL_TITLES[key])
            ax.set_xlim(0, 1)
        for ax in list(axes.flat)[len(present) :]:
            ax.axis("off")
        fig.suptitle("Quality scores (each tweet against all earlier tweets)")
        figures.append(("Quality score distributions", _png(fig)))
        plt.close(fig)

    lengths = {k.split(":")[0]: v for k, v in report.histograms.items() if k.endswith(":messages")}
    if lengths:
        fig, ax = plt.subplots(figsize=(9, 4))
        for name, hist in lengths.items():
            edges = hist["edges"]
            ax.step(edges[:-1], hist["counts"], where="post", label=name)
        ax.set_xlabel("messages per example (without the system message)")
        ax.set_ylabel("examples")
        ax.set_yscale("log")
        ax.legend()
        figures.append(("Conversation lengths", _png(fig)))
        plt.close(fig)

    split_names = sorted({s for d in report.datasets.values() for s in d.splits})
    if split_names:
        fig, ax = plt.subplots(figsize=(9, 4))
        names = list(report.datasets)
        width = 0.8 / len(split_names)
        for i, split in enumerate(split_names):
            ax.bar(
                [j + i * width for j in range(len(names))],
                [report.datasets[n].splits.get(split, 0) for n in names],
                width=width,
                label=split,
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=15)
        ax.set_ylabel("examples")
        ax.legend()
        figures.append(("Examples per dataset and split", _png(fig)))
        plt.close(fig)

    prefs = report.datasets.get("prefs")
    if prefs and prefs.stats.get("pairs"):
        kinds = {k.removesuffix(" pairs"): v for k, v in prefs.stats.items() if k.endswith(" pairs")}
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(list(kinds), list(kinds.values()), color="#55a868")
        ax.set_ylabel("pairs")
        figures.append(("Preference pairs by kind", _png(fig)))
        plt.close(fig)

    if report.skipped:
        items = sorted(report.skipped.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(9, 0.5 + 0.35 * len(items)))
        ax.barh([k for k, _ in items], [v for _, v in items], color="#c44e52")
        ax.set_xlabel("count")
        figures.append(("Skipped or repaired (counted reasons)", _png(fig)))
        plt.close(fig)

    refs = report.references
    if refs.get("urls_total"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ok, total = refs.get("urls_ok", 0), refs["urls_total"]
        ax.bar(["extracted", "failed"], [ok, total - ok], color=["#55a868", "#c44e52"])
        ax.set_title(f"linked articles: {ok / total:.1%} extracted")
        figures.append(("URL extraction", _png(fig)))
        plt.close(fig)
    return figures


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td class=n>{html.escape(format_number(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def render_report(report: BuildReport) -> str:
    overview = {
        "built": report.built_at.isoformat(timespec="seconds"),
        "build time (s)": round(report.seconds, 1),
        "store": report.store,
        "tweets": report.tweets,
        "conversation trees": report.trees,
        "trees whose root replies to a missing tweet": report.trees_parent_missing,
        "split": report.split_mode,
    }
    sections = [f"<h2>Overview</h2>{_table(overview)}"]
    for name, stats in report.datasets.items():
        rows = {**stats.stats, **{f"split {k}": v for k, v in stats.splits.items()}}
        sections.append(f"<h2>{html.escape(name)}</h2>{_table(rows)}")
    if report.quality_quantiles:
        quantiles = {f"{k} {q}": v for k, qs in report.quality_quantiles.items() for q, v in qs.items()}
        sections.append(f"<h2>Score quantiles</h2>{_table(quantiles)}")
    if report.references:
        sections.append(f"<h2>Hydration</h2>{_table(report.references)}")
    for title, png in _figures(report):
        sections.append(
            f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td{border-bottom:1px solid #ddd;padding:3px 12px}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>naptha-personas datasets</title>"
        f"<style>{style}</style></head><body><h1>Datasets report</h1>{''.join(sections)}</body></html>"
    )


def write_report(datasets_dir: Path, destination: Path | None = None) -> Path:
    report = load_report(datasets_dir)
    destination = destination or datasets_dir / "report.html"
    atomic_write_bytes(destination, render_report(report).encode())
    return destination
