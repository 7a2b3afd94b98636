"""Jump start: the followed accounts' posts as an SFT set, then LoRA SFT of the persona's base.

Download is round robin (one page of up to 100 posts per account per turn) so every followed
account is represented even when the budget runs out early. It stops at the token budget
(4 characters per token), at the memory cap (bytes downloaded), or when every timeline is
exhausted. Posts go to `0.json`, `1.json`, ... shards (JSON lists) of about `sft.shard_bytes`,
flushed as they fill, so memory holds at most one shard. The followed accounts' profiles are
stored in the `community` table on the way (summaries are left to the engagement loop).

SFT: each post becomes a ChatML example (persona system prompt, "write a post like @author",
the post as the trained assistant turn), trained by pipeline.train.sft with LoRA on
q_proj/k_proj/v_proj into `<checkpoint_dir>/<bot>/jumpstart`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from pipeline.bot.community import polish, stats_summary, word_counts
from pipeline.bot.config import BotConfig
from pipeline.bot.store import BotStore, CommunityMember, utcnow
from pipeline.bot.timeline import persona_system
from pipeline.bot.x import XInteractor, XUser
from pipeline.inference import ChatClient
from pipeline.store.atomic import atomic_write_bytes

log = logging.getLogger("pipeline.bot")
CHARS_PER_TOKEN = 4
SUMMARY_MAX_AGE = timedelta(days=1)


@dataclass
class Download:
    posts: int = 0
    tokens: int = 0
    bytes: int = 0
    shards: list[Path] = field(default_factory=list)
    stopped_by: str = "exhausted"
    per_account: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def refresh_community(
    bot: BotConfig,
    store: BotStore,
    x: XInteractor,
    *,
    chat: ChatClient | None = None,
    summarize: bool = True,
    summary_max_age: timedelta = SUMMARY_MAX_AGE,
    recent_posts: int = 50,
) -> dict[str, str]:
    """Look up the followed handles (100 per request); store their profiles; return handle -> user id.

    With `summarize`, accounts whose `summary` is missing or older than `summary_max_age` get one
    (one request each for their recent posts): pipeline.bot.community's statistics, rewritten by
    the model when `chat` is given."""
    wanted = {h.lower(): h for h in bot.follow}
    ids: dict[str, str] = {}
    users = x.users(bot.follow) if bot.follow else []
    now = utcnow()
    stale: list[XUser] = []
    with store.session() as s:
        for user in users:
            handle = wanted.get(user.username.lower(), user.username)
            ids[handle] = user.id
            row = s.scalars(
                select(CommunityMember).where(
                    CommunityMember.bot == bot.name, CommunityMember.handle == user.username
                )
            ).one_or_none()
            if row is None:
                row = CommunityMember(bot=bot.name, handle=user.username)
                s.add(row)
            row.user_id, row.followers, row.following = user.id, user.followers, user.following
            row.bio, row.location, row.updated_at = user.description, user.location, now
            if summarize and (
                row.summary is None or row.summary_at is None or now - row.summary_at > summary_max_age
            ):
                stale.append(user)
    if not stale:
        return ids
    recent = {user.username: x.user_tweets(user.id, max_results=recent_posts)[0] for user in stale}
    counts = {u.username: word_counts(u.description, recent[u.username]) for u in stale}
    total = sum(counts.values(), Counter[str]())
    summaries = {}
    for user in stale:
        posts = recent[user.username]
        stats = stats_summary(user.description, posts, total - counts[user.username])
        summaries[user.username] = (
            polish(chat, user.username, user.description, posts, stats) if chat else stats
        )
    with store.session() as s:
        for row in s.scalars(
            select(CommunityMember).where(
                CommunityMember.bot == bot.name, CommunityMember.handle.in_(summaries)
            )
        ):
            row.summary, row.summary_at = summaries[row.handle], now
    return ids


def download(
    bot: BotConfig,
    store: BotStore,
    x: XInteractor,
    out: Path,
    *,
    token_budget: int | None = None,
    memory_cap_bytes: int | None = None,
    shard_bytes: int | None = None,
) -> Download:
    budget = token_budget or bot.sft.token_budget
    cap = memory_cap_bytes or bot.sft.memory_cap_bytes
    shard_limit = shard_bytes or bot.sft.shard_bytes
    result = Download()
    accounts = refresh_community(bot, store, x, summarize=False)  # the download reads their posts anyway
    result.missing = [h for h in bot.follow if h not in accounts]
    cursors: dict[str, str | None] = dict.fromkeys(accounts)
    active = list(accounts)
    buffer: list[bytes] = []
    buffered = 0
    out.mkdir(parents=True, exist_ok=True)

    def flush() -> None:
        nonlocal buffer, buffered
        if buffer:
            path = out / f"{len(result.shards)}.json"
            atomic_write_bytes(path, b"[" + b",".join(buffer) + b"]")
            result.shards.append(path)
            buffer, buffered = [], 0

    while active:
        for handle in list(active):
            page, token = x.user_tweets(accounts[handle], max_results=100, pagination_token=cursors[handle])
            for post in page:
                record = orjson.dumps(
                    {
                        "id": post.id,
                        "author": handle,
                        "text": post.text,
                        "created_at": post.created_at.isoformat() if post.created_at else None,
                    }
                )
                buffer.append(record)
                buffered += len(record)
                result.posts += 1
                result.bytes += len(record)
                result.tokens += len(post.text) // CHARS_PER_TOKEN + 1
                result.per_account[handle] = result.per_account.get(handle, 0) + 1
                if buffered >= shard_limit:
                    flush()
                if result.tokens >= budget:
                    result.stopped_by = "token_budget"
                elif result.bytes >= cap:
                    result.stopped_by = "memory_cap"
                if result.stopped_by != "exhausted":
                    flush()
                    return result
            cursors[handle] = token
            if token is None or not page:
                active.remove(handle)
    flush()
    return result


def sft_rows(bot: BotConfig, shards: list[Path]) -> list[dict[str, Any]]:
    system = persona_system(bot.persona)
    rows = []
    for shard in shards:
        for post in orjson.loads(shard.read_bytes()):
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": system, "train": False},
                        {
                            "role": "user",
                            "content": f"Write a post like @{post['author']} would.",
                            "train": False,
                        },
                        {"role": "assistant", "content": post["text"], "train": True},
                    ]
                }
            )
    return rows


def train_jumpstart(bot: BotConfig, shards: list[Path], *, overrides: dict[str, Any] | None = None) -> Path:
    """LoRA SFT (q_proj, k_proj, v_proj) of the base on the downloaded posts; returns the adapter folder."""
    from pipeline.train.config import SFTRunConfig
    from pipeline.train.sft import train_sft

    folder = bot.model.checkpoint_dir / bot.name / "jumpstart"
    data = folder / "sft.jsonl"
    atomic_write_bytes(data, b"".join(orjson.dumps(r) + b"\n" for r in sft_rows(bot, shards)))
    config = SFTRunConfig.model_validate(
        {
            "base": bot.model.base,
            "data": data,
            "eval_split": None,
            "out": folder / "adapter",
            "report_to": ["none"],
            "lora": {"targets": ["q_proj", "k_proj", "v_proj"]},
            **(overrides or {}),
        }
    )
    return Path(train_sft(config, show_progress=False).out)
