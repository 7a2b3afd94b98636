"""docker-compose.yml cannot run here (no Docker, no GPU): its services and commands are checked
against the CLI, pipeline.serving's vLLM command line and the example bot.toml instead."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import typer
import yaml

from pipeline.bot.config import parse_bots
from pipeline.cli.app import app
from pipeline.serving import ServeConfig, vllm_command

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _cli_accepts(argv: list[str]) -> None:
    assert argv[:2] == ["personas", "bot"], argv
    group: Any = typer.main.get_command(app)
    command = group.commands["bot"].commands[argv[2]]  # KeyError: not a `personas bot` command
    command.make_context(f"personas bot {argv[2]}", list(argv[3:]), resilient_parsing=False)
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {a for a in argv[3:] if a.startswith("--")} <= options


def test_services() -> None:
    assert set(COMPOSE["services"]) == {"postgres", "vllm", "bot-init", "bot"}
    bot = COMPOSE["services"]["bot"]
    assert bot["depends_on"]["bot-init"]["condition"] == "service_completed_successfully"
    assert {"X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"} <= set(
        bot["environment"]
    )
    assert "PERSONAS_BOT_DATABASE_URL" in bot["environment"]


def test_bot_commands_match_the_cli() -> None:
    for name in ("bot-init", "bot"):
        _cli_accepts(COMPOSE["services"][name]["command"])
    assert COMPOSE["services"]["bot-init"]["command"][2] == "init"
    assert COMPOSE["services"]["bot"]["command"][2] == "run"


def test_vllm_command_matches_serving() -> None:
    service = COMPOSE["services"]["vllm"]
    args = [str(a) for a in service["command"]]
    model = args[args.index("--model") + 1]
    expected = vllm_command(ServeConfig(model=model, host="0.0.0.0", python="python"))
    assert (
        args == expected[3:]
    )  # after `python -m vllm.entrypoints.openai.api_server` (the image's entrypoint)
    assert service["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_example_bot_config_points_at_the_services() -> None:
    data = tomllib.loads((ROOT / "deploy" / "bot.example.toml").read_text())
    url = "postgresql://bot:pw@postgres:5432/bot"
    (bot,) = parse_bots(data, {"PERSONAS_BOT_DATABASE_URL": url})
    assert bot.database_url == url and bot.dry_run
    vllm = COMPOSE["services"]["vllm"]["command"]
    port = vllm[vllm.index("--port") + 1]
    assert bot.inference.base_url == f"http://vllm:{port}/v1"
    assert bot.inference.model == vllm[vllm.index("--served-model-name") + 1]
    mounts = COMPOSE["services"]["bot"]["volumes"]
    assert "./deploy/bot.toml:/config/bot.toml:ro" in mounts
