"""A deterministic synthetic Community Archive: real archive.json files with realistic structure.

Everything random is drawn up front, vectorized, from one seeded generator (the
"plan"); writing an account's file is pure formatting of that plan, so files are
byte-identical for a seed whatever the number of worker processes.

What the plan models:
- accounts with heavy-tailed activity (Pareto) and followers (log-normal), each with its own
  topics, tweet length and casing style, active over its own window;
- cross-account reply trees (a reply picks a recent tweet, or one of a popular account's),
  replies to tweets outside the corpus (parent missing), self-threads posted in bursts;
- quote tweets of other accounts (status links), retweets ("RT @x: "), note tweets (long posts
  whose tweet is cut at ~275 chars), edited tweets (two versions), community tweets;
- photos/GIFs/videos, external links (under the reserved .example TLD), hashtags, HTML-escaped
  text, likes and retweet counts scaled by the author's followers with a heavy tail;
- archive quirks: string numbers, absent reply keys, replies lacking in_reply_to_screen_name.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.gcpause import gc_paused
from pipeline.synth.text import CLIENTS, CLOSERS, COMMON, EMOJI, SITES, SYLLABLES, TOPIC_NAMES, TOPICS
from pipeline.timefmt import iso_time, twitter_time

TWITTER_EPOCH_MS = 1288834974657

ORIGINAL, REPLY, REPLY_EXTERNAL, SELF_THREAD, RETWEET, QUOTE, EDIT = range(7)
KIND_NAMES = ["original", "reply", "reply_external", "self_thread", "retweet", "quote", "edit"]
KIND_P = np.array([0.31, 0.36, 0.08, 0.09, 0.08, 0.07, 0.01])

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
X_DOMAIN_FROM_MS = 1715000000000  # ~May 2024: status links switch from twitter.com to x.com


@dataclass(frozen=True)
class SynthSpec:
    accounts: int = 200
    tweets: int = 100_000
    seed: int = 0
    start: dt.date = dt.date(2019, 1, 1)
    end: dt.date = dt.date(2024, 11, 1)

    def validate(self) -> None:
        if self.accounts < 2:
            raise ValueError("need at least 2 accounts (replies cross accounts)")
        if self.tweets < self.accounts:
            raise ValueError(f"need at least one tweet per account ({self.tweets} < {self.accounts})")
        if self.end <= self.start:
            raise ValueError("end date must be after start date")


@dataclass
class SynthSummary:
    spec: SynthSpec
    files: list[Path] = field(default_factory=list)
    tweets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    notes: int = 0
    media: int = 0
    community: int = 0


def b62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, r = divmod(value, 62)
        out.append(_B62[r])
    return "".join(out)


def tco(key: int) -> str:
    return f"https://t.co/{(key * 2654435761) & 0xFFFFFFFFFF:010x}"


def escape(text: str) -> str:
    if "&" not in text and "<" not in text and ">" not in text:
        return text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf[:-1]  # searchsorted(right) over the first n-1 bounds gives ranks 0..n-1


def _usernames(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        parts = rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))
        name = "".join(parts)
        roll = rng.random()
        if roll < 0.25:
            name += str(int(rng.integers(1, 999)))
        elif roll < 0.35:
            name = "_" + name
        name = name[:15]
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


_PER_TWEET_ARRAYS = [
    "kind",
    "ids",
    "ms",
    "author",
    "parent",
    "target",
    "likes",
    "retweets",
    "n_media",
    "media_type",
    "has_url",
    "hashtag",
    "is_note",
    "community",
    "no_screen_name",
    "client",
    "note_offset_ms",
    "edited_by",
    "edit_of",
    "ext_user",
    "ext_parent_id",
    "ext_target_id",
    "account_ids",
    "topic1",
]


class Plan:
    """Every random choice of a corpus, as arrays in global chronological order."""

    l_kind: list[int]
    l_ids: list[int]
    l_ms: list[int]
    l_author: list[int]
    l_parent: list[int]
    l_target: list[int]
    l_likes: list[int]
    l_retweets: list[int]
    l_n_media: list[int]
    l_media_type: list[int]
    l_has_url: list[bool]
    l_hashtag: list[bool]
    l_is_note: list[bool]
    l_community: list[bool]
    l_no_screen_name: list[bool]
    l_client: list[int]
    l_note_offset_ms: list[int]
    l_edited_by: list[int]
    l_edit_of: list[int]
    l_ext_user: list[int]
    l_ext_parent_id: list[int]
    l_ext_target_id: list[int]
    l_account_ids: list[int]
    l_topic1: list[int]

    def __init__(self, spec: SynthSpec):
        spec.validate()
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self._accounts(rng)
        self._timeline(rng)
        self._structure(rng)
        self._engagement(rng)
        self._features(rng)
        self._texts(rng)
        # Per-tweet formatting reads single elements: Python lists are several times faster there.
        for name in _PER_TWEET_ARRAYS:
            setattr(self, "l_" + name, getattr(self, name).tolist())

    # -- accounts --------------------------------------------------------------------------------

    def _accounts(self, rng: np.random.Generator) -> None:
        n = self.spec.accounts
        self.usernames = _usernames(rng, n)
        self.display_names = [
            (u.strip("_").capitalize() if rng.random() < 0.5 else u.lower())
            + (" " + EMOJI[i % len(EMOJI)] if i % 7 == 0 else "")
            for i, u in enumerate(self.usernames)
        ]
        created = rng.uniform(
            dt.datetime(2007, 6, 1, tzinfo=dt.UTC).timestamp(),
            dt.datetime(2022, 6, 1, tzinfo=dt.UTC).timestamp(),
            n,
        )
        self.account_created_ms = (created * 1000).astype(np.int64)
        snow = ((self.account_created_ms - TWITTER_EPOCH_MS) << 22) + rng.integers(0, 1 << 22, n)
        small = rng.integers(1_000_000, 1_500_000_000, n)
        ids = np.where(self.account_created_ms > 1_356_998_400_000, snow, small)  # snowflake ids from 2013
        if len(np.unique(ids)) != n:
            ids = ids + np.arange(n)
        self.account_ids = ids
        self.followers = np.clip(rng.lognormal(6.5, 1.6, n), 3, 5_000_000).astype(np.int64)
        self.following = np.clip(rng.lognormal(6.0, 1.0, n), 1, 10_000).astype(np.int64)
        weights = rng.pareto(1.16, n) + 1.0
        counts = rng.multinomial(self.spec.tweets - n, weights / weights.sum()) + 1
        self.counts = counts.astype(np.int64)
        self.topic1 = rng.integers(0, len(TOPIC_NAMES), n)
        self.topic2 = (self.topic1 + rng.integers(1, len(TOPIC_NAMES), n)) % len(TOPIC_NAMES)
        self.lowercase = rng.random(n) < 0.55
        self.length_scale = rng.lognormal(0.0, 0.3, n)
        self.emoji_rate = rng.beta(1.0, 8.0, n)
        # A pool of accounts outside the corpus (replied to, quoted, retweeted, mentioned).
        n_ext = max(50, n * 5)
        self.ext_names = [f"ext_{b62(int(v), 6).lower()}" for v in rng.integers(0, 62**6, n_ext)]
        self.ext_ids = rng.integers(10_000_000, 1_600_000_000_000_000_000, n_ext)

    # -- time and ids ----------------------------------------------------------------------------

    def _timeline(self, rng: np.random.Generator) -> None:
        spec = self.spec
        T = spec.tweets
        start_s = dt.datetime.combine(spec.start, dt.time(), dt.UTC).timestamp()
        end_s = dt.datetime.combine(spec.end, dt.time(), dt.UTC).timestamp()
        n = spec.accounts
        acc_start = start_s + (end_s - start_s) * 0.85 * rng.beta(0.7, 2.0, n)
        acc_start = np.maximum(acc_start, self.account_created_ms / 1000)
        acc_end = end_s - rng.uniform(0, 30 * 86400, n)
        author = np.repeat(np.arange(n), self.counts)
        t = acc_start[author] + rng.random(T) * (acc_end - acc_start)[author]
        order = np.lexsort((t, author))
        author, t = author[order], t[order]
        kind = rng.choice(len(KIND_P), p=KIND_P, size=T)
        first = np.r_[True, author[1:] != author[:-1]]
        follows_prev = (kind == SELF_THREAD) | (kind == EDIT)
        kind[first & follows_prev] = ORIGINAL
        # An edit is a second version of the author's previous original tweet.
        prev_kind = np.r_[-1, kind[:-1]]
        kind[(kind == EDIT) & (prev_kind != ORIGINAL)] = ORIGINAL
        # Self-threads come in bursts: each continuation 20 s to 10 min after the previous tweet;
        # an edit 1 to 50 min after its first version.
        delay = np.where(kind == SELF_THREAD, rng.uniform(20, 600, T), rng.uniform(60, 3000, T))
        for i in np.flatnonzero((kind == SELF_THREAD) | (kind == EDIT)):
            t[i] = t[i - 1] + delay[i]
        follows_prev = (kind == SELF_THREAD) | (kind == EDIT)
        prev_am = np.arange(T) - 1
        g = np.argsort(t, kind="stable")  # global position -> author-major index
        rank = np.empty(T, dtype=np.int64)
        rank[g] = np.arange(T)
        self.author = author[g]
        self.kind = kind[g]
        self.ms = (t[g] * 1000).astype(np.int64)
        # The low 22 bits grow with chronological position, so a tweet's id exceeds its parents' even
        # when both fall in the same millisecond (as Twitter's sequence bits guarantee).
        self.ids = ((self.ms - TWITTER_EPOCH_MS) << 22) | (np.arange(T) & 0x3FFFFF)
        # Parent (self-thread) and first version (edit) as global positions.
        self.prev_same_author = np.where(follows_prev[g], rank[np.maximum(prev_am[g], 0)], -1)

    # -- structure -------------------------------------------------------------------------------

    def _pick_earlier(
        self, rng: np.random.Generator, pool: np.ndarray, at: np.ndarray, scale: float
    ) -> np.ndarray:
        """For each position in `at`, a pool member before it, `scale` pool entries back on average."""
        pos = np.searchsorted(pool, at) - 1 - np.floor(rng.exponential(scale, len(at))).astype(np.int64)
        ok = pos >= 0
        out = np.full(len(at), -1, dtype=np.int64)
        out[ok] = pool[pos[ok]]
        return out

    def _back_and_forth(self, rng: np.random.Generator, parent: np.ndarray, replies: np.ndarray) -> None:
        """People answer those who replied to them: a share of replies goes back to the latest reply
        an author received, which makes the two-person exchanges and deep threads of real archives."""
        answers_back = (rng.random(len(replies)) < 0.4).tolist()
        author = self.author.tolist()
        inbox: dict[int, list[int]] = {}
        for p, back in zip(replies.tolist(), answers_back, strict=True):
            me = author[p]
            waiting = inbox.get(me)
            if back and waiting:
                parent[p] = waiting.pop()
            target = author[parent[p]]
            if target != me:
                box = inbox.setdefault(target, [])
                box.append(p)
                if len(box) > 16:
                    del box[0]

    def _structure(self, rng: np.random.Generator) -> None:
        T = self.spec.tweets
        kind = self.kind
        parent = np.full(T, -1, dtype=np.int64)
        self_thread = kind == SELF_THREAD
        parent[self_thread] = self.prev_same_author[self_thread]
        self.edit_of = np.where(kind == EDIT, self.prev_same_author, -1)
        repliable = np.flatnonzero(np.isin(kind, [ORIGINAL, REPLY, REPLY_EXTERNAL, SELF_THREAD, QUOTE]))
        popular_accounts = self.followers >= np.quantile(self.followers, 0.9)
        popular = repliable[(kind[repliable] == ORIGINAL) & popular_accounts[self.author[repliable]]]

        replies = np.flatnonzero(kind == REPLY)
        scales = rng.lognormal(np.log(40), 1.5, len(replies))
        recent = np.searchsorted(repliable, replies) - 1 - np.floor(rng.exponential(scales)).astype(np.int64)
        chosen = np.where(recent >= 0, repliable[np.maximum(recent, 0)], -1)
        to_popular = rng.random(len(replies)) < 0.25
        if len(popular):
            pop = self._pick_earlier(rng, popular, replies, 15.0)
            chosen = np.where(to_popular & (pop >= 0), pop, chosen)
        parent[replies] = chosen
        kind[replies[chosen < 0]] = ORIGINAL
        self._back_and_forth(rng, parent, replies[chosen >= 0])
        self.parent = parent

        # Replies to tweets outside the corpus: the parent id is real-looking but absent.
        ext = np.flatnonzero(kind == REPLY_EXTERNAL)
        back_ms = np.floor(rng.exponential(2 * 3600 * 1000, len(ext))).astype(np.int64) + 1000
        self.ext_parent_id = np.full(T, -1, dtype=np.int64)
        self.ext_parent_id[ext] = ((self.ms[ext] - back_ms - TWITTER_EPOCH_MS) << 22) | rng.integers(
            0, 1 << 22, len(ext)
        )
        self.ext_user = rng.integers(0, len(self.ext_names), T)

        # Quotes and retweets: of a corpus tweet (mostly another account's), else of an outside one.
        self.target = np.full(T, -1, dtype=np.int64)
        for k, scale, p_corpus in ((QUOTE, 2000.0, 0.8), (RETWEET, 500.0, 0.7)):
            rows = np.flatnonzero(kind == k)
            picked = self._pick_earlier(rng, repliable, rows, scale)
            picked[rng.random(len(rows)) >= p_corpus] = -1
            self.target[rows] = picked
        self.ext_target_id = (
            (self.ms - rng.integers(3600_000, 30 * 86400_000, T) - TWITTER_EPOCH_MS) << 22
        ) | rng.integers(0, 1 << 22, T)
        self.edited_by = np.full(T, -1, dtype=np.int64)
        edits = np.flatnonzero(self.edit_of >= 0)
        self.edited_by[self.edit_of[edits]] = edits

    # -- engagement and features -----------------------------------------------------------------

    def _engagement(self, rng: np.random.Generator) -> None:
        T = self.spec.tweets
        factor = np.array([1.0, 0.12, 0.2, 0.35, 0.0, 0.7, 1.0])[self.kind]
        # Replies to a popular tweet draw more likes than replies elsewhere.
        base = self.followers[self.author].astype(np.float64) ** 0.55
        likes = np.floor(base * factor * rng.lognormal(0.0, 1.25, T))
        self.likes = np.clip(likes, 0, 2_000_000).astype(np.int64)
        self.retweets = np.floor(self.likes * rng.beta(1.2, 10.0, T)).astype(np.int64)

    def _features(self, rng: np.random.Generator) -> None:
        T = self.spec.tweets
        kind = self.kind
        textual = kind != RETWEET
        self.n_media = np.where(
            textual & (rng.random(T) < np.where(kind == ORIGINAL, 0.16, 0.06)),
            rng.choice([1, 1, 1, 2, 3, 4], T),
            0,
        )
        self.media_type = rng.choice(3, p=[0.85, 0.07, 0.08], size=T)  # photo, animated_gif, video
        self.has_url = textual & (rng.random(T) < 0.07)
        self.hashtag = textual & (rng.random(T) < 0.05)
        self.is_note = np.isin(kind, [ORIGINAL, SELF_THREAD, REPLY, QUOTE]) & (rng.random(T) < 0.012)
        self.community = (kind == ORIGINAL) & (self.edited_by < 0) & (rng.random(T) < 0.003)
        self.community_id = rng.integers(1_500_000_000_000_000_000, 1_700_000_000_000_000_000, 8)
        self.no_screen_name = rng.random(T) < 0.1
        self.client = rng.integers(0, len(CLIENTS), T)
        self.note_offset_ms = rng.integers(13, 42, T)

    # -- texts -----------------------------------------------------------------------------------

    def _texts(self, rng: np.random.Generator) -> None:
        """All tweet texts, assembled from token ids with numpy and one join per chunk (no per-tweet Python)."""
        T = self.spec.tweets
        kind = self.kind
        mean_words = np.array([14.0, 9.0, 9.0, 15.0, 14.0, 10.0, 14.0])[kind] * self.length_scale[self.author]
        n_words = np.clip(np.round(rng.lognormal(np.log(mean_words), 0.55)), 1, 48).astype(np.int64)
        n_words = np.where(self.is_note, rng.integers(70, 260, T), n_words)
        vocab = list(COMMON)
        offsets = []
        for name in TOPIC_NAMES:
            offsets.append(len(vocab))
            vocab.extend(TOPICS[name])
        topic_offset = np.array(offsets)
        topic_len = np.array([len(TOPICS[n]) for n in TOPIC_NAMES])
        V = len(vocab)
        # Token table: word + space, Capitalized + space, word (last of a tweet), Capitalized (last), then
        # one suffix per (special, closer, emoji) combination ending in NUL (the tweet separator), then a prefix.
        specials = ["", " & more", " <3"]
        emojis = ["", *(" " + e for e in EMOJI)]
        tokens = (
            [w + " " for w in vocab]
            + [w.capitalize() + " " for w in vocab]
            + vocab
            + [w.capitalize() for w in vocab]
        )
        suffix_base = len(tokens)
        tokens += [sp + cl + em + "\x00" for sp in specials for cl in CLOSERS for em in emojis]
        prefix_token = len(tokens)
        tokens.append("a -> b: ")

        roll = rng.random(T)
        special = np.where(roll < 0.012, 1, np.where(roll < 0.02, 2, 0))
        has_prefix = (roll >= 0.02) & (roll < 0.024)
        closer = rng.integers(0, len(CLOSERS), T)
        emoji = np.where(rng.random(T) < self.emoji_rate[self.author], np.arange(T) % len(EMOJI) + 1, 0)
        suffix = suffix_base + (special * len(CLOSERS) + closer) * len(emojis) + emoji
        capital = ~self.lowercase[self.author]

        # Zipf-like word ranks by inverse-CDF lookup (numpy's zipf sampler is far slower).
        common_cdf = _zipf_cdf(len(COMMON), 1.1)
        topic_cdf = _zipf_cdf(int(topic_len.max()), 1.0)
        texts: list[str] = []
        chunk = 100_000
        for lo in range(0, T, chunk):
            hi = min(T, lo + chunk)
            counts = n_words[lo:hi]
            W = int(counts.sum())
            word_author = np.repeat(self.author[lo:hi], counts)
            common = rng.random(W) < 0.55
            common_idx = np.searchsorted(common_cdf, rng.random(W), side="right")
            topic = np.where(rng.random(W) < 0.7, self.topic1[word_author], self.topic2[word_author])
            topic_idx = (
                topic_offset[topic]
                + np.searchsorted(topic_cdf, rng.random(W), side="right") % topic_len[topic]
            )
            ids = np.where(common, common_idx, topic_idx)
            ends = np.cumsum(counts)
            starts = ends - counts
            ids[starts] += V * capital[lo:hi]
            ids[ends - 1] += 2 * V
            with_prefix = np.flatnonzero(has_prefix[lo:hi])
            ids = np.insert(
                ids,
                np.concatenate([ends, starts[with_prefix]]),
                np.concatenate([suffix[lo:hi], np.full(len(with_prefix), prefix_token)]),
            )
            blob = "".join([tokens[i] for i in ids.tolist()])
            texts.extend(blob.split("\x00")[:-1])
        self.texts = texts
        # An edit's final version is its first version with a correction appended.
        for p in np.flatnonzero(self.edit_of >= 0):
            self.texts[p] = self.texts[self.edit_of[p]] + " (edit: typo)"

    # -- per-account documents -------------------------------------------------------------------

    def handle_of(self, position: int) -> str:
        return self.usernames[self.l_author[position]]

    def account_document(self, a: int, positions: np.ndarray) -> dict[str, Any]:
        """The archive.json document of account `a`; `positions` are its tweets in global order."""
        rng = np.random.default_rng([self.spec.seed, a])
        username = self.usernames[a]
        tweets: list[dict[str, Any]] = []
        community: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        for p in positions[::-1].tolist():  # exports list newest first
            tweet, note = self._tweet(p)
            (community if self.community[p] else tweets).append({"tweet": tweet})
            if note is not None:
                notes.append({"noteTweet": note})
        first_ms = int(self.ms[positions[0]])
        last_ms = int(self.ms[positions[-1]])
        others = np.flatnonzero(self.author != a)
        n_likes = int(min(len(others), max(0, rng.lognormal(4.0, 1.2))))
        liked = rng.choice(others, size=n_likes, replace=False).tolist() if n_likes else []
        n_accounts = len(self.usernames)
        peers = [
            int(i) for i in rng.choice(n_accounts, size=min(n_accounts - 1, 40), replace=False) if i != a
        ]
        followers = [int(self.account_ids[i]) for i in peers[:25]] + [
            int(v)
            for v in rng.choice(
                self.ext_ids, size=min(len(self.ext_ids), int(min(self.followers[a], 300))), replace=False
            )
        ]
        following = [int(self.account_ids[i]) for i in peers[10:]] + [
            int(v)
            for v in rng.choice(
                self.ext_ids, size=min(len(self.ext_ids), int(min(self.following[a], 200))), replace=False
            )
        ]
        topics = f"{TOPIC_NAMES[self.topic1[a]]}, {TOPIC_NAMES[self.topic2[a]]}"
        return {
            "upload-options": {
                "keepPrivate": False,
                "uploadLikes": True,
                "startDate": iso_time(first_ms),
                "endDate": iso_time(last_ms),
            },
            "account": [
                {
                    "account": {
                        "createdVia": "web",
                        "username": username,
                        "accountId": str(int(self.account_ids[a])),
                        "createdAt": iso_time(int(self.account_created_ms[a])),
                        "accountDisplayName": self.display_names[a],
                    }
                }
            ],
            "profile": [
                {
                    "profile": {
                        "description": {
                            "bio": f"thinking about {topics}",
                            "website": f"https://{username.lower().strip('_')}.garden.example",
                            "location": "",
                        },
                        "avatarMediaUrl": f"https://pbs.twimg.com/profile_images/{int(self.account_ids[a])}/avatar.jpg",
                        "headerMediaUrl": f"https://pbs.twimg.com/profile_banners/{int(self.account_ids[a])}/1600000000",
                    }
                }
            ],
            "tweets": tweets,
            "community-tweet": community,
            "note-tweet": notes,
            "like": [
                {
                    "like": {
                        "tweetId": str(int(self.ids[q])),
                        "fullText": escape(self.texts[q]),
                        "expandedUrl": f"https://twitter.com/i/web/status/{int(self.ids[q])}",
                    }
                }
                for q in liked
            ],
            "follower": [
                {
                    "follower": {
                        "accountId": str(f),
                        "userLink": f"https://twitter.com/intent/user?user_id={f}",
                    }
                }
                for f in followers
            ],
            "following": [
                {
                    "following": {
                        "accountId": str(f),
                        "userLink": f"https://twitter.com/intent/user?user_id={f}",
                    }
                }
                for f in following
            ],
        }

    def _tweet(self, p: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        kind = self.l_kind[p]
        tid = self.l_ids[p]
        sid = str(tid)
        ms = self.l_ms[p]
        body = self.texts[p]
        mentions: list[dict[str, Any]] = []
        urls: list[dict[str, Any]] = []
        hashtags: list[dict[str, Any]] = []
        reply: dict[str, Any] = {}

        prefix = ""
        if kind in (REPLY, SELF_THREAD):
            q = self.l_parent[p]
            handle = self.handle_of(q)
            uid = str(self.l_account_ids[self.l_author[q]])
            reply = {
                "in_reply_to_status_id_str": str(self.l_ids[q]),
                "in_reply_to_status_id": str(self.l_ids[q]),
                "in_reply_to_user_id": uid,
                "in_reply_to_user_id_str": uid,
                "in_reply_to_screen_name": handle,
            }
            if kind == REPLY:
                prefix = f"@{handle} "
                mentions.append(self._mention(handle, uid, 0))
        elif kind == REPLY_EXTERNAL:
            e = self.l_ext_user[p]
            handle, uid = self.ext_names[e], str(int(self.ext_ids[e]))
            reply = {
                "in_reply_to_status_id_str": str(self.l_ext_parent_id[p]),
                "in_reply_to_status_id": str(self.l_ext_parent_id[p]),
                "in_reply_to_user_id": uid,
                "in_reply_to_user_id_str": uid,
                "in_reply_to_screen_name": handle,
            }
            prefix = f"@{handle} "
            mentions.append(self._mention(handle, uid, 0))
        if reply and self.l_no_screen_name[p]:
            del reply["in_reply_to_screen_name"]  # real archives lack it on ~15% of replies

        note: dict[str, Any] | None = None
        if kind == RETWEET:
            q = self.l_target[p]
            if q >= 0:
                handle, source_text = self.handle_of(q), self.texts[q]
                uid = str(self.l_account_ids[self.l_author[q]])
            else:
                e = self.l_ext_user[p]
                handle, source_text, uid = self.ext_names[e], body, str(int(self.ext_ids[e]))
            text = f"RT @{handle}: {source_text}"
            if len(text) > 140:
                text = text[:139] + "…"
            mentions.append(self._mention(handle, uid, 3))
        else:
            if self.l_is_note[p]:
                note = self._note(p, body)
                cut = body[:275].rsplit(" ", 1)[0]
                text = prefix + cut + "…"
            else:
                text = prefix + body
            if self.l_hashtag[p]:
                tag = TOPIC_NAMES[self.l_topic1[self.l_author[p]]]
                hashtags.append({"text": tag, "indices": [str(len(text) + 1), str(len(text) + 2 + len(tag))]})
                text += f" #{tag}"
            if self.l_has_url[p]:
                slug = "-".join(body.split()[:3]).lower() or "post"
                expanded = f"https://{SITES[p % len(SITES)]}.example/{slug}-{p}"
                short = tco(tid * 7 + 1)
                urls.append(self._url(short, expanded, len(text) + 1))
                text += " " + short
            if kind == QUOTE:
                q = self.l_target[p]
                if q >= 0:
                    handle, qid = self.handle_of(q), self.l_ids[q]
                else:
                    handle, qid = self.ext_names[self.l_ext_user[p]], self.l_ext_target_id[p]
                domain = "x.com" if ms >= X_DOMAIN_FROM_MS else "twitter.com"
                short = tco(tid * 7 + 2)
                urls.append(self._url(short, f"https://{domain}/{handle}/status/{qid}", len(text) + 1))
                text += " " + short
        media = self._media(p, tid, ms, len(text) + 1) if self.l_n_media[p] else []
        if media:
            text += " " + media[0]["url"]

        edit_ids = [sid]
        if self.l_edited_by[p] >= 0:
            edit_ids = [sid, str(self.l_ids[self.l_edited_by[p]])]
        if self.l_edit_of[p] >= 0:
            first = str(self.l_ids[self.l_edit_of[p]])
            edit_info: dict[str, Any] = {
                "edit": {
                    "initialTweetId": first,
                    "editControlInitial": {
                        "editTweetIds": [first, sid],
                        "editableUntil": iso_time(self.l_ms[self.l_edit_of[p]] + 3600_000),
                        "editsRemaining": "4",
                        "isEditEligible": False,
                    },
                }
            }
        else:
            edit_info = {
                "initial": {
                    "editTweetIds": edit_ids,
                    "editableUntil": iso_time(ms + 3600_000),
                    "editsRemaining": "5" if len(edit_ids) == 1 else "4",
                    "isEditEligible": kind == ORIGINAL,
                }
            }
        escaped = escape(text)
        tweet: dict[str, Any] = {
            "edit_info": edit_info,
            "retweeted": False,
            "source": CLIENTS[self.l_client[p]],
            "entities": {"hashtags": hashtags, "symbols": [], "user_mentions": mentions, "urls": urls},
            "display_text_range": ["0", str(min(len(escaped), 280))],
            "favorite_count": str(self.l_likes[p]),
            "id_str": sid,
            "truncated": False,
            "retweet_count": str(self.l_retweets[p]),
            "id": sid,
            "created_at": twitter_time(ms),
            "favorited": False,
            "full_text": escaped,
            "lang": "en",
        }
        tweet.update(reply)
        if media:
            tweet["entities"]["media"] = [media[0]]
            tweet["extended_entities"] = {"media": media}
            tweet["possibly_sensitive"] = False
        elif urls:
            tweet["possibly_sensitive"] = False
        if self.l_community[p]:
            cid = str(int(self.community_id[p % len(self.community_id)]))
            tweet["community_id"] = cid
            tweet["community_id_str"] = cid
            tweet["scopes"] = {"followers": False}
        return tweet, note

    def _note(self, p: int, body: str) -> dict[str, Any]:
        note_ms = self.l_ms[p] - self.l_note_offset_ms[p]
        note_id = ((note_ms - TWITTER_EPOCH_MS) << 22) | (self.l_ids[p] & 0x3FFFFF)
        stamp = iso_time(note_ms)
        return {
            "noteTweetId": str(note_id),
            "updatedAt": stamp,
            "lifecycle": {"value": "1", "name": "Active", "originalName": "Active", "annotations": {}},
            "createdAt": stamp,
            "core": {
                "styletags": [],
                "urls": [],
                "text": escape(body),
                "mentions": [],
                "cashtags": [],
                "hashtags": [],
            },
        }

    @staticmethod
    def _mention(handle: str, uid: str, at: int) -> dict[str, Any]:
        return {
            "name": handle.strip("_").capitalize(),
            "screen_name": handle,
            "indices": [str(at), str(at + 1 + len(handle))],
            "id_str": uid,
            "id": uid,
        }

    @staticmethod
    def _url(short: str, expanded: str, at: int) -> dict[str, Any]:
        display = expanded.split("://", 1)[-1]
        return {
            "url": short,
            "expanded_url": expanded,
            "display_url": display[:26] + ("…" if len(display) > 26 else ""),
            "indices": [str(at), str(at + len(short))],
        }

    def _media(self, p: int, tid: int, ms: int, at: int) -> list[dict[str, Any]]:
        kind = ["photo", "animated_gif", "video"][self.l_media_type[p]]
        n = 1 if kind != "photo" else self.l_n_media[p]
        short = tco(tid * 7 + 3)
        handle = self.handle_of(p)
        items = []
        for k in range(n):
            mid = str(tid - 1000 - k)
            key = f"{(tid * 31 + k) & 0xFFFFFFFFFFFFFFF:015x}"
            if kind == "photo":
                url = f"https://pbs.twimg.com/media/{key}.jpg"
            else:
                url = f"https://pbs.twimg.com/tweet_video_thumb/{key}.jpg"
            w, h = (1200, 675) if (tid + k) % 3 else (900, 1200)
            item: dict[str, Any] = {
                "expanded_url": f"https://twitter.com/{handle}/status/{tid}/{'video' if kind == 'video' else 'photo'}/{k + 1}",
                "indices": [str(at), str(at + 23)],
                "url": short,
                "media_url": url.replace("https://", "http://"),
                "id_str": mid,
                "id": mid,
                "media_url_https": url,
                "sizes": {
                    "thumb": {"w": "150", "h": "150", "resize": "crop"},
                    "small": {"w": str(w // 2), "h": str(h // 2), "resize": "fit"},
                    "medium": {"w": str(w), "h": str(h), "resize": "fit"},
                    "large": {"w": str(w), "h": str(h), "resize": "fit"},
                },
                "type": kind,
                "display_url": "pic.twitter.com/" + short.rsplit("/", 1)[-1],
            }
            if kind != "photo":
                variants = [
                    {
                        "bitrate": "0",
                        "content_type": "video/mp4",
                        "url": f"https://video.twimg.com/tweet_video/{key}.mp4",
                    }
                ]
                info: dict[str, Any] = {"aspect_ratio": ["16", "9"], "variants": variants}
                if kind == "video":
                    info["duration_millis"] = str(5000 + (tid % 55000))
                    variants.append(
                        {
                            "bitrate": "2176000",
                            "content_type": "video/mp4",
                            "url": f"https://video.twimg.com/ext_tw_video/{key}/vid/1280x720/v.mp4",
                        }
                    )
                item["video_info"] = info
            items.append(item)
        return items


# Forked synth workers inherit the plan instead of receiving it pickled.
_PLAN: Plan | None = None
_BY_AUTHOR: list[np.ndarray] = []


def _write_account(args: tuple[int, str]) -> tuple[int, int, str]:
    a, out_dir = args
    assert _PLAN is not None
    positions = _BY_AUTHOR[a]
    doc = _PLAN.account_document(a, positions)
    path = Path(out_dir) / f"{_PLAN.usernames[a]}.archive.json"
    data = orjson.dumps(doc)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(positions), len(data), str(path)


def generate_corpus(
    spec: SynthSpec,
    out_dir: Path,
    *,
    workers: int = 1,
    on_account: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write one `<username>.archive.json` per account into `out_dir`, plus `.synth.json` (spec and counts)."""
    global _PLAN, _BY_AUTHOR
    clock = time.perf_counter()
    with gc_paused():
        plan = Plan(spec)
    # Forked workers then neither copy nor re-scan the plan's millions of objects.
    gc.freeze()
    out_dir.mkdir(parents=True, exist_ok=True)
    order = np.argsort(plan.author, kind="stable")
    bounds = np.cumsum(np.bincount(plan.author, minlength=spec.accounts))[:-1]
    _PLAN, _BY_AUTHOR = plan, np.split(order, bounds)
    summary = SynthSummary(spec=spec)
    jobs = [(a, str(out_dir)) for a in np.argsort(-plan.counts).tolist()]  # biggest first: better balance

    def record(result: tuple[int, int, str]) -> None:
        tweets, size, path = result
        summary.tweets += tweets
        summary.bytes += size
        summary.files.append(Path(path))
        if on_account:
            on_account(tweets)

    try:
        with gc_paused():
            if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    for result in pool.imap_unordered(_write_account, jobs, chunksize=1):
                        record(result)
            else:
                for job in jobs:
                    record(_write_account(job))
    finally:
        _PLAN, _BY_AUTHOR = None, []
        gc.unfreeze()
    summary.files.sort()
    summary.kinds = {
        KIND_NAMES[k]: int(v) for k, v in enumerate(np.bincount(plan.kind, minlength=len(KIND_NAMES)))
    }
    summary.notes = int(plan.is_note[plan.kind != RETWEET].sum())
    summary.media = int(plan.n_media[plan.kind != RETWEET].sum())
    summary.community = int(plan.community.sum())
    summary.seconds = time.perf_counter() - clock
    meta = {
        "spec": {
            "accounts": spec.accounts,
            "tweets": spec.tweets,
            "seed": spec.seed,
            "start": spec.start.isoformat(),
            "end": spec.end.isoformat(),
        },
        "tweets": summary.tweets,
        "kinds": summary.kinds,
        "notes": summary.notes,
        "community": summary.community,
        "files": [p.name for p in summary.files],
    }
    (out_dir / ".synth.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return summary
