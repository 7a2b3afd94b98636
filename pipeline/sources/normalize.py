"""Normalize an archive document into canonical tables.

Every Twitter/X source ends here: a Community Archive archive.json is already in
this shape, the official export is assembled into it (twitter_export.py), and the
REST API's rows are rebuilt into it (community_archive.py). The quirks of the
format are handled once, in this file (see ../shared/reference/community-archive.md):

- numbers are strings (decoded to ints by archive_schema); `created_at` is
  "Sat Feb 18 12:33:11 +0000 2023" (parsed for a whole archive at once by Arrow);
- text is HTML-escaped; only &, < and > are escaped, so the three replaces in
  `unescape` are exact, unlike html.unescape, which would also decode "&copy" typed by a user;
- reply keys are absent on non-replies, and the screen name can be missing while
  the status id is present;
- `entities.media` holds only the first item, `extended_entities.media` all;
- an edited tweet is one tweet per version; only the last version is kept;
- retweets are only recognizable by their "RT @user: " prefix;
- a quote is only recognizable by a status link among the URLs;
- a long post's full text lives in `note-tweet`, joined to its tweet by snowflake
  time (the note id is minted 13-41 ms before the tweet id) and text containment.

This is the ingest hot path: it builds one tuple per tweet and transposes them to
columns, rather than an object per tweet.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import re
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import SCHEMAS, table_from_columns
from pipeline.sources import archive_schema as S
from pipeline.sources.base import AccountArchive, Problems, Snapshot, SourceError, SourceReport

TWITTER_EPOCH_MS = 1288834974657
"""Snowflake ids carry milliseconds since this instant in their bits 22 and up."""

NOTE_MATCH_WINDOW_MS = 1000
"""A note's tweet is minted within this many ms after the note (13-41 ms in real data)."""

NOTE_MATCH_PREFIX_CHARS = 80
"""How much of the note's start (t.co links and whitespace normalized) must appear in the truncated tweet."""

TWITTER_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"

STATUS_URL = re.compile(
    r"^(?:https?://)?(?:www\.|mobile\.|m\.)?(?:twitter|x)\.com/(?:i/web|([A-Za-z0-9_]{1,15}))/status(?:es)?/(\d+)",
    re.IGNORECASE,
)
RETWEET_PREFIX = re.compile(r"^RT @([A-Za-z0-9_]{1,15}):")
REPLY_MENTIONS = re.compile(r"^(?:@[A-Za-z0-9_]{1,15}(?:\s+|$))+")
TCO_LINK = re.compile(r"https?://t\.co/\w+")

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}
_TS = pa.timestamp("ms", tz="UTC")

_TWEET_ROW = (
    "tweet_id",
    "created_raw",
    "full_text",
    "mention_prefix_len",
    "lang",
    "favorite_count",
    "retweet_count",
    "reply_to_tweet_id",
    "reply_to_user_id",
    "reply_to_username",
    "is_retweet",
    "retweeted_username",
    "quoted_tweet_id",
    "quoted_username",
    "community_id",
    "edit_initial_id",
    "possibly_sensitive",
)
"""The per-tweet tuple the hot loop builds; constant columns are added once per archive."""


class RecordError(ValueError):
    """A record's required field is missing or unusable; the record is skipped."""


@lru_cache(maxsize=65536)
def _day_start_s(year: int, month: int, day: int) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def parse_twitter_time(value: str) -> int:
    """Epoch milliseconds from "Sat Feb 18 12:33:11 +0000 2023" (or ISO 8601 as a fallback)."""
    if len(value) == 30 and value[19] == " " and value[25] == " ":
        try:
            secs = (
                _day_start_s(int(value[26:30]), _MONTHS[value[4:7]], int(value[8:10]))
                + int(value[11:13]) * 3600
                + int(value[14:16]) * 60
                + int(value[17:19])
            )
            offset = value[20:25]
            if offset != "+0000":
                sign = -1 if offset[0] == "-" else 1
                secs -= sign * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60)
            return secs * 1000
        except (KeyError, ValueError):
            pass
    return parse_iso_time(value)


def parse_iso_time(value: str) -> int:
    """Epoch milliseconds from an ISO 8601 timestamp ("2024-02-05T13:38:38.000Z", "2024-08-21 16:48:16+00")."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"unparseable timestamp {value!r:.40}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def snowflake_ms(tweet_id: int) -> int:
    return (tweet_id >> 22) + TWITTER_EPOCH_MS


def unescape(text: str) -> str:
    if "&" not in text:
        return text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _match_key(text: str) -> str:
    """Text as compared between a note and its tweet: t.co links differ between the two, whitespace too."""
    return " ".join(TCO_LINK.sub(" ", text).split())


def status_link(url: str) -> tuple[int, str | None] | None:
    """(tweet id, username or None) when `url` links to a tweet."""
    match = STATUS_URL.match(url)
    if match is None:
        return None
    user = match.group(1)
    if user is not None and user.lower() == "i":
        user = None
    return int(match.group(2)), user


class _Columns:
    """Column lists for the child tables, filled in record order."""

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in SCHEMAS[name]} for name in ("urls", "media", "mentions")
        }

    def table(self, name: str) -> pa.Table:
        return table_from_columns(name, self.cols[name])


class ArchiveNormalizer:
    """Turns one ArchiveDoc into an AccountArchive."""

    def __init__(self, origin: str, source: str, problems: Problems | None = None):
        self.origin = origin
        self.source = source
        self.problems = problems or Problems(origin)
        self.counts: dict[str, int] = {}
        self._c = _Columns()
        self._tweet_cols: dict[str, list[Any]] = {}
        self._drop: set[int] = set()

    # -- the document ----------------------------------------------------------------------------

    def run(
        self,
        doc: S.ArchiveDoc,
        snapshot_at_ms: int | None = None,
        upload_id: int | None = None,
        digest: str | None = None,
    ) -> AccountArchive:
        tweets = doc.tweets if doc.tweets is not None else doc.tweet
        if tweets is None:
            raise SourceError(self.origin, "not an archive: no 'tweets' section")
        account_id, username, account_row = self._account(doc)

        index: dict[int, int] = {}
        edit_groups: list[list[int]] = []
        rows: list[tuple[Any, ...]] = []
        self._tweets(tweets, index, edit_groups, rows, community=False)
        if doc.community_tweet:
            self._tweets(doc.community_tweet, index, edit_groups, rows, community=True)
        self._tweet_cols = self._transpose(rows)
        del rows

        if doc.note_tweet:
            self._merge_notes(doc.note_tweet, index)

        created = self._created_at(self._tweet_cols.pop("created_raw"))
        valid = len(created) - created.null_count
        newest = pc.max(created.cast(pa.int64())).as_py() if valid else None
        options = doc.upload_options
        start_ms = self._option_time(options.startDate if options else None, "startDate")
        end_ms = self._option_time(options.endDate if options else None, "endDate")
        observed = snapshot_at_ms
        if observed is None:
            candidates = [v for v in (end_ms, newest) if v is not None]
            if not candidates:
                raise SourceError(self.origin, "archive has no tweets and no date: nothing to ingest")
            observed = max(candidates)
        snapshot_dt = ms_to_datetime(observed)

        cols: dict[str, Any] = self._tweet_cols
        n = len(cols["tweet_id"])
        cols["created_at"] = created
        cols["account_id"] = pa.repeat(pa.scalar(account_id, pa.int64()), n)
        cols["username"] = pa.repeat(pa.scalar(username, pa.string()), n)
        cols["source"] = pa.repeat(pa.scalar(self.source, pa.string()), n)
        cols["snapshot_at"] = pa.repeat(pa.scalar(observed, _TS), n)
        cols["deleted"] = pa.repeat(pa.scalar(False), n)
        tables: dict[str, pa.Table] = {"tweets": table_from_columns("tweets", cols)}
        for name in ("urls", "media", "mentions"):
            tables[name] = self._c.table(name)
        tables["edits"] = self._edits(edit_groups, index, account_id)
        self._drop_rows(tables)
        tables["tweets"] = tables["tweets"].sort_by("tweet_id")

        account_row["snapshot_at"] = observed
        account_row["source"] = self.source
        tables["accounts"] = table_from_columns("accounts", {k: [v] for k, v in account_row.items()})
        self._sections(doc, account_id, tables)

        snapshot = Snapshot(
            observed_at=snapshot_dt,
            coverage_start=ms_to_datetime(start_ms) if start_ms is not None else None,
            coverage_end=ms_to_datetime(end_ms) if end_ms is not None else snapshot_dt,
            source=self.source,
            origin=self.origin,
            upload_id=upload_id,
            content_sha256=digest,
        )
        self.counts["tweets"] = tables["tweets"].num_rows
        report = SourceReport(
            origin=self.origin,
            source=self.source,
            counts=dict(self.counts),
            skipped=dict(self.problems.skipped),
            coerced=dict(self.problems.coerced),
        )
        return AccountArchive(account_id, username, snapshot, tables, report)

    def _option_time(self, value: str | None, key: str) -> int | None:
        if value is None:
            return None
        try:
            return parse_iso_time(value)
        except RecordError:
            self.problems.coerce(f"upload-options.{key}", value)
            return None

    def _account(self, doc: S.ArchiveDoc) -> tuple[int, str, dict[str, Any]]:
        if not doc.account:
            raise SourceError(self.origin, "not an archive: no 'account' section")
        acc = doc.account[0].account
        if acc.accountId is None or not acc.username:
            raise SourceError(self.origin, "account section lacks accountId or username")
        created_ms = None
        if acc.createdAt is not None:
            try:
                created_ms = parse_iso_time(acc.createdAt)
            except RecordError:
                self.problems.coerce("account.createdAt", acc.createdAt)
        row = {
            "account_id": acc.accountId,
            "username": acc.username,
            "display_name": acc.accountDisplayName,
            "created_at": created_ms,
            "created_via": acc.createdVia,
        }
        return acc.accountId, acc.username, row

    # -- tweets ----------------------------------------------------------------------------------

    def _tweets(
        self,
        items: list[S.TweetItem],
        index: dict[int, int],
        edit_groups: list[list[int]],
        rows: list[tuple[Any, ...]],
        community: bool,
    ) -> None:
        where = "community-tweet" if community else "tweets"
        for position, item in enumerate(items):
            try:
                row = self._tweet(item.tweet, index, edit_groups, community)
            except RecordError as exc:
                self.problems.skip(str(exc), f"{where}[{position}]")
                continue
            if row is not None:
                index[row[0]] = len(rows)
                rows.append(row)

    def _tweet(
        self, t: S.Tweet, index: dict[int, int], edit_groups: list[list[int]], community: bool
    ) -> tuple[Any, ...] | None:
        tweet_id = t.id_str if t.id_str is not None else t.id
        if tweet_id is None:
            raise RecordError("missing tweet id")
        if tweet_id in index:
            self.problems.skip("duplicate tweet id", f"tweet {tweet_id}")
            return None
        created = t.created_at
        if created is None:
            raise RecordError("missing created_at")
        raw_text = t.full_text if t.full_text is not None else t.text
        if raw_text is None:
            raise RecordError("missing full_text")
        text = unescape(raw_text) if "&" in raw_text else raw_text

        reply_to = (
            t.in_reply_to_status_id_str
            if t.in_reply_to_status_id_str is not None
            else t.in_reply_to_status_id
        )
        reply_user = (
            t.in_reply_to_user_id_str if t.in_reply_to_user_id_str is not None else t.in_reply_to_user_id
        )
        prefix_len = 0
        if (reply_to is not None or reply_user is not None) and text.startswith("@"):
            match = REPLY_MENTIONS.match(text)
            if match:
                prefix_len = match.end()

        rt_user = None
        is_rt = text.startswith("RT @")
        if is_rt:
            rt_match = RETWEET_PREFIX.match(text)
            rt_user = rt_match.group(1) if rt_match else None

        quoted_id = quoted_user = None
        entities = t.entities
        if entities is not None:
            if entities.urls:
                quoted_id, quoted_user = self._urls(entities.urls, tweet_id)
            if entities.user_mentions:
                self._mentions(entities.user_mentions, tweet_id)
        ext = t.extended_entities
        media = ext.media if ext is not None else None
        if media is None and entities is not None:
            media = entities.media
        if media:
            self._media(media, tweet_id)

        edit_initial = None
        info = t.edit_info
        if info is not None and (info.initial is None or len(info.initial.editTweetIds) > 1):
            group = self._edit_group(info)
            if group is not None:
                edit_groups.append(group)
                edit_initial = group[0]

        community_id = None
        if community:
            community_id = t.community_id_str if t.community_id_str is not None else t.community_id
        # Order: _TWEET_ROW.
        return (
            tweet_id,
            created,
            text,
            prefix_len,
            t.lang,
            t.favorite_count,
            t.retweet_count,
            reply_to,
            reply_user,
            t.in_reply_to_screen_name,
            is_rt,
            rt_user,
            quoted_id,
            quoted_user,
            community_id,
            edit_initial,
            t.possibly_sensitive,
        )

    def _transpose(self, rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in _TWEET_ROW]
        cols = dict(zip(_TWEET_ROW, columns, strict=True))
        cols["is_note"] = [False] * len(rows)
        cols["note_tweet_id"] = [None] * len(rows)
        return cols

    def _created_at(self, raw: list[str]) -> pa.Array:
        """Parse all created_at strings at once (Arrow, vectorized); odd ones one by one; drop the unparseable."""
        parsed = pc.strptime(
            pa.array(raw, type=pa.string()), format=TWITTER_TIME_FORMAT, unit="ms", error_is_null=True
        )
        if parsed.null_count == 0:
            return parsed.cast(_TS)
        values: list[int | None] = parsed.cast(pa.int64()).to_pylist()
        ids = self._tweet_cols["tweet_id"]
        for i, value in enumerate(values):
            if value is None:
                try:
                    values[i] = parse_twitter_time(raw[i])
                except RecordError:
                    self.problems.skip(f"unparseable created_at {raw[i]!r:.40}", f"tweet {ids[i]}")
                    self._drop.add(ids[i])
        return pa.array(values, type=pa.int64()).cast(_TS)

    def _edit_group(self, info: S.EditInfo) -> list[int] | None:
        ids = info.initial.editTweetIds if info.initial is not None else None
        if ids is None and info.edit is not None and info.edit.editControlInitial is not None:
            ids = info.edit.editControlInitial.editTweetIds
        if not ids or len(ids) < 2:
            return None
        return sorted(ids)

    def _urls(self, urls: list[S.Url], tweet_id: int) -> tuple[int | None, str | None]:
        quoted_id: int | None = None
        quoted_user: str | None = None
        cols = self._c.cols["urls"]
        for position, u in enumerate(urls):
            expanded = u.expanded_url
            if not expanded:
                self.problems.skip("url entity without expanded_url", f"tweet {tweet_id}")
                continue
            link = status_link(expanded) if "status" in expanded else None
            status_id = status_user = None
            if link is not None:
                status_id, status_user = link
                if status_id != tweet_id:
                    quoted_id, quoted_user = status_id, status_user
            cols["tweet_id"].append(tweet_id)
            cols["position"].append(position)
            cols["url"].append(u.url)
            cols["expanded_url"].append(expanded)
            cols["display_url"].append(u.display_url)
            cols["status_tweet_id"].append(status_id)
            cols["status_username"].append(status_user)
        return quoted_id, quoted_user

    def _mentions(self, mentions: list[S.Mention], tweet_id: int) -> None:
        cols = self._c.cols["mentions"]
        for position, m in enumerate(mentions):
            if m.screen_name is None:
                self.problems.skip("mention without screen_name", f"tweet {tweet_id}")
                continue
            cols["tweet_id"].append(tweet_id)
            cols["position"].append(position)
            cols["user_id"].append(m.id_str if m.id_str is not None else m.id)
            cols["screen_name"].append(m.screen_name)
            cols["name"].append(m.name)

    def _media(self, media: list[S.Media], tweet_id: int) -> None:
        cols = self._c.cols["media"]
        for position, m in enumerate(media):
            url = m.media_url_https or m.media_url
            if url is None:
                self.problems.skip("media without media_url", f"tweet {tweet_id}")
                continue
            large = m.sizes.large if m.sizes is not None else None
            info = m.video_info
            cols["tweet_id"].append(tweet_id)
            cols["position"].append(position)
            cols["media_id"].append(m.id_str)
            cols["media_type"].append(m.type or "photo")
            cols["media_url"].append(url)
            cols["expanded_url"].append(m.expanded_url)
            cols["width"].append(large.w if large is not None else None)
            cols["height"].append(large.h if large is not None else None)
            cols["video_url"].append(self._best_variant(info.variants) if info is not None else None)
            cols["duration_ms"].append(info.duration_millis if info is not None else None)
            cols["alt_text"].append(m.ext_alt_text)
            cols["source_tweet_id"].append(m.source_status_id_str)

    @staticmethod
    def _best_variant(variants: list[S.Variant]) -> str | None:
        best: tuple[int, str] | None = None
        for v in variants:
            if v.content_type != "video/mp4" or v.url is None:
                continue
            rate = v.bitrate or 0
            if best is None or rate > best[0]:
                best = (rate, v.url)
        return best[1] if best else None

    # -- notes and edits -------------------------------------------------------------------------

    def _merge_notes(self, notes: list[S.NoteItem], index: dict[int, int]) -> None:
        cols = self._tweet_cols
        ids = sorted(index)
        matched: list[tuple[int, list[S.NoteUrl]]] = []
        unmatched = 0
        for position, item in enumerate(notes):
            note = item.noteTweet
            core = note.core
            if core is None or core.text is None:
                self.problems.skip("note-tweet without core.text", f"note-tweet[{position}]")
                continue
            if note.noteTweetId is None:
                self.problems.skip("note-tweet without noteTweetId", f"note-tweet[{position}]")
                continue
            note_text = unescape(core.text)
            row = self._find_note_tweet(note.noteTweetId, note_text, ids, index)
            if row is None:
                unmatched += 1
                continue
            prefix = cols["full_text"][row][: cols["mention_prefix_len"][row]]
            cols["full_text"][row] = prefix + note_text
            cols["is_note"][row] = True
            cols["note_tweet_id"][row] = note.noteTweetId
            matched.append((row, core.urls))
        self._note_urls(matched)
        self.counts["notes_merged"] = len(matched)
        self.counts["notes_unmatched"] = unmatched
        if unmatched:
            self.problems.skip("note-tweet without a matching tweet", f"{unmatched} note-tweet(s)")

    def _find_note_tweet(
        self, note_id: int, note_text: str, ids: list[int], index: dict[int, int]
    ) -> int | None:
        """The tweet minted within NOTE_MATCH_WINDOW_MS after the note whose text contains the note's start.

        Containment, not prefix: a reply's text starts with "@user " and its note does not.
        """
        note_ms = snowflake_ms(note_id)
        low = (note_ms - TWITTER_EPOCH_MS) << 22
        high = (note_ms + NOTE_MATCH_WINDOW_MS - TWITTER_EPOCH_MS + 1) << 22
        needle = _match_key(note_text)[:NOTE_MATCH_PREFIX_CHARS]
        texts = self._tweet_cols["full_text"]
        is_note = self._tweet_cols["is_note"]
        for k in range(bisect.bisect_left(ids, low), bisect.bisect_left(ids, high)):
            row = index[ids[k]]
            if not is_note[row] and needle in _match_key(texts[row]):
                return row
        return None

    def _note_urls(self, matched: list[tuple[int, list[S.NoteUrl]]]) -> None:
        """A note's links (the truncated tweet may lack those past its cut) join the tweet's URLs."""
        if not matched:
            return
        tweets = self._tweet_cols
        cols = self._c.cols["urls"]
        known: dict[int, set[str]] = {tweets["tweet_id"][row]: set() for row, _ in matched}
        for tweet_id, expanded in zip(cols["tweet_id"], cols["expanded_url"], strict=True):
            if tweet_id in known:
                known[tweet_id].add(expanded)
        for row, urls in matched:
            tweet_id = tweets["tweet_id"][row]
            for u in urls:
                expanded = u.expandedUrl
                if expanded is None or expanded in known[tweet_id]:
                    continue
                link = status_link(expanded)
                status_id, status_user = link if link else (None, None)
                if status_id is not None and status_id != tweet_id and tweets["quoted_tweet_id"][row] is None:
                    tweets["quoted_tweet_id"][row] = status_id
                    tweets["quoted_username"][row] = status_user
                cols["tweet_id"].append(tweet_id)
                cols["position"].append(len(known[tweet_id]))
                cols["url"].append(u.shortUrl)
                cols["expanded_url"].append(expanded)
                cols["display_url"].append(u.displayUrl)
                cols["status_tweet_id"].append(status_id)
                cols["status_username"].append(status_user)
                known[tweet_id].add(expanded)

    def _edits(self, groups: list[list[int]], index: dict[int, int], account_id: int) -> pa.Table:
        """Keep the last version of each edited tweet; earlier versions map to it in `edits`."""
        superseded: dict[int, int] = {}
        for group in groups:
            present = [i for i in group if i in index]
            if not present:
                continue
            final = present[-1]
            for version in group:
                if version != final:
                    superseded[version] = final
        dropped = [v for v in superseded if v in index]
        self.counts["edits_superseded"] = len(dropped)
        self._drop.update(dropped)
        return table_from_columns(
            "edits",
            {
                "tweet_id": list(superseded),
                "final_tweet_id": list(superseded.values()),
                "account_id": [account_id] * len(superseded),
            },
        )

    def _drop_rows(self, tables: dict[str, pa.Table]) -> None:
        """Remove superseded edit versions and unusable tweets, with their URLs, media and mentions."""
        if not self._drop:
            return
        drop = pa.array(sorted(self._drop), type=pa.int64())
        for name in ("tweets", "urls", "media", "mentions"):
            table = tables[name]
            tables[name] = table.filter(pc.invert(pc.is_in(table["tweet_id"], value_set=drop)))

    # -- sections --------------------------------------------------------------------------------

    def _sections(self, doc: S.ArchiveDoc, account_id: int, tables: dict[str, pa.Table]) -> None:
        if doc.profile:
            p = doc.profile[0].profile
            desc = p.description or S.Description()
            tables["profiles"] = table_from_columns(
                "profiles",
                {
                    "account_id": [account_id],
                    "bio": [desc.bio],
                    "website": [desc.website],
                    "location": [desc.location],
                    "avatar_media_url": [p.avatarMediaUrl],
                    "header_media_url": [p.headerMediaUrl],
                },
            )
        # uploadLikes=false uploads carry an empty `like`: that says nothing about the account's likes.
        likes_withheld = doc.upload_options is not None and doc.upload_options.uploadLikes is False
        if doc.like is not None and not (likes_withheld and not doc.like):
            tables["likes"] = self._likes(doc.like, account_id)
        if doc.follower is not None:
            tables["followers"] = self._follows(
                [i.follower for i in doc.follower], account_id, "followers", "follower_id"
            )
        if doc.following is not None:
            tables["following"] = self._follows(
                [i.following for i in doc.following], account_id, "following", "following_id"
            )

    def _likes(self, items: list[S.LikeItem], account_id: int) -> pa.Table:
        cols: dict[str, list[Any]] = {"account_id": [], "tweet_id": [], "full_text": [], "expanded_url": []}
        seen: set[int] = set()
        for position, item in enumerate(items):
            like = item.like
            tweet_id = like.tweetId if like.tweetId is not None else like.tWeetId
            if tweet_id is None:
                self.problems.skip("like without tweetId", f"like[{position}]")
                continue
            if tweet_id in seen:
                continue
            seen.add(tweet_id)
            cols["account_id"].append(account_id)
            cols["tweet_id"].append(tweet_id)
            cols["full_text"].append(unescape(like.fullText) if like.fullText is not None else None)
            cols["expanded_url"].append(like.expandedUrl)
        self.counts["likes"] = len(seen)
        return table_from_columns("likes", cols)

    def _follows(self, entries: list[S.Follow], account_id: int, name: str, column: str) -> pa.Table:
        others: list[int] = []
        seen: set[int] = set()
        for position, entry in enumerate(entries):
            if entry.accountId is None:
                self.problems.skip(f"{name} entry without accountId", f"{name}[{position}]")
                continue
            if entry.accountId not in seen:
                seen.add(entry.accountId)
                others.append(entry.accountId)
        self.counts[name] = len(others)
        return table_from_columns(name, {"account_id": [account_id] * len(others), column: others})


def normalize_archive(
    doc: S.ArchiveDoc | dict[str, Any],
    *,
    origin: str,
    source: str,
    snapshot_at_ms: int | None = None,
    upload_id: int | None = None,
    problems: Problems | None = None,
    digest: str | None = None,
) -> AccountArchive:
    """Normalize an archive document (typed, or a parsed JSON dict); raises SourceError when it is not one."""
    problems = problems or Problems(origin)
    if not isinstance(doc, S.ArchiveDoc):
        doc = S.convert_document(doc, origin, problems)
    archive = ArchiveNormalizer(origin, source, problems).run(
        doc, snapshot_at_ms=snapshot_at_ms, upload_id=upload_id, digest=digest
    )
    t = archive.tables["tweets"]
    counts = archive.report.counts
    counts["replies"] = t.num_rows - t["reply_to_tweet_id"].null_count
    counts["retweets"] = int(pc.sum(t["is_retweet"]).as_py() or 0)
    counts["quotes"] = t.num_rows - t["quoted_tweet_id"].null_count
    counts["community"] = t.num_rows - t["community_id"].null_count
    counts["media"] = archive.tables["media"].num_rows
    counts["urls"] = archive.tables["urls"].num_rows
    return archive
