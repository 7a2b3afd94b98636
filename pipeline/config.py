"""The one configuration system: a TOML file, overridden by environment variables.

Lookup order (later wins): built-in defaults, the TOML file (`--config`, else
$PERSONAS_CONFIG, else ./personas.toml when present), then environment variables
named PERSONAS_<SECTION>__<KEY>, e.g. PERSONAS_STORE__DIR=/data/store.

Secrets are SecretStr: they print as '**********' and never reach logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipeline.datasets.prefs import PairConfig
from pipeline.inference import InferenceConfig
from pipeline.scoring import QualityWeights
from pipeline.serving import ServeConfig
from pipeline.train.config import TrainConfig

# The Community Archive's documented public anon key (a PostgREST "anon" role token,
# published in its API docs); it is not a user's secret. Override it in config if it rotates.
COMMUNITY_ARCHIVE_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZhYnhtcG9yaXp6cWZsbmZ0YXZz"
    "Iiwicm9sZSI6ImFub24iLCJpYXQiOjE3MjIyNDQ5MTIsImV4cCI6MjAzNzgyMDkxMn0.UIEJiUNkLsW28tBHmG-RQDW-I5JNlJLt62CSk9D_qG8"
)

DEFAULT_CONFIG_FILE = Path("personas.toml")


class StoreConfig(BaseModel):
    dir: Path = Field(Path("data/store"), description="root of the canonical store")
    gc_grace_s: float = Field(
        600.0, description="how long superseded files stay for readers still scanning them"
    )


class IngestConfig(BaseModel):
    workers: int = Field(0, description="parallel parse workers; 0 = one per CPU core")
    commit_every_s: float = Field(30.0, description="commit progress at least this often (crash loses less)")


class CommunityArchiveConfig(BaseModel):
    url: str = "https://fabxmporizzqflnftavs.supabase.co/rest/v1"
    anon_key: SecretStr = SecretStr(COMMUNITY_ARCHIVE_ANON_KEY)
    page_size: int = Field(1000, ge=1, le=1000, description="PostgREST caps responses at 1000 rows")
    id_chunk: int = Field(150, ge=1, description="tweet ids per in.(...) filter for URL/media/mention rows")
    timeout_s: float = 30.0
    max_attempts: int = Field(5, ge=1, description="tries per request before the account is reported failed")
    backoff_s: float = Field(1.0, description="first retry delay; doubles each try, with jitter")
    max_backoff_s: float = 60.0
    raw_dir: Path = Field(Path("data/raw/community-archive"), description="raw downloads, re-ingestable")


class SynthConfig(BaseModel):
    accounts: int = 200
    tweets: int = 100_000
    seed: int = 0
    out: Path = Path("corpus")


class DatasetsConfig(BaseModel):
    """`personas build`: which datasets, how examples are cut, split and scored."""

    out: Path = Path("out/datasets")
    personas: list[str] = Field(default_factory=list, description="handles for chatml-persona")
    system_template: str = "User is {user}. Assistant is {assistant}. Date is {date}."
    max_messages: int = Field(24, ge=2, description="longest example, in turns; longer paths are windowed")
    overlap: int = Field(8, ge=0, description="turns of context repeated between windows of a long path")
    name_style: str = Field("alternate", pattern="^(alternate|handle|display)$")
    split_mode: str = Field("hash", pattern="^(hash|time)$")
    split_ratios: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "dev": 0.05, "test": 0.05})
    test_fraction: float = Field(0.05, ge=0, lt=1, description="time split: newest trees in test")
    dev_fraction: float = Field(0.05, ge=0, lt=1, description="time split: next newest in dev")
    seed: int = 0
    pairs: PairConfig = Field(default_factory=PairConfig)
    quality: QualityWeights = Field(default_factory=QualityWeights)
    quality_chunk: int = Field(
        1024, ge=1, description="tweets scored per t-digest step (see pipeline/scoring.py)"
    )
    rows_per_batch: int = Field(20_000, ge=100)
    workers: int = Field(0, description="parallel parts for conversations; 0 = one per core")
    duckdb_memory_limit: str = "4GB"
    license: str = "other"
    ref_max_words: int = Field(
        200,
        ge=0,
        description="words of a hydrated article inside <ref> in a training message (storage keeps up to "
        "hydrate.max_words); 0 keeps the empty <ref url=.../> placeholder",
    )


class HydrateConfig(BaseModel):
    """`personas hydrate`: fetching linked articles and images. Everything fetched is untrusted."""

    dir: Path = Field(Path("out/hydrate"), description="article cache, images and their record logs")
    concurrency: int = Field(16, ge=1, le=1024, description="requests in flight")
    per_host: int = Field(2, ge=1, description="requests in flight to one host (politeness)")
    host_interval_s: float = Field(
        0.25, ge=0, description="pause between the starts of two requests to the same host (politeness)"
    )
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(20.0, gt=0, description="longest silence while reading a response")
    total_timeout_s: float = Field(30.0, gt=0, description="whole fetch of one URL, redirects included")
    max_bytes: int = Field(5_000_000, ge=1, description="largest article response body")
    max_image_bytes: int = Field(20_000_000, ge=1, description="largest image")
    max_words: int = Field(50_000, ge=1, description="words of extracted text kept per URL")
    max_redirects: int = Field(5, ge=0)
    user_agent: str = "naptha-personas/0.1 (+https://github.com/NapthaAI; dataset hydration)"
    extract_workers: int = Field(
        0, ge=-1, description="processes extracting text; 0 = one per core, -1 = in a thread (tests)"
    )
    commit_every_s: float = Field(1.0, gt=0, description="records are made durable at least this often")
    allow_networks: list[str] = Field(
        default_factory=list,
        description="TESTS ONLY: address ranges exempt from the SSRF guard (e.g. 127.0.0.1/32 for a "
        "loopback test server). Empty (the default) refuses every non-public address.",
    )
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="fixed host -> IP answers consulted before DNS (like curl --resolve); the guard "
        "still vets the IP",
    )


class DiscordConfig(BaseModel):
    """`personas discord`: Discord exports to per-person instruction data."""

    min_messages: int = Field(3, ge=1, description="meaningful messages a conversation needs to be kept")
    max_gap_minutes: float = Field(
        15.0, gt=0, description="a silence this long starts a new conversation (measured: README)"
    )
    max_skew_s: float = Field(
        300.0, gt=0, description="timestamp vs snowflake time beyond this is clock skew"
    )
    max_message_chars: int = Field(
        8000, ge=1, description="longer messages are skipped (Discord caps at 4,000)"
    )
    min_user_messages: int = Field(50, ge=1, description="messages a user needs to be a persona candidate")
    top_users: int = Field(50, ge=1, description="personas picked by the regularity score")
    examples_per_user: int = Field(200, ge=1)
    context_window: int = Field(10, ge=0, description="previous messages shown as context, at most")
    max_variants_per_target: int = Field(
        3, ge=1, description="upsampling a small user repeats a target at most this often (other templates)"
    )
    blocklist: list[str] = Field(default_factory=list, description="messages with these terms are dropped")
    split_ratios: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1})
    heldout_user_fraction: float = Field(
        0.1, ge=0, lt=1, description="personas whose examples all go to the heldout_users split"
    )
    seed: int = 0
    llm_summary: bool = Field(False, description="add an LLM-written summary to profiles ([inference])")
    workers: int = Field(0, ge=0, description="processes decoding export files; 0 = one per core")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERSONAS_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    community_archive: CommunityArchiveConfig = CommunityArchiveConfig()
    synth: SynthConfig = SynthConfig()
    datasets: DatasetsConfig = DatasetsConfig()
    hydrate: HydrateConfig = HydrateConfig()
    discord: DiscordConfig = DiscordConfig()
    train: TrainConfig = TrainConfig()
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CONFIG_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_CONFIG_FILE: dict[str, Path | None] = {"path": None}


class ConfigError(ValueError):
    pass


def config_file(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    env = os.environ.get("PERSONAS_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"PERSONAS_CONFIG names {path}, which does not exist")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the TOML file and the environment (environment wins over the file)."""
    _CONFIG_FILE["path"] = config_file(path)
    try:
        return Settings(**overrides)
    except ValueError as exc:
        where = _CONFIG_FILE["path"] or "environment"
        raise ConfigError(f"invalid configuration ({where}): {exc}") from exc
    finally:
        _CONFIG_FILE["path"] = None
