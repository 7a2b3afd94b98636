"""The RL loop: when enough new rewarded posts exist, run pipeline.train.rl on them, hot-load the
adapter into the vLLM server, and roll back to the previous adapter if rewards fall.

State per bot in `<checkpoint_dir>/<bot>/adapters.json`: the `active` adapter (path, round, the
mean reward of the rows it was trained on, when it went live) and the `previous` one. The adapter
is served under one stable name (`model.adapter_name`, default the bot's name) and replaced in
place with a new path each round, as vLLM needs for fresh weights (ChatClient.load_adapter).

Rollback: once `rl.min_new_rows` posts written since the active adapter went live have rewards,
their mean is compared with the mean of the rows that adapter was trained on; a drop larger than
`rl.rollback_margin` puts the previous adapter back.

Voice: with `persona.adaptive`, each trained round also updates the persona's style hints from
its best-rewarded recent posts (pipeline.bot.voice); otherwise only the adapter moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from pipeline.bot.config import BotConfig
from pipeline.bot.engagement import export_rl_rows
from pipeline.bot.store import Action, BotStore, Post, utcnow
from pipeline.bot.voice import adapt_voice, current_style, restore_voice
from pipeline.inference import ChatClient
from pipeline.store.atomic import atomic_write_bytes

log = logging.getLogger("pipeline.bot")


@dataclass
class RLRound:
    ran: bool
    reason: str
    rows: int = 0
    adapter: Path | None = None
    mean_reward: float | None = None


def served_name(bot: BotConfig) -> str:
    return bot.model.adapter_name or bot.name


def _state_path(bot: BotConfig) -> Path:
    return bot.model.checkpoint_dir / bot.name / "adapters.json"


def adapter_state(bot: BotConfig) -> dict[str, Any]:
    path = _state_path(bot)
    return orjson.loads(path.read_bytes()) if path.is_file() else {}


def serving_model(bot: BotConfig) -> str | None:
    """What the timeline asks for: the RL adapter once one is live, else the configured model."""
    return served_name(bot) if adapter_state(bot).get("active") else bot.model.adapter_name


def _log(store: BotStore, bot: BotConfig, outcome: str, reason: str) -> None:
    log.info("%s rl: %s (%s)", bot.name, outcome, reason)
    with store.session() as s:
        s.add(Action(bot=bot.name, action="rl", outcome=outcome, reason=reason))


def rl_round(
    bot: BotConfig,
    store: BotStore,
    chat: ChatClient,
    *,
    followers: int | None = None,
    overrides: dict[str, Any] | None = None,
    train: Callable[..., Any] | None = None,
) -> RLRound:
    """One round if enough new rewarded rows exist; `overrides` go into RLRunConfig (tests: tiny runs)."""
    from pipeline.train.config import RLRunConfig

    with store.session() as s:
        new = (
            s.scalar(
                select(func.count()).where(
                    Post.bot == bot.name, Post.reward.is_not(None), Post.trained_at.is_(None)
                )
            )
            or 0
        )
        mean = s.scalar(
            select(func.avg(Post.reward)).where(
                Post.bot == bot.name, Post.reward.is_not(None), Post.trained_at.is_(None)
            )
        )
    if new < bot.rl.min_new_rows:
        return RLRound(False, f"{new} new rewarded rows < {bot.rl.min_new_rows}")
    state = adapter_state(bot)
    round_no = int(state.get("active", {}).get("round", 0)) + 1
    folder = bot.model.checkpoint_dir / bot.name / f"round-{round_no:04d}"
    rows = export_rl_rows(bot, store, folder / "rows.jsonl", followers=followers)
    active_path = state.get("active", {}).get("path")
    config = RLRunConfig.model_validate(
        {
            "base": bot.model.base,
            "prompts": folder / "rows.jsonl",
            "out": folder / "adapter",
            "algorithm": bot.rl.algorithm,
            "rewards": ["engagement-model", "format", "length"],
            "digests": bot.digests,
            "adapter": active_path,  # continue from the live adapter
            "report_to": ["none"],
            **(overrides or {}),
        }
    )
    if train is None:
        from pipeline.train.rl import train_rl

        train = train_rl
    result = train(config, show_progress=False)
    adapter = Path(result.out)
    chat.load_adapter(served_name(bot), str(adapter), replace=bool(state.get("active")))
    now = utcnow()
    with store.session() as s:
        for post in s.scalars(
            select(Post).where(Post.bot == bot.name, Post.reward.is_not(None), Post.trained_at.is_(None))
        ):
            post.trained_at = now
    adapt_voice(bot, store)  # persona.adaptive: the voice follows the best-rewarded posts too
    active = {
        "path": str(adapter),
        "round": round_no,
        "mean_reward": float(mean or 0.0),
        "since": now.isoformat(),
        "voice": current_style(bot, store),  # what a rollback to this round puts back
    }
    atomic_write_bytes(_state_path(bot), orjson.dumps({"active": active, "previous": state.get("active")}))
    _log(
        store,
        bot,
        "trained",
        f"round {round_no}: {rows} rows, mean reward {float(mean or 0):.3f}, adapter {adapter}",
    )
    return RLRound(True, "trained", rows, adapter, float(mean or 0.0))


def check_rollback(bot: BotConfig, store: BotStore, chat: ChatClient) -> bool:
    """Put the previous adapter back if posts under the active one earn clearly less."""
    state = adapter_state(bot)
    active, previous = state.get("active"), state.get("previous")
    if not active:
        return False
    since = datetime.fromisoformat(active["since"])
    with store.session() as s:
        rewards = s.scalars(
            select(Post.reward).where(
                Post.bot == bot.name, Post.reward.is_not(None), Post.created_at >= since
            )
        ).all()
    if len(rewards) < bot.rl.min_new_rows:
        return False
    mean = sum(r for r in rewards if r is not None) / len(rewards)
    if mean >= active["mean_reward"] - bot.rl.rollback_margin:
        return False
    if previous:
        chat.load_adapter(served_name(bot), previous["path"], replace=True)
        restored = {**previous, "since": utcnow().isoformat()}
    else:
        chat.unload_adapter(served_name(bot))
        restored = None
    restore_voice(bot, store, (previous or {}).get("voice"))  # the voice goes back with its adapter
    atomic_write_bytes(
        _state_path(bot), orjson.dumps({"active": restored, "previous": None, "rolled_back": active})
    )
    _log(
        store,
        bot,
        "rolled_back",
        f"mean reward {mean:.3f} under round {active['round']} < {active['mean_reward']:.3f} - {bot.rl.rollback_margin}",
    )
    return True
