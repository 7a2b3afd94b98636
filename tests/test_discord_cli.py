"""`personas discord extract | users | generate` end to end, and the elizaos/knowledge source from a local git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from pipeline.cli import app
from tests.support.discord import BOB, CAROL, Msg, chat, compact, dce, write

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _exports(folder: Path) -> None:
    write(folder / "dce" / "coders.json", dce(chat(4)))
    # the same day exported again in compact form (overlap) and a later day in ai-news raw form
    write(folder / "compact" / "chat_2024-11-05.json", compact(chat(4)))
    later: list[Msg] = []
    for i in range(3):
        later.append(Msg(BOB, 3000 + i, f"another day another bug in the loader {i}", seq=i))
        later.append(
            Msg(
                CAROL,
                3000.5 + i,
                f"did you try clearing the cache {i}",
                reply_to=len(later) - 1,
                mentions=[BOB],
            )
        )
    write(folder / "ainews" / "2024-11-07.json", compact(later, ai_news=True, date="2024-11-07"))


def test_cli_end_to_end(tmp_path: Path) -> None:
    _exports(tmp_path / "exports")
    out = _invoke("discord", "extract", "--input", str(tmp_path / "exports"), "--out", str(tmp_path / "data"))
    assert "messages kept" in out
    report = json.loads((tmp_path / "data" / "extract-report.json").read_text())
    assert report["loaded"]["formats"] == {"dce": 1, "compact": 1, "ai-news": 1}
    assert report["loaded"]["duplicates"] == 12  # the compact file repeats the DCE day
    assert report["kept"] == 12 + 6
    assert pq.read_table(tmp_path / "data" / "messages.parquet").num_rows == 18

    _invoke(
        "discord",
        "users",
        "--input",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "profiles.json"),
        "--min-messages",
        "4",
        "--top-users",
        "2",
    )
    profiles = json.loads((tmp_path / "profiles.json").read_text())
    assert [u["stats"]["name"] for u in profiles["users"]] == [
        "bob",
        "carol",
    ]  # two days each beat alice's one

    _invoke(
        "discord",
        "generate",
        "--input",
        str(tmp_path / "data"),
        "--profiles",
        str(tmp_path / "profiles.json"),
        "--out",
        str(tmp_path / "training.jsonl"),
        "--examples-per-user",
        "6",
        "--context-window",
        "3",
    )
    produced = sorted(p.name for p in tmp_path.glob("training*"))
    assert "training-dataset" in produced and "training.report.json" in produced
    counts = json.loads((tmp_path / "training.report.json").read_text())
    assert counts["per_persona"] == {"Bobby": 6, "carol": 6}
    total = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("training*.jsonl"))
    assert total == 12
    from datasets import load_dataset

    loaded = load_dataset(str(tmp_path / "training-dataset"))
    assert sum(len(loaded[s]) for s in loaded) == 12
    assert loaded[next(iter(loaded))][0]["messages"][2]["train"] is True


def test_cli_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"nothing": "here"}')
    result = runner.invoke(
        app, ["discord", "extract", "--input", str(tmp_path / "x.json"), "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "no input could be read" in result.output
    result = runner.invoke(
        app, ["discord", "users", "--input", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 2 and "not an extracted Discord data folder" in result.output


SUMMARY = {
    "server": "elizaOS",
    "title": "elizaOS Discord - 2025-01-05",
    "date": 1736035200,
    "stats": {"totalMessages": 10, "totalUsers": 3},
    "categories": [
        {
            "channelId": "1300025221834739744",
            "channelName": "💻-coders",
            "summary": "# Analysis\n\n## 2. FAQ\n"
            "Q: How to run eliza 24/7? (asked by Tano) A: Use nohup or a systemd service (answered by leopaul36)\n"
            "Q: Which version likes tweets? (asked by SecretRecipe) A: Unanswered\n\n"
            "## 3. Help Interactions\n"
            "Helper: SMA | Helpee: jin | Context: Build issues in develop | Resolution: postinstall ran before build\n"
            "Helper: Multiple users | Helpee: Bob | Context: x | Resolution: y\n",
            "messageCount": 10,
            "userCount": 3,
        }
    ],
}


def _git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_knowledge_repo_clone_then_pull(tmp_path: Path) -> None:
    work = tmp_path / "work"
    days = work / "ai-news" / "elizaos" / "discord" / "json"
    write(days / "2025-01-05.json", SUMMARY)
    (days / "2025-01-06.json").write_text("{not json")
    _git("init", "-q", str(work))
    _git("add", "-A", cwd=work)
    _git("commit", "-qm", "day 1", cwd=work)
    bare = tmp_path / "knowledge.git"
    _git("clone", "-q", "--bare", str(work), str(bare))

    _exports(tmp_path / "exports")
    _invoke("discord", "extract", "--input", str(tmp_path / "exports"), "--out", str(tmp_path / "data"))
    _invoke(
        "discord",
        "users",
        "--input",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "p.json"),
        "--min-messages",
        "1",
    )
    generate = [
        "discord",
        "generate",
        "--input",
        str(tmp_path / "data"),
        "--profiles",
        str(tmp_path / "p.json"),
        "--out",
        str(tmp_path / "t.jsonl"),
        "--repo-path",
        bare.as_uri(),
        "--repo-cache",
        str(tmp_path / "cache"),
    ]
    _invoke(*generate)
    rows = [json.loads(line) for line in (tmp_path / "t.knowledge.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["persona"]) for r in rows] == [("qa", "leopaul36"), ("help", "SMA")]
    assert {r["source"] for r in rows} == {"elizaos-knowledge-summary"} and {r["quality"] for r in rows} == {
        "low"
    }
    assert rows[0]["messages"][1]["content"] == "Tano asked in #💻-coders: How to run eliza 24/7?"
    # never mixed into the real-message data
    real = (tmp_path / "t.jsonl").read_text()
    assert "leopaul36" not in real and "elizaos-knowledge-summary" not in real
    assert "low" in (tmp_path / "t-knowledge-dataset" / "README.md").read_text().lower()

    # a new day upstream: the cached clone is pulled, not cloned again
    second = dict(SUMMARY, date=1736121600)
    write(days / "2025-01-07.json", second)
    _git("add", "-A", cwd=work)
    _git("commit", "-qm", "day 2", cwd=work)
    _git("push", "-q", str(bare), "HEAD:main", cwd=work)
    _invoke(*generate)
    rows = [json.loads(line) for line in (tmp_path / "t.knowledge.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["date"] for r in rows} == {"2025-01-05", "2025-01-06"}

    # a local folder works without git
    generate[generate.index("--repo-path") + 1] = str(work)
    assert "summary files" in _invoke(*generate)
