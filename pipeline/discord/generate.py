"""`personas discord generate`: examples for the profiled personas, split, as JSONL and an HF dataset.

Writes, for `--out training.jsonl`:

    training.jsonl                 the train split (TRL-ready: each row has `messages`)
    training.dev.jsonl             dev, test and held-out users beside it
    training.test.jsonl
    training.heldout_users.jsonl
    training-dataset/              the same rows as a Hugging Face dataset folder with a card
                                   (the project's DatasetWriter and card generator)
    training.report.json           counts: examples per split, template, persona; privacy

Each file is replaced atomically.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import DiscordConfig
from pipeline.datasets.card import CardSpec
from pipeline.datasets.writer import write_dataset
from pipeline.discord.examples import EXAMPLE_FIELDS, EXAMPLE_SCHEMA, ExampleBuilder, ExampleOptions
from pipeline.discord.extract import DiscordData
from pipeline.discord.profiles import Profile
from pipeline.discord.splits import HELDOUT_USERS, assign, heldout_personas
from pipeline.store.atomic import atomic_write_bytes

SPLIT_ORDER = ("train", "dev", "test", HELDOUT_USERS)

DISCORD_CONSENT = (
    "Built from a Discord community's chat. Messages are from real people who did not write them as "
    "training data: emails, phone numbers, IP addresses, keys/tokens and wallet addresses were scrubbed "
    "(counts in the statistics), bots and system messages dropped. Check the server's rules and ask its "
    "members before publishing; exclude semi-private channels."
)


@dataclass
class GenerateResult:
    paths: dict[str, Path]
    dataset_dir: Path
    counts: dict[str, Any] = field(default_factory=dict)


def jsonl_paths(out: Path) -> dict[str, Path]:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return {
        split: out if split == "train" else out.with_name(f"{stem}.{split}.jsonl") for split in SPLIT_ORDER
    }


def default_dataset_dir(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}-dataset")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    data = b"".join(orjson.dumps(row, default=_json_default) + b"\n" for row in rows)
    atomic_write_bytes(path, data)


def generate(
    data: DiscordData,
    profiles: list[Profile],
    out: Path,
    config: DiscordConfig,
    *,
    dataset_dir: Path | None = None,
    on_persona: Callable[[int], None] | None = None,
) -> GenerateResult:
    if not profiles:
        raise ValueError("no profiles: run `personas discord users` with users that meet --min-messages")
    builder = ExampleBuilder(
        data,
        profiles,
        ExampleOptions(
            examples_per_user=config.examples_per_user,
            context_window=config.context_window,
            max_variants_per_target=config.max_variants_per_target,
            seed=config.seed,
        ),
    )
    rows: list[dict[str, Any]] = []
    for profile in profiles:
        made = list(builder.for_persona(int(profile.user_id)))
        rows.extend(made)
        if on_persona is not None:
            on_persona(len(made))
    heldout = heldout_personas([int(p.user_id) for p in profiles], config.heldout_user_fraction, config.seed)
    splits = assign(
        [r["conversation_id"] for r in rows],
        [r["persona_user_id"] for r in rows],
        config.split_ratios,
        heldout,
        config.seed,
    )
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in (*config.split_ratios, HELDOUT_USERS)}
    for row, split in zip(rows, splits, strict=True):
        by_split[split].append(row)
    paths = jsonl_paths(out)
    for split, split_rows in by_split.items():
        path = paths.get(split) or out.with_name(f"{out.stem}.{split}.jsonl")
        paths[split] = path
        write_jsonl(path, split_rows)
    per_persona = Counter(r["persona"] for r in rows)
    counts: dict[str, Any] = {
        "examples": len(rows),
        "splits": {name: len(v) for name, v in by_split.items()},
        "personas": len(profiles),
        "heldout_personas": sorted(p.display_name for p in profiles if int(p.user_id) in heldout),
        "templates": dict(Counter(r["template"] for r in rows)),
        "per_persona": dict(per_persona.most_common()),
        "privacy_in_profiles": dict(builder.scrubber.counts),
        "privacy_at_extract": data.report.get("privacy", {}),
    }
    target = dataset_dir or default_dataset_dir(out)
    write_dataset(target, EXAMPLE_SCHEMA, {k: v for k, v in by_split.items() if v}, _card(counts, config))
    atomic_write_bytes(
        out.with_name(f"{out.stem}.report.json"), orjson.dumps(counts, option=orjson.OPT_INDENT_2)
    )
    return GenerateResult(paths, target, counts)


def _card(counts: dict[str, Any], config: DiscordConfig) -> CardSpec:
    statistics: dict[str, Any] = {"examples": counts["examples"], "personas": counts["personas"]}
    statistics.update({f"examples ({k})": v for k, v in counts["templates"].items()})
    statistics.update({f"scrubbed at extract: {k}": v for k, v in counts["privacy_at_extract"].items()})
    return CardSpec(
        pretty_name="Discord persona instructions",
        description=(
            "Instruction-tuning examples that teach a model to write as specific members of a Discord "
            "community: each example is one real message, with the conversation before it as context and a "
            "system prompt describing the person (computed from their messages)."
        ),
        tags=["discord", "persona", "chatml", "sft"],
        fields=EXAMPLE_FIELDS,
        format_notes=(
            "Splits: train/dev/test by conversation (no conversation in two of them), "
            f"{config.split_ratios}; `heldout_users` holds every example of "
            f"{config.heldout_user_fraction:.0%} of the personas (unseen as targets in the other splits; "
            "their messages can appear as context there)."
        ),
        statistics=statistics,
        provenance=(
            "Discord exports (DiscordChatExporter JSON, discord-summarizer compact JSON or ai-news raw JSON) "
            "through `personas discord extract | users | generate` of naptha-personas."
        ),
        consent=DISCORD_CONSENT,
    )
