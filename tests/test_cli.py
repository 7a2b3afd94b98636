"""The `personas` command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.config import load_settings
from tests.support.postgrest import PostgrestStandIn, serve
from tests.test_community_archive_api import KEY, make_tables

runner = CliRunner()


def personas(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_synth_ingest_stats_sql(tmp_path: Path) -> None:
    corpus, store = tmp_path / "corpus", tmp_path / "store"
    code, out = personas(
        "synth", "--accounts", "5", "--tweets", "600", "--seed", "3", "--out", str(corpus), "--workers", "1"
    )
    assert code == 0, out
    assert "wrote 5 archives, 600 tweets" in out
    code, out = personas("--store", str(store), "ingest", "archive", str(corpus), "--workers", "1")
    assert code == 0, out
    code, out = personas("--store", str(store), "stats", "--json")
    assert code == 0, out
    stats = json.loads(out)
    assert (
        stats["accounts"] == 5
        and stats["tweets"] == 600 - json.loads((corpus / ".synth.json").read_text())["kinds"]["edit"]
    )
    assert stats["per_source"] == {"archive": stats["tweets"]}
    code, out = personas(
        "--store", str(store), "sql", "SELECT count(*) AS n FROM tweets WHERE is_retweet", "--json"
    )
    assert code == 0 and json.loads(out)["n"] == stats["retweets"]
    code, out = personas("--store", str(store), "stats")
    assert code == 0 and "top 5 accounts by tweets" in out and "tweets per source" in out


def test_bad_input_gives_a_message_not_a_traceback(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.json"
    truncated.write_text('{"account": [{"account": {"accountId": "1", "username": "x"}}], "tweets": [')
    code, out = personas(
        "--store", str(tmp_path / "s"), "ingest", "archive", str(truncated), "--workers", "1"
    )
    assert code == 1 and "invalid JSON" in out and "1 input(s) not ingested" in out
    assert "Traceback" not in out
    for args, message in (
        (("ingest", "archive", str(tmp_path / "nope.json")), "no such file"),
        (("ingest", "community-archive"), "give --users"),
        (("stats",), "no store at"),
        (("--config", str(tmp_path / "missing.toml"), "stats"), "does not exist"),
    ):
        code, out = personas("--store", str(tmp_path / "empty"), *args)
        assert code == 2 and message in out.lower().replace("\n", " "), (args, out)
        assert "Traceback" not in out


def test_config_file_and_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "personas.toml"
    config.write_text(
        '[store]\ndir = "from-file"\n\n[community_archive]\npage_size = 100\nmax_attempts = 3\n'
    )
    monkeypatch.delenv("PERSONAS_STORE__DIR", raising=False)
    settings = load_settings(config)
    assert settings.store.dir == Path("from-file") and settings.community_archive.page_size == 100
    monkeypatch.setenv("PERSONAS_STORE__DIR", "from-env")
    monkeypatch.setenv("PERSONAS_COMMUNITY_ARCHIVE__ANON_KEY", "secret-from-env")
    settings = load_settings(config)
    assert settings.store.dir == Path("from-env") and settings.community_archive.max_attempts == 3
    assert settings.community_archive.anon_key.get_secret_value() == "secret-from-env"
    assert "secret-from-env" not in repr(settings)
    bad = tmp_path / "bad.toml"
    bad.write_text("[community_archive]\npage_size = 5000\n")
    code, out = personas("--config", str(bad), "stats")
    assert code == 2 and "page_size" in out


def test_community_archive_command_against_a_loopback_api(tmp_path: Path) -> None:
    standin = PostgrestStandIn(make_tables({"alice": 11, "bob": 22}, 40), api_key=KEY)
    with serve(standin) as url:
        env = {"PERSONAS_COMMUNITY_ARCHIVE__URL": url, "PERSONAS_COMMUNITY_ARCHIVE__ANON_KEY": KEY}
        store = str(tmp_path / "store")
        raw = str(tmp_path / "raw")
        code, out = personas(
            "--store",
            store,
            "ingest",
            "community-archive",
            "--users",
            "alice,@bob,ghost",
            "--raw-dir",
            raw,
            env=env,
        )
        assert code == 1 and "not in the Community Archive: ghost" in out.replace("\n", " ")
        code, out = personas("--store", store, "stats", "--json")
        assert code == 0 and (json.loads(out)["accounts"], json.loads(out)["tweets"]) == (2, 80)
        code, out = personas(
            "--store", store, "ingest", "community-archive", "--poll", "--raw-dir", raw, env=env
        )
        assert code == 0 and "2 account(s) already up to date" in out
    assert len(list(Path(raw).glob("*.json"))) == 2


@pytest.mark.slow
def test_installed_entry_point_runs_the_demo(tmp_path: Path) -> None:
    """The README's main command, through the installed console script."""
    exe = Path(sys.executable).with_name("personas")
    proc = subprocess.run(
        [str(exe), "demo", "--accounts", "8", "--tweets", "2000", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "corpus: 8 archives, 2,000 tweets" in proc.stdout
    assert "top 5 accounts by tweets" in proc.stdout
    assert (tmp_path / "demo" / "store" / "manifest.json").exists()
    assert (tmp_path / "demo" / "datasets" / "report.html").exists()
    for name in ("chatml-two-party", "chatml-multi-party", "chatml-persona", "prefs", "tweets"):
        assert (tmp_path / "demo" / "datasets" / name / "README.md").exists(), name
