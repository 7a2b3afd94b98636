"""A tweet's text as a training message: quotes in <qt>, linked articles in <ref>, media as markers.

- The reply's leading @mentions are dropped (the conversation says who is addressed).
- A quoted tweet is wrapped as `<qt>Name: text</qt>` after the body; when it is not in the store,
  `<qt>@handle: [quoted tweet not in the archive]</qt>` says so.
- An external link becomes `<ref url="…">article text</ref>` when hydrated text exists (the
  hydration issue fills `References`), else the empty placeholder `<ref url="…"/>`.
- Media links become `[image]`, `[gif]` or `[video]` markers (with alt text when present),
  until multimodal work begins.
- Links to other tweets that are not the quote stay as their expanded URLs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

TCO = re.compile(r"https?://t\.co/\w+")
SPACES = re.compile(r"[ \t]{2,}|\t")
MEDIA_MARKERS = {"photo": "image", "animated_gif": "gif", "video": "video"}
MISSING_QUOTE = "[quoted tweet not in the archive]"


class References(Protocol):
    """Article text for linked URLs (expanded URLs as stored in the `urls` table)."""

    def lookup(self, urls: Sequence[str]) -> dict[str, str]: ...


class NoReferences:
    """No hydrated articles: every link renders as the `<ref url="…"/>` placeholder."""

    def lookup(self, urls: Sequence[str]) -> dict[str, str]:
        return {}


def _escape_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def person_name(handle: str | None, display: str | None, style: str) -> str:
    if style == "display" and display:
        return display
    return handle or display or "unknown"


def _media_marker(media: list[dict[str, Any]] | None) -> str:
    if not media:
        return ""
    markers = []
    for item in media:
        kind = MEDIA_MARKERS.get(item.get("media_type") or "photo", "image")
        alt = (item.get("alt_text") or "").strip()
        markers.append(f"[{kind}: {alt}]" if alt else f"[{kind}]")
    return " ".join(markers)


def plain_body(text: str, prefix_len: int) -> str:
    """A quoted tweet's text: body only, links dropped (one level of quoting is enough context)."""
    return " ".join(TCO.sub(" ", text[prefix_len:]).split())


def render_tweet(row: dict[str, Any], articles: dict[str, str]) -> str:
    """The message text of one tweet row (see build.TREE_QUERY for the fields)."""
    body = row["full_text"][row["mention_prefix_len"] :]
    quoted_id = row.get("quoted_tweet_id")
    replacements: dict[str, str] = {}
    for link in row.get("links") or ():
        short, expanded = link.get("url"), link.get("expanded_url")
        if not short or not expanded:
            continue
        status = link.get("status_tweet_id")
        if status is not None:
            replacements[short] = "" if status == quoted_id else expanded
        else:
            text = articles.get(expanded)
            url = _escape_attr(expanded)
            replacements[short] = f'<ref url="{url}">{text}</ref>' if text else f'<ref url="{url}"/>'
    media_marker = _media_marker(row.get("media"))
    placed_media = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal placed_media
        link = match.group(0)
        if link in replacements:
            return replacements[link]
        if media_marker and not placed_media:  # an unlisted t.co link is the media link
            placed_media = True
            return media_marker
        return ""

    text = TCO.sub(substitute, body)
    if media_marker and not placed_media:
        text = f"{text} {media_marker}"
    if "  " in text or "\t" in text:  # a removed link leaves a double space behind
        text = SPACES.sub(" ", text)
    text = text.strip()
    if quoted_id is not None:
        handle = row.get("quoted_username")
        name = f"@{handle}" if handle else (row.get("quoted_display_name") or "unknown")
        quoted = row.get("quoted_text")
        inner = plain_body(quoted, row.get("quoted_prefix") or 0) if quoted is not None else MISSING_QUOTE
        text = f"{text}\n<qt>{name}: {inner}</qt>" if text else f"<qt>{name}: {inner}</qt>"
    return text
