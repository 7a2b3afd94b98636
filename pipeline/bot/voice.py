"""`persona.adaptive`: after an RL round, move the persona's voice toward its best-received posts.

The top quartile by reward of the bot's recent rewarded posts (at least MIN_POSTS of them) is
measured: median length, share written all in lower case, share asking a question, share with an
exclamation, hashtags, and the terms distinctive of those posts against the rest (pipeline.text
STOPWORDS and distinctive_terms). The measurements become style hints appended to the persona's
system prompt by the timeline (`persona_voice` table, so they survive restarts). With
`persona.adaptive` false nothing is measured, stored or added: RL moves only the adapter.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from pipeline.bot.community import words
from pipeline.bot.config import BotConfig
from pipeline.bot.store import Action, BotStore, PersonaVoice, Post, utcnow
from pipeline.text import distinctive_terms

log = logging.getLogger("pipeline.bot")
RECENT = 200
MIN_POSTS = 8
TERMS = 5


def measure(best: Sequence[str], rest: Sequence[str]) -> dict[str, Any]:
    """Habits of the `best` posts (terms: distinctive against `rest`)."""
    n = len(best)
    mine: Counter[str] = Counter(w for text in best for w in words(text))
    theirs: Counter[str] = Counter(w for text in rest for w in words(text))
    topics = distinctive_terms(
        mine,
        theirs,
        mine_total=sum(mine.values()),
        theirs_total=sum(theirs.values()),
        smoothing=len(mine) + len(theirs) + 1,
        min_count=2,
        positive_only=True,
    )[:TERMS]
    return {
        "posts": n,
        "median_length": int(statistics.median(len(t) for t in best)),
        "lowercase": round(sum(1 for t in best if t == t.lower() and any(c.isalpha() for c in t)) / n, 3),
        "questions": round(sum(1 for t in best if "?" in t) / n, 3),
        "exclamations": round(sum(1 for t in best if "!" in t) / n, 3),
        "hashtags": round(sum(1 for t in best if re.search(r"(?<!\w)#\w", t)) / n, 3),
        "topics": topics,
    }


def style_hints(habits: dict[str, Any]) -> str:
    """The habits as instructions for the system prompt."""
    hints = [f"keep posts around {habits['median_length']} characters"]
    if habits["lowercase"] >= 0.5:
        hints.append("write in all lower case")
    elif habits["lowercase"] == 0:
        hints.append("use normal capitalization")
    if habits["questions"] >= 0.5:
        hints.append("often end with a question")
    elif habits["questions"] == 0:
        hints.append("make statements rather than ask questions")
    if habits["exclamations"] >= 0.5:
        hints.append("be exclamatory")
    if habits["hashtags"] == 0:
        hints.append("skip hashtags")
    if habits["topics"]:
        hints.append("lean into " + ", ".join(habits["topics"]))
    return "What lands best with your audience: " + "; ".join(hints) + "."


def adapt_voice(bot: BotConfig, store: BotStore) -> PersonaVoice | None:
    """Measure the top-quartile rewarded recent posts and store the style hints (adaptive only)."""
    if not bot.persona.adaptive:
        return None
    with store.session() as s:
        rows = s.execute(
            select(Post.content, Post.reward)
            .where(Post.bot == bot.name, Post.reward.is_not(None), Post.is_reply.is_(False))
            .order_by(Post.posted_at.desc(), Post.id.desc())
            .limit(RECENT)
        ).all()
    if len(rows) < MIN_POSTS:
        log.info("%s voice: %d rewarded posts < %d; voice unchanged", bot.name, len(rows), MIN_POSTS)
        return None
    ranked = sorted(rows, key=lambda r: r[1] or 0.0, reverse=True)
    cut = max(1, len(ranked) // 4)
    best, rest = [r[0] for r in ranked[:cut]], [r[0] for r in ranked[cut:]]
    habits = measure(best, rest)
    style = style_hints(habits)
    with store.session() as s:
        voice = s.get(PersonaVoice, bot.name) or PersonaVoice(bot=bot.name)
        voice.style, voice.habits, voice.based_on, voice.updated_at = style, habits, len(best), utcnow()
        s.add(voice)
        s.add(Action(bot=bot.name, action="voice", outcome="updated", reason=style[:500]))
    with store.session() as s:
        return s.get(PersonaVoice, bot.name)


def current_style(bot: BotConfig, store: BotStore) -> str | None:
    """The stored style hints when `persona.adaptive`, else None (the configured voice only)."""
    if not bot.persona.adaptive:
        return None
    with store.session() as s:
        voice = s.get(PersonaVoice, bot.name)
        return voice.style if voice is not None else None


def restore_voice(bot: BotConfig, store: BotStore, style: str | None) -> None:
    """Put back the style hints that went with an adapter (rollback); None drops the learned voice,
    so the prompts fall back to the configured persona."""
    if not bot.persona.adaptive:
        return
    with store.session() as s:
        voice = s.get(PersonaVoice, bot.name)
        if style is None:
            if voice is not None:
                s.delete(voice)
        else:
            voice = voice or PersonaVoice(bot=bot.name, habits={}, based_on=0)
            voice.style, voice.updated_at = style, utcnow()
            s.add(voice)
        s.add(
            Action(
                bot=bot.name, action="voice", outcome="restored", reason=(style or "configured voice")[:500]
            )
        )
