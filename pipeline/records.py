"""The canonical records every source produces, and their Arrow schemas.

The pydantic models are the single definition of each table: field order,
types, nullability and documentation. The ingest hot path does not build one
pydantic object per tweet (that would cost more than parsing the JSON); it
fills columns in the order these models define and converts them to Arrow with
`arrow_schema(Model)`. Anything that wants a validated row (tests, the REST
source, later stages) can still call `Model.model_validate(row)`.
"""

from __future__ import annotations

import datetime as dt
import types
from typing import Any, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

Timestamp = dt.datetime


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tweet(Record):
    """One tweet as its author's newest snapshot shows it (table `tweets`)."""

    tweet_id: int
    account_id: int
    username: str = Field(description="author handle as of the snapshot")
    created_at: Timestamp
    full_text: str = Field(description="HTML-unescaped; a long post's full note text when it had one")
    mention_prefix_len: int = Field(
        0, description="length of the leading auto-inserted @mentions of a reply; body is full_text[n:]"
    )
    lang: str | None = None
    favorite_count: int | None = None
    retweet_count: int | None = None
    reply_to_tweet_id: int | None = None
    reply_to_user_id: int | None = None
    reply_to_username: str | None = None
    is_retweet: bool = False
    retweeted_username: str | None = None
    quoted_tweet_id: int | None = Field(None, description="last status link to a different tweet")
    quoted_username: str | None = None
    is_note: bool = Field(False, description="full_text comes from a note-tweet (long post)")
    note_tweet_id: int | None = None
    community_id: int | None = None
    edit_initial_id: int | None = Field(None, description="first version's id when this is an edited tweet")
    possibly_sensitive: bool | None = None
    source: str = Field(description="source kind: archive, twitter-export, community-archive-api")
    snapshot_at: Timestamp = Field(description="time of the newest snapshot this row comes from")
    deleted: bool = Field(False, description="absent from a newer snapshot that covers its date")


class TweetUrl(Record):
    """An external or status link of a tweet (table `urls`)."""

    tweet_id: int
    position: int
    url: str | None = Field(None, description="the t.co short link")
    expanded_url: str
    display_url: str | None = None
    status_tweet_id: int | None = Field(None, description="set when the link points at a tweet")
    status_username: str | None = None


class TweetMedia(Record):
    """A photo, GIF or video attached to a tweet (table `media`)."""

    tweet_id: int
    position: int
    media_id: int | None = None
    media_type: str
    media_url: str
    expanded_url: str | None = None
    width: int | None = None
    height: int | None = None
    video_url: str | None = Field(None, description="highest-bitrate MP4 variant")
    duration_ms: int | None = None
    alt_text: str | None = None
    source_tweet_id: int | None = Field(None, description="original tweet of a retweeted media item")


class TweetMention(Record):
    """A user mentioned in a tweet (table `mentions`)."""

    tweet_id: int
    position: int
    user_id: int | None = None
    screen_name: str
    name: str | None = None


class TweetEdit(Record):
    """An earlier version of an edited tweet and the version kept (table `edits`)."""

    tweet_id: int
    final_tweet_id: int
    account_id: int


class Like(Record):
    """A tweet the account liked (table `likes`); likes carry no author or date."""

    account_id: int
    tweet_id: int
    full_text: str | None = None
    expanded_url: str | None = None


class Follower(Record):
    account_id: int
    follower_id: int


class Following(Record):
    account_id: int
    following_id: int


class Account(Record):
    """An archive owner (table `accounts`)."""

    account_id: int
    username: str
    display_name: str | None = None
    created_at: Timestamp | None = None
    created_via: str | None = None
    source: str
    snapshot_at: Timestamp


class Profile(Record):
    account_id: int
    bio: str | None = None
    website: str | None = None
    location: str | None = None
    avatar_media_url: str | None = None
    header_media_url: str | None = None


TABLES: dict[str, type[Record]] = {
    "tweets": Tweet,
    "urls": TweetUrl,
    "media": TweetMedia,
    "mentions": TweetMention,
    "edits": TweetEdit,
    "likes": Like,
    "followers": Follower,
    "following": Following,
    "accounts": Account,
    "profiles": Profile,
}
"""Store table name -> record model. Every account version holds one file per table."""

TWEET_CHILD_TABLES = ("urls", "media", "mentions")
"""Tables whose rows belong to one tweet and follow that tweet's winning snapshot."""

SECTION_TABLES = ("likes", "followers", "following", "profiles")
"""Tables that an archive either carries whole or not at all (a section)."""


_ARROW_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(),
    str: pa.string(),
    bool: pa.bool_(),
    float: pa.float64(),
    dt.datetime: pa.timestamp("ms", tz="UTC"),
}


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        return _ARROW_TYPES[args[0]], True
    return _ARROW_TYPES[annotation], False


def arrow_schema(model: type[Record]) -> pa.Schema:
    """The Arrow schema of a record model (optional fields are nullable)."""
    fields = []
    for name, info in model.model_fields.items():
        typ, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, typ, nullable=nullable))
    return pa.schema(fields)


SCHEMAS: dict[str, pa.Schema] = {name: arrow_schema(model) for name, model in TABLES.items()}


def empty_table(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()


DICTIONARY_COLUMNS = {"username", "source", "lang", "media_type", "screen_name", "reply_to_username"}
"""Low-cardinality string columns worth dictionary encoding; others are plain (faster writes, smaller files)."""


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Write options: zstd; statistics only on ids and times (what queries prune on)."""
    names = schema.names
    return {
        "compression": "zstd",
        "use_dictionary": [n for n in names if n in DICTIONARY_COLUMNS],
        "write_statistics": [n for n in names if n.endswith(("_id", "_at"))],
    }


def table_from_columns(name: str, columns: dict[str, Any]) -> pa.Table:
    """Build a table from per-column Python lists or Arrow arrays (the fast path sources use)."""
    schema = SCHEMAS[name]
    arrays = [_as_array(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _as_array(values: Any, typ: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values if values.type == typ else values.cast(typ)
    return pa.array(values, type=typ)


def table_from_records(name: str, rows: list[Record]) -> pa.Table:
    schema = SCHEMAS[name]
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        for key in cols:
            cols[key].append(getattr(row, key))
    return table_from_columns(name, cols)
