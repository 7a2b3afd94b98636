"""A loopback fake of the X API v2, for the real tweepy client over HTTP (no network).

Shapes follow the recorded real responses (../shared/data/x-api, read for format only) and
../shared/reference/x-api.md: legacy wire keys (`edit_history_tweet_ids`, `includes.tweets`),
`created_at` with milliseconds, no `data` on empty lists, 201 on POST /2/tweets.

What it checks and simulates:
- auth: `Bearer <token>` must match; OAuth 1.0a HMAC-SHA1 signatures are verified with oauthlib
  against the loopback URL; user-context routes refuse app-only Bearer (403 Unsupported Authentication);
- rate limits: `x-rate-limit-limit|remaining|reset` on every response, per route, 429 when spent;
- the 2026 policy: replies only where the author mentioned the bot or quoted one of its posts,
  quotes and follows refused (self-serve tiers), duplicate content refused;
- scripted faults (`fail(route, status, times)`) for 402 / 403 / 429 / 5xx;
- engagement that changes over time: POST /_test/engagement (test-only) bumps a post's metrics.
Every request is recorded (`requests`), so tests can count API calls.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849.utils import escape, parse_authorization_header

BEARER = "fake-bearer"
CONSUMER_KEY, CONSUMER_SECRET = "fake-ck", "fake-cs"
ME_ID = "1000"
ACCESS_TOKEN, ACCESS_SECRET = f"{ME_ID}-fake-at", "fake-as"  # tweepy reads {me} from the token's prefix
ENV = {
    "X_BEARER_TOKEN": BEARER,
    "X_CONSUMER_KEY": CONSUMER_KEY,
    "X_CONSUMER_SECRET": CONSUMER_SECRET,
    "X_ACCESS_TOKEN": ACCESS_TOKEN,
    "X_ACCESS_TOKEN_SECRET": ACCESS_SECRET,
}

USER_CONTEXT_ONLY = {"me", "home", "post", "delete", "follow", "liking_users"}
METRIC_KEYS = (
    "like_count",
    "retweet_count",
    "reply_count",
    "quote_count",
    "bookmark_count",
    "impression_count",
)
PRIVATE_KEYS = ("url_link_clicks", "user_profile_clicks", "engagements")  # non_public / organic only
PRIVATE_FIELDS = ("non_public_metrics", "organic_metrics")
PRIVATE_MAX_AGE_S = 30 * 86400

ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    (m, name, re.compile(f"^{p}$"))
    for m, name, p in [
        ("GET", "me", r"/2/users/me"),
        ("GET", "home", r"/2/users/(?P<id>\d+)/timelines/reverse_chronological"),
        ("GET", "user_tweets", r"/2/users/(?P<id>\d+)/tweets"),
        ("GET", "mentions", r"/2/users/(?P<id>\d+)/mentions"),
        ("POST", "follow", r"/2/users/(?P<id>\d+)/following"),
        ("GET", "user_by_name", r"/2/users/by/username/(?P<name>\w+)"),
        ("GET", "users_by", r"/2/users/by"),
        ("GET", "user", r"/2/users/(?P<id>\d+)"),
        ("POST", "post", r"/2/tweets"),
        ("DELETE", "delete", r"/2/tweets/(?P<id>\d+)"),
        ("GET", "tweets", r"/2/tweets"),
        ("GET", "search", r"/2/tweets/search/recent"),
        ("GET", "liking_users", r"/2/tweets/(?P<id>\d+)/liking_users"),
        ("GET", "retweeted_by", r"/2/tweets/(?P<id>\d+)/retweeted_by"),
        ("GET", "quote_tweets", r"/2/tweets/(?P<id>\d+)/quote_tweets"),
        ("GET", "tweet", r"/2/tweets/(?P<id>\d+)"),
        ("POST", "test_engagement", r"/_test/engagement"),
    ]
]


def x_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Fault:
    route: str
    status: int
    times: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Limit:
    limit: int
    remaining: int
    reset: int


class FakeX:
    def __init__(self, *, window_s: int = 900, limits: dict[str, int] | None = None):
        self.users: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        self.timeline: list[str] = []  # newest first
        self.following: set[str] = set()
        self.likers: dict[str, list[str]] = {}
        self.retweeters: dict[str, list[str]] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.window_s = window_s
        self.limit_per_route = {"default": 900, **(limits or {})}
        self.limits: dict[str, Limit] = {}
        self.require_summons = True
        self.allow_quotes = False
        self.allow_follows = False
        self._next_id = 2_000_000
        self._lock = threading.RLock()
        self.url = ""
        self.add_user(ME_ID, "persona_bot", name="Persona Bot")

    # -- state -----------------------------------------------------------------------------------

    def new_id(self) -> str:
        with self._lock:
            self._next_id += 1
            return str(self._next_id)

    def add_user(self, user_id: str, username: str, **fields: Any) -> dict[str, Any]:
        user = {
            "id": user_id,
            "username": username,
            "name": fields.pop("name", username.title()),
            "description": fields.pop("description", ""),
            "location": fields.pop("location", ""),
            "public_metrics": {
                "followers_count": fields.pop("followers", 100),
                "following_count": fields.pop("following", 50),
                "tweet_count": 0,
                "listed_count": 0,
            },
        }
        self.users[user_id] = user
        return user

    def add_tweet(
        self,
        author_id: str,
        text: str,
        *,
        created_at: datetime | None = None,
        reply_to: str | None = None,
        quote_of: str | None = None,
        on_timeline: bool = True,
        tweet_id: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            tweet_id = tweet_id or self.new_id()
            referenced = []
            conversation = tweet_id
            tweet: dict[str, Any] = {
                "id": tweet_id,
                "text": text,
                "author_id": author_id,
                "created_at": x_time(created_at or datetime.now(UTC)),
                "edit_history_tweet_ids": [tweet_id],
                "public_metrics": dict.fromkeys(METRIC_KEYS, 0),
                "private_metrics": dict.fromkeys(PRIVATE_KEYS, 0),
            }
            if reply_to is not None:
                parent = self.tweets[reply_to]
                referenced.append({"type": "replied_to", "id": reply_to})
                tweet["in_reply_to_user_id"] = parent["author_id"]
                conversation = parent["conversation_id"]
                parent["public_metrics"]["reply_count"] += 1
            if quote_of is not None:
                referenced.append({"type": "quoted", "id": quote_of})
                self.tweets[quote_of]["public_metrics"]["quote_count"] += 1
            if referenced:
                tweet["referenced_tweets"] = referenced
            tweet["conversation_id"] = conversation
            self.tweets[tweet_id] = tweet
            if on_timeline:
                self.timeline.insert(0, tweet_id)
            return tweet

    def bump(self, tweet_id: str, **deltas: int) -> None:
        """Engagement changing over time: bump(id, like_count=3, impression_count=100, engagements=5)."""
        with self._lock:
            tweet = self.tweets[tweet_id]
            for key, delta in deltas.items():
                tweet["private_metrics" if key in PRIVATE_KEYS else "public_metrics"][key] += delta

    def posts_by(self, author_id: str = ME_ID) -> list[dict[str, Any]]:
        return [t for t in self.tweets.values() if t["author_id"] == author_id]

    def fail(
        self, route: str, status: int, times: int = 1, body: dict[str, Any] | None = None, **headers: str
    ) -> None:
        """Script `times` failures on a route name (see ROUTES) or "*"."""
        default = {"title": "Error", "detail": f"scripted {status}", "type": "about:blank", "status": status}
        self.faults.append(
            Fault(route, status, times, body or default, {k.replace("_", "-"): v for k, v in headers.items()})
        )

    def calls(self, route: str) -> int:
        return sum(1 for r in self.requests if r["route"] == route)

    # -- HTTP ------------------------------------------------------------------------------------

    def _fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.route in (route, "*"):
                    fault.times -= 1
                    return fault
        return None

    def _limit(self, route: str) -> Limit:
        with self._lock:
            now = int(time.time())
            state = self.limits.get(route)
            if state is None or state.reset <= now:
                cap = self.limit_per_route.get(route, self.limit_per_route["default"])
                state = self.limits[route] = Limit(cap, cap, now + self.window_s)
            return state


def _route(command: str, path: str) -> tuple[str, re.Match[str]] | None:
    for method, name, pattern in ROUTES:
        match = pattern.match(path)
        if method == command and match:
            return name, match
    return None


def _tweet_view(server: FakeX, tweet: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    out = {k: tweet[k] for k in ("id", "text", "edit_history_tweet_ids")}
    for key in fields:
        if key in tweet and key != "private_metrics":
            out[key] = dict(tweet[key]) if isinstance(tweet[key], dict) else tweet[key]
    public, private = tweet["public_metrics"], tweet["private_metrics"]
    if "non_public_metrics" in fields:
        out["non_public_metrics"] = {"impression_count": public["impression_count"], **private}
    if "organic_metrics" in fields:
        out["organic_metrics"] = {
            **{k: public[k] for k in ("impression_count", "like_count", "reply_count", "retweet_count")},
            "url_link_clicks": private["url_link_clicks"],
            "user_profile_clicks": private["user_profile_clicks"],
        }
    return out


def _private_refused(tweet: dict[str, Any], fields: set[str], auth: str | None) -> list[dict[str, Any]]:
    """X's rule: non_public/organic metrics only with user context, own posts < 30 days; else the
    post is dropped from `data` and a "Field Authorization Error" per field comes with HTTP 200."""
    wanted = [f for f in PRIVATE_FIELDS if f in fields]
    if not wanted:
        return []
    created = datetime.strptime(tweet["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    age_s = (datetime.now(UTC) - created).total_seconds()
    if auth == "oauth1" and tweet["author_id"] == ME_ID and age_s < PRIVATE_MAX_AGE_S:
        return []
    return [
        {
            "value": tweet["id"],
            "detail": f"Sorry, you are not authorized to access '{f}' on the Tweet with ids: [{tweet['id']}].",
            "title": "Field Authorization Error",
            "resource_type": "tweet",
            "parameter": f,
            "resource_id": tweet["id"],
            "type": "https://api.twitter.com/2/problems/not-authorized-for-field",
        }
        for f in wanted
    ]


def _user_view(user: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    out = {k: user[k] for k in ("id", "name", "username")}
    for key in fields:
        if key in user:
            out[key] = user[key]
    return out


def _handler(server: FakeX) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        auth_kind: str | None = None

        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self, status: int, payload: Any, route: str | None = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if route is not None:
                limit = server._limit(route)
                sent = {
                    "x-rate-limit-limit": str(limit.limit),
                    "x-rate-limit-remaining": str(limit.remaining),
                    "x-rate-limit-reset": str(limit.reset),
                }
                sent.update(headers or {})
                headers = sent
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _problem(
            self, status: int, title: str, detail: str, route: str | None, kind: str = "about:blank"
        ) -> None:
            self._send(status, {"title": title, "detail": detail, "type": kind, "status": status}, route)

        def _auth(self, url: str) -> str | None:
            """'bearer', 'oauth1', or None after answering 401."""
            header = self.headers.get("Authorization") or ""
            if header.startswith("Bearer "):
                if header == f"Bearer {BEARER}":
                    return "bearer"
            elif header.startswith("OAuth "):
                params = dict(parse_authorization_header(header))
                if (
                    params.get("oauth_consumer_key") == CONSUMER_KEY
                    and params.get("oauth_token") == ACCESS_TOKEN
                ):
                    query = urlsplit(url).query
                    collected = oauth_signature.collect_parameters(
                        uri_query=query, headers={"Authorization": header}, exclude_oauth_signature=True
                    )
                    base = oauth_signature.signature_base_string(
                        self.command,
                        oauth_signature.base_string_uri(url),
                        oauth_signature.normalize_parameters(collected),
                    )
                    key = f"{escape(CONSUMER_SECRET)}&{escape(ACCESS_SECRET)}".encode()
                    expected = base64.b64encode(hmac.digest(key, base.encode(), "sha1")).decode()
                    if hmac.compare_digest(expected, unquote(params.get("oauth_signature", ""))):
                        return "oauth1"
            self._send(
                401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
            )
            return None

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            found = _route(self.command, parts.path)
            if found is None:
                self._send(404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]})
                return
            name, match = found
            if name == "test_engagement":
                server.bump(body.pop("id"), **body)
                self._send(200, {"ok": True})
                return
            url = f"http://{self.headers.get('Host')}{self.path}"
            auth = self.auth_kind = self._auth(url)
            with server._lock:
                server.requests.append(
                    {
                        "method": self.command,
                        "route": name,
                        "path": parts.path,
                        "query": query,
                        "body": body,
                        "auth": auth,
                    }
                )
            if auth is None:
                return
            if name in USER_CONTEXT_ONLY and auth != "oauth1":
                self._problem(
                    403,
                    "Unsupported Authentication",
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.",
                    name,
                    "https://api.twitter.com/2/problems/unsupported-authentication",
                )
                return
            limit = server._limit(name)
            fault = server._fault(name)
            if fault is not None:
                self._send(fault.status, fault.body, name, fault.headers)
                return
            if limit.remaining <= 0:
                self._send(
                    429,
                    {
                        "title": "Too Many Requests",
                        "detail": "Too Many Requests",
                        "type": "about:blank",
                        "status": 429,
                    },
                    name,
                )
                return
            with server._lock:
                limit.remaining -= 1
            getattr(self, f"r_{name}")(name, match.groupdict(), query, body)

        do_GET = do_POST = do_DELETE = _handle

        # -- routes ------------------------------------------------------------------------------

        def _fields(self, query: dict[str, str], key: str) -> set[str]:
            return set(filter(None, query.get(key, "").split(",")))

        def _list(
            self, route: str, ids: list[str], query: dict[str, str], *, users: bool = False, lo: int = 1
        ) -> None:
            max_results = int(query.get("max_results", 10 if route == "quote_tweets" else 100))
            if not lo <= max_results <= 100:
                self._problem(400, "Invalid Request", f"max_results must be {lo}-100", route)
                return
            start = int(query.get("pagination_token", "0") or 0)
            if "since_id" in query:
                ids = [i for i in ids if int(i) > int(query["since_id"])]
            page = ids[start : start + max_results]
            meta: dict[str, Any] = {"result_count": len(page)}
            if start + max_results < len(ids):
                meta["next_token"] = str(start + max_results)
            if not page:
                self._send(200, {"meta": meta}, route)
                return
            if users:
                data = [_user_view(server.users[i], self._fields(query, "user.fields")) for i in page]
                self._send(200, {"data": data, "meta": meta}, route)
                return
            meta.update(newest_id=page[0], oldest_id=page[-1])
            self._tweets(route, [server.tweets[i] for i in page], query, meta)

        def _tweets(
            self,
            route: str,
            tweets: list[dict[str, Any]],
            query: dict[str, str],
            meta: dict[str, Any] | None,
            *,
            single: bool = False,
        ) -> None:
            fields = self._fields(query, "tweet.fields")
            errors: list[dict[str, Any]] = []
            allowed = []
            for t in tweets:
                refused = _private_refused(t, fields, self.auth_kind)
                errors += refused
                if not refused:
                    allowed.append(t)
            tweets = allowed
            data = [_tweet_view(server, t, fields) for t in tweets]
            payload: dict[str, Any] = {"data": data[0] if single else data} if data else {}
            if errors:
                payload["errors"] = errors
            if "author_id" in self._fields(query, "expansions"):
                authors = {t["author_id"] for t in tweets}
                payload["includes"] = {
                    "users": [
                        _user_view(server.users[a], self._fields(query, "user.fields"))
                        for a in sorted(authors)
                        if a in server.users
                    ]
                }
            if meta is not None:
                payload["meta"] = meta
            self._send(200, payload, route)

        def r_me(self, route: str, _: dict[str, str], query: dict[str, str], body: Any) -> None:
            self._send(
                200, {"data": _user_view(server.users[ME_ID], self._fields(query, "user.fields"))}, route
            )

        def r_home(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            self._list(route, list(server.timeline), query)

        def r_user_tweets(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            ids = sorted((t["id"] for t in server.posts_by(args["id"])), key=int, reverse=True)
            self._list(route, ids, query, lo=5)

        def r_mentions(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            name = "@" + server.users[args["id"]]["username"]
            ids = sorted(
                (t["id"] for t in server.tweets.values() if name.lower() in t["text"].lower()),
                key=int,
                reverse=True,
            )
            self._list(route, ids, query, lo=5)

        def r_user_by_name(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            for user in server.users.values():
                if user["username"].lower() == args["name"].lower():
                    self._send(200, {"data": _user_view(user, self._fields(query, "user.fields"))}, route)
                    return
            self._send(
                200,
                {
                    "errors": [
                        {
                            "value": args["name"],
                            "detail": f"Could not find user with username: [{args['name']}].",
                            "title": "Not Found Error",
                            "resource_type": "user",
                            "parameter": "username",
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
                route,
            )

        def r_users_by(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            wanted = {u.lower() for u in query.get("usernames", "").split(",")}
            data = [
                _user_view(u, self._fields(query, "user.fields"))
                for u in server.users.values()
                if u["username"].lower() in wanted
            ]
            self._send(200, {"data": data} if data else {}, route)

        def r_user(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            self._send(
                200, {"data": _user_view(server.users[args["id"]], self._fields(query, "user.fields"))}, route
            )

        def r_tweet(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            tweet = server.tweets.get(args["id"])
            if tweet is None:
                self._send(
                    200,
                    {
                        "errors": [
                            {
                                "value": args["id"],
                                "detail": f"Could not find tweet with id: [{args['id']}].",
                                "title": "Not Found Error",
                                "type": "https://api.twitter.com/2/problems/resource-not-found",
                            }
                        ]
                    },
                    route,
                )
                return
            self._tweets(route, [tweet], query, None, single=True)

        def r_tweets(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            ids = query.get("ids", "").split(",")
            if not 1 <= len(ids) <= 100:
                self._problem(400, "Invalid Request", "ids: 1-100 ids", route)
                return
            self._tweets(route, [server.tweets[i] for i in ids if i in server.tweets], query, None)

        def r_post(
            self, route: str, args: dict[str, str], query: dict[str, str], body: dict[str, Any]
        ) -> None:
            text = body.get("text", "")
            reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
            quote_of = body.get("quote_tweet_id")
            if any(t["text"] == text for t in server.posts_by(ME_ID)):
                self._problem(
                    403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.", route
                )
                return
            if quote_of is not None and not server.allow_quotes:
                self._problem(
                    403,
                    "Forbidden",
                    "Quoting this post is not allowed because you have not been mentioned or are not part of the conversation thread of the post you are quoting.",
                    route,
                )
                return
            if reply_to is not None:
                parent = server.tweets.get(reply_to)
                if parent is None:
                    self._problem(400, "Invalid Request", "in_reply_to_tweet_id not found", route)
                    return
                mine = {t["id"] for t in server.posts_by(ME_ID)}
                summoned = "@" + server.users[ME_ID]["username"].lower() in parent["text"].lower() or any(
                    r["type"] == "quoted" and r["id"] in mine for r in parent.get("referenced_tweets", [])
                )
                if server.require_summons and not summoned:
                    self._problem(
                        403,
                        "Forbidden",
                        "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by the author of the post you are replying to.",
                        route,
                    )
                    return
            tweet = server.add_tweet(ME_ID, text, reply_to=reply_to, quote_of=quote_of, on_timeline=False)
            origin = f"http://{self.headers.get('Host')}"
            self._send(
                201,
                {"data": {"id": tweet["id"], "text": text, "edit_history_tweet_ids": [tweet["id"]]}},
                route,
                {"location": f"{origin}/2/tweets/{tweet['id']}"},
            )

        def r_delete(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            server.tweets.pop(args["id"], None)
            self._send(200, {"data": {"deleted": True}}, route)

        def r_follow(
            self, route: str, args: dict[str, str], query: dict[str, str], body: dict[str, Any]
        ) -> None:
            if not server.allow_follows:
                self._problem(
                    403,
                    "Forbidden",
                    "Following users is not available on your access tier.",
                    route,
                    "https://api.twitter.com/2/problems/client-forbidden",
                )
                return
            server.following.add(body["target_user_id"])
            self._send(200, {"data": {"following": True, "pending_follow": False}}, route)

        def r_liking_users(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            self._list(route, server.likers.get(args["id"], []), query, users=True)

        def r_retweeted_by(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            self._list(route, server.retweeters.get(args["id"], []), query, users=True)

        def r_search(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            """Only `conversation_id:<id>` queries (what the bot sends); keyword search is not faked."""
            q = query.get("query", "")
            if not q.startswith("conversation_id:"):
                self._problem(
                    400, "Invalid Request", "the fake supports conversation_id: queries only", route
                )
                return
            root = q.split(":", 1)[1]
            ids = [
                t["id"]
                for t in server.tweets.values()
                if t.get("conversation_id") == root and t["id"] != root
            ]
            self._list(route, sorted(ids, key=int, reverse=True), query, lo=10)

        def r_quote_tweets(self, route: str, args: dict[str, str], query: dict[str, str], body: Any) -> None:
            ids = [
                t["id"]
                for t in server.tweets.values()
                if any(
                    r["type"] == "quoted" and r["id"] == args["id"] for r in t.get("referenced_tweets", [])
                )
            ]
            self._list(route, sorted(ids, key=int, reverse=True), query, lo=10)

    return Handler


@contextmanager
def serve_fake_x(fake: FakeX) -> Iterator[FakeX]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
