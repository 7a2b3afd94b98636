"""Persona files: ElizaOS-style character files built from an account's data in the store.

Statistics first, a model only to polish (optional):
- topics: the account's most *distinctive* terms (log-odds against a community sample, so
  words everyone uses drop out) and its most used hashtags;
- postExamples / messageExamples: its best tweets and replies by the project's quality score
  (pipeline.scoring, scored chronologically against the whole store, as the datasets are);
  messageExamples are real reply pairs: another account's tweet, then the persona's reply;
- style and adjectives: measured habits (length, casing, emoji, questions, exclamations,
  links, hashtags, replies vs posts), each phrase stating what was measured;
- bio / lore: the profile bio and facts from the data (volume, time span, best-received post,
  most frequent conversation partners).

The file is what Naptha's persona modules load (naptha.md §7): name, bio, lore, adjectives,
topics, style {all, chat, post}, messageExamples, postExamples. `system_prompt()` turns it
into the prompt the TPOT persona agent and `personas chat` use.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, Field, ValidationError

from pipeline.datasets.build import account_follower_counts
from pipeline.inference import ChatClient, InferenceError
from pipeline.scoring import QualityWeights, StreamingScorer
from pipeline.store import Store
from pipeline.store.atomic import atomic_write_bytes
from pipeline.text import STOPWORDS, distinctive_terms

log = logging.getLogger("pipeline.persona")

USER_PLACEHOLDER = "{{user1}}"

WORD = re.compile(r"[a-z][a-z'\-]{2,}")
HASHTAG = re.compile(r"(?<!\w)#(\w{2,})")
URL = re.compile(r"https?://\S+")
MENTION = re.compile(r"(?<!\w)@\w+")
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\U0001f1e6-\U0001f1ff]")


class Persona(BaseModel):
    """An ElizaOS character file, as Naptha persona modules hold them."""

    name: str
    bio: list[str] = Field(default_factory=list)
    lore: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    style: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list[str]() for k in ("all", "chat", "post")}
    )
    messageExamples: list[list[dict[str, Any]]] = Field(default_factory=list)
    postExamples: list[str] = Field(default_factory=list)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, orjson.dumps(self.model_dump(), option=orjson.OPT_INDENT_2) + b"\n")

    @classmethod
    def load(cls, path: Path) -> Persona:
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise ValueError(f"{path} is not a persona file: {exc.errors()[0]['msg']}") from exc


class PersonaSpec(BaseModel):
    """How many examples and terms a persona file gets."""

    posts: int = Field(12, ge=0)
    messages: int = Field(8, ge=0)
    topics: int = Field(12, ge=0)
    min_chars: int = Field(25, ge=1, description="shorter tweets are not used as examples")
    max_chars: int = Field(600, ge=1)
    community_sample: int = Field(
        20_000, ge=100, description="community tweets the topic terms are contrasted with"
    )
    weights: QualityWeights = Field(default_factory=QualityWeights)


class PersonaError(ValueError):
    pass


def _body(text: str, prefix_len: int) -> str:
    """The tweet without its auto-inserted leading @mentions and links."""
    return URL.sub("", text[prefix_len or 0 :]).strip()


def _words(text: str) -> list[str]:
    text = URL.sub(" ", MENTION.sub(" ", HASHTAG.sub(" ", text.lower())))
    return [w.strip("'-") for w in WORD.findall(text) if w.strip("'-") not in STOPWORDS]


def _quality(store: Store, weights: QualityWeights) -> dict[int, float]:
    """Composite quality of every live tweet, scored chronologically against the whole store."""
    con = store.connect()
    rows = con.execute(
        """SELECT tweet_id, account_id, coalesce(favorite_count, 0) AS likes,
                  coalesce(retweet_count, 0) AS retweets, length(full_text) - mention_prefix_len AS length
           FROM tweets WHERE NOT deleted AND NOT is_retweet ORDER BY created_at, tweet_id"""
    ).fetchnumpy()
    followers = account_follower_counts(store)
    ids = rows["tweet_id"]
    if len(ids) == 0:
        return {}
    signals = {
        "likes": np.asarray(rows["likes"], dtype=np.float64),
        "retweets": np.asarray(rows["retweets"], dtype=np.float64),
        "followers": np.array(
            [followers.get(int(a), math.nan) for a in rows["account_id"]], dtype=np.float64
        ),
        "length": np.asarray(rows["length"], dtype=np.float64),
    }
    scores = StreamingScorer(weights).score(signals).quality
    return {int(t): float(q) for t, q in zip(ids, scores, strict=True)}


def _pick(candidates: list[tuple[float, str]], n: int) -> list[str]:
    """The n best texts, best first, without near-duplicates (same first 40 characters)."""
    seen: set[str] = set()
    out: list[str] = []
    for _, text in sorted(candidates, key=lambda c: -c[0] if not math.isnan(c[0]) else 1.0):
        key = text.lower()[:40]
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) == n:
            break
    return out


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def measure_style(texts: Sequence[str]) -> dict[str, float]:
    """Measurable writing habits of a set of tweet bodies."""
    letters = [t for t in texts if any(c.isalpha() for c in t)]
    return {
        "count": float(len(texts)),
        "median_chars": float(statistics.median(len(t) for t in texts)) if texts else 0.0,
        "lowercase_share": _share([t == t.lower() for t in letters]),
        "emoji_share": _share([bool(EMOJI.search(t)) for t in texts]),
        "question_share": _share(["?" in t for t in texts]),
        "exclamation_share": _share(["!" in t for t in texts]),
        "link_share": _share([bool(URL.search(t)) for t in texts]),
        "hashtag_share": _share([bool(HASHTAG.search(t)) for t in texts]),
        "ellipsis_share": _share(["..." in t or "…" in t for t in texts]),
    }


def _style_rules(m: dict[str, float]) -> list[str]:
    rules: list[str] = []
    if m["count"] == 0:
        return rules
    rules.append(f"typically writes about {round(m['median_chars'], -1):.0f} characters")
    if m["lowercase_share"] >= 0.6:
        rules.append(f"writes in all lowercase ({m['lowercase_share']:.0%} of tweets)")
    elif m["lowercase_share"] <= 0.15:
        rules.append("uses standard capitalization")
    if m["emoji_share"] >= 0.15:
        rules.append(f"uses emoji often ({m['emoji_share']:.0%} of tweets)")
    elif m["emoji_share"] < 0.03:
        rules.append("rarely uses emoji")
    if m["question_share"] >= 0.2:
        rules.append(f"asks a lot of questions ({m['question_share']:.0%} of tweets)")
    if m["exclamation_share"] >= 0.2:
        rules.append("uses exclamation marks freely")
    elif m["exclamation_share"] < 0.03:
        rules.append("almost never uses exclamation marks")
    if m["link_share"] >= 0.25:
        rules.append(f"shares links often ({m['link_share']:.0%} of tweets)")
    if m["hashtag_share"] >= 0.15:
        rules.append("uses hashtags")
    elif m["hashtag_share"] < 0.02:
        rules.append("does not use hashtags")
    if m["ellipsis_share"] >= 0.1:
        rules.append("trails off with ellipses…")
    return rules


def _adjectives(m: dict[str, float], reply_share: float, per_day: float) -> list[str]:
    adjectives = []
    if m["median_chars"] < 80:
        adjectives.append("terse")
    elif m["median_chars"] > 180:
        adjectives.append("expansive")
    if m["question_share"] >= 0.2:
        adjectives.append("curious")
    if m["exclamation_share"] >= 0.2:
        adjectives.append("enthusiastic")
    if m["lowercase_share"] >= 0.6:
        adjectives.append("casual")
    if m["emoji_share"] >= 0.15:
        adjectives.append("expressive")
    if reply_share >= 0.5:
        adjectives.append("conversational")
    if per_day >= 5:
        adjectives.append("prolific")
    if m["link_share"] >= 0.25:
        adjectives.append("well-read")
    return adjectives or ["thoughtful"]


def _topics(store: Store, account_texts: list[str], spec: PersonaSpec, account_id: int) -> list[str]:
    """Distinctive terms (smoothed log-odds vs the community) and the most used hashtags."""
    con = store.connect()
    sample = [
        r[0]
        for r in con.execute(
            f"""SELECT full_text FROM tweets WHERE NOT deleted AND NOT is_retweet AND account_id <> ?
                USING SAMPLE {int(spec.community_sample)} ROWS (reservoir, 7)""",
            [account_id],
        ).fetchall()
    ]
    mine = Counter(w for t in account_texts for w in set(_words(t)))
    theirs = Counter(w for t in sample for w in set(_words(t)))
    # Document frequencies (each tweet counts a word once), so one long rant is not a topic.
    terms = distinctive_terms(
        mine,
        theirs,
        mine_total=max(len(account_texts), 1),
        theirs_total=max(len(sample), 1),
        smoothing=1,
        positive_only=True,
    )
    hashtags = Counter(h.lower() for t in account_texts for h in HASHTAG.findall(t))
    tags = [f"#{h}" for h, c in hashtags.most_common() if c >= 2][: max(1, spec.topics // 4)]
    return (tags + terms)[: spec.topics] if spec.topics else []


def build_persona(
    store: Store, username: str, spec: PersonaSpec | None = None
) -> tuple[Persona, dict[str, Any]]:
    """The persona file of `username` and the statistics it was built from."""
    spec = spec or PersonaSpec()
    if not store.exists():
        raise PersonaError(f"no store at {store.root}")
    con = store.connect()
    account = con.execute(
        """SELECT a.account_id, a.username, a.display_name, p.bio FROM accounts a
           LEFT JOIN profiles p USING (account_id) WHERE lower(a.username) = lower(?)""",
        [username.lstrip("@")],
    ).fetchone()
    if account is None:
        known = [r[0] for r in con.execute("SELECT username FROM accounts ORDER BY 1 LIMIT 8").fetchall()]
        raise PersonaError(f"no account @{username} in the store (some that are: {', '.join(known)})")
    account_id, handle, display_name, bio = account
    tweets = con.execute(
        """SELECT tweet_id, full_text, mention_prefix_len, reply_to_tweet_id IS NOT NULL AS is_reply,
                  reply_to_username, created_at, coalesce(favorite_count, 0)
           FROM tweets WHERE account_id = ? AND NOT deleted AND NOT is_retweet ORDER BY created_at""",
        [account_id],
    ).fetchall()
    if not tweets:
        raise PersonaError(f"@{handle} has no tweets in the store")
    quality = _quality(store, spec.weights)
    bodies = [_body(t[1], t[2]) for t in tweets]
    posts = [b for t, b in zip(tweets, bodies, strict=True) if not t[3]]
    replies = [b for t, b in zip(tweets, bodies, strict=True) if t[3]]

    def fits(text: str) -> bool:
        return spec.min_chars <= len(text) <= spec.max_chars

    post_examples = _pick(
        [
            (quality.get(t[0], math.nan), b)
            for t, b in zip(tweets, bodies, strict=True)
            if not t[3] and fits(b)
        ],
        spec.posts,
    )
    pairs = con.execute(
        """SELECT r.tweet_id, p.full_text, p.mention_prefix_len, r.full_text, r.mention_prefix_len
           FROM tweets r JOIN tweets p ON p.tweet_id = r.reply_to_tweet_id
           WHERE r.account_id = ? AND p.account_id <> r.account_id
             AND NOT r.deleted AND NOT p.deleted AND NOT r.is_retweet""",
        [account_id],
    ).fetchall()
    by_reply: dict[str, str] = {}
    candidates = []
    for reply_id, parent, parent_prefix, reply, reply_prefix in pairs:
        parent_text, reply_text = _body(parent, parent_prefix), _body(reply, reply_prefix)
        if fits(parent_text) and fits(reply_text):
            by_reply[reply_text] = parent_text
            candidates.append((quality.get(reply_id, math.nan), reply_text))
    name = display_name or handle
    message_examples = [
        [
            {"user": USER_PLACEHOLDER, "content": {"text": by_reply[reply]}},
            {"user": name, "content": {"text": reply}},
        ]
        for reply in _pick(candidates, spec.messages)
    ]

    every, post_style, chat_style = measure_style(bodies), measure_style(posts), measure_style(replies)
    first, last = tweets[0][5], tweets[-1][5]
    days = max((last - first).total_seconds() / 86400, 1.0)
    reply_share = len(replies) / len(tweets)
    partners = Counter(t[4].lower() for t in tweets if t[3] and t[4] and t[4].lower() != handle.lower())
    best = max(tweets, key=lambda t: t[6])
    lore = [
        f"has posted {len(tweets):,} tweets between {first:%B %Y} and {last:%B %Y} "
        f"({len(tweets) / days:.1f} a day), {reply_share:.0%} of them replies",
    ]
    if partners:
        lore.append("talks most often with " + ", ".join(f"@{p}" for p, _ in partners.most_common(5)))
    if best[6] > 0:
        lore.append(f"best-received post ({best[6]:,} likes): {_body(best[1], best[2])[:200]}")
    topics = _topics(store, bodies, spec, account_id)
    bio_lines = [line.strip() for line in (bio or "").splitlines() if line.strip()]
    if topics:
        bio_lines.append("posts about " + ", ".join(t for t in topics[:6]))
    persona = Persona(
        name=name,
        bio=bio_lines or [f"@{handle}"],
        lore=lore,
        adjectives=_adjectives(every, reply_share, len(tweets) / days),
        topics=topics,
        style={
            "all": _style_rules(every),
            "chat": _style_rules(chat_style),
            "post": _style_rules(post_style),
        },
        messageExamples=message_examples,
        postExamples=post_examples,
    )
    stats = {
        "username": handle,
        "account_id": int(account_id),
        "tweets": len(tweets),
        "posts": len(posts),
        "replies": len(replies),
        "reply_pairs": len(candidates),
        "style": {"all": every, "chat": chat_style, "post": post_style},
    }
    return persona, stats


POLISH_PROMPT = """You edit character files for role-play agents. Below is a character file built from
statistics of a real account's tweets. Rewrite only "bio" (2-4 short lines, third person) and "lore"
(3-6 short facts) to read naturally, using only facts present in the file. Answer with one JSON object
{"bio": [...], "lore": [...]} and nothing else.

"""


def polish_persona(persona: Persona, client: ChatClient, model: str | None = None) -> Persona:
    """Let a model rewrite bio and lore; the statistical version stays when its answer is unusable."""
    prompt = POLISH_PROMPT + json.dumps(persona.model_dump(exclude={"messageExamples"}), ensure_ascii=False)
    try:
        answer = client.chat(
            [{"role": "user", "content": prompt}], model=model, temperature=0.3, max_tokens=600
        )
        match = re.search(r"\{.*\}", answer, re.DOTALL)
        data = json.loads(match.group(0)) if match else None
    except (InferenceError, ValueError) as exc:
        log.warning("persona polish skipped: %s", exc)
        return persona
    ok = (
        isinstance(data, dict)
        and all(isinstance(data.get(k), list) and data[k] for k in ("bio", "lore"))
        and all(isinstance(x, str) for k in ("bio", "lore") for x in data[k])
    )
    if not ok:
        log.warning("persona polish skipped: the model's answer was not {bio: [...], lore: [...]}")
        return persona
    assert isinstance(data, dict)
    return persona.model_copy(update={"bio": data["bio"][:6], "lore": data["lore"][:8]})


def system_prompt(persona: Persona, *, examples: int = 4, extra: str = "") -> str:
    """The system prompt that makes a chat model answer as the persona."""
    lines = [f"You are {persona.name}. Stay in character; answer as {persona.name} would, in their voice."]
    if persona.bio:
        lines.append("About you: " + " ".join(persona.bio))
    if persona.lore:
        lines.append("Facts: " + "; ".join(persona.lore))
    if persona.topics:
        lines.append("You often talk about: " + ", ".join(persona.topics))
    if persona.adjectives:
        lines.append("Your manner: " + ", ".join(persona.adjectives))
    style = persona.style.get("all", []) + persona.style.get("chat", [])
    if style:
        lines.append("Style: " + "; ".join(dict.fromkeys(style)))
    if persona.postExamples[:examples]:
        lines.append("Posts of yours:\n" + "\n".join(f"- {p}" for p in persona.postExamples[:examples]))
    if extra:
        lines.append(extra)
    return "\n".join(lines)
