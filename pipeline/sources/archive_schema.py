"""Typed shape of an archive document, decoded by msgspec.

Decoding straight into these structs (lax mode: the archive's "123" strings become
ints) is about twice as fast as parsing into dicts with orjson, and skips the fields
nobody reads. When a document does not fit (a wrong type somewhere), decoding falls
back to plain JSON and converts record by record: an unusable optional field is
dropped and counted, a record whose identity fields are unusable is skipped and
counted, and the rest of the document survives.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import Struct, field

from pipeline.sources.base import Problems, SourceError


class _S(Struct, gc=False):
    """Base: not tracked by the cyclic GC (these objects never form cycles)."""


class Mention(_S):
    screen_name: str | None = None
    name: str | None = None
    id_str: int | None = None
    id: int | None = None


class Url(_S):
    url: str | None = None
    expanded_url: str | None = None
    display_url: str | None = None


class Size(_S):
    w: int | None = None
    h: int | None = None


class Sizes(_S):
    large: Size | None = None


class Variant(_S):
    bitrate: int | None = None
    content_type: str | None = None
    url: str | None = None


class VideoInfo(_S):
    duration_millis: int | None = None
    variants: list[Variant] = []


class Media(_S):
    id_str: int | None = None
    media_url_https: str | None = None
    media_url: str | None = None
    type: str | None = None
    expanded_url: str | None = None
    sizes: Sizes | None = None
    video_info: VideoInfo | None = None
    ext_alt_text: str | None = None
    source_status_id_str: int | None = None


class Entities(_S):
    urls: list[Url] = []
    user_mentions: list[Mention] = []
    media: list[Media] | None = None


class ExtendedEntities(_S):
    media: list[Media] | None = None


class EditIds(_S):
    editTweetIds: list[int] = []


class Edit(_S):
    initialTweetId: int | None = None
    editControlInitial: EditIds | None = None


class EditInfo(_S):
    initial: EditIds | None = None
    edit: Edit | None = None


class Tweet(_S):
    id_str: int | None = None
    id: int | None = None
    created_at: str | None = None
    full_text: str | None = None
    text: str | None = None
    favorite_count: int | None = None
    retweet_count: int | None = None
    in_reply_to_status_id_str: int | None = None
    in_reply_to_status_id: int | None = None
    in_reply_to_user_id_str: int | None = None
    in_reply_to_user_id: int | None = None
    in_reply_to_screen_name: str | None = None
    lang: str | None = None
    possibly_sensitive: bool | None = None
    entities: Entities | None = None
    extended_entities: ExtendedEntities | None = None
    edit_info: EditInfo | None = None
    community_id_str: int | None = None
    community_id: int | None = None


class TweetItem(_S):
    tweet: Tweet


class NoteUrl(_S):
    shortUrl: str | None = None
    expandedUrl: str | None = None
    displayUrl: str | None = None


class NoteCore(_S):
    text: str | None = None
    urls: list[NoteUrl] = []


class NoteTweet(_S):
    noteTweetId: int | None = None
    createdAt: str | None = None
    core: NoteCore | None = None


class NoteItem(_S):
    noteTweet: NoteTweet


class Like(_S):
    tweetId: int | None = None
    tWeetId: int | None = None  # one real archive spells it so
    fullText: str | None = None
    expandedUrl: str | None = None


class LikeItem(_S):
    like: Like


class Follow(_S):
    accountId: int | None = None


class FollowerItem(_S):
    follower: Follow


class FollowingItem(_S):
    following: Follow


class Account(_S):
    accountId: int | None = None
    username: str | None = None
    accountDisplayName: str | None = None
    createdAt: str | None = None
    createdVia: str | None = None


class AccountItem(_S):
    account: Account


class Description(_S):
    bio: str | None = None
    website: str | None = None
    location: str | None = None


class Profile(_S):
    description: Description | None = None
    avatarMediaUrl: str | None = None
    headerMediaUrl: str | None = None


class ProfileItem(_S):
    profile: Profile


class UploadOptions(_S):
    startDate: str | None = None
    endDate: str | None = None
    uploadLikes: bool | None = None


class ArchiveDoc(_S):
    upload_options: UploadOptions | None = field(default=None, name="upload-options")
    account: list[AccountItem] | None = None
    profile: list[ProfileItem] | None = None
    tweets: list[TweetItem] | None = None
    tweet: list[TweetItem] | None = None
    note_tweet: list[NoteItem] | None = field(default=None, name="note-tweet")
    community_tweet: list[TweetItem] | None = field(default=None, name="community-tweet")
    like: list[LikeItem] | None = None
    follower: list[FollowerItem] | None = None
    following: list[FollowingItem] | None = None


# archive key -> (struct field, item type, wrapper key)
SECTIONS: dict[str, tuple[str, type[Struct], str]] = {
    "account": ("account", AccountItem, "account"),
    "profile": ("profile", ProfileItem, "profile"),
    "tweets": ("tweets", TweetItem, "tweet"),
    "tweet": ("tweet", TweetItem, "tweet"),
    "note-tweet": ("note_tweet", NoteItem, "noteTweet"),
    "community-tweet": ("community_tweet", TweetItem, "tweet"),
    "like": ("like", LikeItem, "like"),
    "follower": ("follower", FollowerItem, "follower"),
    "following": ("following", FollowingItem, "following"),
}

# A record is skipped (not repaired) when one of these fields is unusable.
IDENTITY_FIELDS = {"id_str", "id", "created_at", "full_text", "text", "noteTweetId", "accountId", "tweetId"}

_DOC_DECODER = msgspec.json.Decoder(ArchiveDoc, strict=False)
_ERROR_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MAX_REPAIRS = 20


def _path_tokens(message: str) -> list[str | int] | None:
    match = _ERROR_PATH.search(message)
    if match is None:
        return None
    return [int(index) if index else name for name, index in _PATH_TOKEN.findall(match.group("path"))]


def convert_record(
    item: Any, item_type: type[Struct], wrapper: str | None, where: str, problems: Problems
) -> Any:
    """One record to `item_type`, dropping unusable optional fields; None when the record is unusable."""
    if wrapper is not None and isinstance(item, dict) and wrapper not in item:
        item = {wrapper: item}  # tolerate unwrapped records
    for _ in range(_MAX_REPAIRS):
        try:
            return msgspec.convert(item, item_type, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            tokens = _path_tokens(message)
            depth = 2 if wrapper is not None else 1
            if not tokens or len(tokens) < depth:
                problems.skip(f"unusable record ({message})", where)
                return None
            name = tokens[-1]
            if isinstance(name, str) and name in IDENTITY_FIELDS and len(tokens) == depth:
                problems.skip(f"unusable {name} ({message.split(' - at')[0]})", where)
                return None
            parent: Any = item
            for token in tokens[:-1]:
                parent = parent[token]
            label = ".".join(str(t) for t in tokens if isinstance(t, str))
            problems.coerce(label, parent[name])
            if isinstance(parent, list):
                parent.pop(name)  # type: ignore[arg-type]
            else:
                del parent[name]
    problems.skip("too many unusable fields", where)
    return None


def convert_section(items: Any, key: str, origin: str, problems: Problems) -> list[Any] | None:
    """A section (list of wrapped records) converted record by record."""
    if items is None:
        return None
    if not isinstance(items, list):
        if key in ("tweets", "tweet", "account"):
            raise SourceError(origin, f"'{key}' is {type(items).__name__}, not a list")
        problems.skip(f"section '{key}' is {type(items).__name__}, not a list", key)
        return None
    _, item_type, wrapper = SECTIONS[key]
    out = []
    for position, item in enumerate(items):
        record = convert_record(item, item_type, wrapper, f"{key}[{position}]", problems)
        if record is not None:
            out.append(record)
    return out


def convert_document(raw: Any, origin: str, problems: Problems) -> ArchiveDoc:
    """A parsed JSON document to ArchiveDoc, tolerating bad records (the slow, careful path)."""
    if not isinstance(raw, dict):
        raise SourceError(origin, f"not an archive: top level is {type(raw).__name__}, not an object")
    try:
        return msgspec.convert(raw, ArchiveDoc, strict=False)
    except msgspec.ValidationError:
        pass
    sections: dict[str, Any] = {}
    for key, (attr, _, _) in SECTIONS.items():
        sections[attr] = convert_section(raw.get(key), key, origin, problems)
    options = raw.get("upload-options")
    upload = (
        convert_record(options, UploadOptions, None, "upload-options", problems)
        if isinstance(options, dict)
        else None
    )
    return ArchiveDoc(upload_options=upload, **sections)


_SECTION_DECODERS = {
    key: msgspec.json.Decoder(list[item], strict=False)  # type: ignore[valid-type]
    for key, (_, item, _) in SECTIONS.items()
}


def decode_section(
    data: bytes, key: str, origin: str, problems: Problems, parse_json: Any
) -> list[Any] | None:
    """A JSON array of one section's records (an X export's data/*.js body), typed; careful path on mismatch."""
    try:
        return _SECTION_DECODERS[key].decode(data)
    except msgspec.ValidationError as exc:
        problems.note(f"{key} does not fit the archive shape ({exc}); converting record by record")
    except msgspec.DecodeError:
        pass
    return convert_section(parse_json(data), key, origin, problems)


def decode_document(data: bytes, origin: str, problems: Problems, parse_json: Any) -> ArchiveDoc:
    """Typed decode (fast path); on a type mismatch, `parse_json(data)` and convert record by record."""
    try:
        return _DOC_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        problems.note(f"document does not fit the archive shape ({exc}); converting record by record")
    except msgspec.DecodeError:
        pass  # malformed JSON: parse_json retries without control characters, or explains
    return convert_document(parse_json(data), origin, problems)
