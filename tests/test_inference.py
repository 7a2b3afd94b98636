"""The inference client against a loopback OpenAI-compatible server: completions, usage,
streaming, retries on 429/5xx, timeouts, model mapping, secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from pipeline.config import load_settings
from pipeline.inference import ChatClient, InferenceConfig, InferenceError
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = pytest.mark.network_loopback
MESSAGES = [{"role": "user", "content": "what is the vibe today"}]


@pytest.fixture
def server() -> Iterator[OpenAIStandIn]:
    with serve_openai(OpenAIStandIn(["first reply here", "second one"], models=("tiny-base",))) as s:
        yield s


def config(server: OpenAIStandIn, **kw: object) -> InferenceConfig:
    values: dict[str, object] = {"base_url": server.base_url, "model": "tiny-base", "backoff_s": 0.01}
    values.update(kw)
    return InferenceConfig.model_validate(values)


def test_chat_completion_returns_text_usage_and_latency(server: OpenAIStandIn) -> None:
    with ChatClient(config(server)) as client:
        result = client.chat_completion(MESSAGES, max_tokens=16, temperature=0.0)
        assert result.text == "first reply here"
        assert client.chat(MESSAGES) == "second one"
    assert result.model == "tiny-base"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        5,
        3,
        8,
    )
    assert result.latency_s > 0
    assert result.finish_reason == "stop"
    body = server.requests[0]
    assert body["max_tokens"] == 16 and body["temperature"] == 0.0 and body["messages"] == MESSAGES


def test_model_mapping_to_served_names_and_adapters(server: OpenAIStandIn) -> None:
    server.adapters["tpot-sft"] = "/adapters/sft"
    cfg = config(server, models={"visakanv": "tpot-sft", "base": "tiny-base"})
    with ChatClient(cfg) as client:
        client.chat(MESSAGES, model="visakanv")
        client.chat(MESSAGES, model="base")
        client.chat(MESSAGES)  # the default model
        with pytest.raises(InferenceError, match=r"HTTP 404: The model `nope` does not exist") as err:
            client.chat(MESSAGES, model="nope")
    assert err.value.status == 404
    assert [r["model"] for r in server.requests] == ["tpot-sft", "tiny-base", "tiny-base", "nope"]
    with pytest.raises(InferenceError, match="no model named"):
        InferenceConfig(model=None).resolve_model(None)


def test_retries_429_and_5xx_with_backoff(server: OpenAIStandIn) -> None:
    server.fail(times=1, status=429, retry_after="0")
    server.fail(times=2, status=503)
    with ChatClient(config(server, max_retries=3)) as client:
        assert client.chat(MESSAGES) == "first reply here"
    assert len(server.requests) == 4


def test_gives_up_after_max_retries_and_does_not_retry_4xx(server: OpenAIStandIn) -> None:
    server.fail(times=10, status=500)
    with ChatClient(config(server, max_retries=2)) as client, pytest.raises(InferenceError) as err:
        client.chat(MESSAGES)
    assert err.value.status == 500 and "after 3 tries" in str(err.value)
    assert len(server.requests) == 3
    server.faults.clear()
    server.fail(times=1, status=400)
    with ChatClient(config(server, max_retries=5)) as client, pytest.raises(InferenceError, match="HTTP 400"):
        client.chat(MESSAGES)
    assert len(server.requests) == 4


def test_timeout_is_retried_then_reported(server: OpenAIStandIn) -> None:
    server.fail(times=1, status=200, delay_s=0.6)  # slow once, then fine
    with ChatClient(config(server, timeout_s=0.2, max_retries=1)) as client:
        assert client.chat(MESSAGES) == "first reply here"
    server.fail(times=5, status=200, delay_s=0.6)
    with (
        ChatClient(config(server, timeout_s=0.2, max_retries=1)) as client,
        pytest.raises(InferenceError, match=r"ReadTimeout.*after 2 tries"),
    ):
        client.chat(MESSAGES)


def test_connection_refused_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = InferenceConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01)
    with ChatClient(cfg) as client, pytest.raises(InferenceError, match="ConnectError"):
        client.chat(MESSAGES)
    assert not ChatClient(cfg).healthy()


def test_streaming_yields_deltas_sync_and_async(server: OpenAIStandIn) -> None:
    server.replies = ["one two three four"]
    server.fail(times=1, status=502)  # retried before the first byte
    with ChatClient(config(server)) as client:
        deltas = list(client.stream(MESSAGES))
    assert deltas == ["one ", "two ", "three ", "four"]
    assert server.requests[-1]["stream"] is True

    async def collect() -> list[str]:
        async with ChatClient(config(server)) as client:
            return [d async for d in client.astream(MESSAGES)]

    assert "".join(asyncio.run(collect())) == "one two three four"


def test_async_completions_run_concurrently(server: OpenAIStandIn) -> None:
    server.reply = lambda body: body["messages"][-1]["content"].upper()
    server.fail(times=1, status=429, retry_after="0")

    async def many() -> list[str]:
        async with ChatClient(config(server)) as client:
            return await asyncio.gather(
                *(client.achat([{"role": "user", "content": f"q{i}"}]) for i in range(8))
            )

    assert asyncio.run(many()) == [f"Q{i}" for i in range(8)]


def test_api_key_from_env_is_sent_and_never_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PERSONAS_INFERENCE__API_KEY", "sk-secret-123")
    with serve_openai(OpenAIStandIn(["ok"], api_key="sk-secret-123")) as server:
        monkeypatch.setenv("PERSONAS_INFERENCE__BASE_URL", server.base_url)
        monkeypatch.setenv("PERSONAS_INFERENCE__MODEL", "tiny-base")
        settings = load_settings()
        assert "sk-secret-123" not in repr(settings.inference) and "sk-secret-123" not in str(settings)
        caplog.set_level(logging.DEBUG)
        with ChatClient(settings.inference) as client:
            assert client.chat(MESSAGES) == "ok"
        assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
        assert "sk-secret-123" not in caplog.text
        monkeypatch.delenv("PERSONAS_INFERENCE__API_KEY")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
        with ChatClient(load_settings().inference) as client, pytest.raises(InferenceError, match="HTTP 401"):
            client.chat(MESSAGES)


def test_adapters_load_list_unload(server: OpenAIStandIn) -> None:
    with ChatClient(config(server)) as client:
        assert client.healthy()
        client.load_adapter("rl-step-1", "/runs/rl/1")
        with pytest.raises(InferenceError, match="already loaded"):
            client.load_adapter("rl-step-1", "/runs/rl/1b")
        client.load_adapter("rl-step-1", "/runs/rl/1b", replace=True)
        models = {m["id"]: m.get("parent") for m in client.list_models()}
        assert models == {"tiny-base": None, "rl-step-1": "tiny-base"}
        assert client.chat(MESSAGES, model="rl-step-1") == "first reply here"
        client.unload_adapter("rl-step-1")
        assert [m["id"] for m in client.list_models()] == ["tiny-base"]
