"""The elizaos/knowledge repository: LLM-written daily Discord summaries, a separate low-quality source.

The repository holds no messages, only daily summaries (`ai-news/elizaos/discord/json/
YYYY-MM-DD.json`: `{server, title, date, stats, categories: [{channelId, channelName,
summary, messageCount, userCount}]}`; since 2026-03-21 also structured `faqs` and
`helpInteractions`). Their markdown has FAQ lines `Q: … (asked by X) A: … (answered by Y)`
and help lines `Helper: X | Helpee: Y | Context: … | Resolution: …`. Those become
question/answer and helper/helpee examples, always labelled `source:
elizaos-knowledge-summary`, `quality: low`: names are LLM-written display names, the text
is a paraphrase, and nothing here is ever mixed into the real-message dataset.

`--repo-path` takes a local clone, or a git URL that is cloned (shallow) into a cache
folder, or updated there (fetch + reset) when already cloned. Everything read from it is untrusted data:
files that do not parse are counted and skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

SOURCE = "elizaos-knowledge-summary"
SUMMARY_DIRS = ("ai-news/elizaos/discord/json",)
_URL_LIKE = re.compile(r"^(https?://|ssh://|git://|file://|git@)|\.git$")
_FAQ = re.compile(
    r"^\s*[-*]?\s*Q:\s*(?P<q>.+?)\s*\(asked by (?P<asker>[^)]+)\)\s*A:\s*(?P<a>.+?)"
    r"(?:\s*\(answered by (?P<answerer>[^)]+)\))?\s*$"
)
_HELP = re.compile(
    r"^\s*[-*]?\s*Helper:\s*(?P<helper>[^|]+?)\s*\|\s*Helpee:\s*(?P<helpee>[^|]+?)\s*\|\s*"
    r"Context:\s*(?P<context>[^|]+?)\s*\|\s*Resolution:\s*(?P<resolution>.+?)\s*$"
)
_VAGUE = frozenset({"multiple users", "community", "various users", "several users", "unknown", "n/a"})


class KnowledgeError(ValueError):
    pass


def is_git_url(value: str) -> bool:
    return bool(_URL_LIKE.search(value))


def _git(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode:
        raise KnowledgeError(f"git {args[0]} failed: {result.stderr.strip()[-300:]}")


def resolve_repo(repo: str, cache: Path) -> Path:
    """A local checkout of `repo`: the folder itself, or a clone of the URL in `cache` (pulled if there)."""
    if not is_git_url(repo):
        path = Path(repo)
        if not path.is_dir():
            raise KnowledgeError(f"{repo} is neither a folder nor a git URL")
        return path
    if (cache / ".git").is_dir():
        # the cache is ours and read-only: take upstream's newest commit as it is (a shallow history
        # cannot fast-forward anyway)
        _git("fetch", "--depth", "1", "origin", "HEAD", cwd=cache)
        _git("reset", "--hard", "--quiet", "FETCH_HEAD", cwd=cache)
        return cache
    if cache.exists() and any(cache.iterdir()):
        raise KnowledgeError(f"{cache} exists and is not a clone; choose another --repo-cache")
    cache.parent.mkdir(parents=True, exist_ok=True)
    _git("clone", "--depth", "1", "--no-recurse-submodules", repo, str(cache))
    return cache


@dataclass
class KnowledgeItem:
    kind: str  # "qa" | "help"
    date: str
    channel: str
    persona: str  # who answers: the answerer or the helper
    other: str  # who asks: the asker or the helpee
    prompt: str
    answer: str


@dataclass
class KnowledgeReport:
    files: int = 0
    skipped_files: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("*").strip()
    if not name or name.lower() in _VAGUE or "," in name or " and " in name:
        return None  # an LLM's "Multiple users" or a list of people is nobody's persona
    return name


def _from_markdown(summary: str, date: str, channel: str, report: KnowledgeReport) -> list[KnowledgeItem]:
    items = []
    for line in summary.splitlines():
        faq = _FAQ.match(line)
        if faq:
            answer = faq["a"].strip()
            answerer = _clean_name(faq["answerer"])
            asker = _clean_name(faq["asker"])
            if answer.lower().startswith("unanswered") or answerer is None:
                report.dropped["qa_unanswered_or_no_answerer"] += 1
                continue
            items.append(KnowledgeItem("qa", date, channel, answerer, asker or "someone", faq["q"], answer))
            continue
        help_line = _HELP.match(line)
        if help_line:
            helper, helpee = _clean_name(help_line["helper"]), _clean_name(help_line["helpee"])
            if helper is None:
                report.dropped["help_vague_helper"] += 1
                continue
            items.append(
                KnowledgeItem(
                    "help",
                    date,
                    channel,
                    helper,
                    helpee or "someone",
                    help_line["context"],
                    help_line["resolution"],
                )
            )
    return items


def _from_structured(
    category: dict[str, Any], date: str, channel: str, report: KnowledgeReport
) -> list[KnowledgeItem]:
    items = []
    for faq in category.get("faqs") or []:
        if not isinstance(faq, dict):
            continue
        answerer = _clean_name(faq.get("answeredBy"))
        answer = faq.get("answer")
        if answerer is None or not isinstance(answer, str) or answer.lower().startswith("unanswered"):
            report.dropped["qa_unanswered_or_no_answerer"] += 1
            continue
        asker = _clean_name(faq.get("askedBy")) or "someone"
        items.append(
            KnowledgeItem("qa", date, channel, answerer, asker, str(faq.get("question", "")), answer)
        )
    for interaction in category.get("helpInteractions") or []:
        if not isinstance(interaction, dict):
            continue
        helper = _clean_name(interaction.get("helper"))
        if helper is None or not interaction.get("resolution"):
            report.dropped["help_vague_helper"] += 1
            continue
        items.append(
            KnowledgeItem(
                "help",
                date,
                channel,
                helper,
                _clean_name(interaction.get("helpee")) or "someone",
                str(interaction.get("context", "")),
                str(interaction["resolution"]),
            )
        )
    return items


def load_summaries(root: Path) -> tuple[list[KnowledgeItem], KnowledgeReport]:
    report = KnowledgeReport()
    items: list[KnowledgeItem] = []
    files = sorted(p for sub in SUMMARY_DIRS for p in (root / sub).glob("*.json"))
    if not files:
        raise KnowledgeError(f"no daily summaries under {root}/{SUMMARY_DIRS[0]}")
    for path in files:
        try:
            doc = orjson.loads(path.read_bytes())
            categories = doc["categories"]
            stamp = doc.get("date")
            date = (
                dt.datetime.fromtimestamp(int(stamp), dt.UTC).date().isoformat()
                if isinstance(stamp, int | float)
                else path.stem
            )
            if not isinstance(categories, list):
                raise TypeError("categories is not a list")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as exc:
            report.skipped_files[type(exc).__name__] += 1
            continue
        report.files += 1
        for category in categories:
            if not isinstance(category, dict):
                continue
            channel = str(category.get("channelName") or category.get("channelId") or "")
            if category.get("faqs") or category.get("helpInteractions"):
                found = _from_structured(category, date, channel, report)
            else:
                found = _from_markdown(str(category.get("summary") or ""), date, channel, report)
            for item in found:
                report.items[item.kind] += 1
            items.extend(found)
    return items, report


def knowledge_examples(items: list[KnowledgeItem]) -> list[dict[str, Any]]:
    """ChatML rows (the shared message schema), each labelled as a low-quality summary source."""
    rows = []
    for index, item in enumerate(items):
        if item.kind == "qa":
            prompt = f"{item.other} asked in #{item.channel}: {item.prompt}"
        else:
            prompt = f"{item.other} needs help in #{item.channel}: {item.prompt}"
        system = (
            f"You are {item.persona}, a member of the elizaOS Discord. "
            "(From an LLM-written daily summary: paraphrased, low fidelity.)"
        )
        created = dt.datetime.fromisoformat(item.date).replace(tzinfo=dt.UTC)
        rows.append(
            {
                "messages": [
                    {
                        "role": "system",
                        "content": system,
                        "name": None,
                        "train": False,
                        "tweet_ids": [],
                        "created_at": None,
                    },
                    {
                        "role": "user",
                        "content": prompt,
                        "name": item.other,
                        "train": False,
                        "tweet_ids": [],
                        "created_at": created,
                    },
                    {
                        "role": "assistant",
                        "content": item.answer,
                        "name": item.persona,
                        "train": True,
                        "tweet_ids": [],
                        "created_at": created,
                    },
                ],
                "example_id": f"{item.date}:{item.channel}:{index}",
                "source": SOURCE,
                "quality": "low",
                "kind": item.kind,
                "persona": item.persona,
                "channel": item.channel,
                "date": item.date,
            }
        )
    return rows
