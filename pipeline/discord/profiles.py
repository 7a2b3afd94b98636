"""Personality profiles computed from a user's messages, with an optional LLM-written summary.

Everything here is counted from data: communication style (length, casing, questions,
exclamations, emoji, code, links), common phrases (bigram/trigram counts, stopword-only
n-grams left out), topical expertise (terms the user says more than the community:
smoothed log-odds against everyone's counts), response patterns (reply share, latency,
how often they open a conversation), emotional tone (a small sentiment lexicon),
engagement (reactions received, messages per active day) and relationships (whom they
answer, who answers them). `describe` turns a profile into the sentence that follows
"You are {name}." in the system prompt. With `[inference]` configured, `llm_summary`
asks the model for a short summary of the same numbers (it sees statistics and phrases,
never raw messages).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from pipeline.discord.extract import DiscordData
from pipeline.discord.users import UserStats
from pipeline.text import STOPWORDS
from pipeline.text import distinctive_terms as log_odds_terms

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[a-z][a-z0-9'+#.-]*[a-z0-9+#]|[a-z]")
_URL = re.compile(r"<?https?://\S+>?")
_CODE_BLOCK = re.compile(r"```.*?```", re.S)
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]|:\\w+:")
POSITIVE = frozenset(
    [
        "good",
        "great",
        "awesome",
        "amazing",
        "love",
        "nice",
        "thanks",
        "thank",
        "cool",
        "perfect",
        "excellent",
        "happy",
        "glad",
        "fun",
        "excited",
        "wow",
        "beautiful",
        "brilliant",
        "fantastic",
        "helpful",
        "appreciate",
        "congrats",
        "lfg",
        "gm",
        "based",
        "bullish",
    ]
)
NEGATIVE = frozenset(
    [
        "bad",
        "wrong",
        "broken",
        "error",
        "fail",
        "failed",
        "failing",
        "issue",
        "issues",
        "bug",
        "bugs",
        "hate",
        "annoying",
        "sucks",
        "terrible",
        "problem",
        "problems",
        "worse",
        "worst",
        "ugly",
        "scam",
        "stuck",
        "confused",
        "sad",
        "rekt",
        "bearish",
    ]
)


BACKGROUND_SAMPLE = 200_000


class Profile(BaseModel):
    user_id: str
    name: str
    display_name: str
    style: dict[str, float] = Field(default_factory=dict)
    phrases: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    responses: dict[str, float | None] = Field(default_factory=dict)
    tone: dict[str, float | str] = Field(default_factory=dict)
    engagement: dict[str, float] = Field(default_factory=dict)
    relationships: dict[str, dict[str, int]] = Field(default_factory=dict)
    active_hours_utc: list[int] = Field(default_factory=list, description="the busiest three hours")
    description: str = ""
    llm_summary: str | None = None


def tokens(text: str) -> list[str]:
    """Lowercase word tokens, code blocks and links left out."""
    if "```" in text:
        text = _CODE_BLOCK.sub(" ", text)
    text = text.lower()
    if "http" in text:
        text = _URL.sub(" ", text)
    return _TOKEN.findall(text)


def corpus_counts(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return counts


def _ngrams(token_lists: list[list[str]], n: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for words in token_lists:
        counts.update(zip(*(words[i:] for i in range(n)), strict=False))
    return counts


def common_phrases(token_lists: list[list[str]], *, top: int = 8, min_count: int = 3) -> list[str]:
    """Frequent trigrams first, then bigrams not inside a chosen trigram (stopword-only n-grams left out)."""
    chosen: list[str] = []
    for n in (3, 2):
        candidates = [
            (count, gram)
            for gram, count in _ngrams(token_lists, n).items()
            if count >= min_count and not all(w in STOPWORDS for w in gram)
        ]
        candidates.sort(key=lambda pair: (-pair[0], pair[1]))
        for _, gram in candidates:
            phrase = " ".join(gram)
            if any(phrase in c for c in chosen):
                continue
            chosen.append(phrase)
            if len(chosen) >= top:
                return chosen
    return chosen


def distinctive_terms(
    user: Counter[str], everyone: Counter[str], *, top: int = 8, min_count: int = 3
) -> list[str]:
    """Terms by smoothed log-odds of the user's rate against everyone's (stopwords and short words out)."""
    return log_odds_terms(
        user,
        everyone,
        mine_total=sum(user.values()) or 1,
        theirs_total=sum(everyone.values()) or 1,
        smoothing=0.5 * (len(everyone) or 1),
        min_count=min_count,
        keep=lambda term: term not in STOPWORDS and len(term) >= 3 and not term.isdigit(),
    )[:top]


def build_profile(
    stats: UserStats, texts: list[str], starts: int, everyone: Counter[str], reactions: int
) -> Profile:
    """`texts`: the user's messages; `starts`: conversations they opened."""
    n = max(len(texts), 1)
    token_lists = [tokens(t) for t in texts]
    lengths = sorted(len(t) for t in texts)
    lettered = [t for t in texts if any(c.isalpha() for c in t)]
    style = {
        "median_chars": float(lengths[len(lengths) // 2]) if lengths else 0.0,
        "mean_words": sum(len(w) for w in token_lists) / n,
        "lowercase_share": sum(1 for t in lettered if t == t.lower()) / max(len(lettered), 1),
        "question_share": sum(1 for t in texts if "?" in t) / n,
        "exclamation_share": sum(1 for t in texts if "!" in t) / n,
        "emoji_per_message": sum(len(_EMOJI.findall(t)) for t in texts) / n,
        "code_share": sum(1 for t in texts if "`" in t) / n,
        "link_share": sum(1 for t in texts if "http" in t) / n,
        "multiline_share": sum(1 for t in texts if "\n" in t) / n,
    }
    words = Counter(w for ws in token_lists for w in ws)
    positive = sum(c for w, c in words.items() if w in POSITIVE)
    negative = sum(c for w, c in words.items() if w in NEGATIVE)
    polarity = (positive - negative) / max(positive + negative, 1)
    label = "upbeat" if polarity > 0.25 else "critical" if polarity < -0.25 else "even"
    busiest = sorted(range(24), key=lambda h: -stats.active_hours[h])[:3]
    profile = Profile(
        user_id=stats.user_id,
        name=stats.name,
        display_name=stats.display_name,
        style=style,
        phrases=common_phrases(token_lists),
        topics=distinctive_terms(words, everyone),
        responses={
            "reply_share": stats.replies / n,
            "median_latency_s": stats.median_latency_s,
            "opens_conversations_share": starts / max(stats.conversations, 1),
            "messages_per_conversation": stats.messages / max(stats.conversations, 1),
        },
        tone={"polarity": polarity, "label": label, "positive_words": positive, "negative_words": negative},
        engagement={
            "reactions_per_message": reactions / n,
            "messages_per_active_day": stats.messages / max(stats.days_active, 1),
            "days_active": float(stats.days_active),
        },
        relationships={"replies_to": stats.replies_to, "replied_by": stats.replied_by},
        active_hours_utc=sorted(busiest),
    )
    profile.description = describe(profile)
    return profile


def describe(profile: Profile) -> str:
    """A short description from the numbers (used after "You are {name}.")."""
    s = profile.style
    length = "short" if s["median_chars"] < 40 else "medium-length" if s["median_chars"] < 120 else "long"
    kind = f"{length}, mostly lowercase" if s["lowercase_share"] > 0.7 else length
    habits = []
    if s["question_share"] > 0.25:
        habits.append("often ask questions")
    if s["code_share"] > 0.15:
        habits.append("share code")
    if s["link_share"] > 0.15:
        habits.append("post links")
    if s["exclamation_share"] > 0.2:
        habits.append("use exclamation marks")
    if s["emoji_per_message"] > 0.3:
        habits.append("use emoji")
    text = f"You write {kind} chat messages (median {s['median_chars']:.0f} characters)"
    text += (" and " + ", ".join(habits) if habits else "") + "."
    if profile.topics:
        text += f" You talk most about {', '.join(profile.topics[:5])}."
    if profile.phrases:
        text += " Phrases you use: " + "; ".join(f'"{p}"' for p in profile.phrases[:4]) + "."
    reply_share = profile.responses.get("reply_share") or 0.0
    text += f" Your tone is {profile.tone['label']}; you "
    text += "mostly answer others." if reply_share > 0.4 else "often start topics yourself."
    partners = list(profile.relationships.get("replies_to", {}))[:3]
    if partners:
        text += f" You reply most to {', '.join(partners)}."
    return text


def build_profiles(data: DiscordData, chosen: list[UserStats]) -> list[Profile]:
    m = data.messages
    wanted = {int(s.user_id) for s in chosen}
    texts: dict[int, list[str]] = {uid: [] for uid in wanted}
    reactions: Counter[int] = Counter()
    for author, content, meaningful, count in zip(
        m["author_id"], m["content"], m["meaningful"], m["reactions"], strict=True
    ):
        if author in wanted and meaningful:
            texts[author].append(content)
            reactions[author] += count
    starts: Counter[int] = Counter()
    first_author = dict(zip(m["id"], m["author_id"], strict=True))
    for conversation_id in data.conversations["conversation_id"]:
        starts[first_author.get(conversation_id, 0)] += 1
    # the community's word rates, from an even sample of at most BACKGROUND_SAMPLE messages (rates of
    # the words that matter settle long before a million messages)
    contents, meaningful = m["content"], m["meaningful"]
    stride = max(1, len(contents) // BACKGROUND_SAMPLE)
    everyone = corpus_counts(contents[i] for i in range(0, len(contents), stride) if meaningful[i])
    return [
        build_profile(s, texts[int(s.user_id)], starts[int(s.user_id)], everyone, reactions[int(s.user_id)])
        for s in chosen
    ]


SUMMARY_PROMPT = (
    "Below are statistics about how one member of an online community writes in a Discord chat. "
    'Write two or three sentences in the second person ("You ...") describing their personality '
    "and communication style, for use as a role-play system prompt. Do not invent facts beyond the data."
)


def llm_summary(profile: Profile, client: Any, model: str | None = None) -> str:
    """A summary written by the configured model from the profile's numbers and phrases."""
    facts = profile.model_dump(include={"style", "phrases", "topics", "responses", "tone", "engagement"})
    messages = [
        {"role": "system", "content": SUMMARY_PROMPT},
        {"role": "user", "content": f"Name: {profile.display_name}\n{facts}"},
    ]
    text: str = client.chat(messages, model=model, temperature=0.3, max_tokens=200)
    return text.strip()
