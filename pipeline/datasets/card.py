"""The one dataset card generator: Hugging Face YAML metadata plus a readable body.

The YAML carries what the Hub and `datasets.load_dataset` read (configs with the data
files of each split, features, split sizes, license, size category, task, language,
tags); the body carries what a researcher needs to judge the data: a description,
the format of each field, statistics, provenance and consent.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
]

DEFAULT_CONSENT = (
    "Built from archives their authors chose to share (the Community Archive is consent-based and "
    "hides tombstoned accounts), or from the user's own exports. Respect deletions: rows flagged "
    "`deleted` in the source store are excluded. Do not redistribute data of people who did not consent."
)


class SplitInfo(BaseModel):
    name: str
    num_examples: int
    num_bytes: int


class CardSpec(BaseModel):
    pretty_name: str
    description: str
    license: str = Field("other", description="SPDX id or 'other'; the data's terms are its authors'")
    language: list[str] = Field(default_factory=lambda: ["en"])
    task_categories: list[str] = Field(default_factory=lambda: ["text-generation"])
    tags: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict, description="column -> what it holds")
    format_notes: str = ""
    statistics: dict[str, Any] = Field(default_factory=dict)
    provenance: str = ""
    consent: str = DEFAULT_CONSENT
    extra: dict[str, str] = Field(default_factory=dict, description="section title -> markdown")


def size_category(n: int) -> str:
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>100M"


def features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    """The `dataset_info.features` list the Hub expects, from the Arrow schema."""
    from datasets import Features

    yaml_list: list[dict[str, Any]] = Features.from_arrow_schema(schema)._to_yaml_list()
    return yaml_list


def card_metadata(spec: CardSpec, schema: pa.Schema, splits: list[SplitInfo]) -> dict[str, Any]:
    total = sum(s.num_examples for s in splits)
    return {
        "pretty_name": spec.pretty_name,
        "license": spec.license,
        "language": spec.language,
        "task_categories": spec.task_categories,
        "tags": spec.tags,
        "size_categories": [size_category(total)],
        # a dataset with no rows has no data files to name (and nothing `load_dataset` could load)
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s.name, "path": f"data/{s.name}-*"} for s in splits],
            }
        ]
        if splits
        else [],
        "dataset_info": {
            "features": features_yaml(schema),
            "splits": [
                {"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.num_examples} for s in splits
            ],
            "download_size": sum(s.num_bytes for s in splits),
            "dataset_size": sum(s.num_bytes for s in splits),
        },
    }


def format_number(value: Any) -> str:
    """1,234 for ints, 4 significant digits for floats, str() for the rest."""
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_card(spec: CardSpec, schema: pa.Schema, splits: list[SplitInfo]) -> str:
    """The README.md of a dataset folder."""
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(**card_metadata(spec, schema, splits))
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {spec.pretty_name}\n", spec.description.strip() + "\n"]
    parts.append("## Splits\n\n| split | examples | bytes |\n|---|---:|---:|")
    parts.extend(f"| {s.name} | {s.num_examples:,} | {s.num_bytes:,} |" for s in splits)
    parts.append("")
    if spec.fields:
        parts.append("## Format\n\n| field | content |\n|---|---|")
        parts.extend(f"| `{name}` | {text} |" for name, text in spec.fields.items())
        parts.append("")
    if spec.format_notes:
        parts.append(spec.format_notes.strip() + "\n")
    if spec.statistics:
        parts.append("## Statistics\n\n| measure | value |\n|---|---:|")
        parts.extend(f"| {name} | {format_number(value)} |" for name, value in spec.statistics.items())
        parts.append("")
    for title, body in spec.extra.items():
        parts.append(f"## {title}\n\n{body.strip()}\n")
    if spec.provenance:
        parts.append(f"## Provenance\n\n{spec.provenance.strip()}\n")
    parts.append(f"## Consent and use\n\n{spec.consent.strip()}\n")
    return "\n".join(parts)
