"""Hand-built archive documents in the real archive.json shape (string numbers, wrapped records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pipeline.timefmt import iso_time, twitter_time

TWITTER_EPOCH_MS = 1288834974657
BASE_MS = 1_700_000_000_000  # 2023-11-14


def snowflake(ms: int, low: int = 0) -> int:
    return ((ms - TWITTER_EPOCH_MS) << 22) | low


def tid(k: int) -> int:
    """The id of the k-th test tweet: one minute apart, so ids order like times."""
    return snowflake(BASE_MS + k * 60_000, k)


def created(k: int) -> str:
    return twitter_time(BASE_MS + k * 60_000)


def tweet(
    k: int,
    text: str,
    *,
    likes: Any = "0",
    rts: Any = "0",
    reply_to: int | None = None,
    reply_user: str | None = None,
    reply_name: str | None = None,
    urls: list[dict[str, Any]] | None = None,
    mentions: list[dict[str, Any]] | None = None,
    media: list[dict[str, Any]] | None = None,
    ext_media: list[dict[str, Any]] | None = None,
    edit_ids: list[int] | None = None,
    edit_of: int | None = None,
    id_override: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    sid = str(tid(k)) if id_override is None else id_override
    t: dict[str, Any] = {
        "edit_info": {"initial": {"editTweetIds": [sid], "editsRemaining": "5", "isEditEligible": False}},
        "retweeted": False,
        "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
        "entities": {"hashtags": [], "symbols": [], "user_mentions": mentions or [], "urls": urls or []},
        "display_text_range": ["0", str(len(text))],
        "favorite_count": likes,
        "id_str": sid,
        "truncated": False,
        "retweet_count": rts,
        "id": sid,
        "created_at": created(k),
        "favorited": False,
        "full_text": text,
        "lang": "en",
    }
    if reply_to is not None:
        t["in_reply_to_status_id_str"] = str(reply_to)
        t["in_reply_to_status_id"] = str(reply_to)
    if reply_user is not None:
        t["in_reply_to_user_id_str"] = reply_user
        t["in_reply_to_user_id"] = reply_user
    if reply_name is not None:
        t["in_reply_to_screen_name"] = reply_name
    if media is not None:
        t["entities"]["media"] = media
    if ext_media is not None:
        t["extended_entities"] = {"media": ext_media}
    if edit_ids is not None:
        t["edit_info"] = {"initial": {"editTweetIds": [str(i) for i in edit_ids], "editsRemaining": "4"}}
    if edit_of is not None:
        t["edit_info"] = {
            "edit": {
                "initialTweetId": str(edit_of),
                "editControlInitial": {"editTweetIds": [str(edit_of), sid], "editsRemaining": "4"},
            }
        }
    t.update(extra)
    return {"tweet": t}


def url(expanded: str, short: str = "https://t.co/abc") -> dict[str, Any]:
    return {"url": short, "expanded_url": expanded, "display_url": expanded[:20], "indices": ["0", "23"]}


def mention(screen_name: str, user_id: str = "42") -> dict[str, Any]:
    return {
        "name": screen_name.title(),
        "screen_name": screen_name,
        "indices": ["0", "5"],
        "id_str": user_id,
        "id": user_id,
    }


def photo(media_id: int, n: int = 1) -> dict[str, Any]:
    return {
        "id_str": str(media_id),
        "id": str(media_id),
        "media_url_https": f"https://pbs.twimg.com/media/m{media_id}.jpg",
        "media_url": f"http://pbs.twimg.com/media/m{media_id}.jpg",
        "type": "photo",
        "url": "https://t.co/media",
        "expanded_url": f"https://twitter.com/alice/status/1/photo/{n}",
        "sizes": {"large": {"w": "1200", "h": "675", "resize": "fit"}},
    }


def note(
    tweet_k: int, text: str, offset_ms: int = 20, urls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    ms = BASE_MS + tweet_k * 60_000 - offset_ms
    return {
        "noteTweet": {
            "noteTweetId": str(snowflake(ms, 7)),
            "createdAt": iso_time(ms),
            "updatedAt": iso_time(ms),
            "lifecycle": {"name": "Active"},
            "core": {"text": text, "urls": urls or [], "mentions": [], "hashtags": []},
        }
    }


def archive(
    *,
    account_id: str = "1000",
    username: str = "alice",
    tweets: list[dict[str, Any]] | None = None,
    community: list[dict[str, Any]] | None = None,
    notes: list[dict[str, Any]] | None = None,
    likes: list[dict[str, Any]] | None = None,
    followers: list[str] | None = None,
    following: list[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    upload_likes: bool = True,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "account": [
            {
                "account": {
                    "createdVia": "web",
                    "username": username,
                    "accountId": account_id,
                    "createdAt": "2010-01-01T00:00:00.000Z",
                    "accountDisplayName": username.title(),
                }
            }
        ],
        "profile": [
            {"profile": {"description": {"bio": f"I am {username}", "website": "", "location": "Earth"}}}
        ],
        "tweets": tweets or [],
    }
    if start is not None or end is not None:
        doc["upload-options"] = {
            "keepPrivate": False,
            "uploadLikes": upload_likes,
            "startDate": iso_time(BASE_MS + (start or 0) * 60_000),
            "endDate": iso_time(BASE_MS + (end or 0) * 60_000),
        }
    if community is not None:
        doc["community-tweet"] = community
    if notes is not None:
        doc["note-tweet"] = notes
    if likes is not None:
        doc["like"] = likes
    if followers is not None:
        doc["follower"] = [{"follower": {"accountId": f, "userLink": "x"}} for f in followers]
    if following is not None:
        doc["following"] = [{"following": {"accountId": f, "userLink": "x"}} for f in following]
    return doc


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    return path


def write_export(folder: Path, doc: dict[str, Any], *, tweets_name: str = "tweets", parts: int = 1) -> Path:
    """Lay an archive document out as an official X export folder (data/*.js with window.YTD prefixes)."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    names = {
        "account": "account",
        "profile": "profile",
        "note-tweet": "note-tweet",
        "community-tweet": "community-tweet",
        "like": "like",
        "follower": "follower",
        "following": "following",
    }
    for key, stem in names.items():
        if key in doc:
            (data / f"{stem}.js").write_bytes(
                f"window.YTD.{stem.replace('-', '_')}.part0 = ".encode()
                + orjson.dumps(doc[key], option=orjson.OPT_INDENT_2)
            )
    items = doc["tweets"]
    size = max(1, -(-len(items) // parts))
    for part in range(parts):
        chunk = items[part * size : (part + 1) * size]
        name = f"{tweets_name}.js" if part == 0 else f"{tweets_name}-part{part}.js"
        (data / name).write_bytes(f"window.YTD.{tweets_name}.part{part} = ".encode() + orjson.dumps(chunk))
    return folder
