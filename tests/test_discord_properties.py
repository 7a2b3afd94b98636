"""Properties over generated channels: splits are disjoint, no bot or system message is ever a target."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.config import DiscordConfig
from pipeline.discord.extract import extract, read_data
from pipeline.discord.generate import generate
from pipeline.discord.profiles import build_profiles
from pipeline.discord.splits import HELDOUT_USERS, assign, heldout_personas
from pipeline.discord.users import top_users, user_stats
from tests.support.discord import Msg, Person, compact, message_id, write

HUMANS = [Person(str(200000000000000000 + i), f"user{i}", f"User {i}") for i in range(6)]
BOTS = [
    Person("300000000000000001", "Eliza", "Eliza", bot=True),
    Person("300000000000000002", "tip.cc", None, bot=True),
]
SYSTEM_KINDS = ["ChannelPinnedMessage", "ThreadCreated", "GuildMemberJoin", "20"]
WORDS = [
    "agent",
    "plugin",
    "twitter",
    "build",
    "node",
    "docker",
    "memory",
    "model",
    "token",
    "deploy",
    "cache",
    "error",
    "fixed",
    "works",
]

message_spec = st.tuples(
    st.integers(0, len(HUMANS) + len(BOTS) - 1),  # author
    st.floats(0.1, 25.0),  # minutes since the previous message
    st.sampled_from(["Default"] * 6 + ["Reply"] * 3 + SYSTEM_KINDS),
    st.integers(0, 50),  # reply distance
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=8),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message_spec, min_size=30, max_size=150), st.integers(0, 3))
def test_no_bot_or_system_target_and_disjoint_splits(
    specs: list[tuple[int, float, str, int, list[str]]], seed: int
) -> None:
    people = HUMANS + BOTS
    messages: list[Msg] = []
    t = 0.0
    for index, (author, gap, kind, distance, words) in enumerate(specs):
        t += gap
        reply_to = index - 1 - distance if kind == "Reply" and index - 1 - distance >= 0 else None
        messages.append(
            Msg(
                people[author],
                t,
                " ".join(words),
                kind=kind if kind != "Reply" or reply_to is not None else "Default",
                reply_to=reply_to,
                seq=index,
            )
        )
    bad_ids = {int(message_id(m)) for m in messages if m.author.bot or m.kind not in ("Default", "Reply")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root / "in" / "chat.json", compact(messages, people=people))
        config = DiscordConfig(
            min_user_messages=1, top_users=6, examples_per_user=15, seed=seed, heldout_user_fraction=0.34
        )
        extract([root / "in"], root / "data", config)
        data = read_data(root / "data")
        chosen = top_users(user_stats(data), min_messages=1, top=6)
        if not chosen:
            return
        result = generate(data, build_profiles(data, chosen), root / "t.jsonl", config)
        conversations: dict[str, set[int]] = {}
        personas: dict[str, set[str]] = {}
        meaningful = dict(zip(data.messages["id"], data.messages["target_block"], strict=True))
        for split, path in result.paths.items():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                target = row["messages"][-1]["tweet_ids"][0]
                assert target not in bad_ids
                assert meaningful[target] is None
                assert row["messages"][-1]["train"] and not any(m["train"] for m in row["messages"][:-1])
                conversations.setdefault(split, set()).add(row["conversation_id"])
                event("made examples")
                personas.setdefault(split, set()).add(row["persona"])
    regular = [s for s in ("train", "dev", "test") if s in conversations]
    for i, a in enumerate(regular):
        for b in regular[i + 1 :]:
            assert not conversations[a] & conversations[b]
    held = personas.get(HELDOUT_USERS, set())
    for split in regular:
        assert not held & personas[split]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 10**18), st.integers(1, 30)), min_size=1, max_size=300),
    st.floats(0, 0.9),
    st.integers(0, 100),
)
def test_assign_group_disjoint(pairs: list[tuple[int, int]], fraction: float, seed: int) -> None:
    conversations = [c for c, _ in pairs]
    persona_ids = [p for _, p in pairs]
    held = heldout_personas(persona_ids, fraction, seed)
    splits = assign(conversations, persona_ids, {"train": 0.8, "dev": 0.1, "test": 0.1}, held, seed)
    seen: dict[int, str] = {}
    for conversation, persona, split in zip(conversations, persona_ids, splits, strict=True):
        assert (split == HELDOUT_USERS) == (persona in held)
        if split != HELDOUT_USERS:
            assert seen.setdefault(conversation, split) == split
    if fraction > 0 and len(set(persona_ids)) >= 2:
        assert held
