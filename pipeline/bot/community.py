"""`community.summary`: what a followed account posts about, for the persona's prompts.

A statistics summary from the account's bio and recent posts: its distinctive terms (pipeline.text
STOPWORDS and distinctive_terms, against the other followed accounts' posts), how often it posts,
its typical length and how much of it is replies. When a ChatClient is given, the model rewrites
that into a sentence or two; any inference failure keeps the statistics summary.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter
from collections.abc import Sequence

from pipeline.bot.x import XPost
from pipeline.inference import ChatClient, InferenceError
from pipeline.text import STOPWORDS, distinctive_terms

log = logging.getLogger("pipeline.bot")
WORD = re.compile(r"[a-z][a-z0-9'\-]{2,}")
URL = re.compile(r"https?://\S+")
MENTION = re.compile(r"(?<!\w)@\w+")
HASHTAG = re.compile(r"(?<!\w)#(\w{2,})")
TERMS = 6


def words(text: str) -> list[str]:
    text = URL.sub(" ", MENTION.sub(" ", text.lower()))
    return [w.strip("'-") for w in WORD.findall(text) if w.strip("'-") not in STOPWORDS]


def word_counts(bio: str, posts: Sequence[XPost]) -> Counter[str]:
    counts: Counter[str] = Counter(words(bio))
    for post in posts:
        counts.update(words(post.text))
    return counts


def stats_summary(bio: str, posts: Sequence[XPost], background: Counter[str] | None = None) -> str:
    """One line of measured habits; `background`: the word counts of the community as a whole."""
    mine = word_counts(bio, posts)
    theirs = background if background is not None else Counter[str]()
    terms = distinctive_terms(
        mine,
        theirs,
        mine_total=sum(mine.values()),
        theirs_total=sum(theirs.values()),
        smoothing=len(mine) + len(theirs) + 1,
        min_count=2 if posts else 1,
    )[:TERMS]
    tags = Counter(t.lower() for p in posts for t in HASHTAG.findall(p.text)).most_common(3)
    parts = []
    if terms or tags:
        parts.append("posts about " + ", ".join(terms + [f"#{t}" for t, _ in tags]))
    if posts:
        times = sorted(p.created_at for p in posts if p.created_at is not None)
        if len(times) >= 2:
            days = max((times[-1] - times[0]).total_seconds() / 86400, 1 / 24)
            parts.append(f"about {(len(times) - 1) / days:.1f} posts a day")
        parts.append(f"typically {int(statistics.median(len(p.text) for p in posts))} characters")
        replies = sum(1 for p in posts if any(kind == "replied_to" for kind, _ in p.referenced))
        parts.append(f"{100 * replies // len(posts)}% replies")
        parts.append(f"from {len(posts)} recent posts")
    elif bio:
        parts.append("no recent posts")
    return "; ".join(parts)


def polish(chat: ChatClient, handle: str, bio: str, posts: Sequence[XPost], stats: str) -> str:
    """The model's one-or-two-sentence rewrite of the statistics; the statistics on any failure."""
    sample = "\n".join(f"- {p.text[:200]}" for p in posts[:5])
    messages = [
        {
            "role": "system",
            "content": "You describe X accounts in one or two plain sentences: what they post about "
            "and how. No preamble.",
        },
        {
            "role": "user",
            "content": f"@{handle}\nBio: {bio or '(none)'}\nMeasured: {stats}\nRecent posts:\n{sample}",
        },
    ]
    try:
        text = chat.chat(messages, max_tokens=120, temperature=0.2).strip()
    except InferenceError as exc:
        log.info("community summary of @%s: model unavailable (%s); statistics kept", handle, exc)
        return stats
    return text[:600] or stats
