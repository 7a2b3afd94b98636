"""Scrub personal data and secrets from message text, counting what was replaced.

Emails, phone numbers, IPv4/IPv6 addresses, API keys and tokens (OpenAI/Anthropic-style
`sk-`, GitHub, Slack, AWS, Discord bot tokens, JWTs, long hex secrets and private keys)
and crypto wallet addresses (Ethereum `0x` + 40 hex, Bitcoin, Solana-style base58) become
`[EMAIL]`, `[PHONE]`, `[IP]`, `[KEY]`, `[WALLET]`. Order matters: keys and wallets are
matched before phone numbers so a long hex string is not read as digits.
"""

from __future__ import annotations

import re
from collections import Counter

_PATTERNS: list[tuple[str, str]] = [
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    (
        "key",
        r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
        r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"|[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,38}"
        r"|(?<![0-9a-fA-Fx])[0-9a-fA-F]{64}(?![0-9a-fA-F]))",
    ),
    (
        "wallet",
        r"(?:\b0x[0-9a-fA-F]{40}\b|\bbc1[02-9ac-hj-np-z]{25,60}\b|\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b"
        r"|\b(?=[1-9A-HJ-NP-Za-km-z]*\d)(?=[1-9A-HJ-NP-Za-km-z]*[a-z])(?=[1-9A-HJ-NP-Za-km-z]*[A-Z])"
        r"[1-9A-HJ-NP-Za-km-z]{32,44}\b)",
    ),
    (
        "ip",
        r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
        r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
    ),
    (
        "phone",
        r"(?<![\w/.-])(?:\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}(?![\w/-])"
        r"|(?<![\w/.-])\+\d{10,14}(?![\w/-])",
    ),
]
_TOKENS = {"email": "[EMAIL]", "key": "[KEY]", "wallet": "[WALLET]", "ip": "[IP]", "phone": "[PHONE]"}
_COMBINED = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PATTERNS))
_PUBLIC = frozenset({"127.0.0.1", "0.0.0.0"})
# every pattern needs a digit or an '@' somewhere: text without either is skipped cheaply
_MAYBE = re.compile(r"[\d@]")


class Scrubber:
    """Replace personal data in text; `counts` tallies replacements by kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or "key"
        if match.group(0) in _PUBLIC or (kind == "email" and match.group(0).startswith("git@")):
            return match.group(0)  # loopback addresses and SSH git remotes are nobody's personal data
        self.counts[kind] += 1
        return _TOKENS[kind]

    def scrub(self, text: str) -> str:
        if not _MAYBE.search(text):
            return text
        return _COMBINED.sub(self._replace, text)
