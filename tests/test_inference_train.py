"""The minimal inference client (pipeline/inference.py) against a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.inference import ChatClient, InferenceConfig, InferenceError
from tests.support.chat_server import ChatServer, serve

pytestmark = pytest.mark.network_loopback


def test_chat_retries_and_errors(tiny_model: Path) -> None:
    server = ChatServer({"tiny": tiny_model}, api_key="k")
    with serve(server) as url:
        config = InferenceConfig(base_url=url, api_key=SecretStr("k"), model="tiny", max_retries=2)
        with ChatClient(config) as client:
            expected = client.chat([{"role": "user", "content": "hello"}], max_tokens=5)
            assert isinstance(expected, str) and expected
            server.faults = [503, 429]
            assert client.chat([{"role": "user", "content": "hello"}], max_tokens=5) == expected
            assert client.retries == 2
            assert server.requests[-1] == {
                "model": "tiny",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 5,
            }
            assert asyncio.run(client.achat([{"role": "user", "content": "hello"}], max_tokens=5)) == expected
            with pytest.raises(InferenceError, match="404"):
                client.chat([{"role": "user", "content": "x"}], model="absent")
            server.faults = [500, 500, 500]
            with pytest.raises(InferenceError, match="after 3 attempts"):
                client.chat([{"role": "user", "content": "x"}])
        with (
            ChatClient(InferenceConfig(base_url=url, api_key=SecretStr("wrong"), model="tiny")) as client,
            pytest.raises(InferenceError, match="401"),
        ):
            client.chat([{"role": "user", "content": "x"}])
    with ChatClient(InferenceConfig(base_url=url)) as client, pytest.raises(InferenceError, match="no model"):
        client.chat([{"role": "user", "content": "x"}])
