"""The real ElizaOS 💻-coders samples (../shared/data/discord/compact, 19 daily compact files); skipped when absent.

The expected numbers were counted independently of the pipeline, with jq over the raw files:

    cat *.json | jq -s '[.[].messages[]] | group_by(.type // "Default") | map({t: (.[0].type // "Default"), n: length})'
      -> Default 6,539, Reply 2,270, ChannelPinnedMessage 4, ThreadCreated 1, "20" 1 (8,815 in all)
    bots = .[0].users entries with isBot; messages by them: 240; non-bot system messages: 5
      -> kept 8,815 - 240 - 5 = 8,570
    kept messages with a ref: 2,264 (all typed Reply); whose ref is a kept message id: 2,198
    per-user kept counts (jq group_by uid): Ophiuchus 981, ferric | stakeware.xyz 664, whobody 472, jin 465,
      SotoAlt | WAWE 449; UTC days active (python fromisoformat -> astimezone(UTC)): 18, 19, 17, 20, 20
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DiscordConfig
from pipeline.discord.extract import extract, read_data
from pipeline.discord.users import top_users, user_stats


@pytest.fixture(scope="module")
def coders(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = shared_data / "discord" / "compact"
    if not folder.is_dir():
        pytest.skip("no Discord compact samples")
    out = tmp_path_factory.mktemp("discord") / "data"
    extract([folder], out, DiscordConfig())
    return out


def test_counts_match_hand_counts(coders: Path) -> None:
    data = read_data(coders)
    report = data.report
    assert report["loaded"]["files"] == 19 and report["loaded"]["formats"] == {"compact": 19}
    assert report["loaded"]["messages_read"] == 8815 and report["loaded"]["duplicates"] == 0
    assert report["dropped"] == {"bot": 240, "system": 5}
    assert report["kept"] == 8570 == len(data.messages["id"])
    assert report["threading"]["replies"] == 2264
    assert report["threading"]["replies_resolved"] == 2198
    # the 66 unresolved: parents from before 10-27 (missing) or bot messages (dropped)
    assert report["threading"]["reply_parent_missing"] + report["threading"]["reply_parent_dropped_bot"] == 66
    assert report["loaded"]["clock_skew"] == 0  # every ts agrees with its snowflake
    assert len(data.users) == 778 and sum(u.is_bot for u in data.users.values()) == 17


def test_users_match_hand_counts(coders: Path) -> None:
    stats = user_stats(read_data(coders))
    by_name = {s.display_name: s for s in stats.values()}
    expected = {
        "Ophiuchus": (981, 18),
        "ferric | stakeware.xyz": (664, 19),
        "whobody": (472, 17),
        "jin": (465, 20),
        "SotoAlt | WAWE": (449, 20),
    }
    assert {name: (by_name[name].messages, by_name[name].days_active) for name in expected} == expected
    top = [s.display_name for s in top_users(stats, min_messages=50, top=5)]
    # the five busiest are the five most regular too; the order follows days x log2(1 + conversations)
    assert sorted(top) == sorted(expected)
    assert top[:2] == ["SotoAlt | WAWE", "jin"]  # 20 days each; Ophiuchus has the most messages but 18 days
