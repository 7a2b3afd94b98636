"""ChatML examples from conversation paths, with branch masking and per-persona perspectives.

An example is one path (a branch, a two-party segment, or a window of a long one) seen
from one participant: the **persona** speaks as `assistant`, everyone else as `user`,
each message with its speaker's `name`. Every message also carries `train` (a per-message
loss flag, in the style of axolotl's `message_field_training`), the tweet ids it was made
from, and its time.

**Branch masking.** All branches of a tree are kept, but shared prefixes must not be
trained once per branch. A masker per dataset remembers which units were trained: a
persona's unit is `train=True` in the first example (in depth-first order) where it
appears as that persona's message, and context (`train=False`) everywhere else. Every
unit appears in some path, and in that path its author is a participant, so every tweet
is trained exactly once in a dataset that covers all accounts (tests/test_chatml_properties.py
proves it on generated trees). Paths with a single speaker (a self-thread nobody answered)
are threads, not conversations, and are left out. An example where the persona has nothing left to train
is not emitted.

Consecutive units of one speaker become one message joined by " ||| ", unless their
`train` flags differ (an author who replied twice to their own tweet); then they stay
separate, so no message mixes trained and untrained tweets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa

from pipeline.datasets.conversations import Tree, windows
from pipeline.datasets.render import person_name

JOIN = " ||| "

TRAIN_FLAG_CHAT_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.get('train', true) %}{%- generation %}{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endgeneration %}{%- else %}{{- message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML whose loss mask follows the per-message `train` flags: with TRL's SFTTrainer, set
`tokenizer.chat_template = TRAIN_FLAG_CHAT_TEMPLATE` and `assistant_only_loss=True`, and only the
assistant messages marked `train` are learned (checked with TRL 1.16 on a tiny Qwen2)."""
DEFAULT_SYSTEM_TEMPLATE = "User is {user}. Assistant is {assistant}. Date is {date}."

MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("name", pa.string()),
        ("train", pa.bool_()),
        ("tweet_ids", pa.list_(pa.int64())),
        ("created_at", pa.timestamp("ms", tz="UTC")),
    ]
)

CHATML_SCHEMA = pa.schema(
    [
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("example_id", pa.string()),
        pa.field("conversation_id", pa.int64()),
        pa.field("kind", pa.string()),
        pa.field("persona", pa.string()),
        pa.field("persona_account_id", pa.int64()),
        pa.field("participants", pa.list_(pa.string())),
        pa.field("parent_missing", pa.bool_()),
        pa.field("num_messages", pa.int32()),
        pa.field("num_trained", pa.int32()),
        pa.field("quality", pa.float64()),
        pa.field("first_at", pa.timestamp("ms", tz="UTC")),
        pa.field("last_at", pa.timestamp("ms", tz="UTC")),
    ]
)

CHATML_FIELDS = {
    "messages": "the conversation: `role` (system/user/assistant), `content`, `name` (speaker), "
    "`train` (loss on this message or context only), `tweet_ids` and `created_at` of the source tweets",
    "example_id": "`{conversation_id}:{path}:{window}:{persona account}`",
    "conversation_id": "id of the tree's root tweet (splits never separate a tree)",
    "kind": "`two_party` (two accounts alternating) or `multi_party` (a root-to-leaf branch)",
    "persona": "the speaker shown as `assistant`",
    "persona_account_id": "that speaker's account id",
    "participants": "every speaker of the example",
    "parent_missing": "the root replies to a tweet that is not in the archive",
    "num_messages": "messages, including the system message",
    "num_trained": "messages with `train` true",
    "quality": "mean quality score (0-1, streaming t-digest percentiles) of the trained tweets",
    "first_at": "time of the first message",
    "last_at": "time of the last message",
}


@dataclass
class Masker:
    """Which units (by first tweet id) a dataset has already trained on."""

    trained: set[int] = field(default_factory=set)


@dataclass
class RenderedTree:
    """A tree's units with their rendered text (empty tweets removed) and the metadata examples need."""

    tree: Tree
    unit_text: dict[int, str]  # unit id -> text (tweets joined with JOIN); absent when all tweets were empty
    unit_tweets: dict[int, list[int]]  # unit id -> tweet ids kept
    names: dict[int, tuple[str, str | None]]  # account id -> (handle, display name)
    quality: dict[int, float]  # tweet id -> composite quality (NaN when unknown)
    texts: list[str] = field(default_factory=list)  # rendered text per tree row ("" = nothing left)


@dataclass
class ExampleConfig:
    system_template: str = DEFAULT_SYSTEM_TEMPLATE
    max_turns: int = 24
    overlap: int = 8
    name_style: str = "alternate"  # alternate | handle | display


class ExampleCounter:
    """Conversation index shared across datasets: it decides display name vs handle (alternation)."""

    def __init__(self) -> None:
        self.value = 0

    def style(self, config: ExampleConfig) -> str:
        if config.name_style != "alternate":
            return config.name_style
        style = "display" if self.value % 2 == 0 else "handle"
        self.value += 1
        return style


@lru_cache(maxsize=65536)
def _iso_date(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _name_table(rendered: RenderedTree, style: str) -> dict[int, str]:
    return {
        account: person_name(handle, display, style) for account, (handle, display) in rendered.names.items()
    }


def perspective_examples(
    rendered: RenderedTree,
    paths: list[list[int]],
    *,
    kind: str,
    masker: Masker,
    personas: set[int] | None,
    config: ExampleConfig,
    counter: ExampleCounter,
) -> Iterator[dict[str, Any]]:
    """Rows (CHATML_SCHEMA) for every path window and every participant persona with something to train."""
    tree = rendered.tree
    unit_author = [unit.author for unit in tree.units]
    names_by_style: dict[str, dict[int, str]] = {}
    for path_no, path in enumerate(paths):
        units = [u for u in path if u in rendered.unit_text]
        if len({unit_author[u] for u in units}) < 2:
            continue  # one person talking to themselves is a thread, not a conversation
        # Windows count turns (a speaker's consecutive units), so every window holds two speakers or more.
        turns: list[list[int]] = []
        for u in units:
            if turns and unit_author[turns[-1][-1]] == unit_author[u]:
                turns[-1].append(u)
            else:
                turns.append([u])
        for window_no, (start, stop) in enumerate(windows(len(turns), config.max_turns, config.overlap)):
            window = [u for turn in turns[start:stop] for u in turn]
            authors = [unit_author[u] for u in window]
            for persona in dict.fromkeys(authors):
                if personas is not None and persona not in personas:
                    continue
                trainable = [
                    u
                    for u, a in zip(window, authors, strict=True)
                    if a == persona and u not in masker.trained
                ]
                if not trainable:
                    continue
                masker.trained.update(trainable)
                style = counter.style(config)
                if style not in names_by_style:
                    names_by_style[style] = _name_table(rendered, style)
                yield _example(
                    rendered,
                    window,
                    authors,
                    persona,
                    set(trainable),
                    kind=kind,
                    example_id=f"{tree.root_id}:{path_no}:{window_no}:{persona}",
                    names=names_by_style[style],
                    config=config,
                )


def _example(
    rendered: RenderedTree,
    window: list[int],
    authors: list[int],
    persona: int,
    trained: set[int],
    *,
    kind: str,
    example_id: str,
    names: dict[int, str],
    config: ExampleConfig,
) -> dict[str, Any]:
    """One example row. Two-party examples keep strict alternation: where two turns of one speaker
    cannot merge (one trained, one context), the context turn is dropped, as it is trained elsewhere.

    Times are epoch milliseconds; Arrow stores them as UTC timestamps (no datetime objects per row).
    """
    tree = rendered.tree
    rows = tree.rows
    alternate = kind == "two_party"
    messages: list[dict[str, Any]] = []
    last_author: int | None = None
    last_train: bool | None = None
    last_ms = 0
    for unit_id, author in zip(window, authors, strict=True):
        train = unit_id in trained
        unit = tree.units[unit_id]
        tweet_ids = rendered.unit_tweets[unit_id]
        created = rows[unit.tweets[0]]["created_ms"]
        last_ms = max(last_ms, rows[unit.tweets[-1]]["created_ms"])
        text = rendered.unit_text[unit_id]
        if messages and author == last_author and train == last_train:
            previous = messages[-1]
            previous["content"] += JOIN + text
            previous["tweet_ids"].extend(tweet_ids)
        elif messages and author == last_author and alternate:
            if train:  # the earlier turn was context: let the trained one take its place
                messages[-1].update(content=text, train=True, tweet_ids=list(tweet_ids), created_at=created)
            # else: this turn is context already trained elsewhere; leaving it out keeps the alternation
        else:
            messages.append(
                {
                    "role": "assistant" if author == persona else "user",
                    "content": text,
                    "name": names[author],
                    "train": train,
                    "tweet_ids": list(tweet_ids),
                    "created_at": created,
                }
            )
        last_author, last_train = author, messages[-1]["train"]
    speakers = list(dict.fromkeys(authors))
    others = [names[a] for a in speakers if a != persona]
    system = config.system_template.format(
        user=", ".join(others) if others else "nobody",
        assistant=names[persona],
        date=_iso_date(last_ms // 86_400_000),
    )
    messages.insert(
        0,
        {
            "role": "system",
            "content": system,
            "name": None,
            "train": False,
            "tweet_ids": [],
            "created_at": None,
        },
    )
    scores = [rendered.quality.get(t, float("nan")) for u in trained for t in rendered.unit_tweets[u]]
    known = [s for s in scores if s == s]
    return {
        "messages": messages,
        "example_id": example_id,
        "conversation_id": tree.root_id,
        "kind": kind,
        "persona": rendered.names[persona][0],
        "persona_account_id": persona,
        "participants": [rendered.names[a][0] for a in speakers],
        "parent_missing": tree.parent_missing,
        "num_messages": len(messages),
        "num_trained": sum(1 for m in messages if m["train"]),
        "quality": sum(known) / len(known) if known else None,
        "first_at": messages[1]["created_at"],
        "last_at": last_ms,
    }
