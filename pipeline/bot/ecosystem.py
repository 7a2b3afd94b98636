"""Several bots, one hand-off: their answered prompts become the prompts of reverse distillation.

Each bot of a bot.toml has its own persona, follow list and adapter (served under
`rl_loop.served_name`). `distill_prompts` gathers what the bots were asked (the user turn of every
post they wrote, posted or dry run) into a ChatML JSONL file whose trained assistant message is
the bot's own answer (the reference), deduplicated by prompt across bots. `personas train distill`
(pipeline.train.distill) then asks every bot adapter (the teachers) for its reply to each prompt
and trains a larger student on the answers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
from sqlalchemy import select

from pipeline.bot.config import BotConfig
from pipeline.bot.rl_loop import served_name
from pipeline.bot.store import BotStore, Post
from pipeline.store.atomic import atomic_write_bytes


def distill_prompts(bots: list[BotConfig], out: Path) -> tuple[int, list[str]]:
    """Write the hand-off file; returns (rows, teacher model names)."""
    seen: set[str] = set()
    lines: list[bytes] = []
    for bot in bots:
        store = BotStore(bot.database_url)
        try:
            with store.session() as s:
                posts = s.scalars(
                    select(Post)
                    .where(Post.bot == bot.name, Post.status.in_(("posted", "dry_run")))
                    .order_by(Post.id)
                ).all()
        finally:
            store.close()
        for post in posts:
            # the persona's system prompt stays out: each teacher brings its own voice
            turns = [m for m in post.prompt or [] if m.get("role") == "user"]
            if not turns:
                continue
            key = hashlib.sha256(orjson.dumps(turns)).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            messages = [{"role": "user", "content": m["content"], "train": False} for m in turns]
            messages.append({"role": "assistant", "content": post.content, "train": True})
            lines.append(orjson.dumps({"messages": messages, "bot": bot.name}))
    atomic_write_bytes(out, b"".join(line + b"\n" for line in lines))
    return len(lines), [served_name(b) for b in bots]
