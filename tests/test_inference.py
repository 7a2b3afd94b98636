"""The OpenAI-compatible inference client against a loopback stand-in of /v1/chat/completions."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from pipeline.config import load_settings
from pipeline.inference import AsyncChatClient, ChatClient, InferenceConfig, InferenceError
from tests.support.openai_api import ChatStandIn, chat_stand_in

pytestmark = pytest.mark.network_loopback

SECRET = "sk-test-never-log-this-0123456789"


def _config(url: str, **kw: object) -> InferenceConfig:
    return InferenceConfig.model_validate(
        {"base_url": url, "api_key": SECRET, "model": "m", "backoff_s": 0.01, "max_backoff_s": 0.05, **kw}
    )


def test_chat_sends_model_messages_params_and_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with chat_stand_in(ChatStandIn(reply=lambda body: f"echo {body['messages'][-1]['content']}")) as api:
        config = _config(api.url, model="small", models={"small": "Qwen/Qwen2.5-0.5B-Instruct"})
        with ChatClient(config) as client:
            text = client.chat([{"role": "user", "content": "hi"}], temperature=0.2, max_tokens=5)
            other = client.chat([{"role": "user", "content": "yo"}], model="named-directly")
    assert text == "echo hi" and other == "echo yo"
    assert api.requests[0] == {
        "model": "Qwen/Qwen2.5-0.5B-Instruct",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 5,
    }
    assert api.requests[1]["model"] == "named-directly"
    assert api.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())


def test_retries_429_and_5xx_then_succeeds() -> None:
    script = [(429, {"Retry-After": "0"}), (503, {}), (500, {})]
    with (
        chat_stand_in(ChatStandIn(reply="done", failures=script)) as api,
        ChatClient(_config(api.url)) as client,
    ):
        assert client.chat([{"role": "user", "content": "x"}]) == "done"
        assert client.retries == 3 and client.requests == 4


def test_gives_up_after_max_retries_and_does_not_retry_client_errors() -> None:
    with chat_stand_in(ChatStandIn(failures=[(503, {})] * 5)) as api:
        with (
            ChatClient(_config(api.url, max_retries=2)) as client,
            pytest.raises(InferenceError, match="HTTP 503"),
        ):
            client.chat([{"role": "user", "content": "x"}])
        assert len(api.requests) == 3
    with chat_stand_in(ChatStandIn(failures=[(400, {})])) as api:
        with ChatClient(_config(api.url)) as client, pytest.raises(InferenceError) as caught:
            client.chat([{"role": "user", "content": "x"}])
        assert caught.value.status == 400 and len(api.requests) == 1


def test_transport_error_is_an_inference_error() -> None:
    with chat_stand_in() as api:
        url = api.url
    with (
        ChatClient(_config(url, max_retries=1)) as client,
        pytest.raises(InferenceError, match="ConnectError"),
    ):
        client.chat([{"role": "user", "content": "x"}])


def test_async_client_concurrent() -> None:
    async def run(url: str) -> list[str]:
        async with AsyncChatClient(_config(url)) as client:
            return list(
                await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}]) for i in range(5)))
            )

    with chat_stand_in(ChatStandIn(reply=lambda b: b["messages"][0]["content"], failures=[(502, {})])) as api:
        assert sorted(asyncio.run(run(api.url))) == ["0", "1", "2", "3", "4"]
        assert len(api.requests) == 6


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_INFERENCE__API_KEY", "from-env-key")
    monkeypatch.setenv("PERSONAS_INFERENCE__BASE_URL", "http://127.0.0.1:1/v1")
    settings = load_settings()
    assert isinstance(settings.inference.api_key, SecretStr)
    assert settings.inference.api_key.get_secret_value() == "from-env-key"
    assert "from-env-key" not in repr(settings)
