"""Safety rules applied before anything reaches X, and the one place that posts.

`Publisher.publish` checks the kill switch, the content filter, duplicates and the hourly/daily
caps; in dry-run (the default) it stores the post as `dry_run` and sends nothing. A live post is
written as `pending` *before* the API call, so a crash between X accepting it and the store
recording it leaves a row that blocks the same text or a second reply to the same post on
restart: at most one post per text and per answered post, even across crashes. Every decision
is logged in `actions` with its reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select

from pipeline.bot.config import BotConfig
from pipeline.bot.store import Action, BotStore, Post, content_hash, utcnow
from pipeline.bot.x import NotAllowed, XError, XInteractor

log = logging.getLogger("pipeline.bot")

LEAKS = re.compile(r"<\|im_(start|end)\|>|<\|endoftext\|>|^(user|assistant|system)\s*:", re.I | re.M)
CASHTAG = re.compile(r"(?<!\w)\$[A-Za-z][A-Za-z0-9_]{0,9}\b")
LIVE = ("pending", "posted")


@dataclass
class Verdict:
    allowed: bool
    reason: str


@dataclass
class Published:
    status: str  # posted | dry_run | blocked | refused | failed
    reason: str
    row_id: int | None = None
    tweet_id: str | None = None


class Safety:
    def __init__(self, bot: BotConfig, store: BotStore):
        self.bot = bot
        self.config = bot.safety
        self.store = store

    def killed(self) -> bool:
        return self.config.kill_switch.exists()

    def content(self, text: str) -> Verdict:
        """The content filter: what may never be posted, whatever the caps say."""
        stripped = text.strip()
        if not stripped:
            return Verdict(False, "empty post")
        if len(stripped) > self.config.max_chars:
            return Verdict(False, f"{len(stripped)} characters > {self.config.max_chars}")
        if LEAKS.search(stripped):
            return Verdict(False, "chat markup or role prefix in the text")
        lowered = stripped.casefold()
        for term in self.config.blocklist:
            if term.casefold() in lowered:
                return Verdict(False, f"blocklisted term {term!r}")
        if len(CASHTAG.findall(stripped)) > self.config.max_cashtags:
            return Verdict(False, f"more than {self.config.max_cashtags} cashtag(s) (X refuses them)")
        return Verdict(True, "ok")

    def check(self, text: str, in_reply_to: str | None = None, *, live: bool = True) -> Verdict:
        if self.killed():
            return Verdict(False, f"kill switch {self.config.kill_switch} exists")
        verdict = self.content(text)
        if not verdict.allowed:
            return verdict
        now = utcnow()
        with self.store.session() as s:
            mine = select(Post).where(Post.bot == self.bot.name)
            if s.scalar(
                select(func.count()).select_from(
                    mine.where(Post.content_hash == content_hash(text)).subquery()
                )
            ):
                return Verdict(False, "duplicate of an earlier post")
            if in_reply_to is not None and s.scalar(
                select(func.count()).select_from(
                    mine.where(Post.in_reply_to == in_reply_to, Post.status.in_(LIVE)).subquery()
                )
            ):
                return Verdict(False, f"already answered {in_reply_to}")
            if live:
                for window, cap in (
                    (timedelta(hours=1), self.config.max_posts_per_hour),
                    (timedelta(days=1), self.config.max_posts_per_day),
                ):
                    recent = mine.where(Post.status.in_(LIVE), Post.created_at >= now - window)
                    count = s.scalar(select(func.count()).select_from(recent.subquery())) or 0
                    if count >= cap:
                        return Verdict(False, f"cap reached: {count} posts in the last {window}")
        return Verdict(True, "ok")


class Publisher:
    def __init__(
        self, bot: BotConfig, store: BotStore, x: XInteractor | None, *, dry_run: bool | None = None
    ):
        self.bot = bot
        self.store = store
        self.x = x
        self.dry_run = bot.dry_run if dry_run is None else dry_run
        if not self.dry_run and x is None:
            raise ValueError("live posting needs an X interactor")
        self.safety = Safety(bot, store)

    def log(self, action: str, outcome: str, reason: str, target: str | None = None) -> None:
        log.info("%s %s %s: %s (%s)", self.bot.name, action, target or "-", outcome, reason)
        with self.store.session() as s:
            s.add(
                Action(bot=self.bot.name, action=action, target=target, outcome=outcome, reason=reason[:2000])
            )

    def publish(
        self, text: str, prompt: Any, *, in_reply_to: str | None = None, reason: str = ""
    ) -> Published:
        action = "reply" if in_reply_to else "post"
        text = text.strip()
        verdict = self.safety.check(text, in_reply_to, live=not self.dry_run)
        if not verdict.allowed:
            self.log(action, "blocked", verdict.reason, in_reply_to)
            return Published("blocked", verdict.reason)
        row = Post(
            bot=self.bot.name,
            prompt=prompt,
            content=text,
            content_hash=content_hash(text),
            is_reply=in_reply_to is not None,
            in_reply_to=in_reply_to,
            status="dry_run" if self.dry_run else "pending",
        )
        with self.store.session() as s:
            s.add(row)
        if self.dry_run:
            self.log(action, "dry_run", reason or "dry run: nothing sent", in_reply_to)
            return Published("dry_run", reason, row.id)
        assert self.x is not None
        try:
            tweet_id = self.x.reply(text, in_reply_to) if in_reply_to else self.x.post(text)
        except NotAllowed as exc:
            self._settle(row.id, "refused")
            self.log(action, exc.outcome, str(exc), in_reply_to)
            return Published("refused", str(exc), row.id)
        except XError as exc:
            # X did not take it (rate limit, credits, server): drop the pending row so it may be tried again
            with self.store.session() as s:
                s.execute(delete(Post).where(Post.id == row.id))
            self.log(action, exc.outcome, str(exc), in_reply_to)
            return Published("failed", str(exc))
        self._settle(row.id, "posted", tweet_id)
        self.log(action, "posted", reason or "posted", tweet_id)
        return Published("posted", reason, row.id, tweet_id)

    def _settle(self, row_id: int, status: str, tweet_id: str | None = None) -> None:
        with self.store.session() as s:
            post = s.get_one(Post, row_id)
            post.status = status
            if tweet_id is not None:
                post.tweet_id = tweet_id
                post.posted_at = utcnow()
