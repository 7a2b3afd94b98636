"""XInteractor: the bot's X API v2 calls, over tweepy's Client, with clear outcomes for failures.

- Host: tweepy hard-codes https://api.twitter.com; a `requests.Session` subclass rewrites that
  origin to `XConfig.base_url` (https://api.x.com in production, a loopback fake in tests), so
  OAuth 1.0a signs the URL actually requested and no tweepy internals are patched.
- Credentials come from the environment (XCredentials.from_env) as SecretStr; tweepy's DEBUG log
  prints request headers (the bearer token), so its logger is kept at INFO or above.
- Rate limits: the `x-rate-limit-*` headers of every response are remembered per route; a call
  whose window is spent waits for the reset when that is within `max_wait_s`, else it fails with
  RateLimited at once (no request). A 429 is waited out the same way, a bounded number of times;
  24-hour and monthly caps are not waited on. tweepy's own `wait_on_rate_limit` is off: it retries
  forever.
- 402 (credits), 403 (policy: not summoned, quotes/follows not on the tier, duplicate) and 401
  become XError subclasses with an `outcome`, which the loops log and move past.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tweepy

from pipeline.bot.config import XConfig, XCredentials

log = logging.getLogger("pipeline.bot.x")
T = TypeVar("T")

TWEET_FIELDS = [
    "author_id",
    "created_at",
    "conversation_id",
    "referenced_tweets",
    "in_reply_to_user_id",
    "public_metrics",
]
PRIVATE_METRIC_FIELDS = ("non_public_metrics", "organic_metrics")
PRIVATE_MAX_AGE_S = 30 * 86400 - 3600  # X's limit is 30 days; an hour of margin for clock skew
USER_FIELDS = ["description", "location", "public_metrics"]
IDS_PER_REQUEST = 100
TWEEPY_ORIGINS = ("https://api.twitter.com", "https://api.x.com")


class XError(Exception):
    outcome = "failed"

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class RateLimited(XError):
    outcome = "rate_limited"

    def __init__(self, message: str, *, reset_at: float | None = None, capped: bool = False):
        super().__init__(message, status=429)
        self.reset_at = reset_at
        self.capped = capped


class CreditsDepleted(XError):
    outcome = "credits_depleted"


class NotAllowed(XError):
    """403: X's policy refused the action (`kind`: not_summoned, quote, follow, duplicate, auth_type, other)."""

    outcome = "not_allowed"

    def __init__(self, message: str, kind: str):
        super().__init__(message, status=403)
        self.kind = kind


class XAuthError(XError):
    outcome = "auth_failed"


@dataclass
class XUser:
    id: str
    username: str
    name: str = ""
    description: str = ""
    location: str = ""
    followers: int | None = None
    following: int | None = None


@dataclass
class XPost:
    id: str
    text: str
    author_id: str | None = None
    author_username: str | None = None
    created_at: datetime | None = None
    conversation_id: str | None = None
    in_reply_to_user_id: str | None = None
    referenced: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=dict)  # public_metrics
    non_public: dict[str, int] = field(default_factory=dict)  # own posts < 30 days, user context
    organic: dict[str, int] = field(default_factory=dict)


@dataclass
class Window:
    limit: int
    remaining: int
    reset: float


def route_key(method: str, path: str) -> str:
    path = re.sub(r"/by/username/[^/]+", "/by/username/:name", path)
    return method + " " + re.sub(r"/(users|tweets)/\d+", r"/\1/:id", path)


class _OriginSession(requests.Session):
    """Sends tweepy's requests to the configured origin and records rate-limit headers."""

    def __init__(self, origin: str, timeout_s: float, windows: dict[str, Window]):
        super().__init__()
        self.origin = origin.rstrip("/")
        self.timeout_s = timeout_s
        self.windows = windows
        self.calls = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        method = method.decode() if isinstance(method, bytes) else method
        for prefix in TWEEPY_ORIGINS:
            if url.startswith(prefix):
                url = self.origin + url[len(prefix) :]
                break
        kwargs.setdefault("timeout", self.timeout_s)
        self.calls += 1
        response = super().request(method, url, *args, **kwargs)
        headers = response.headers
        if "x-rate-limit-remaining" in headers and "x-rate-limit-reset" in headers:
            self.windows[route_key(method, urlsplit(url).path)] = Window(
                int(headers.get("x-rate-limit-limit", 0)),
                int(headers["x-rate-limit-remaining"]),
                float(headers["x-rate-limit-reset"]),
            )
        return response


def _problem_text(exc: tweepy.HTTPException) -> str:
    messages = list(exc.api_messages or [])
    try:
        body = exc.response.json()
        if isinstance(body, dict):
            messages += [
                str(body[k]) for k in ("detail", "title") if k in body and str(body[k]) not in messages
            ]
    except ValueError:
        pass
    return "; ".join(messages) or f"HTTP {exc.response.status_code}"


def _forbidden_kind(text: str) -> str:
    lowered = text.lower()
    if (
        "reply to this conversation is not allowed" in lowered
        or "not been mentioned or otherwise engaged" in lowered
    ):
        return "not_summoned"
    if "quoting this post is not allowed" in lowered:
        return "quote"
    if "follow" in lowered:
        return "follow"
    if "duplicate content" in lowered:
        return "duplicate"
    if "unsupported authentication" in lowered or "application-only" in lowered:
        return "auth_type"
    return "other"


class XInteractor:
    def __init__(
        self,
        config: XConfig | None = None,
        credentials: XCredentials | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 3,
        backoff_s: float = 1.0,
    ):
        self.config = config or XConfig()
        creds = credentials or XCredentials.from_env()
        if not creds.user_context:
            raise XAuthError(
                "X user-context credentials missing: set X_CONSUMER_KEY, X_CONSUMER_SECRET, "
                "X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET (and X_BEARER_TOKEN for app-only reads)"
            )
        for name in ("tweepy", "oauthlib", "requests_oauthlib"):
            # their DEBUG lines carry the Authorization header and the signed OAuth parameters
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < logging.INFO:
                logger.setLevel(logging.INFO)

        def reveal(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        self.client = tweepy.Client(
            bearer_token=reveal(creds.bearer_token),
            consumer_key=reveal(creds.consumer_key),
            consumer_secret=reveal(creds.consumer_secret),
            access_token=reveal(creds.access_token),
            access_token_secret=reveal(creds.access_token_secret),
            wait_on_rate_limit=False,
        )
        self.windows: dict[str, Window] = {}
        self.session = _OriginSession(self.config.base_url, self.config.timeout_s, self.windows)
        self.client.session = self.session
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._me: XUser | None = None

    @property
    def calls(self) -> int:
        """HTTP requests sent so far (what X bills and rate-limits)."""
        return self.session.calls

    # -- the guarded call ------------------------------------------------------------------------

    def _wait(self, what: str, reset_at: float, capped: bool = False) -> None:
        delay = max(0.0, reset_at - time.time()) + 1.0
        if capped or delay > self.config.max_wait_s:
            raise RateLimited(f"{what}: rate limited until {reset_at:.0f}", reset_at=reset_at, capped=capped)
        log.info("%s: rate limit window spent; waiting %.1f s", what, delay)
        self.sleep(delay)

    def _call(self, key: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(1, self.max_attempts + 1):
            window = self.windows.get(key)
            if window is not None and window.remaining <= 0 and window.reset > time.time():
                self._wait(key, window.reset)
                self.windows.pop(key, None)
            try:
                return fn(*args, **kwargs)
            except tweepy.TooManyRequests as exc:
                text = _problem_text(exc)
                headers = exc.response.headers
                capped = "usage" in text.lower() and "cap" in text.lower()
                capped |= any(
                    headers.get(f"x-{who}-limit-24hour-remaining") == "0" for who in ("user", "app")
                )
                reset = float(exc.reset_time) if exc.reset_time else time.time() + 60
                if attempt == self.max_attempts:
                    raise RateLimited(f"{key}: {text} after {attempt} tries", reset_at=reset) from None
                self._wait(key, reset, capped)
            except tweepy.Forbidden as exc:
                text = _problem_text(exc)
                raise NotAllowed(f"{key}: {text}", _forbidden_kind(text)) from None
            except tweepy.Unauthorized as exc:
                raise XAuthError(f"{key}: {_problem_text(exc)}", status=401) from None
            except tweepy.TwitterServerError as exc:
                if attempt == self.max_attempts:
                    raise XError(f"{key}: {_problem_text(exc)}", status=exc.response.status_code) from None
                self.sleep(min(self.backoff_s * 2.0 ** (attempt - 1), 30.0))
            except tweepy.HTTPException as exc:
                status = exc.response.status_code
                if status == 402:
                    raise CreditsDepleted(f"{key}: {_problem_text(exc)}", status=402) from None
                raise XError(f"{key}: {_problem_text(exc)}", status=status) from None
            except requests.RequestException as exc:
                if attempt == self.max_attempts:
                    raise XError(f"{key}: {type(exc).__name__}") from None
                self.sleep(min(self.backoff_s * 2.0 ** (attempt - 1), 30.0))
        raise AssertionError("unreachable")

    # -- conversions -----------------------------------------------------------------------------

    @staticmethod
    def _user(data: Any) -> XUser:
        metrics = data.get("public_metrics") or {}
        return XUser(
            id=str(data["id"]),
            username=data["username"],
            name=data.get("name", ""),
            description=data.get("description") or "",
            location=data.get("location") or "",
            followers=metrics.get("followers_count"),
            following=metrics.get("following_count"),
        )

    @staticmethod
    def _posts(response: Any) -> list[XPost]:
        users = {str(u.id): u.username for u in (response.includes or {}).get("users", [])}
        posts = []
        for tweet in response.data or []:
            data = tweet.data
            metrics = dict(data.get("public_metrics") or {})
            author = str(data["author_id"]) if data.get("author_id") is not None else None
            posts.append(
                XPost(
                    id=str(data["id"]),
                    text=data["text"],
                    author_id=author,
                    author_username=users.get(author or ""),
                    created_at=tweet.created_at,
                    conversation_id=str(data["conversation_id"]) if data.get("conversation_id") else None,
                    in_reply_to_user_id=str(data["in_reply_to_user_id"])
                    if data.get("in_reply_to_user_id")
                    else None,
                    referenced=[(r["type"], str(r["id"])) for r in data.get("referenced_tweets") or []],
                    metrics=metrics,
                    non_public=dict(data.get("non_public_metrics") or {}),
                    organic=dict(data.get("organic_metrics") or {}),
                )
            )
        return posts

    # -- reads -----------------------------------------------------------------------------------

    def me(self) -> XUser:
        if self._me is None:
            response = self._call(
                "GET /2/users/me", self.client.get_me, user_fields=USER_FIELDS, user_auth=True
            )
            self._me = self._user(response.data.data)
        return self._me

    def home_timeline(self, max_results: int = 50, since_id: str | None = None) -> list[XPost]:
        """Newest first, up to `max_results` (pages of 100); `since_id` skips what was already read."""
        posts: list[XPost] = []
        token: str | None = None
        while len(posts) < max_results:
            response = self._call(
                "GET /2/users/:id/timelines/reverse_chronological",
                self.client.get_home_timeline,
                max_results=max(1, min(100, max_results - len(posts))),
                since_id=since_id,
                pagination_token=token,
                tweet_fields=TWEET_FIELDS,
                expansions=["author_id"],
                user_auth=True,
            )
            posts += self._posts(response)
            token = (response.meta or {}).get("next_token")
            if not token:
                break
        return posts

    def user_tweets(
        self, user_id: str, max_results: int = 100, pagination_token: str | None = None
    ) -> tuple[list[XPost], str | None]:
        response = self._call(
            "GET /2/users/:id/tweets",
            self.client.get_users_tweets,
            user_id,
            max_results=max(5, min(100, max_results)),
            pagination_token=pagination_token,
            tweet_fields=TWEET_FIELDS,
            user_auth=True,
        )
        return self._posts(response), (response.meta or {}).get("next_token")

    def user(self, username: str) -> XUser | None:
        response = self._call(
            "GET /2/users/by/username/:name",
            self.client.get_user,
            username=username.lstrip("@"),
            user_fields=USER_FIELDS,
            user_auth=True,
        )
        return self._user(response.data.data) if response.data is not None else None

    def users(self, usernames: Iterable[str]) -> list[XUser]:
        """Profiles of several accounts, 100 usernames per request; unknown ones are left out."""
        names = list(dict.fromkeys(u.lstrip("@") for u in usernames))
        found: list[XUser] = []
        for start in range(0, len(names), IDS_PER_REQUEST):
            response = self._call(
                "GET /2/users/by",
                self.client.get_users,
                usernames=names[start : start + IDS_PER_REQUEST],
                user_fields=USER_FIELDS,
                user_auth=True,
            )
            found += [self._user(u.data) for u in response.data or []]
        return found

    def metrics(self, post_ids: Iterable[str], *, non_public: bool = False) -> dict[str, XPost]:
        """Current metrics of posts, 100 ids per request.

        `non_public` adds `non_public_metrics` and `organic_metrics`, which X gives only to user
        context for the account's own posts younger than 30 days: for any other post it answers
        200 with a "Field Authorization Error" and drops the post, and app-only auth may be refused
        outright (403). Those posts are read again with public metrics only, so none goes missing
        because of the extra fields."""
        ids = list(dict.fromkeys(post_ids))
        public = ["public_metrics", "created_at", "author_id"]
        found: dict[str, XPost] = {}
        for start in range(0, len(ids), IDS_PER_REQUEST):
            batch = ids[start : start + IDS_PER_REQUEST]
            refused = batch
            if non_public:
                try:
                    response = self._call(
                        "GET /2/tweets",
                        self.client.get_tweets,
                        batch,
                        tweet_fields=public + list(PRIVATE_METRIC_FIELDS),
                        user_auth=True,
                    )
                except NotAllowed as exc:
                    log.info("non-public metrics refused (%s); reading public metrics only", exc)
                else:
                    posts = self._posts(response)
                    found.update((p.id, p) for p in posts)
                    denied = {
                        str(e.get("resource_id") or e.get("value"))
                        for e in response.errors or []
                        if "field authorization" in str(e.get("title", "")).lower()
                    }
                    refused = [i for i in batch if i in denied]
            if refused:
                response = self._call(
                    "GET /2/tweets", self.client.get_tweets, refused, tweet_fields=public, user_auth=True
                )
                found.update((p.id, p) for p in self._posts(response))
        return found

    def _users(self, key: str, fn: Callable[..., Any], post_id: str) -> list[XUser]:
        response = self._call(key, fn, post_id, user_fields=USER_FIELDS, user_auth=True)
        return [self._user(u.data) for u in response.data or []]

    def liking_users(self, post_id: str) -> list[XUser]:
        return self._users("GET /2/tweets/:id/liking_users", self.client.get_liking_users, post_id)

    def retweeters(self, post_id: str) -> list[XUser]:
        return self._users("GET /2/tweets/:id/retweeted_by", self.client.get_retweeters, post_id)

    def quote_tweets(self, post_id: str, max_results: int = 100) -> list[XPost]:
        response = self._call(
            "GET /2/tweets/:id/quote_tweets",
            self.client.get_quote_tweets,
            post_id,
            max_results=max(10, min(100, max_results)),
            tweet_fields=TWEET_FIELDS,
            expansions=["author_id"],
            user_auth=True,
        )
        return self._posts(response)

    def conversation(self, root_id: str, max_results: int = 100) -> list[XPost]:
        """Replies in a post's thread (recent search, last 7 days): `conversation_id:<root>`."""
        response = self._call(
            "GET /2/tweets/search/recent",
            self.client.search_recent_tweets,
            f"conversation_id:{root_id}",
            max_results=max(10, min(100, max_results)),
            tweet_fields=TWEET_FIELDS,
            expansions=["author_id"],
            user_auth=True,
        )
        return self._posts(response)

    # -- writes ----------------------------------------------------------------------------------

    def _create(self, **kwargs: Any) -> str:
        response = self._call("POST /2/tweets", self.client.create_tweet, user_auth=True, **kwargs)
        return str(response.data["id"])

    def post(self, text: str) -> str:
        return self._create(text=text)

    def reply(self, text: str, in_reply_to: str) -> str:
        """X (2026) allows it only where the author mentioned the bot or quoted its post: else NotAllowed."""
        return self._create(text=text, in_reply_to_tweet_id=in_reply_to)

    def quote(self, text: str, quoted: str) -> str:
        """Needs the Enterprise tier since 2026-04-20: expect NotAllowed(kind='quote') elsewhere."""
        return self._create(text=text, quote_tweet_id=quoted)

    def follow(self, user_id: str) -> bool:
        """Needs the Enterprise tier since 2026-04-20: expect NotAllowed elsewhere (follow by hand)."""
        response = self._call("POST /2/users/:id/following", self.client.follow_user, user_id, user_auth=True)
        return bool(response.data.get("following"))
