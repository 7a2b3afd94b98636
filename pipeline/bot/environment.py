"""The X environment: agents observe the home timeline and act (post, reply, skip) through it.

Same store and safety rules as the bot: actions go through `Publisher` (dry run by default,
caps, duplicates, content filter, kill switch, action log), observations come from
`XInteractor.home_timeline` minus what this bot already saw. The Naptha module
`environments/x_environment` calls `run_x_environment` with a node's module_run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from pipeline.bot.config import BotConfig, XCredentials, load_bots, select_bot
from pipeline.bot.safety import Publisher
from pipeline.bot.store import BotStore, Post, SeenTweet
from pipeline.bot.timeline import summoned
from pipeline.bot.x import XError, XInteractor

log = logging.getLogger("pipeline.bot")


class Observation(BaseModel):
    id: str
    author: str | None
    text: str
    created_at: str | None
    may_reply: bool = Field(description="X lets the bot reply: the author mentioned it or quoted its post")


class XAction(BaseModel):
    type: Literal["post", "reply", "skip"]
    text: str = ""
    in_reply_to: str | None = Field(None, description="the observed post answered (reply) or skipped")
    reason: str = Field("", description="why the agent acts: kept in the action log")
    prompt: list[dict[str, str]] | None = Field(None, description="the messages the text came from (RL rows)")


class ActionResult(BaseModel):
    type: str
    status: str  # posted | dry_run | blocked | refused | failed | skipped
    reason: str
    tweet_id: str | None = None


class XEnvironment:
    def __init__(self, bot: BotConfig, store: BotStore, x: XInteractor, *, dry_run: bool | None = None):
        self.bot, self.store, self.x = bot, store, x
        self.publisher = Publisher(bot, store, x, dry_run=dry_run)

    def observe(self, limit: int | None = None) -> list[Observation]:
        """Unseen timeline posts, oldest first (observing does not mark them seen; acting does)."""
        with self.store.session() as s:
            seen = set(s.scalars(select(SeenTweet.tweet_id).where(SeenTweet.bot == self.bot.name)))
            mine = {t for t in s.scalars(select(Post.tweet_id).where(Post.bot == self.bot.name)) if t}
        me = self.x.me()
        posts = self.x.home_timeline(limit or self.bot.loops.timeline_length)
        fresh = [p for p in posts if p.id not in seen and p.author_id != me.id]
        return [
            Observation(
                id=p.id,
                author=p.author_username,
                text=p.text,
                created_at=p.created_at.isoformat() if p.created_at else None,
                may_reply=summoned(p, me.username, mine),
            )
            for p in reversed(fresh)
        ]

    def act(self, action: XAction) -> ActionResult:
        if action.type == "skip":
            result = ActionResult(type="skip", status="skipped", reason=action.reason or "skipped")
            self.publisher.log("skip", "skipped", result.reason, action.in_reply_to)
        else:
            if action.type == "reply" and not action.in_reply_to:
                return ActionResult(type="reply", status="blocked", reason="a reply needs in_reply_to")
            published = self.publisher.publish(
                action.text,
                action.prompt or [],
                in_reply_to=action.in_reply_to if action.type == "reply" else None,
                reason=action.reason,
            )
            result = ActionResult(
                type=action.type,
                status=published.status,
                reason=published.reason,
                tweet_id=published.tweet_id,
            )
        if action.in_reply_to and result.status != "failed":
            with self.store.session() as s:
                s.merge(
                    SeenTweet(
                        bot=self.bot.name,
                        tweet_id=action.in_reply_to,
                        decision="answer" if action.type == "reply" else "ignore",
                        reason=action.reason,
                        draft=action.text or None,
                    )
                )
        return result


class StepInput(BaseModel):
    config: str = Field(description="path of the bot.toml on the node")
    bot: str | None = None
    actions: list[XAction] = Field(default_factory=list, max_length=50)
    observe: bool = True
    limit: int | None = Field(None, ge=1, le=800)
    dry_run: bool | None = Field(None, description="force a dry run (None: the bot's config)")


class XEnvironmentInput(BaseModel):
    func_name: Literal["step"] = "step"
    func_input_data: StepInput


def run_x_environment(module_run: Mapping[str, Any]) -> dict[str, Any]:
    """One step: apply the agent's actions, then observe. Errors are results, never raised to the node."""
    raw = module_run.get("inputs") if isinstance(module_run, Mapping) else None
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, str):
        raw = json.loads(raw)
    try:
        data = XEnvironmentInput.model_validate(raw or {}).func_input_data
        bot = select_bot(load_bots(Path(data.config)), data.bot)
    except ValueError as exc:
        return {"status": "error", "error": str(exc)}
    store = BotStore(bot.database_url)
    try:
        store.init()
        env = XEnvironment(bot, store, XInteractor(bot.x, XCredentials.from_env()), dry_run=data.dry_run)
        results = [env.act(a).model_dump() for a in data.actions]
        observations = [o.model_dump() for o in env.observe(data.limit)] if data.observe else []
    except XError as exc:
        return {"status": "error", "error": f"{exc.outcome}: {exc}"}
    finally:
        store.close()
    return {"status": "ok", "results": results, "observations": observations}
