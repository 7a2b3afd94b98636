"""The timeline cycle: fetch unseen posts, let the persona judge each, answer or draft.

The model is asked, in the persona's voice, whether a post is worth answering (newsworthy, or
substantive ideas to add to). X (2026) lets a bot reply only where the author mentioned it or
quoted one of its posts, so answers to other posts are kept as drafts (`not_summoned`) rather
than sent to be refused. With `no_reply` nothing is posted and nothing is marked seen: a preview.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from pipeline.bot.config import BotConfig, PersonaConfig
from pipeline.bot.rl_loop import serving_model
from pipeline.bot.safety import Publisher
from pipeline.bot.store import BotStore, CommunityMember, Post, SeenTweet
from pipeline.bot.voice import current_style
from pipeline.bot.x import XInteractor, XPost
from pipeline.inference import ChatClient

VERDICT = re.compile(r"^\W*(yes|no)\b[\s:.,-]*(.*)", re.I | re.S)


def persona_system(persona: PersonaConfig, style: str | None = None) -> str:
    """The system prompt; `style`: the RL-adapted voice hints (pipeline.bot.voice, `persona.adaptive`)."""
    interests = ", ".join(persona.interests) or "whatever its community talks about"
    return (
        f"You are {persona.name}. {persona.description}".strip()
        + f"\nYou write in a {persona.tone} voice and care about {interests}."
        + (f"\n{style}" if style else "")
    )


def _about(author: str, summary: str | None) -> str:
    """What the bot knows of a followed author (community.summary), ahead of their post."""
    return f"About {author}: {summary}\n\n" if summary else ""


def judge_messages(
    persona: PersonaConfig, post: XPost, style: str | None = None, about: str | None = None
) -> list[dict[str, str]]:
    author = f"@{post.author_username}" if post.author_username else "someone"
    return [
        {"role": "system", "content": persona_system(persona, style)},
        {
            "role": "user",
            "content": _about(author, about) + f"{author} posted:\n\n{post.text}\n\n"
            "Is this newsworthy to you, or does it have substantive ideas you could add to? "
            "Answer YES or NO on the first line, then one sentence saying why, in your voice.",
        },
    ]


def draft_messages(
    persona: PersonaConfig, post: XPost, style: str | None = None, about: str | None = None
) -> list[dict[str, str]]:
    author = f"@{post.author_username}" if post.author_username else "someone"
    return [
        {"role": "system", "content": persona_system(persona, style)},
        {
            "role": "user",
            "content": _about(author, about) + f"{author} posted:\n\n{post.text}\n\n"
            "Write your reply: one post under 280 characters that adds something. Reply with the post only.",
        },
    ]


def parse_verdict(text: str) -> tuple[bool, str]:
    """(answer?, reason) from the judge's text; anything but a clear YES is a no."""
    match = VERDICT.match(text.strip())
    if match is None:
        return False, f"unclear verdict: {text.strip()[:200]}"
    return match.group(1).lower() == "yes", match.group(2).strip()[:500] or match.group(1)


def clean_draft(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


@dataclass
class Candidate:
    post: XPost
    decision: str  # answer | draft | ignore | not_summoned
    reason: str
    draft: str | None = None
    outcome: str | None = None  # posted | dry_run | blocked | refused | failed
    reply_id: str | None = None


@dataclass
class CycleResult:
    answered: list[Candidate] = field(default_factory=list)
    ignored: list[Candidate] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("api", "judging", "generation", "store"), 0.0)
    )

    @property
    def drafts(self) -> list[Candidate]:
        return [c for c in self.answered if c.reply_id is None]


class _Clock:
    def __init__(self, seconds: dict[str, float], name: str):
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] += time.perf_counter() - self.start


def summoned(post: XPost, me_username: str, my_post_ids: set[str]) -> bool:
    """X's 2026 rule for programmatic replies: the author mentioned the bot or quoted its post."""
    if f"@{me_username.lower()}" in post.text.lower():
        return True
    return any(kind == "quoted" and ref in my_post_ids for kind, ref in post.referenced)


def run_timeline_cycle(
    bot: BotConfig,
    store: BotStore,
    x: XInteractor,
    chat: ChatClient,
    *,
    no_reply: bool = False,
    dry_run: bool | None = None,
    chat_params: dict[str, Any] | None = None,
) -> CycleResult:
    result = CycleResult()
    clock = result.seconds
    publisher = Publisher(bot, store, x, dry_run=dry_run)
    params = {"temperature": 0.7, "max_tokens": 120, **(chat_params or {})}
    model = serving_model(bot)  # the RL adapter once one is live
    style = current_style(bot, store)  # the RL-adapted voice (persona.adaptive), else None
    with _Clock(clock, "store"):
        with store.session() as s:
            judged = s.execute(
                select(SeenTweet.tweet_id, SeenTweet.decision).where(SeenTweet.bot == bot.name)
            ).all()
            about = {
                handle.lower(): summary
                for handle, summary in s.execute(
                    select(CommunityMember.handle, CommunityMember.summary).where(
                        CommunityMember.bot == bot.name, CommunityMember.summary.is_not(None)
                    )
                )
            }
            posted = s.scalars(select(Post.tweet_id).where(Post.bot == bot.name, Post.tweet_id.is_not(None)))
            mine = {i for i in posted if i}
        seen = {tweet_id for tweet_id, decision in judged if decision != "retry"}
        retry = [int(tweet_id) for tweet_id, decision in judged if decision == "retry"]
        # since_id saves paying for posts already read; a post whose answer failed to send is read again
        since = str(min(retry) - 1) if retry else (max(seen, key=int) if seen else None)
    with _Clock(clock, "api"):
        me = x.me()
        posts = x.home_timeline(bot.loops.timeline_length, since_id=since)
    fresh: Sequence[XPost] = [p for p in posts if p.id not in seen and p.author_id != me.id]
    for post in reversed(fresh):  # oldest first, like a reader catching up
        known = about.get((post.author_username or "").lower())  # community.summary of the author
        with _Clock(clock, "judging"):
            answer, reason = parse_verdict(
                chat.chat(judge_messages(bot.persona, post, style, known), model=model, **params)
            )
        candidate = Candidate(post, "answer" if answer else "ignore", reason)
        if answer:
            with _Clock(clock, "generation"):
                candidate.draft = clean_draft(
                    chat.chat(draft_messages(bot.persona, post, style, known), model=model, **params)
                )
            if no_reply:
                candidate.decision = "draft"
            elif not summoned(post, me.username, mine):
                candidate.decision = "not_summoned"
            else:
                with _Clock(clock, "api"):
                    published = publisher.publish(
                        candidate.draft,
                        draft_messages(bot.persona, post, style, known),
                        in_reply_to=post.id,
                        reason=reason,
                    )
                candidate.outcome, candidate.reply_id = published.status, published.tweet_id
                if published.status in ("blocked", "refused", "failed"):
                    candidate.reason = f"{reason} [{published.status}: {published.reason}]"
        with _Clock(clock, "store"):
            if not no_reply:  # a preview leaves the posts unseen for the live loop
                with store.session() as s:
                    s.merge(
                        SeenTweet(
                            bot=bot.name,
                            tweet_id=post.id,
                            author_id=post.author_id,
                            text=post.text,
                            # a send that failed (rate limit, credits, server) is judged again next cycle
                            decision="retry" if candidate.outcome == "failed" else candidate.decision,
                            reason=candidate.reason,
                            draft=candidate.draft,
                        )
                    )
            publisher.log("judge", candidate.decision, candidate.reason, post.id)
        (result.answered if answer else result.ignored).append(candidate)
    return result
