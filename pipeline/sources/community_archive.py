"""The Community Archive REST API (Supabase PostgREST): accounts, uploads, tweets and their entities.

Rows are rebuilt into the archive.json shape, saved as a raw download named
`{username}_{upload time, ISO 8601 basic}.json` (so `personas ingest archive` can
re-read it offline), and normalized by the same code as every other source.

PostgREST returns at most 1000 rows per request: every listing pages with a keyset
(`key=gt.<last>&order=key.asc`). Requests retry with exponential backoff and jitter
on connection errors, timeouts, 5xx, 429 (honouring Retry-After) and unparseable
bodies, a bounded number of times; then the account is reported failed and the
others go on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from pipeline.config import CommunityArchiveConfig
from pipeline.sources.base import AccountArchive, Problems, SourceError, UnchangedInput
from pipeline.sources.normalize import RecordError, normalize_archive, parse_iso_time
from pipeline.store.atomic import atomic_write_bytes
from pipeline.timefmt import iso_time, twitter_time

log = logging.getLogger("pipeline.sources.community_archive")

SOURCE = "community-archive-api"

TWEET_COLUMNS = (
    "tweet_id,account_id,created_at,full_text,retweet_count,favorite_count,"
    "reply_to_tweet_id,reply_to_user_id,reply_to_username,archive_upload_id"
)
UPLOAD_COLUMNS = "id,account_id,archive_at,created_at,start_date,end_date,upload_phase"
ACCOUNT_COLUMNS = "account_id,username,account_display_name,created_at,created_via"
PROFILE_COLUMNS = "account_id,bio,website,location,avatar_media_url,header_media_url"


class FetchError(Exception):
    """A request failed for good (after retries, or with a status that retrying cannot fix)."""


@dataclass
class Upload:
    id: int
    account_id: int
    created_at: str | None
    archive_at: str | None
    start_date: str | None = None
    end_date: str | None = None

    @property
    def time_ms(self) -> int | None:
        for value in (self.created_at, self.archive_at):
            if isinstance(value, str):
                try:
                    return parse_iso_time(value)
                except RecordError:
                    continue
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class CommunityArchiveClient:
    """A small, predictable PostgREST client: GET with retries, and keyset paging."""

    def __init__(
        self,
        config: CommunityArchiveConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        self.config = config
        key = config.anon_key.get_secret_value()
        self._http = httpx.Client(
            base_url=config.url.rstrip("/") + "/",
            headers={"apikey": key, "Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=config.timeout_s,
            transport=transport,
            follow_redirects=False,
        )
        self._sleep = sleep
        self._random = random.Random(seed)
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CommunityArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int, hint: float | None) -> float:
        base = self.config.backoff_s * (2**attempt)
        delay = hint if hint is not None else base * (0.5 + self._random.random())
        return min(delay, self.config.max_backoff_s)

    def get(self, resource: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """One GET returning a JSON array of rows, retried on transient failures."""
        last_problem = "no attempt made"
        for attempt in range(self.config.max_attempts):
            hint: float | None = None
            self.requests += 1
            try:
                response = self._http.get(resource, params=params)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        rows = orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        last_problem = f"unparseable body ({response.content[:60]!r})"
                    else:
                        if isinstance(rows, list):
                            return rows
                        last_problem = f"expected a JSON array, got {type(rows).__name__}"
                elif status == 429 or status >= 500:
                    hint = _retry_after(response)
                    last_problem = f"HTTP {status}"
                else:
                    raise FetchError(f"/{resource}: HTTP {status} {response.text[:200]!r}")
            if attempt + 1 < self.config.max_attempts:
                self.retries += 1
                delay = self._backoff(attempt, hint)
                log.warning("/%s: %s; retry %d in %.1fs", resource, last_problem, attempt + 1, delay)
                self._sleep(delay)
        raise FetchError(f"/{resource}: {last_problem} after {self.config.max_attempts} attempts")

    def paged(self, resource: str, params: dict[str, str], key: str) -> Iterator[list[dict[str, Any]]]:
        """All rows matching `params`, a page at a time, by keyset on `key` (stable under concurrent inserts)."""
        last: Any = None
        while True:
            query = dict(params, order=f"{key}.asc", limit=str(self.config.page_size))
            if last is not None:
                query[key] = f"gt.{last}"
            rows = self.get(resource, query)
            if rows:
                yield rows
            if len(rows) < self.config.page_size:
                return
            tail = rows[-1]
            if not isinstance(tail, dict) or tail.get(key) is None:
                raise FetchError(f"/{resource}: page rows lack the paging key {key!r}")
            last = tail[key]

    def in_chunks(
        self, resource: str, column: str, values: list[str], select: str, key: str
    ) -> list[dict[str, Any]]:
        """Rows whose `column` is one of `values`, in URL-sized chunks, each paged."""
        out: list[dict[str, Any]] = []
        size = self.config.id_chunk
        for start in range(0, len(values), size):
            chunk = ",".join(values[start : start + size])
            for page in self.paged(resource, {"select": select, column: f"in.({chunk})"}, key):
                out.extend(page)
        return out

    # -- resources -------------------------------------------------------------------------------

    def find_account(self, username: str) -> dict[str, Any] | None:
        rows = self.get("account", {"select": ACCOUNT_COLUMNS, "username": f"ilike.{username}"})
        return rows[0] if rows else None

    def account_by_id(self, account_id: int) -> dict[str, Any] | None:
        rows = self.get("account", {"select": ACCOUNT_COLUMNS, "account_id": f"eq.{account_id}"})
        return rows[0] if rows else None

    def latest_uploads(self) -> dict[int, Upload]:
        """The newest completed upload of every account."""
        latest: dict[int, Upload] = {}
        params = {"select": UPLOAD_COLUMNS, "upload_phase": "eq.completed"}
        for page in self.paged("archive_upload", params, "id"):
            for row in page:
                try:
                    upload = Upload(
                        id=int(row["id"]),
                        account_id=int(row["account_id"]),
                        created_at=row.get("created_at"),
                        archive_at=row.get("archive_at"),
                        start_date=row.get("start_date"),
                        end_date=row.get("end_date"),
                    )
                except (KeyError, TypeError, ValueError):
                    log.warning("archive_upload: skipped malformed row %.80r", row)
                    continue
                current = latest.get(upload.account_id)
                if current is None or upload.id > current.id:
                    latest[upload.account_id] = upload
        return latest

    def account_rows(self, account_id: int) -> dict[str, list[dict[str, Any]]]:
        """Everything the archive document of one account is rebuilt from."""
        tweets: list[dict[str, Any]] = []
        for page in self.paged(
            "tweets", {"select": TWEET_COLUMNS, "account_id": f"eq.{account_id}"}, "tweet_id"
        ):
            tweets.extend(page)
        ids = [str(t["tweet_id"]) for t in tweets if isinstance(t, dict) and t.get("tweet_id") is not None]
        urls = self.in_chunks("tweet_urls", "tweet_id", ids, "id,tweet_id,url,expanded_url,display_url", "id")
        media = self.in_chunks(
            "tweet_media", "tweet_id", ids, "media_id,tweet_id,media_url,media_type,width,height", "media_id"
        )
        mentions = self.in_chunks("user_mentions", "tweet_id", ids, "id,tweet_id,mentioned_user_id", "id")
        user_ids = sorted(
            {
                str(m["mentioned_user_id"])
                for m in mentions
                if isinstance(m, dict) and m.get("mentioned_user_id")
            }
        )
        users = self.in_chunks("mentioned_users", "user_id", user_ids, "user_id,name,screen_name", "user_id")
        profile = self.get(
            "profile", {"select": PROFILE_COLUMNS, "account_id": f"eq.{account_id}", "limit": "1"}
        )
        return {
            "tweets": tweets,
            "urls": urls,
            "media": media,
            "mentions": mentions,
            "users": users,
            "profile": profile,
        }


def _rows_by_tweet(rows: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if isinstance(row, dict) and row.get("tweet_id") is not None:
            grouped.setdefault(str(row["tweet_id"]), []).append(row)
    return grouped


def _twitter_created(value: Any, problems: Problems) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return twitter_time(parse_iso_time(value))
    except RecordError:
        problems.coerce("tweets.created_at", value)
        return None


def _iso(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return iso_time(parse_iso_time(value))
    except RecordError:
        return None


def rows_to_archive(
    account: dict[str, Any], upload: Upload | None, rows: dict[str, list[dict[str, Any]]], problems: Problems
) -> dict[str, Any]:
    """Rebuild an archive.json-shaped document from REST rows (numbers as strings, as in real archives)."""
    urls = _rows_by_tweet(rows["urls"])
    media = _rows_by_tweet(rows["media"])
    mentions = _rows_by_tweet(rows["mentions"])
    users = {
        str(u["user_id"]): u for u in rows["users"] if isinstance(u, dict) and u.get("user_id") is not None
    }
    tweets = []
    for row in rows["tweets"]:
        if not isinstance(row, dict) or row.get("tweet_id") is None:
            problems.skip("tweet row without tweet_id", "tweets")
            continue
        tid = str(row["tweet_id"])
        tweet: dict[str, Any] = {
            "id_str": tid,
            "created_at": _twitter_created(row.get("created_at"), problems),
            "full_text": row.get("full_text"),
            "favorite_count": row.get("favorite_count"),
            "retweet_count": row.get("retweet_count"),
            "entities": {
                "urls": [
                    {
                        "url": u.get("url"),
                        "expanded_url": u.get("expanded_url"),
                        "display_url": u.get("display_url"),
                    }
                    for u in urls.get(tid, [])
                ],
                "user_mentions": [
                    {
                        "id_str": m.get("mentioned_user_id"),
                        "screen_name": users.get(str(m.get("mentioned_user_id")), {}).get("screen_name"),
                        "name": users.get(str(m.get("mentioned_user_id")), {}).get("name"),
                    }
                    for m in mentions.get(tid, [])
                    if users.get(str(m.get("mentioned_user_id")), {}).get("screen_name")
                ],
            },
        }
        items = [
            {
                "id_str": m.get("media_id"),
                "media_url_https": m.get("media_url"),
                "type": m.get("media_type"),
                "sizes": {"large": {"w": m.get("width"), "h": m.get("height")}},
            }
            for m in media.get(tid, [])
        ]
        if items:
            tweet["entities"]["media"] = items[:1]
            tweet["extended_entities"] = {"media": items}
        for src, dst in (
            ("reply_to_tweet_id", "in_reply_to_status_id_str"),
            ("reply_to_user_id", "in_reply_to_user_id_str"),
            ("reply_to_username", "in_reply_to_screen_name"),
        ):
            if row.get(src) is not None:
                tweet[dst] = row[src]
        tweets.append({"tweet": tweet})
    doc: dict[str, Any] = {
        "account": [
            {
                "account": {
                    "accountId": account.get("account_id"),
                    "username": account.get("username"),
                    "accountDisplayName": account.get("account_display_name"),
                    "createdAt": _iso(account.get("created_at")),
                    "createdVia": account.get("created_via"),
                }
            }
        ],
        "tweets": tweets,
    }
    if rows["profile"]:
        p = rows["profile"][0]
        doc["profile"] = [
            {
                "profile": {
                    "description": {
                        "bio": p.get("bio"),
                        "website": p.get("website"),
                        "location": p.get("location"),
                    },
                    "avatarMediaUrl": p.get("avatar_media_url"),
                    "headerMediaUrl": p.get("header_media_url"),
                }
            }
        ]
    if upload is not None and (upload.start_date or upload.end_date):
        doc["upload-options"] = {"startDate": _iso(upload.start_date), "endDate": _iso(upload.end_date)}
    return doc


def raw_file_name(username: str, upload_ms: int) -> str:
    """`{username}_{ISO 8601 basic UTC time}.json`: sortable, and safe on every filesystem."""
    stamp = dt.datetime.fromtimestamp(upload_ms / 1000, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch for ch in username if ch.isalnum() or ch == "_") or "account"
    return f"{safe}_{stamp}.json"


@dataclass
class FetchPlan:
    """What to download: accounts (REST `account` rows) with their latest upload, and why others were skipped."""

    targets: list[tuple[dict[str, Any], Upload | None]] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def plan_users(client: CommunityArchiveClient, usernames: list[str]) -> FetchPlan:
    plan = FetchPlan()
    uploads = client.latest_uploads()
    for name in usernames:
        account = client.find_account(name)
        if account is None:
            plan.not_found.append(name)
            continue
        plan.targets.append((account, uploads.get(int(account["account_id"]))))
    return plan


def plan_poll(
    client: CommunityArchiveClient,
    held: dict[int, tuple[set[int], int]],
    *,
    usernames: list[str] | None = None,
    everything: bool = False,
) -> FetchPlan:
    """Accounts whose latest completed upload is newer than what the store holds.

    `held` maps account id -> (upload ids already ingested, newest snapshot time in ms). Accounts
    not in the store are included only when named in `usernames` or when `everything` is set.
    """
    plan = FetchPlan()
    wanted = {u.lower() for u in usernames or []}
    for account_id, upload in sorted(client.latest_uploads().items()):
        entry = held.get(account_id)
        if entry is None and not everything and not wanted:
            continue
        if entry is not None:
            upload_ids, newest_ms = entry
            upload_ms = upload.time_ms
            if upload.id in upload_ids or (upload_ms is not None and upload_ms <= newest_ms):
                plan.up_to_date.append(str(account_id))
                continue
        account = client.account_by_id(account_id)
        if account is None:
            continue
        if entry is None and not everything and str(account.get("username", "")).lower() not in wanted:
            continue
        plan.targets.append((account, upload))
    return plan


def download_accounts(
    client: CommunityArchiveClient, plan: FetchPlan, raw_dir: Path, known: frozenset[str] = frozenset()
) -> Iterator[AccountArchive | SourceError | UnchangedInput]:
    """Fetch, save raw and normalize each planned account; a failure is yielded, not raised.

    Rows identical to an ingested snapshot's (same digest of the rebuilt document) yield UnchangedInput.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for account, upload in plan.targets:
        username = str(account.get("username") or account.get("account_id"))
        origin = f"community-archive:{username}"
        try:
            account_id = int(account["account_id"])
            rows = client.account_rows(account_id)
        except (FetchError, KeyError, TypeError, ValueError) as exc:
            yield SourceError(origin, str(exc))
            continue
        problems = Problems(origin)
        doc = rows_to_archive(account, upload, rows, problems)
        digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if digest in known:
            yield UnchangedInput(origin, digest)
            continue
        fetched_ms = int(time.time() * 1000)
        observed_ms = (upload.time_ms if upload else None) or fetched_ms
        doc["_source"] = {
            "kind": SOURCE,
            "url": client.config.url,
            "upload_id": upload.id if upload else None,
            "fetched_at": iso_time(fetched_ms),
        }
        raw_path = raw_dir / raw_file_name(username, observed_ms)
        atomic_write_bytes(raw_path, orjson.dumps(doc))
        try:
            yield normalize_archive(
                doc,
                origin=str(raw_path),
                source=SOURCE,
                snapshot_at_ms=observed_ms,
                upload_id=upload.id if upload else None,
                problems=problems,
                digest=digest,
            )
        except SourceError as exc:
            yield exc
