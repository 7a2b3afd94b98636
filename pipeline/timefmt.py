"""Timestamp strings in the two formats archives use, fast (formatting is a hot path in synth and REST)."""

from __future__ import annotations

import time

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class _TimeFormat:
    """Timestamp strings from per-day and per-second tables: formatting is the writer's hot path."""

    def __init__(self) -> None:
        self.hms = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        self.millis = [f".{k:03d}Z" for k in range(1000)]
        self.days: dict[int, tuple[str, str, str]] = {}

    def _day(self, day: int) -> tuple[str, str, str]:
        parts = self.days.get(day)
        if parts is None:
            t = time.gmtime(day * 86400)
            parts = (
                f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} ",
                f" +0000 {t.tm_year}",
                f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T",
            )
            self.days[day] = parts
        return parts

    def twitter(self, ms: int) -> str:
        day, rest = divmod(ms, 86_400_000)
        head, tail, _ = self._day(day)
        return head + self.hms[rest // 1000] + tail

    def iso(self, ms: int) -> str:
        day, rest = divmod(ms, 86_400_000)
        return self._day(day)[2] + self.hms[rest // 1000] + self.millis[rest % 1000]


_TIME = _TimeFormat()
twitter_time = _TIME.twitter
"""Epoch ms -> "Fri Oct 11 02:50:50 +0000 2024" (tweet created_at)."""
iso_time = _TIME.iso
"""Epoch ms -> "2024-10-11T02:50:50.451Z" (archive.json dates)."""
