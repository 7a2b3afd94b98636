"""Bot configuration: `bot.toml`, one or several bots per file.

A file holds either one `[bot]` table or a list of `[[bots]]` tables (each its own persona,
follow list and adapter). Top-level keys outside those tables are shared defaults that every bot
inherits (e.g. `database_url`, `[inference]`), so an ecosystem of bots repeats nothing.

X credentials are never in the file: they come from the environment (X_BEARER_TOKEN,
X_CONSUMER_KEY, X_CONSUMER_SECRET, X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET) as SecretStr values.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from pipeline.inference import InferenceConfig

DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"


class PersonaConfig(BaseModel):
    name: str = Field(..., min_length=1, description="the persona's name, used in prompts")
    description: str = Field("", description="who the persona is, in a sentence or two")
    tone: str = Field("thoughtful, concise, friendly", description="how it writes")
    interests: list[str] = Field(default_factory=list, description="topics it engages with")
    adaptive: bool = Field(False, description="let RL move the persona's voice (else only the adapter)")


class LoopConfig(BaseModel):
    timeline_length: int = Field(
        50, ge=1, le=800, description="home-timeline posts read per cycle (pages of 100; X keeps ~800)"
    )
    timeline_interval_s: float = Field(900.0, gt=0)
    engagement_interval_s: float = Field(3600.0, gt=0)
    rl_interval_s: float = Field(86400.0, gt=0)
    snapshot_max_age_days: float = Field(
        29.0, gt=0, description="stop snapshotting posts older than this (X: non-public metrics < 30 days)"
    )


class SFTConfig(BaseModel):
    token_budget: int = Field(5_000_000, ge=1, description="jump-start set size, at 4 characters per token")
    memory_cap_bytes: int = Field(4 * 1024**3, ge=1)
    shard_bytes: int = Field(500 * 1024**2, ge=1)


class RLConfig(BaseModel):
    min_new_rows: int = Field(64, ge=1, description="rewarded rows needed before an RL round")
    algorithm: str = Field("grpo", pattern="^(grpo|rloo)$")
    rollback_margin: float = Field(
        0.05, ge=0, description="roll back to the previous adapter when mean reward drops by more"
    )


class ModelConfig(BaseModel):
    base: str = Field(DEFAULT_BASE_MODEL, description="base model repo id")
    checkpoint_dir: Path = Field(Path("data/bot/checkpoints"))
    adapter_name: str | None = Field(None, description="LoRA adapter name on the vLLM server")


class SafetyConfig(BaseModel):
    max_posts_per_hour: int = Field(4, ge=0)
    max_posts_per_day: int = Field(20, ge=0)
    max_chars: int = Field(280, ge=1)
    kill_switch: Path = Field(Path("data/bot/STOP"), description="if this file exists, nothing is posted")
    blocklist: list[str] = Field(default_factory=list, description="terms that block a post (any case)")
    max_cashtags: int = Field(1, ge=0, description="X 2026: at most one cashtag per post")


class XConfig(BaseModel):
    base_url: str = Field("https://api.x.com", description="API origin (a loopback fake in tests)")
    max_wait_s: float = Field(900.0, ge=0, description="longest wait on a 429 before giving up the call")
    timeout_s: float = Field(30.0, gt=0)


class XCredentials(BaseModel):
    bearer_token: SecretStr | None = None
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> XCredentials:
        env = os.environ if environ is None else environ

        def get(name: str) -> SecretStr | None:
            value = env.get(name)
            return SecretStr(value) if value else None

        return cls(
            bearer_token=get("X_BEARER_TOKEN"),
            consumer_key=get("X_CONSUMER_KEY"),
            consumer_secret=get("X_CONSUMER_SECRET"),
            access_token=get("X_ACCESS_TOKEN"),
            access_token_secret=get("X_ACCESS_TOKEN_SECRET"),
        )

    @property
    def user_context(self) -> bool:
        return all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))


class BotConfig(BaseModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="the bot's id (store rows, adapter)")
    persona: PersonaConfig
    database_url: str = Field(
        "sqlite:///data/bot/bot.db", description="SQLAlchemy URL (SQLite or PostgreSQL)"
    )
    dry_run: bool = Field(True, description="post nothing until set to false explicitly")
    follow: list[str] = Field(default_factory=list, description="handles whose tweets seed the jump start")
    loops: LoopConfig = Field(default_factory=LoopConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    x: XConfig = Field(default_factory=XConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    digests: Path | None = Field(
        None, description="a build's t-digest state (pipeline.scoring) to score rewards against"
    )

    @model_validator(mode="after")
    def _handles(self) -> BotConfig:
        self.follow = [h.lstrip("@") for h in self.follow]
        return self


class BotFileError(ValueError):
    pass


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


DATABASE_URL_ENV = "PERSONAS_BOT_DATABASE_URL"


def parse_bots(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[BotConfig]:
    """Bots of a parsed bot.toml; $PERSONAS_BOT_DATABASE_URL (a deployment's, with its password) wins."""
    env = os.environ if environ is None else environ
    shared = {k: v for k, v in data.items() if k not in ("bot", "bots")}
    if env.get(DATABASE_URL_ENV):
        shared["database_url"] = env[DATABASE_URL_ENV]
    tables: list[dict[str, Any]] = []
    if "bot" in data:
        tables.append(data["bot"])
    tables.extend(data.get("bots", []))
    if not tables:
        raise BotFileError("no [bot] or [[bots]] table")
    bots = [BotConfig.model_validate(_merge(shared, table)) for table in tables]
    if env.get(DATABASE_URL_ENV):
        for bot in bots:
            bot.database_url = env[DATABASE_URL_ENV]
    names = [b.name for b in bots]
    if len(set(names)) != len(names):
        raise BotFileError(f"bot names must be unique: {names}")
    return bots


def load_bots(path: Path) -> list[BotConfig]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BotFileError(f"no bot config at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BotFileError(f"{path}: {exc}") from None
    return parse_bots(data)


def select_bot(bots: list[BotConfig], name: str | None) -> BotConfig:
    if name is None:
        if len(bots) > 1:
            raise BotFileError(
                f"the file has {len(bots)} bots; pick one with --bot ({[b.name for b in bots]})"
            )
        return bots[0]
    for bot in bots:
        if bot.name == name:
            return bot
    raise BotFileError(f"no bot named {name!r} (have {[b.name for b in bots]})")
