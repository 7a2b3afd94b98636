"""Several bots from one bot.toml, and the reverse-distillation hand-off to pipeline.train.distill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pipeline.bot.config import load_bots
from pipeline.bot.store import BotStore, Post, content_hash
from pipeline.cli.app import app
from pipeline.train.config import DistillConfig


def test_distill_handoff(tmp_path: Path) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(
        f"""
database_url = "sqlite:///{tmp_path / "shared.db"}"
[[bots]]
name = "alpha"
[bots.persona]
name = "Alpha"
[[bots]]
name = "beta"
[bots.persona]
name = "Beta"
[bots.model]
adapter_name = "beta-v2"
"""
    )
    alpha, beta = load_bots(config)
    assert beta.database_url == alpha.database_url  # a shared top-level default
    store = BotStore(alpha.database_url)
    store.init()
    asked = [{"role": "system", "content": "You are X."}, {"role": "user", "content": "@amy posted: evals?"}]
    with store.session() as s:
        for bot, text, status in [
            ("alpha", "evals first", "posted"),
            ("beta", "vibes first", "dry_run"),
            ("beta", "ignored", "blocked"),
        ]:
            s.add(Post(bot=bot, prompt=asked, content=text, content_hash=content_hash(text), status=status))
        s.add(
            Post(
                bot="beta",
                prompt=[{"role": "user", "content": "other"}],
                content="b2",
                content_hash=content_hash("b2"),
                status="posted",
            )
        )
    store.close()
    out = tmp_path / "prompts.jsonl"
    result = CliRunner().invoke(
        app, ["bot", "distill-prompts", "--config", str(config), "--out", str(out), "--student", "big"]
    )
    assert result.exit_code == 0, result.output
    assert "2 prompt(s) from 2 bot(s)" in result.output  # the shared prompt once, blocked posts never
    assert "--teachers alpha,beta-v2 --student big" in result.output

    from pipeline.train.distill import build_distill_dataset

    class Teachers:
        def generate(self, messages: list[dict[str, Any]], model: str) -> str:
            assert [m["role"] for m in messages] == ["user"]  # no persona system prompt handed over
            return f"{model} says hi"

    data = build_distill_dataset(
        DistillConfig(teachers=["alpha", "beta-v2"], prompts=out, out=tmp_path / "distill", max_prompts=None),
        Teachers(),
        show_progress=False,
    )
    assert data.examples == 4 and data.per_teacher == {"alpha": 2, "beta-v2": 2}
