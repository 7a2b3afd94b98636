"""The Naptha X environment: observe and act against the fake X API, called like a node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from naptha_sdk import schemas as naptha_schemas

from tests.support.fake_x import ENV, ME_ID, FakeX, serve_fake_x
from tests.support.naptha_modules import call_like_a_node, import_module_run, import_schemas, node_deployment

pytestmark = pytest.mark.network_loopback
MODULE = Path(__file__).resolve().parents[1] / "environments" / "x_environment"


@pytest.fixture
def fake() -> Iterator[FakeX]:
    server = FakeX()
    server.add_user("1", "amy")
    with serve_fake_x(server):
        yield server


def test_observe_and_act_like_a_node(tmp_path: Path, fake: FakeX, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    plain = fake.add_tweet("1", "a thought on evals")["id"]
    mention = fake.add_tweet("1", "@persona_bot evals or vibes?")["id"]
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[bot]\nname = "tpot"\ndatabase_url = "sqlite:///{tmp_path / "env.db"}"\ndry_run = false\n'
        f'[bot.persona]\nname = "Tpot"\n[bot.x]\nbase_url = "{fake.url}"\n'
        f'[bot.safety]\nkill_switch = "{tmp_path / "STOP"}"\n'
    )
    run = import_module_run(MODULE).run
    schemas = import_schemas(MODULE)
    deployment = node_deployment("environment", MODULE)

    def step(data: dict[str, object]) -> dict[str, object]:
        inputs = {"func_name": "step", "func_input_data": {"config": str(config), **data}}
        return call_like_a_node(run, naptha_schemas.EnvironmentRun, schemas.InputSchema, deployment, inputs)

    first = step({})
    assert first["status"] == "ok", first
    seen = {o["id"]: o["may_reply"] for o in first["observations"]}  # type: ignore[union-attr]
    assert seen == {plain: False, mention: True}
    second = step(
        {
            "actions": [
                {"type": "reply", "text": "vibes, then evals", "in_reply_to": mention, "reason": "asked"},
                {"type": "reply", "text": "me too", "in_reply_to": plain, "reason": "try anyway"},
                {"type": "skip", "in_reply_to": plain, "reason": "not summoned"},
                {"type": "post", "text": "vibes, then evals", "reason": "again"},
            ]
        }
    )
    results = [(r["type"], r["status"]) for r in second["results"]]  # type: ignore[union-attr]
    assert results == [("reply", "posted"), ("reply", "refused"), ("skip", "skipped"), ("post", "blocked")]
    assert second["observations"] == []  # both posts acted on: nothing unseen
    assert [t["text"] for t in fake.posts_by(ME_ID)] == ["vibes, then evals"]
    (tmp_path / "STOP").touch()
    fake.add_tweet("1", "@persona_bot still there?")
    stopped = step({"actions": [{"type": "post", "text": "new thought"}]})
    assert stopped["results"][0]["status"] == "blocked" and "kill switch" in stopped["results"][0]["reason"]  # type: ignore[index]
    assert step({"config": str(tmp_path / "missing.toml")})["status"] == "error"
